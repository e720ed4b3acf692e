"""Each case of issue 9, as a user meets it: hostile or real-world input gets a clear error or is read."""

from __future__ import annotations

import base64
import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile
from PIL import Image

import zoo
import zoo.modeling
import zoo.recipes_api
import zoo.registry
from zoo.data.mixture import Mixture
from zoo.data.pipeline import make_loader
from zoo.data.readers import Context, from_s3
from zoo.data.schema import Sample, validate_messages
from zoo.errors import DataError, MediaError, RecipeError
from zoo.media import load_audio, load_image


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (8, 6), "red").save(buffer, format=fmt)
    return buffer.getvalue()


# -- media ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
@pytest.mark.parametrize("prefix", ["", "data:image/any;base64,"])
def test_base64_images_decode_as_m3it_ships_them(fmt, prefix):
    text = prefix + base64.b64encode(_encoded(fmt, "P" if fmt == "GIF" else "RGB")).decode()
    assert load_image(text).size == (8, 6)
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))  # MIME line breaks
    assert load_image(wrapped).size == (8, 6)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_every_one_of_many_base64_images_decodes(fmt):
    """Before, some PNG/WebP strings made the path lookup raise "File name too long"; JPEG never decoded."""
    rng = np.random.default_rng(0)
    for _ in range(40):
        size = (int(rng.integers(8, 80)), int(rng.integers(8, 80)))
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(buffer, format=fmt)
        assert load_image(base64.b64encode(buffer.getvalue()).decode()).size == size


def test_a_base64_jpeg_in_an_s3_record_is_not_taken_for_a_path(tmp_path):
    jpeg = base64.b64encode(_encoded("JPEG")).decode()
    assert jpeg.startswith("/9j/")
    record = {"messages": [{"role": "user", "type": "image", "text": jpeg}, {"role": "bot", "text": "Red."}]}
    sample = from_s3(record, Context("d", 0, source=str(tmp_path / "d.jsonl")))
    assert sample.messages[0]["content"] == jpeg and load_image(jpeg).size == (8, 6)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("A" * 5000 + "!", "neither an existing file nor valid base64"),  # the OS: "File name too long"
        ("http://[x/a.jpg", "not a valid URL"),
        ("~nosuchuser/a.jpg", "home directory"),
        ("a\x00b.png", "no such file"),
    ],
)
def test_hostile_references_are_media_errors(item, message):
    with pytest.raises(MediaError, match=message):
        load_image(item)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's first bytes)."""
    png = bytearray(_encoded("PNG"))
    ihdr = png.index(b"IHDR")
    png[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    png[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(png[ihdr : ihdr + 17])))
    return bytes(png)


