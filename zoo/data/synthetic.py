"""A tiny synthetic multimodal dataset whose answers can only come from the media.

Images of a coloured shape ("What colour is the shape?" / "What shape is this?"), short MP4 clips of a
shape moving in one direction ("Which way does the shape move?"), and WAV clips of 1-4 beeps ("How many
beeps do you hear?"). Every question of a kind has the same wording and the answers are balanced (each
answer equally often per split), so a model that ignores the media is at chance. Records are S3 chat
JSON lines (``id``, ``messages`` of ``role``/``type``/``text``; media paths relative to the dataset
root). Deterministic given the seed; the held-out split draws fresh positions, sizes and timings.

    python -m zoo.data.synthetic OUT_DIR [--train 60] [--test 30] [--seed 0] [--modalities image,video]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (230, 210, 20)}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
BEEPS = ("one", "two", "three", "four")
MODALITIES = ("image", "video", "audio")
QUESTIONS = {
    "colour": "What colour is the shape?",
    "shape": "What shape is this?",
    "direction": "Which way does the shape move?",
    "beeps": "How many beeps do you hear?",
}
SIZE, FRAMES, FPS, RATE = 64, 8, 8, 16000


def make_synthetic_dataset(
    root: str | Path,
    n_train: int,
    n_test: int,
    modalities: Sequence[str] = MODALITIES,
    seed: int = 0,
) -> dict[str, Path]:
    """Write media and ``train.jsonl`` / ``test.jsonl`` under ``root``; samples cycle through ``modalities``.

    Returns ``{"root", "train", "test"}`` paths. Each split has ``n`` samples; per modality and question
    kind every answer occurs equally often (up to rounding).
    """
    unknown = set(modalities) - set(MODALITIES)
    if unknown or not modalities:
        raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {list(modalities)}")
    root = Path(root)
    paths = {"root": root}
    for offset, (split, count) in enumerate((("train", n_train), ("test", n_test))):
        rng = np.random.default_rng([seed, offset])
        records = _split_records(root, split, count, list(modalities), rng)
        paths[split] = root / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in records))
    return paths


def _split_records(
    root: Path, split: str, count: int, modalities: list[str], rng: np.random.Generator
) -> list[dict]:
    (root / split).mkdir(parents=True, exist_ok=True)
    answers = _BalancedAnswers(rng)
    records = []
    for index in range(count):
        modality = modalities[index % len(modalities)]
        turn = index // len(modalities)
        name = f"{split}/{index:05d}"
        if modality == "image":
            kind = "colour" if turn % 2 == 0 else "shape"
            answer, media = _image_sample(root, name, kind, answers, rng)
        elif modality == "video":
            kind = "direction"
            answer, media = _video_sample(root, name, answers, rng)
        else:
            kind = "beeps"
            answer, media = _audio_sample(root, name, answers, rng)
        records.append(_record(f"{split}-{index:05d}", modality, media, QUESTIONS[kind], answer, kind))
    return records


class _BalancedAnswers:
    """Draws answers so that each one appears equally often: a fresh permutation per round."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.queues: dict[str, list[str]] = {}

    def next(self, kind: str, choices: Sequence[str]) -> str:
        queue = self.queues.setdefault(kind, [])
        if not queue:
            queue.extend(choices[i] for i in self.rng.permutation(len(choices)))
        return queue.pop()


def _record(sample_id: str, modality: str, media: str, question: str, answer: str, kind: str) -> dict:
    return {
        "id": sample_id,
        "messages": [
            {"role": "user", "type": modality, "text": media},
            {"role": "user", "type": "text", "text": question},
            {"role": "bot", "type": "text", "text": answer},
        ],
        "meta": {"task": kind, "answer": answer},
    }


