"""Benchmark: training throughput of the demo recipe with and without the frozen-encoder feature cache.

Both set-ups run the same training steps (forward, backward, AdamW step with the recipe's optimizer groups)
on the same batches of the synthetic dataset (half images, half beep clips), read through the processor
once beforehand, so data loading is out of the measurement and the difference is the encoders. The cache is
filled by one untimed pass, as the first epoch of a run fills it; then steps alternate between reading the
cache and running the frozen encoders, so machine noise hits both alike. Prints the median samples/s and
tokens/s of each and their ratio (the speed-up later epochs, stages and evaluations get).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def batches(processor: object, root: Path, count: int, size: int) -> list[dict]:
    import json

    from zoo.data import READERS
    from zoo.data.readers import Context
    from zoo.data.synthetic import make_synthetic_dataset

    paths = make_synthetic_dataset(root, count * size, 2, modalities=("image", "audio"), seed=0)
    lines = paths["train"].read_text().splitlines()
    samples = [
        READERS["s3"](json.loads(x), Context("bench", i, media_root=root)) for i, x in enumerate(lines)
    ]
    encoded = [processor.encode(sample.messages) for sample in samples]
    return [processor.collate(encoded[i : i + size]) for i in range(0, len(encoded), size)]


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> tuple[float, float]:
    """Wall and CPU seconds of one training step (CPU time is less disturbed by other processes)."""
    wall, cpu = time.perf_counter(), time.process_time()
    model(**batch).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="s3-smol-dinov2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per set-up (distinct batches)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers.utils import logging as transformers_logging

    from zoo import ZooProcessor, build
    from zoo.training.feature_cache import FeatureCache
    from zoo.training_plan import make_optimizer

    transformers_logging.disable_progress_bar()
    torch.manual_seed(0)
    model = build(args.recipe).train()
    processor = ZooProcessor.from_model(model)
    optimizer = make_optimizer(model, model.recipe.stages[0])
    with tempfile.TemporaryDirectory() as tmp:
        data = batches(processor, Path(tmp) / "data", args.steps, args.batch)
        cache = FeatureCache(Path(tmp) / "cache")
        model.use_feature_cache(cache)
        with torch.no_grad():  # the first epoch: fills the cache
            for batch in data:
                for modality, inputs in batch["media"].items():
                    model.encode_media(modality, inputs)
        times: dict[str, list[tuple[float, float]]] = {"cached": [], "encoders": []}
        for batch in data:
            for name in times:
                model.use_feature_cache(cache if name == "cached" else None)
                times[name].append(step(model, optimizer, batch))
        tokens = statistics.median(float(b["attention_mask"].sum()) for b in data)
    print(
        f"recipe {args.recipe}, batch {args.batch} ({tokens:.0f} tokens), {args.steps} alternating steps "
        f"per set-up, torch threads {torch.get_num_threads()}; cache {cache.hits} reads, {cache.misses} encodes"
    )
    speed = {}
    for name, pairs in times.items():
        wall = statistics.median(w for w, _ in pairs)
        cpu = statistics.median(c for _, c in pairs)
        speed[name] = (args.batch / wall, args.batch / cpu)
        label = "feature cache" if name == "cached" else "encoders run"
        print(
            f"{label:14s} {wall:6.2f} s/step ({cpu:6.2f} s CPU)  {speed[name][0]:6.2f} samples/s  "
            f"{tokens / wall:8.1f} tokens/s"
        )
    wall_ratio = speed["cached"][0] / speed["encoders"][0]
    cpu_ratio = speed["cached"][1] / speed["encoders"][1]
    print(f"speed-up from the feature cache: {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x CPU time")


if __name__ == "__main__":
    main()