def test_a_decompression_bomb_is_refused_from_its_header():
    with pytest.raises(MediaError, match=r"9000x9000 pixels is more than the limit of 67108864"):
        load_image(_png_header_only(9000, 9000))
    with pytest.raises(MediaError, match=r"10000000000 pixels.*decompression bomb.*ZOO_MAX_IMAGE_PIXELS"):
        load_image(_png_header_only(100_000, 100_000))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_is_refused(tmp_path, bad):
    wave = np.zeros(1600, dtype=np.float32)
    wave[100] = bad
    soundfile.write(tmp_path / "bad.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="1 samples are NaN or infinite"):
        load_audio(str(tmp_path / "bad.wav"))
    with pytest.raises(MediaError, match="NaN or infinite"):
        load_audio((wave, 8000))


def test_finite_audio_that_resampling_overflows_is_refused(tmp_path):
    loud = np.full(22051 * 2, 1e38, dtype=np.float32)  # finite, but soxr's filter overflows float32: all NaN
    soundfile.write(tmp_path / "loud.wav", loud, 22051, subtype="FLOAT")
    message = r"loud\.wav.: \d+ samples are NaN or infinite after resampling 22051 Hz to 16000 Hz: .*1e\+38"
    with pytest.raises(MediaError, match=message):
        load_audio(str(tmp_path / "loud.wav"))
    with pytest.raises(MediaError, match="after resampling 1 Hz to 16000 Hz: samples as large as 8.89e"):
        load_audio((np.array([8.89e36], dtype=np.float32), 1))  # the fuzz run's case
    assert np.isfinite(load_audio((np.full(22051, 1e30, dtype=np.float32), 22051))).all()


@pytest.mark.parametrize("rate", [0, -5, 1.5, float("nan"), float("inf"), 10**400, "fast", True])
def test_a_bad_sampling_rate_is_a_media_error(rate):
    with pytest.raises(MediaError, match="sampling rate"):
        load_audio((np.zeros(100, dtype=np.float32), rate))


RESAMPLE_UNDER_A_MEMORY_CAP = """
import io, resource, sys
import numpy as np, soundfile
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
from zoo.media import load_audio
rate = int(sys.argv[1])
buffer = io.BytesIO()
soundfile.write(buffer, np.sin(np.arange(rate) * 0.05).astype("float32"), rate, format="WAV")
print(len(load_audio(buffer.getvalue(), 16000)))
"""


@pytest.mark.parametrize("rate", [22_051, 44_101])
def test_resampling_an_awkward_rate_fits_in_bounded_memory(rate):
    """torchaudio's kernels for 22,051 -> 16,000 Hz took 6 GB; under a 2 GiB address-space cap the clip
    must still come out at 16 kHz."""
    out = subprocess.run(
        [sys.executable, "-c", RESAMPLE_UNDER_A_MEMORY_CAP, str(rate)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert abs(int(out.stdout) - 16000) <= 1


def test_a_clip_longer_than_the_encoder_takes_is_refused_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros(48_000 * 40, dtype=np.int16), 48_000)  # 40 s
    with pytest.raises(MediaError, match=r"40.0s is longer than the 30s"):
        load_audio(str(path), max_seconds=30)
    with pytest.warns(UserWarning, match="40.0s truncated to its first 30s"):
        assert load_audio(str(path), max_seconds=30, truncate=True).size == 30 * 16000


# -- mixtures --------------------------------------------------------------------------------------------
def _s3_record(i, system=None):
    messages = [{"role": "user", "text": f"q{i}"}, {"role": "bot", "text": f"a{i}"}]
    if system:
        messages.insert(0, {"role": "system", "text": system})
    return {"id": f"r{i}", "messages": messages}


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_without_counts_or_weights_every_dataset_is_read_whole(tmp_path):
    datasets = [
        {"name": n, "path": _jsonl(tmp_path / f"{n}.jsonl", [_s3_record(i)]), "format": "s3"}
        for i, n in enumerate("abc")
    ]
    items = list(Mixture.from_dict({"datasets": datasets}))
    assert sorted(i.dataset for i in items) == ["a", "b", "c"]
    uneven = [dict(datasets[0], path=_jsonl(tmp_path / "long.jsonl", [_s3_record(i) for i in range(7)]))]
    items = list(Mixture.from_dict({"datasets": uneven + datasets[1:]}))
    assert len(items) == 9 and len({(i.dataset, i.index) for i in items}) == 9


def test_concatenation_keeps_each_records_system_prompt_and_counts_exactly(tmp_path):
    records = [_s3_record(i, system="Be brief." if i < 4 else "Be kind.") for i in range(8)]
    path = _jsonl(tmp_path / "d.jsonl", records)
    concat = {"concat": {"max_dialogs": 3, "p": 1.0}}
    for count in (5, 7, 8, 13):
        config = {
            "datasets": [{"name": "d", "path": path, "format": "s3", "count": count, "augment": concat}]
        }
        items = list(Mixture.from_dict(config))
        assert sum(len(s.parts) for s in items) == count
    samples = list(
        Mixture.from_dict({"datasets": [{"name": "d", "path": path, "format": "s3", "augment": concat}]})
    )
    for sample in samples:
        prompts = [m["content"] for m in sample.messages if m["role"] == "system"]
        expected = ["Be brief." if int(p["id"][1:]) < 4 else "Be kind." for p in sample.parts]
        assert (
            prompts == [expected[0]]
            and set(expected) == {expected[0]}
            and sample.messages[0]["role"] == "system"
        )


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_macaw_image_path_survives_a_column_filled_with_none(tmp_path, suffix):
    rows = [
        {"id": "v", "instruction": "What?", "response": "A clip.", "video": "clip.mp4", "image": None},
        {"id": "i", "instruction": "What?", "response": "A cat.", "image_path": "cat.png", "video": None},
    ]
    path = tmp_path / f"macaw{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows))
    else:  # a Parquet file has every column in every row
        columns = ["id", "instruction", "response", "video", "image", "image_path"]
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    samples = list(Mixture.from_dict({"datasets": [{"name": "m", "path": str(path), "format": "macaw"}]}))
    image = [s for s in samples if s.id == "i"][0]
    assert image.messages[0] == {"role": "user", "type": "image", "content": str(tmp_path / "cat.png")}


BAD_MIXTURES = [
    ({"shuffle_buffer": -1}, "'shuffle_buffer' must be an integer >= 1"),
    ({"shuffle_buffer": 2.5}, "'shuffle_buffer'"),
    ({"count": -3}, "'count' must be an integer >= 0"),
    ({"count": True}, "'count'"),
    ({"count": "5"}, "'count'"),
    ({"weight": -1}, "'weight' must be a number >= 0"),
    ({"weight": float("nan")}, "'weight'"),
    ({"weight": "heavy"}, "'weight'"),
    ({"system_prompt": 5}, "'system_prompt' must be a non-empty string"),
    ({"system_prompt": ""}, "'system_prompt'"),
    ({"field": ["data"]}, "'field'"),
    ({"task": {}}, "'task'"),
    ({"media_root": 3}, "'media_root'"),
    ({"path": []}, "'path'"),
    ({"path": 7}, "'path'"),
    ({"path": "nowhere.jsonl"}, "no such file or folder"),
    ({"augment": "random"}, "'augment' must be a mapping"),
    ({"augment": {"media_order": "sideways"}}, "augment.media_order"),
    ({"augment": {"media_order_p": 2}}, "augment.media_order_p"),
    ({"augment": {"concat": {"max_dialogs": 0}}}, "augment.concat.max_dialogs"),
    ({"augment": {"concat": {"p": -0.1}}}, "augment.concat.p"),
    ({"augment": {"concat": {"max_messages": "many"}}}, "augment.concat.max_messages"),
    ({"augment": {"concat": {"dialogs": 2}}}, "unknown augment.concat keys"),
    ({"augment": {"concat": [2]}}, "augment.concat"),
    ({"options": []}, "'options' must be a mapping"),
    ({"options": {"video": True}}, "format 's3' has no options \\['video'\\]"),
    ({"format": "m3it", "options": {"video": "yes"}}, "options.video"),
    ({"format": "macaw", "options": {"media_from_id": {"video": "{nope}.mp4"}}}, "media_from_id.video"),
    ({"format": "macaw", "options": {"media_from_id": {"video": "fixed.mp4"}}}, "media_from_id.video"),
    ({"format": "macaw", "options": {"media_from_id": "v/{id}.mp4"}}, "options.media_from_id"),
    ({"format": "shots", "options": {"prompt": 3}}, "options.prompt"),
    ({"instruction_pool": 3}, "'instruction_pool'"),
    ({"name": ""}, "needs a 'name'"),
]


@pytest.mark.parametrize(("change", "message"), BAD_MIXTURES)
def test_bad_dataset_options_are_refused_up_front_naming_the_dataset(tmp_path, change, message):
    entry = {"name": "coco", "path": _jsonl(tmp_path / "d.jsonl", [_s3_record(0)]), "format": "s3", **change}
    with pytest.raises(DataError, match=message) as caught:
        Mixture.from_dict({"datasets": [entry]})
    assert "'coco'" in str(caught.value) or change.get("name") == ""


@pytest.mark.parametrize(
    ("top", "message"),
    [({"seed": "zero"}, "'seed' must be an integer"), ({"num_samples": 0}, "'num_samples'"),
     ({"stopping_strategy": "never"}, "stopping_strategy"), ({"sead": 1}, "unknown keys")],
)  # fmt: skip
def test_bad_mixture_settings_are_refused_up_front(tmp_path, top, message):
    entry = {"name": "coco", "path": _jsonl(tmp_path / "d.jsonl", [_s3_record(0)]), "format": "s3"}
    with pytest.raises(DataError, match=message):
        Mixture.from_dict({"datasets": [entry], **top})


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def test_yaml_alias_bombs_and_recursion_are_refused(tmp_path):
    assert len(ALIAS_BOMB) < 400
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    (tmp_path / "loop.yaml").write_text("name: &a [*a]\n")
    for name in ("bomb", "loop"):
        with pytest.raises(RecipeError, match=rf"{name}.yaml:\d+:\d+: invalid YAML"):
            zoo.recipes_api.load_recipe(tmp_path / f"{name}.yaml")
        with pytest.raises(DataError, match="cannot be read"):
            Mixture.from_yaml(tmp_path / f"{name}.yaml")
    (tmp_path / "anchors.yaml").write_text(
        "datasets:\n  - &d {name: a, path: d.jsonl, format: s3, count: 1}\n  - {<<: *d, name: b}\n"
    )
    _jsonl(tmp_path / "d.jsonl", [_s3_record(0)])
    assert len(list(Mixture.from_yaml(tmp_path / "anchors.yaml"))) == 2  # ordinary anchors still work


# -- the loader and the processor ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def processor():
    return zoo.ZooProcessor.from_model(zoo.build("tiny"))


def _broken_mixture(tmp_path):
    records = [_s3_record(i) for i in range(12)]
    records[1] = {"id": "bad", "messages": "nope"}
    return {"datasets": [{"name": "d", "path": _jsonl(tmp_path / "d.jsonl", records), "format": "s3"}]}


def test_the_ledger_is_written_when_the_loop_breaks_early_or_fails(processor, tmp_path):
    loader = make_loader(processor, _broken_mixture(tmp_path), batch_size=2, num_workers=0,
                         output_dir=tmp_path / "run", max_failure_rate=1.0)  # fmt: skip
    for _ in loader:
        break
    ledger = tmp_path / "run" / "skipped_samples.jsonl"
    assert json.loads(ledger.read_text())["id"] == "bad"
    ledger.unlink()
    with pytest.raises(RuntimeError, match="training step failed"):
        for _ in loader:
            raise RuntimeError("training step failed")
    assert json.loads(ledger.read_text())["id"] == "bad"


def test_a_skip_whose_id_holds_a_lone_surrogate_is_written_to_the_ledger(tmp_path):
    from zoo.data.pipeline import SkipLedger
    from zoo.data.schema import Skip
    from zoo.training.outputs import read_ledger, write_ledger

    ledger = SkipLedger()
    ledger.add(Skip("d", 0, "caf\udce9", "convert", "a reason"))
    written = ledger.write(tmp_path / "skipped.jsonl")  # UnicodeEncodeError at the end of the run before
    assert json.loads(written.read_text(encoding="utf-8"))["id"] == "caf\udce9"
    write_ledger(tmp_path / "ledger.jsonl", [ledger.entries[0].to_dict()])
    assert read_ledger(tmp_path / "ledger.jsonl")[0]["id"] == "caf\udce9"


def test_the_length_limit_defaults_to_the_backbones_positions(processor):
    assert processor.max_length == 2048  # tiny sets no max_length; its backbone has 2,048 positions


@pytest.mark.parametrize(
    ("conversation", "message"),
    [
        ([], "the conversation has no messages"),
        ([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Hello"}],
         "starts with an assistant message"),
        ([{"role": "user", "content": "What does <image> mean here?"}], "recipe token '<image>'"),
        ([{"role": "user", "content": "end </audio> now"}], "recipe token '</audio>'"),
        ("just a string", "a conversation is a list of messages"),
        ([{"role": "user", "content": "\udce9.png"}], r"message 0: text is not valid Unicode: .* U\+DCE9"),
    ],
)  # fmt: skip
def test_malformed_conversations_are_data_errors(processor, conversation, message):
    with pytest.raises(DataError, match=message):
        processor.encode(conversation)


def test_text_that_is_not_valid_unicode_is_refused_naming_the_record():
    messages = [{"role": "user", "text": "caf\udce9?"}, {"role": "bot", "text": "Yes."}]
    with pytest.raises(DataError) as error:
        validate_messages(messages, dataset="chat", index=7, sample_id="s7")
    assert str(error.value).startswith(
        "dataset 'chat', record 7 (id 's7'): message 0 field 'content' is not valid Unicode: "
        "a lone surrogate U+DCE9 at character 3"
    )
    shots = {"shots": [["a.png"]], "asr": "\ud83d alone"}
    with pytest.raises(
        DataError, match="'asr' is not valid Unicode: a lone surrogate U\\+D83D at character 0"
    ):
        validate_messages(
            [{"role": "user", "type": "video", "content": shots}, messages[1]], dataset="v", index=0
        )
    assert validate_messages(
        [{"role": "user", "text": "caf\u00e9 \U0001f600"}, messages[1]], dataset="d", index=0
    )


def test_a_broken_chat_template_fails_at_build_naming_the_recipe():
    with pytest.raises(RecipeError, match=r"chat_template: cannot render"):
        zoo.build("tiny", chat_template="{% for m in messages %}{{ m.content }")
    with pytest.raises(RecipeError, match="leaves out message content"):
        zoo.build("tiny", chat_template="{% for m in messages %}hello{% endfor %}")


def test_zoo_chat_refuses_nan_audio_with_an_error_exit(tmp_path, capsys):
    wave = np.full(1600, np.nan, dtype=np.float32)
    soundfile.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    from zoo.cli import main

    assert main(["chat", "tiny", "--audio", str(tmp_path / "nan.wav"), "-p", "What?"]) == 2
    assert "1600 samples are NaN or infinite" in capsys.readouterr().err


# -- plugins ---------------------------------------------------------------------------------------------
PLUGIN_FILES = {
    "exits_plugin.py": "import sys\nsys.exit(3)\n",
    "odd_plugin.py": textwrap.dedent(
        '''
        class DictEncoder(dict):
            """Not a component."""


        def encoder_function():
            """Not a component either."""
        '''
    ),
    "clash_plugin.py": "from zoo.components.encoders import CLIPVisionEncoder\n\n\nclass Clip(CLIPVisionEncoder):\n    pass\n",
    "bad_recipes/__init__.py": "",
    "bad_recipes/broken.yaml": "backbone: {name: causal-lm\n",
}


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    from registry_dists import Site

    import zoo.registry

    site = Site.on_sys_path(tmp_path / "site", monkeypatch)
    encoders = {"exits": "exits_plugin:Thing", "dict-enc": "odd_plugin:DictEncoder",
                "func-enc": "odd_plugin:encoder_function", "clip-vision": "clash_plugin:Clip"}  # fmt: skip
    site.install("zoo-hostile", "0.1", {"zoo.encoders": encoders, "zoo.recipes": {"bad": "bad_recipes"}},
                 PLUGIN_FILES)  # fmt: skip
    monkeypatch.setattr(zoo.registry, "_REGISTRY", None)
    monkeypatch.delenv("ZOO_PREFER", raising=False)
    yield site
    site.forget_modules()


def test_zoo_plugins_reports_exits_non_components_and_bad_recipes(plugin_site, capsys):
    from zoo.cli import main
    from zoo.errors import ZooError

    assert main(["plugins", "zoo-hostile"]) == 1
    out = capsys.readouterr().out
    assert "zoo-hostile 0.1" in out and "4 of 5 failed to load" in out.splitlines()[0]
    lines = {tuple(line.split()[:2]): line for line in out.splitlines()[1:] if line.startswith("  ")}
    assert "SystemExit: 3" in lines["encoder", "exits"]
    assert (
        "odd_plugin.DictEncoder is not a subclass of zoo.components.base.Encoder"
        in lines["encoder", "dict-enc"]
    )
    assert "broken.yaml:2" in lines["recipe", "broken"] and "invalid YAML" in lines["recipe", "broken"]
    assert lines["encoder", "clip-vision"].split()[-1] == "OK"
    # a plain function is not reported OK: a factory must declare that it returns an Encoder
    assert "does not declare what it returns: annotate it `-> Encoder`" in lines["encoder", "func-enc"]
    with pytest.raises(ZooError, match="func-enc"):
        zoo.registry.get_registry().build("encoder", "func-enc")


def test_a_plugin_reusing_a_builtin_name_does_not_break_the_builtin_recipes(plugin_site, tmp_path):
    import torch

    from zoo.errors import ComponentConflictError

    model = zoo.build("tiny", device="meta")
    assert model.config.encoders["image"]["name"] == "zoo:clip-vision"
    assert model.config.encoders["image"]["distribution"] == "zoo"
    config = model.config  # as saved before the plugin was installed: bare names, distribution recorded
    config.encoders["image"]["name"] = "clip-vision"
    config.encoders["video"]["args"]["frame_encoder"]["name"] = "clip-vision"
    with torch.device("meta"):
        rebuilt = zoo.modeling.ZooModel(config)
    assert type(rebuilt.encoders["image"]).__name__ == "CLIPVisionEncoder"
    own = tmp_path / "mine.yaml"  # a recipe of the user's own still has to say which one it means
    own.write_text(zoo.registry.get_registry().recipe_path("tiny").read_text())
    with pytest.raises(ComponentConflictError, match="clip-vision' is provided by 2 distributions"):
        zoo.build(own, device="meta")


def test_a_sample_that_cannot_join_a_batch_is_skipped_and_the_rest_trains():
    from zoo.data.pipeline import EncodedDataset

    class ShapeCheckingProcessor:  # collates like torch.stack: every item must have one shape
        def encode(self, messages):
            return messages[0]["content"]

        def collate(self, encoded, **options):
            if len({len(e) for e in encoded}) > 1:
                raise RuntimeError("stack expects each tensor to be equal size")
            return {"rows": list(encoded)}

    samples = [
        Sample(f"s{i}", "d", i, [{"role": "user", "type": "text", "content": text}])
        for i, text in enumerate(["aa", "aa", "b", "aa"])
    ]
    [out] = list(EncodedDataset(ShapeCheckingProcessor(), samples, batch_size=4))
    assert out["batch"] == {"rows": ["aa", "aa", "aa"]}
    assert [u["id"] for u in out["used"]] == ["s0", "s1", "s3"]
    [skip] = out["skipped"]
    assert (skip.id, skip.stage) == ("s2", "decode") and "cannot be batched with the others" in skip.reason
