"""Benchmark: data-loader throughput versus the composed small model's training step rate, side by side.

For image, video and audio samples from the synthetic generator (``zoo.data.synthetic``), it measures
samples/s through the whole loader path (read records, decode with PIL / PyAV / soundfile, the encoders'
own preprocessing, tokenise, truncate, collate) using ``zoo.data.make_loader`` with its default number of
workers, and samples/s of a training step (forward + backward + AdamW step) of the composed small model
(``s3-smol``: SmolLM2-135M + CLIP ViT-B/16 + Whisper tiny.en; a video encoder is added for video, the same
CLIP ViT-B/16 over 4 frames) on batches of the same size. The ratio loader/train must be >= 2 so the
loader never starves the model. Both are measured in one run, one after the other, on the same machine.

    python bench/data_loader.py [--recipe s3-smol] [--batch 8] [--samples 48] [--steps 3]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TARGET = 2.0
VIDEO_OVERRIDES = {  # s3-smol has no video encoder: read 4 frames with its image tower, S3 projector
    "encoders": {"video": {"name": "video-frames", "args": {"num_frames": 4, "frame_encoder": "image"}}},
    "projectors": {"video": {"name": "s3", "args": {"num_tokens": 4}}},
    "tokens": {"video": {"placeholder": "[video]", "start": "[M]", "end": "[/M]"}},
}


def build_model(recipe: str) -> Any:
    import zoo

    return zoo.build(recipe, **VIDEO_OVERRIDES)


def make_data(root: Path, samples: int) -> dict[str, Path]:
    """One synthetic S3 JSONL dataset per modality."""
    from zoo.data.synthetic import make_synthetic_dataset

    return {
        m: make_synthetic_dataset(root / m, samples, 0, modalities=(m,), seed=1)["train"]
        for m in ("image", "video", "audio")
    }


def loader_rate(processor: Any, data: Path, batch: int, max_length: int) -> tuple[float, int]:
    """Samples/s through make_loader (default workers), excluding the first batch (worker start-up)."""
    from zoo.data import make_loader

    workers = inspect.signature(make_loader).parameters["num_workers"].default
    loader = make_loader(
        processor,
        [{"name": data.parent.name, "path": str(data), "format": "s3"}],
        batch_size=batch,
        max_length=max_length,
        ledger_path=data.parent / "skipped.jsonl",
    )
    count, start = 0, None
    for batch_out in loader:
        if start is None:  # the clock starts once the workers are up and the first batch is out
            start = time.perf_counter()
            continue
        count += batch_out["input_ids"].shape[0]
    elapsed = time.perf_counter() - start
    return count / elapsed, workers


def train_rate(model: Any, batch: dict[str, Any], steps: int) -> float:
    """Samples/s of forward + backward + AdamW step on ``batch`` (median of ``steps`` after a warm-up)."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for index in range(steps + 1):
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if index:  # the first step allocates optimizer state
            times.append(time.perf_counter() - start)
    return batch["input_ids"].shape[0] / statistics.median(times)


def training_batch(processor: Any, data: Path, batch: int, max_length: int) -> dict[str, Any]:
    import json

    from zoo.data.synthetic import resolve_media

    records = [json.loads(line) for line in data.read_text().splitlines()[:batch]]
    encoded = [processor.encode(resolve_media(r, data.parent)) for r in records]
    return processor.collate(encoded, pad_to_multiple_of=8, max_length=max_length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="s3-smol")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=48, help="samples per modality for the loader")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args()
    torch.manual_seed(0)
    from zoo.processor import ZooProcessor

    model = build_model(args.recipe)
    processor = ZooProcessor.from_model(model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets = make_data(Path(tmp), args.samples)
        for modality, data in datasets.items():
            loader, workers = loader_rate(processor, data, args.batch, args.max_length)
            train = train_rate(
                model, training_batch(processor, data, args.batch, args.max_length), args.steps
            )
            rows.append((modality, loader, train, loader / train))
    print(f"recipe {args.recipe}, batch {args.batch}, loader workers {workers} (make_loader default)")
    print(f"{'modality':<9}{'loader samples/s':>18}{'train samples/s':>17}{'ratio':>8}")
    for modality, loader, train, ratio in rows:
        print(f"{modality:<9}{loader:>18.1f}{train:>17.2f}{ratio:>8.1f}")
    worst = min(r[3] for r in rows)
    print(
        f"min ratio {worst:.1f} (target >= {TARGET}): {'ok' if worst >= TARGET else 'LOADER IS THE BOTTLENECK'}"
    )


if __name__ == "__main__":
    main()
