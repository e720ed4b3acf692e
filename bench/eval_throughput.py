"""Benchmark: `zoo.evaluate` samples/s at batch 1 versus batched generation, side by side, on one model.

The small model (s3-smol: SmolLM2-135M, CLIP ViT-B/16, Whisper tiny.en) is built once; the synthetic
test split (image and audio questions) is evaluated with ``exact_match`` at batch 1 and at ``--batch``
(left padding, KV cache, greedy), alternating the two ``--rounds`` times so machine noise hits both alike.
Each run includes reading, media decoding and encoding, generation and scoring; model loading is not
timed. The answers must be the same at both batch sizes; the ratio is printed.

    python bench/eval_throughput.py [--recipe s3-smol] [--samples 16] [--batch 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def run(model: object, data: Path, batch: int, max_new_tokens: int) -> tuple[float, list[str]]:
    import zoo

    start = time.perf_counter()
    result = zoo.evaluate(
        model, data, ["exact_match"], batch_size=batch, max_new_tokens=max_new_tokens, progress=False
    )
    seconds = time.perf_counter() - start
    return len(result.predictions) / seconds, [row["prediction"] for row in result.predictions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default="s3-smol")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")

    import torch

    import zoo
    from zoo.data.synthetic import make_synthetic_dataset

    torch.manual_seed(0)
    model = zoo.build(args.recipe).eval()
    modalities = tuple(m for m in ("image", "audio") if m in model.config.modalities) or ("image",)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_synthetic_dataset(tmp, n_train=1, n_test=args.samples, modalities=modalities, seed=0)
        run(model, paths["test"], args.batch, 2)  # warm-up: first-use costs (tokenizer, kernels)
        single, batched = [], []
        for _ in range(args.rounds):
            rate_1, answers_1 = run(model, paths["test"], 1, args.max_new_tokens)
            rate_b, answers_b = run(model, paths["test"], args.batch, args.max_new_tokens)
            single.append(rate_1)
            batched.append(rate_b)
    same = sum(a == b for a, b in zip(answers_1, answers_b, strict=True))
    one, many = statistics.median(single), statistics.median(batched)
    print(f"model {args.recipe}, {args.samples} synthetic samples ({', '.join(modalities)}), "
          f"max_new_tokens {args.max_new_tokens}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"batch 1:  {one:.2f} samples/s   (rounds: {', '.join(f'{r:.2f}' for r in single)})")
    print(f"batch {args.batch}:  {many:.2f} samples/s   (rounds: {', '.join(f'{r:.2f}' for r in batched)})")
    print(f"ratio batched / batch 1: {many / one:.2f}x; identical answers: {same} of {len(answers_1)}")


if __name__ == "__main__":
    main()
