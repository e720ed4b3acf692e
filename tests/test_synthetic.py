"""The synthetic dataset: deterministic, decodable, balanced, and answerable only from the media."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from zoo.data.synthetic import BEEPS, COLOURS, DIRECTIONS, QUESTIONS, SHAPES, make_synthetic_dataset
from zoo.media import load_audio, load_image, load_video


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("syn"), n_train=48, n_test=24, seed=3)


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_s3_chat_json_and_every_file_decodes(dataset) -> None:
    root = dataset["root"]
    train = records(dataset["train"])
    assert len(train) == 48 and len(records(dataset["test"])) == 24
    for record in train:
        media, question, answer = record["messages"]
        assert (media["role"], question["type"], answer["role"]) == ("user", "text", "bot")
        path = root / media["text"]
        if media["type"] == "image":
            assert load_image(path).size == (64, 64)
        elif media["type"] == "video":
            assert len(load_video(path, num_frames=4)) == 4
        else:
            assert load_audio(str(path)).size > 0


def test_answers_are_balanced_per_question(dataset) -> None:
    by_question: dict[str, Counter] = {}
    for record in records(dataset["train"]):
        question, answer = record["messages"][1]["text"], record["messages"][2]["text"]
        by_question.setdefault(question, Counter())[answer] += 1
    choices = {
        "colour": set(COLOURS),
        "shape": set(SHAPES),
        "direction": set(DIRECTIONS),
        "beeps": set(BEEPS),
    }
    assert set(by_question) == set(QUESTIONS.values())
    for kind, question in QUESTIONS.items():
        counts = by_question[question]
        assert set(counts) == choices[kind], question
        assert max(counts.values()) - min(counts.values()) <= 1, (question, counts)


def test_answers_are_in_the_media(dataset) -> None:
    root = dataset["root"]
    for record in records(dataset["test"]):
        media, question, answer = (m["text"] for m in record["messages"])
        kind = record["messages"][0]["type"]
        if kind == "audio":
            assert _count_beeps(load_audio(str(root / media))) == BEEPS.index(answer) + 1
        elif kind == "video":
            first, last = (
                load_video(root / media, num_frames=8)[0],
                load_video(root / media, num_frames=8)[-1],
            )
            assert _direction(_centroid(first), _centroid(last)) == answer
        elif "colour" in question:
            pixels = np.asarray(load_image(root / media)).reshape(-1, 3)
            shape_pixels = pixels[np.abs(pixels.astype(int) - 128).sum(1) > 60]
            nearest = min(COLOURS, key=lambda c: np.abs(shape_pixels.mean(0) - COLOURS[c]).sum())
            assert nearest == answer


def test_same_seed_same_dataset_other_seed_other_dataset(dataset, tmp_path) -> None:
    again = make_synthetic_dataset(tmp_path / "again", n_train=48, n_test=24, seed=3)
    assert dataset["train"].read_text() == again["train"].read_text()
    for record in records(dataset["train"])[:6]:
        name = record["messages"][0]["text"]
        if name.endswith(".mp4"):
            a, b = load_video(dataset["root"] / name, 8), load_video(again["root"] / name, 8)
            assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b, strict=True))
        else:
            assert (dataset["root"] / name).read_bytes() == (again["root"] / name).read_bytes()
    other = make_synthetic_dataset(tmp_path / "other", n_train=6, n_test=0, modalities=("image",), seed=4)
    assert (other["root"] / "train/00000.png").read_bytes() != (
        dataset["root"] / "train/00000.png"
    ).read_bytes()
    assert records(other["test"]) == []


def test_cli_writes_the_dataset(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "zoo.data.synthetic", str(tmp_path), "--train", "3", "--test", "3",
         "--modalities", "audio"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["train"] == str(tmp_path / "train.jsonl")
    assert [r["messages"][0]["type"] for r in records(tmp_path / "train.jsonl")] == ["audio"] * 3
    with pytest.raises(ValueError, match="modalities must be"):
        make_synthetic_dataset(tmp_path, 1, 1, modalities=("smell",))


def _count_beeps(waveform: np.ndarray) -> int:
    frames = np.abs(waveform[: len(waveform) // 160 * 160]).reshape(-1, 160).max(1) > 0.1
    return int(np.sum(frames[1:] & ~frames[:-1]) + frames[0])


def _centroid(frame) -> np.ndarray:
    pixels = np.asarray(frame).astype(int)
    mask = np.abs(pixels - 128).sum(-1) > 60
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _direction(a: np.ndarray, b: np.ndarray) -> str:
    dx, dy = b - a
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"
