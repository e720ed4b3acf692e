"""Property tests with hostile input: only zoo's own errors escape, and used + skipped = read.

Targets: the five record converters, the media decoders (image, audio, video), mixtures (configs and
files) and the processor. Examples per target, in the suite's small derandomized profile (conftest.py) and
under ``HYPOTHESIS_PROFILE=fuzz``: each converter and media decoder 150 and 30,000; the three slow targets
take a share of that (``examples``): mixture configs 2/3 (100 and 20,000), files of records 1/4 (37 and
7,500) and the processor 2/5 (60 and 12,000).
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from fuzz_strategies import OPTIONS, RECORDS, json_values, texts
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

import zoo
from zoo.data.mixture import Mixture
from zoo.data.readers import READERS, Context
from zoo.data.schema import Sample, Skip, validate_messages
from zoo.errors import DataError, MediaError, ZooError
from zoo.media import load_audio, load_image, load_video


def examples(share: float) -> int:
    """``share`` of the profile's example count (at least 10), for targets slower than the others (they
    write files or run the tokenizer): of 150 in the suite's profile, of 30,000 under
    ``HYPOTHESIS_PROFILE=fuzz``."""
    return max(10, int(settings.default.max_examples * share))


@pytest.mark.parametrize("fmt", sorted(READERS))
def test_converters_raise_only_data_errors(fmt, tmp_path):
    @given(RECORDS[fmt] | json_values, OPTIONS[fmt])
    def check(record, options):
        ctx = Context(dataset="d", index=3, source=str(tmp_path / "data.jsonl"), options=options)
        try:
            sample = READERS[fmt](record, ctx)
        except DataError:
            return
        assert isinstance(sample, Sample) and sample.dataset == "d" and sample.index == 3
        validate_messages(sample.messages, dataset="d", index=3)  # what a converter returns is valid

    check()


def _png(size=(4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()
media_items = (
    st.binary(max_size=200)
    | st.binary(max_size=120).map(lambda b: PNG[: len(PNG) // 2] + b)  # a real header, then garbage
    | texts
    | st.binary(max_size=120).map(lambda b: base64.b64encode(b).decode())
    | st.binary(max_size=120).map(lambda b: "data:image/png;base64," + base64.b64encode(b).decode())
    | json_values
)


@given(media_items)
def test_image_decoder_raises_only_media_errors(item):
    try:
        image = load_image(item)
    except MediaError:
        return
    assert image.mode == "RGB"


audio_items = (
    media_items
    | st.tuples(st.lists(st.floats(width=32), min_size=0, max_size=50), json_values | st.integers())
    | st.lists(st.floats(width=32), max_size=50).map(lambda x: np.asarray(x, dtype=np.float32))
)


@given(audio_items)
@example((np.zeros(4, dtype=np.float32), 10**400))  # found by the 30,000-example run: np.isfinite(int)
@example((np.array([8.89e36], dtype=np.float32), 1))  # found by the big run: finite in, NaN out of soxr
def test_audio_decoder_raises_only_media_errors(item):
    try:
        waveform = load_audio(item, 16000, max_seconds=5)
    except MediaError:
        return
    assert waveform.dtype == np.float32 and waveform.ndim == 1 and np.isfinite(waveform).all()


video_items = media_items | st.fixed_dictionaries(
    {"video": texts | st.binary(max_size=50)}, optional={"start": json_values, "end": json_values}
)


@given(video_items, st.none() | st.integers(min_value=-2, max_value=5))
def test_video_decoder_raises_only_media_errors(item, num_frames):
    try:
        frames = load_video(item, num_frames)
    except MediaError:
        return
    assert all(frame.mode == "RGB" for frame in frames)


# -- mixtures --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "ok.jsonl"
    record = {"id": "r", "messages": [{"role": "user", "text": "q"}, {"role": "bot", "text": "a"}]}
    path.write_text(json.dumps(record) + "\n")
    return str(path)


entry_fields = {
    "name": texts | json_values,
    "format": st.sampled_from(sorted(READERS)) | json_values,
    "weight": json_values,
    "count": json_values | st.integers(min_value=0, max_value=3),
    "system_prompt": json_values,
    "field": json_values,
    "task": json_values,
    "augment": json_values
    | st.fixed_dictionaries(
        {}, optional={"media_order": json_values, "media_order_p": json_values, "concat": json_values}
    ),  # fmt: skip
    "options": json_values,
    "shuffle_buffer": json_values,
    "media_root": json_values,
    "wieght": json_values,
}


@given(
    st.lists(st.fixed_dictionaries({}, optional=entry_fields), max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            "seed": json_values,
            "num_samples": json_values,
            "stopping_strategy": json_values,
            "extra": json_values,
        },
    ),  # fmt: skip
)
@settings(max_examples=examples(2 / 3))
def test_mixture_configs_fail_up_front_with_data_errors(data_file, entries, top):
    for entry in entries:
        entry.setdefault("path", data_file)
    try:
        mixture = Mixture.from_dict({"datasets": entries, **top})
    except DataError:
        return
    items = []
    for item in mixture:  # a config that passed validation never fails mid-iteration
        items.append(item)
        if len(items) > 20:
            break
    assert all(isinstance(i, (Sample, Skip)) for i in items)


line_values = st.one_of(
    RECORDS["s3"].map(json.dumps),
    json_values.map(json.dumps),
    texts,
    st.sampled_from(['{"id": 1, "x": "caf\udce9"}', "[" * 5000, "1" * 5000, '{"a": ' + "9" * 5000 + "}"]),
)


@given(st.lists(line_values, min_size=1, max_size=8), st.integers(min_value=0, max_value=6))
@example(
    ["0\r0", '{"a": "one\u2028two"}', "\u3000", "\x85"], 0
)  # found by the big run: a \r or U+2028 split a record
@settings(max_examples=examples(1 / 4))
def test_every_record_read_is_a_sample_or_a_skip(tmp_path_factory, lines, count):
    folder = tmp_path_factory.mktemp("lines")
    payload = "\n".join(lines).encode("utf-8", errors="surrogateescape")  # lone surrogates: invalid UTF-8
    (folder / "d.jsonl").write_bytes(payload + b"\n")
    nonblank = [line for line in payload.split(b"\n") if line.strip(b" \t\r\n")]  # JSON Lines: \n ends a line
    config = {"datasets": [{"name": "d", "path": str(folder / "d.jsonl"), "format": "s3"}]}
    counted = bool(count and nonblank)
    if counted:
        config["datasets"][0]["count"] = count
    try:
        items = list(Mixture.from_dict(config))
    except DataError as error:
        assert not nonblank and "holds no records" in str(error)
        return
    records = sum(len(i.parts) if isinstance(i, Sample) else 1 for i in items)
    assert records == (count if counted else len(nonblank))


# -- the processor ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def processor():
    return zoo.ZooProcessor.from_model(zoo.build("tiny"))


message = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "bot", "x"]) | json_values,
        "type": st.sampled_from(["text", "image", "audio", "video"]) | json_values,
        "content": texts | json_values | st.sampled_from(["<image>", "</audio>", "<|zoo_image|>"]),
    },
)


@given(st.lists(message, max_size=5) | json_values, st.booleans())
# found by the big run: a lone surrogate reached the tokenizer, which raised TypeError
@example([{"role": "user", "content": "\udce9.png"}], False)
@settings(max_examples=examples(2 / 5))
def test_processor_raises_only_zoo_errors(processor, conversation, generation):
    try:
        encoded = processor.encode(conversation, add_generation_prompt=generation)
    except ZooError:
        return
    assert len(encoded.input_ids) == len(encoded.labels)
