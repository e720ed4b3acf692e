"""How fast a resumed run gets back to its data position: passing over positions vs encoding them.

A checkpoint's data position is its step; the loader reads the records before it without decoding any
media (``EncodedDataset(start_batch=...)``). This prints the time to the first batch at a late position
next to the time it takes to encode every batch before it, on the synthetic image + audio questions with
the tiny recipe's processor (Whisper log-mels for audio, as in real runs), as a ratio measured in one run.

    python bench/resume_position.py [--samples 160] [--batch 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import zoo
from zoo.data.pipeline import EncodedDataset
from zoo.data.synthetic import make_synthetic_dataset
from zoo.training.data import EpochStream, as_mixture


def first_batch_seconds(processor: object, stream: EpochStream, batch: int, start: int) -> float:
    began = time.perf_counter()
    next(iter(EncodedDataset(processor, stream, batch_size=batch, start_batch=start)))
    return time.perf_counter() - began


def encode_seconds(processor: object, stream: EpochStream, batch: int, batches: int) -> float:
    began = time.perf_counter()
    iterator = iter(EncodedDataset(processor, stream, batch_size=batch))
    for _ in range(batches + 1):
        next(iterator)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=160)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_synthetic_dataset(Path(folder), args.samples, 0, modalities=("image", "audio"), seed=0)
        processor = zoo.ZooProcessor.from_model(zoo.build("tiny"))
        stream = EpochStream(as_mixture(str(paths["train"])), seed=0)
        start = args.samples // args.batch - 1
        first_batch_seconds(processor, stream, args.batch, 0)  # warm-up: imports, first decode
        skipped = first_batch_seconds(processor, stream, args.batch, start)
        encoded = encode_seconds(processor, stream, args.batch, start)
    print(
        f"resume at batch {start} ({start * args.batch} samples before it): first batch after "
        f"{skipped:.2f} s passing over them; {encoded:.2f} s encoding them; ratio {encoded / skipped:.0f}x"
    )


if __name__ == "__main__":
    main()
