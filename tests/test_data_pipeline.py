"""The pipeline end to end on real files: every sample read is used or listed, with 0 and 2 workers."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

import zoo
from zoo.data.mixture import Mixture
from zoo.data.pipeline import SkipLedger, make_loader
from zoo.data.schema import Skip
from zoo.errors import FailureRateError


@pytest.fixture(scope="module")
def processor():
    return zoo.ZooProcessor.from_model(zoo.build("tiny"))


@pytest.fixture
def media(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    Image.new("RGB", (40, 30), "red").save(root / "red.png")
    Image.new("RGB", (30, 40), "blue").save(root / "blue.jpg", quality=90)
    Image.new("L", (32, 32), 128).save(root / "grey.webp")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    tone = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype("float32")
    soundfile.write(root / "tone.wav", tone, 8000)
    soundfile.write(root / "tone.flac", np.stack([tone, tone], axis=1), 8000)
    (root / "noise.wav").write_bytes(b"RIFF not audio")
    return root


def _s3(i, media_file, kind="image"):
    return {
        "id": f"s3-{i}",
        "messages": [
            {"role": "user", "type": kind, "text": media_file},
            {"role": "user", "type": "text", "text": f"What is in item {i}?"},
            {"role": "bot", "type": "text", "text": f"Item {i}."},
        ],
    }


@pytest.fixture
def mixture_config(tmp_path, media):
    files = ["red.png", "blue.jpg", "grey.webp", "tone.wav", "tone.flac"]
    records = [
        _s3(i, files[i % 5], "audio" if files[i % 5].startswith("tone") else "image") for i in range(20)
    ]
    records[3] = _s3(3, "corrupt.png")
    records[7] = _s3(7, "missing.png")
    records[11] = _s3(11, "noise.wav", "audio")
    records[13] = {"id": "s3-13", "messages": [{"role": "user", "type": "text", "text": "no answer"}]}
    lines = [json.dumps(r) for r in records] + ["{truncated"]
    (tmp_path / "chat.jsonl").write_text("\n".join(lines) + "\n")
    llava = [
        {"id": f"l{i}", "image": "red.png", "conversations": [{"from": "human", "value": "<image>\nColour?"},
                                                               {"from": "gpt", "value": "Red."}]}
        for i in range(6)
    ]  # fmt: skip
    llava[2]["conversations"][0]["value"] = "<image> <image> two markers, one image"
    (tmp_path / "llava.json").write_text(json.dumps(llava))
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "green").save(buffer, format="PNG")
    good = base64.b64encode(buffer.getvalue()).decode()
    rows = [{"instruction": "Name the colour.", "inputs": "", "outputs": "Green.", "image_base64_str": [good],
             "meta": json.dumps({"i": i})} for i in range(6)]  # fmt: skip
    rows[4]["image_base64_str"] = [base64.b64encode(b"garbage bytes that are no image at all" * 3).decode()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "m3it.parquet")
    return {
        "seed": 0,
        "datasets": [
            {"name": "chat", "path": str(tmp_path / "chat.jsonl"), "format": "s3", "count": 21,
             "media_root": str(media), "system_prompt": "Answer briefly."},
            {"name": "llava", "path": str(tmp_path / "llava.json"), "format": "llava", "count": 6,
             "media_root": str(media)},
            {"name": "m3it", "path": str(tmp_path / "m3it.parquet"), "format": "m3it", "count": 6},
        ],
    }  # fmt: skip


EXPECTED_SKIPS = {
    ("chat", 3, "decode"),
    ("chat", 7, "decode"),
    ("chat", 11, "decode"),
    ("chat", 13, "convert"),
    ("chat", 20, "read"),
    ("llava", 2, "convert"),
    ("m3it", 4, "decode"),
}


@pytest.mark.parametrize("workers", [0, 2])
def test_every_sample_is_used_once_or_listed_with_its_reason(processor, mixture_config, tmp_path, workers):
    loader = make_loader(
        processor, Mixture.from_dict(mixture_config), batch_size=4, num_workers=workers, max_length=256,
        output_dir=tmp_path / "run", max_failure_rate=0.5,
    )  # fmt: skip
    batches = list(loader)
    assert loader.read == 33 and loader.used == 26 and len(loader.ledger) == 7  # used + skipped == read
    assert {(s.dataset, s.index, s.stage) for s in loader.ledger.entries} == EXPECTED_SKIPS
    used = [(u["dataset"], u["index"]) for u in loader.used_samples]
    assert len(set(used)) == len(used) == 26  # each exactly once across workers
    assert sum(b["input_ids"].shape[0] for b in batches) == 26
    assert all(b["input_ids"].shape[1] % 8 == 0 for b in batches)
    assert all((b["labels"] != -100).any() for b in batches)
    written = [
        json.loads(line) for line in (tmp_path / "run" / "skipped_samples.jsonl").read_text().splitlines()
    ]
    assert {(w["dataset"], w["index"], w["stage"]) for w in written} == EXPECTED_SKIPS
    reasons = {(w["dataset"], w["index"]): w["reason"] for w in written}
    assert "no such file" in reasons[("chat", 7)] and "not valid JSON" in reasons[("chat", 20)]
    assert "2 <image> marker(s) but 1 image(s)" in reasons[("llava", 2)]


def test_failure_rate_above_threshold_stops_the_run_and_writes_the_list(processor, mixture_config, tmp_path):
    ledger = tmp_path / "skips.jsonl"
    loader = make_loader(
        processor, mixture_config, batch_size=4, num_workers=0, max_length=256, ledger_path=ledger,
        max_failure_rate=0.1, min_samples=10,
    )  # fmt: skip
    with pytest.raises(
        FailureRateError, match=r"could not be used, above max_failure_rate 10.0%.*skips.jsonl"
    ):
        list(loader)
    assert ledger.is_file() and len(ledger.read_text().splitlines()) == len(loader.ledger) >= 2


def test_a_sample_whose_media_alone_exceed_the_limit_is_reported(processor, mixture_config, tmp_path):
    config = dict(mixture_config, datasets=mixture_config["datasets"][2:])  # m3it: one image per sample
    loader = make_loader(processor, config, batch_size=2, num_workers=0, max_length=4, max_failure_rate=1.0,
                         output_dir=tmp_path)  # fmt: skip
    assert list(loader) == []
    assert loader.used == 0 and {s.stage for s in loader.ledger.entries} == {"length", "decode"}
    length = [s for s in loader.ledger.entries if s.stage == "length"]
    assert len(length) == 5 and "4" in length[0].reason


def test_ledger_summary_counts_per_dataset_and_stage(tmp_path):
    ledger = SkipLedger()
    ledger.add(Skip("a", 1, "x", "decode", "image 'x.png': no such file"))
    ledger.add(Skip("a", 2, "y", "decode", "image 'y.png': no such file"))
    ledger.add(Skip("b", 0, None, "read", "line 1 is not valid JSON"))
    summary = ledger.summary(used=97)
    assert "3 samples skipped of 100 read" in summary
    assert "a: 2 (decode: 2)" in summary and "b: 1 (read: 1)" in summary
    assert ledger.counts() == {("a", "decode"): 2, ("b", "read"): 1}
    lines = ledger.write(tmp_path / "l.jsonl").read_text().splitlines()
    assert json.loads(lines[2]) == {"dataset": "b", "index": 0, "id": None, "stage": "read",
                                    "reason": "line 1 is not valid JSON", "source": None}  # fmt: skip


def test_import_zoo_data_is_light():
    import subprocess
    import sys

    code = "import sys, zoo.data; print('torch' in sys.modules, 'datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_packing_through_the_loader(processor, mixture_config, tmp_path):
    config = dict(mixture_config, datasets=mixture_config["datasets"][1:])
    loader = make_loader(processor, config, batch_size=4, num_workers=0, max_length=128, packing=True,
                         output_dir=tmp_path, max_failure_rate=1.0)  # fmt: skip
    batches = list(loader)
    assert loader.used == 10 and all("position_ids" in b for b in batches)
    assert all(b["input_ids"].shape[1] <= 128 for b in batches)


def test_the_recipes_max_length_is_the_loaders_default_limit(mixture_config, tmp_path):
    processor = zoo.ZooProcessor.from_model(zoo.build("tiny", max_length=4))
    assert processor.max_length == 4
    config = dict(mixture_config, datasets=mixture_config["datasets"][2:])
    loader = make_loader(processor, config, batch_size=2, num_workers=0, max_failure_rate=1.0,
                         output_dir=tmp_path)  # fmt: skip
    assert list(loader) == [] and "length" in {s.stage for s in loader.ledger.entries}
