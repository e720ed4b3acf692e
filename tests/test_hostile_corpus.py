"""A hostile corpus: dozens of broken records of every kind mixed into good data, read with 0 and 2 workers.

The run completes, every good sample is used exactly once, and every bad one is in the ledger with the
stage and reason that fit it.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

import zoo
from zoo.data.pipeline import make_loader


def _png(colour="red", size=(12, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb() -> bytes:
    png = bytearray(_png())
    at = png.index(b"IHDR")
    png[at + 4 : at + 12] = struct.pack(">II", 50_000, 50_000)
    png[at + 17 : at + 21] = struct.pack(">I", zlib.crc32(bytes(png[at : at + 17])))
    return bytes(png)


def _s3(i, media=None, kind="image", text=None, answer="Yes."):
    messages = [{"role": "user", "type": kind, "text": media}] if media is not None else []
    messages += [{"role": "user", "text": text or f"Question {i}?"}, {"role": "bot", "text": answer}]
    return {"id": f"s{i}", "messages": messages}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    (root / "red.png").write_bytes(_png())
    jpeg = io.BytesIO()
    Image.new("RGB", (9, 7), "blue").save(jpeg, format="JPEG")
    (root / "blue.jpg").write_bytes(jpeg.getvalue())
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "bomb.png").write_bytes(_bomb())
    tone = (0.3 * np.sin(np.arange(8000) * 0.2)).astype(np.float32)
    soundfile.write(root / "tone.wav", tone, 22_051)  # an awkward rate, resampled in bounded memory
    soundfile.write(root / "nan.wav", np.where(np.arange(8000) == 5, np.nan, tone), 8000, subtype="FLOAT")
    jpeg64 = base64.b64encode(jpeg.getvalue()).decode()

    good = [_s3(i, "red.png") for i in range(14)] + [_s3(14, "blue.jpg"), _s3(15, jpeg64),
            _s3(16, "data:image/png;base64," + base64.b64encode(_png("green")).decode()),
            _s3(17, "tone.wav", "audio"), _s3(18, None, text="One\u2028line\x85still?")]  # fmt: skip
    bad = {  # line -> (stage, reason) ; the line is written after the good ones
        "{not json": ("read", "is not valid JSON"),
        b'{"id": "e9", "text": "caf\xe9"}': ("read", "is not valid UTF-8"),
        '{"id": 1, "n": ' + "7" * 5000 + "}": ("read", "is not valid JSON"),
        "[" * 100_000 + "]" * 100_000: ("read", "nested too deeply"),
        "[1, 2]": ("read", "must be a JSON object"),
        json.dumps(_s3(50, "http://[x/a.jpg")): ("convert", "is not a valid URL"),
        json.dumps(_s3(51, "~nosuchuser/a.jpg")): ("convert", "home directory"),
        json.dumps({"id": "s52", "messages": "none"}): ("convert", "field 'messages' must be a list"),
        json.dumps({"id": "s53", "messages": [{"role": "user", "text": "no answer"}]}): (
            "convert",
            "no assistant",
        ),
        json.dumps({"id": "s54", "messages": [{"role": "narrator", "text": "x"}]}): (
            "convert",
            "field 'role'",
        ),
        json.dumps(_s3(55, "missing.png")): ("decode", "no such file"),
        json.dumps(_s3(56, "corrupt.png")): ("decode", "cannot be decoded"),
        json.dumps(_s3(57, "bomb.png")): ("decode", "decompression bomb"),
        json.dumps(_s3(58, "nan.wav", "audio")): ("decode", "NaN or infinite"),
        json.dumps(_s3(59, "A" * 3000 + "!")): ("decode", "neither an existing file nor valid base64"),
        json.dumps(_s3(60, "data:image/png;base64,aGVsbG8gd29ybGQ=")): ("decode", "cannot be decoded"),
        json.dumps(_s3(61, None, text="What does <image> do?")): ("convert", "recipe token '<image>'"),
        json.dumps(
            {
                "id": "s62",
                "messages": [
                    {"role": "bot", "text": "Hi"},
                    {"role": "user", "text": "?"},
                    {"role": "bot", "text": "Ok"},
                ],
            }
        ): ("convert", "starts with an assistant"),  # fmt: skip
        json.dumps(_s3(63, "tone.wav", "smell")): ("convert", "field 'type'"),
        json.dumps(_s3(64, "tone.wav", "video")): ("decode", "video"),
        "null": ("read", "must be a JSON object"),
        json.dumps({"id": "s65", "messages": []}): ("convert", "non-empty list"),
        json.dumps(
            {"id": "s66", "messages": [{"role": "user", "text": ["a"]}, {"role": "bot", "text": "b"}]}
        ): ("convert", "must be a string for text"),
        json.dumps(_s3(67, "tone.wav", "image")): ("decode", "cannot be decoded"),
        json.dumps(_s3(68, None, text="caf\udce9?")): (
            "convert",
            "'content' is not valid Unicode: a lone surrogate",
        ),
    }
    # ensure_ascii=False: U+2028 and NEL stay raw in the line, as JSON allows
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in good] + [
        k if isinstance(k, bytes) else k.encode() for k in bad
    ]
    (root / "chat.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    expected = {("chat", len(good) + n): reason for n, reason in enumerate(bad.values())}
    used = {("chat", i) for i in range(len(good))}

    shots = [{"id": "v0", "shots": [["red.png", "red.png"], ["blue.jpg"]], "caption": "Red then blue."},
             {"id": "v1", "video": "clip.mp4", "shots": [{"start": 10**400, "end": 1}], "caption": "x"},
             {"id": "v2", "video": "clip.mp4", "shots": [{"start": 0, "end": float("nan")}], "caption": "x"},
             {"id": "v3", "shots": [["missing-frame.png"]], "caption": "x"}]  # fmt: skip
    (root / "shots.jsonl").write_text("\n".join(json.dumps(r) for r in shots) + "\n")
    expected |= {("shots", 1): ("convert", "finite seconds"), ("shots", 2): ("convert", "finite seconds"),
                 ("shots", 3): ("decode", "no such file")}  # fmt: skip
    used.add(("shots", 0))

    llava = [{"id": f"l{i}", "image": "red.png", "conversations": [
        {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Red."}]} for i in range(4)]  # fmt: skip
    llava[1]["conversations"][0]["value"] = "<image> <image> two markers"
    llava[2]["image"] = {"path": "red.png"}
    (root / "llava.json").write_text(json.dumps(llava))
    expected |= {("llava", 1): ("convert", "2 <image> marker(s) but 1 image(s)"),
                 ("llava", 2): ("convert", "field 'image' must be a path")}  # fmt: skip
    used |= {("llava", 0), ("llava", 3)}

    m3it = [{"instruction": "Name the colour.", "inputs": "", "outputs": "Blue.", "image_base64_str": [jpeg64],
             "meta": "{}"} for _ in range(4)]  # fmt: skip
    m3it[1]["image_base64_str"] = [base64.b64encode(b"not an image, just bytes" * 4).decode()]
    m3it[2]["outputs"] = ""
    pq.write_table(pa.Table.from_pylist(m3it), root / "m3it.parquet")
    (root / "broken.parquet").write_bytes(b"PAR1 this is not parquet at all")
    expected |= {("m3it", 1): ("decode", "cannot be decoded"), ("m3it", 2): ("convert", "'outputs'")}
    used |= {("m3it", 0), ("m3it", 3)}
    expected[("broken", 0)] = ("read", "the file cannot be read")

    config = {"seed": 0, "datasets": [
        {"name": "chat", "path": str(root / "chat.jsonl"), "format": "s3", "media_root": str(root)},
        {"name": "shots", "path": str(root / "shots.jsonl"), "format": "shots"},
        {"name": "llava", "path": str(root / "llava.json"), "format": "llava"},
        {"name": "m3it", "path": str(root / "m3it.parquet"), "format": "m3it"},
        {"name": "broken", "path": str(root / "broken.parquet"), "format": "m3it"}]}  # fmt: skip
    return config, used, expected


@pytest.fixture(scope="module")
def processor():
    return zoo.ZooProcessor.from_model(zoo.build("tiny"))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_hostile_corpus_completes_and_every_record_is_accounted_for(processor, corpus, tmp_path, workers):
    config, used, expected = corpus
    assert len(expected) >= 30
    loader = make_loader(processor, config, batch_size=4, num_workers=workers, output_dir=tmp_path,
                         max_failure_rate=1.0)  # fmt: skip
    rows = sum(batch["input_ids"].shape[0] for batch in loader)
    assert sorted((u["dataset"], u["index"]) for u in loader.used_samples) == sorted(used)
    assert rows == len(used)
    skipped = {(s.dataset, s.index): s for s in loader.ledger.entries}
    assert len(skipped) == len(loader.ledger) == len(expected)
    for key, (stage, reason) in expected.items():
        assert key in skipped, f"{key} is not in the ledger"
        assert (skipped[key].stage, reason in skipped[key].reason) == (stage, True), (key, skipped[key])
    written = [json.loads(line) for line in (tmp_path / "skipped_samples.jsonl").read_text().splitlines()]
    assert {(w["dataset"], w["index"]) for w in written} == set(expected)
    assert all(w["source"] for w in written)