# -- images -----------------------------------------------------------------------------------------------
def draw_shape(shape: str, colour: tuple[int, int, int], centre: tuple[float, float], radius: float) -> Any:
    """A ``SIZE``×``SIZE`` RGB image of one filled shape on a grey background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    x, y = centre
    box = (x - radius, y - radius, x + radius, y + radius)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)], fill=colour)
    return image


def shape_image(shape: str = "circle", colour: str = "red") -> Any:
    """One centred shape of a named colour (e.g. a red disc), for demos and tests."""
    return draw_shape(shape, COLOURS[colour], (SIZE / 2, SIZE / 2), SIZE * 0.3)


def _image_sample(
    root: Path, name: str, kind: str, answers: _BalancedAnswers, rng: np.random.Generator
) -> tuple[str, str]:
    colour = answers.next("colour", list(COLOURS)) if kind == "colour" else str(rng.choice(list(COLOURS)))
    shape = answers.next("shape", SHAPES) if kind == "shape" else str(rng.choice(SHAPES))
    radius = float(rng.uniform(10, 18))
    centre = tuple(float(v) for v in rng.uniform(radius + 2, SIZE - radius - 2, size=2))
    relative = f"{name}.png"
    draw_shape(shape, COLOURS[colour], centre, radius).save(root / relative)
    return (colour if kind == "colour" else shape), relative


# -- video ------------------------------------------------------------------------------------------------
def _video_sample(
    root: Path, name: str, answers: _BalancedAnswers, rng: np.random.Generator
) -> tuple[str, str]:
    direction = answers.next("direction", DIRECTIONS)
    colour = COLOURS[str(rng.choice(list(COLOURS)))]
    shape = str(rng.choice(SHAPES))
    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[direction]
    radius, travel = 8.0, float(rng.uniform(28, 36))
    start = np.array([SIZE / 2, SIZE / 2]) - np.array(step) * travel / 2 + rng.uniform(-4, 4, size=2)
    frames = [
        draw_shape(shape, colour, tuple(start + np.array(step) * travel * i / (FRAMES - 1)), radius)
        for i in range(FRAMES)
    ]
    relative = f"{name}.mp4"
    write_mp4(root / relative, frames, FPS)
    return direction, relative


def write_mp4(path: Path, frames: list[Any], fps: int) -> None:
    """Encode RGB frames as an H.264 MP4 (MPEG-4 part 2 where this PyAV has no H.264 encoder)."""
    import av

    with av.open(str(path), "w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "18"})
        except (av.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1  # deterministic output
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# -- audio ------------------------------------------------------------------------------------------------
def beeps(count: int, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` short sine beeps with random gaps, at ``RATE`` Hz, as float32 mono."""
    pieces = [np.zeros(int(rng.uniform(0.05, 0.2) * RATE), np.float32)]
    for _ in range(count):
        length = int(rng.uniform(0.12, 0.2) * RATE)
        t = np.arange(length) / RATE
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps, no clicks
        pieces.append((0.4 * envelope * np.sin(2 * np.pi * pitch * t)).astype(np.float32))
        pieces.append(np.zeros(int(rng.uniform(0.12, 0.25) * RATE), np.float32))
    return np.concatenate(pieces)


def _audio_sample(
    root: Path, name: str, answers: _BalancedAnswers, rng: np.random.Generator
) -> tuple[str, str]:
    import soundfile

    answer = answers.next("beeps", BEEPS)
    waveform = beeps(BEEPS.index(answer) + 1, float(rng.uniform(440, 880)), rng)
    relative = f"{name}.wav"
    soundfile.write(root / relative, waveform, RATE, subtype="PCM_16")
    return answer, relative


def resolve_media(record: dict, root: str | Path) -> list[dict]:
    """A record's messages with media paths made absolute (for feeding the processor directly)."""
    root = Path(root)
    return [
        {**m, "text": str(root / m["text"])} if m.get("type", "text") != "text" else dict(m)
        for m in record["messages"]
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zoo.data.synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--test", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modalities", default=",".join(MODALITIES))
    args = parser.parse_args(argv)
    paths = make_synthetic_dataset(
        args.out_dir, args.train, args.test, tuple(args.modalities.split(",")), seed=args.seed
    )
    print(json.dumps({k: str(v) for k, v in paths.items()}))


if __name__ == "__main__":
    main()
