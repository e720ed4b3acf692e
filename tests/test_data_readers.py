"""Readers: streaming JSON / JSON Lines / Parquet records and each format's converter, corrupt records too."""

from __future__ import annotations

import base64
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from zoo.data.augment import InstructionPool
from zoo.data.readers import Context, convert, iter_records, list_files, read_records
from zoo.errors import DataError


def _png_b64(colour: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _jsonl(path, records, extra_lines=()):
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
        for line in extra_lines:
            f.write(line + "\n")
    return path


def _ctx(tmp_path, **kw):
    return Context(
        dataset=kw.pop("dataset", "d"), index=kw.pop("index", 7), source=str(tmp_path / "d.jsonl"), **kw
    )


# -- records ---------------------------------------------------------------------------------------------
def test_jsonl_keeps_line_numbers_and_reports_a_malformed_line(tmp_path):
    path = _jsonl(
        tmp_path / "a.jsonl", [{"id": 0}, {"id": 1}], extra_lines=["", "{broken", "[1, 2]", '{"id": 5}']
    )
    records = list(iter_records(path))
    assert [r.index for r in records] == [0, 1, 3, 4, 5]  # the blank line 2 is no record
    assert [r.data for r in records if r.error is None] == [{"id": 0}, {"id": 1}, {"id": 5}]
    assert "line 4 is not valid JSON" in records[2].error
    assert "must be a JSON object, got list" in records[3].error
    with pytest.raises(DataError, match="line 4 is not valid JSON"):
        list(read_records(path))


def test_json_array_json_field_and_parquet(tmp_path):
    (tmp_path / "arr.json").write_text(json.dumps([{"id": "a", "x": 1}, {"id": "b", "x": 2}]))
    (tmp_path / "obj.json").write_text(
        json.dumps({"data": [{"id": "c", "instruction": "q", "response": "r"}]})
    )
    pq.write_table(
        pa.Table.from_pylist([{"id": "p0", "y": 0.5}, {"id": "p1", "y": 1.5}]), tmp_path / "t.parquet"
    )
    assert [r["id"] for r in read_records(tmp_path / "arr.json")] == ["a", "b"]
    assert list(read_records(tmp_path / "obj.json", field="data")) == [
        {"id": "c", "instruction": "q", "response": "r"}
    ]
    rows = list(iter_records(tmp_path / "t.parquet"))
    assert [(r.index, r.data["id"], r.data["y"]) for r in rows] == [(0, "p0", 0.5), (1, "p1", 1.5)]
    with pytest.raises(DataError, match="no top-level field 'rows'"):
        list(read_records(tmp_path / "obj.json", field="rows"))


def test_json_array_whose_field_types_vary_between_records_is_read_as_written(tmp_path):
    records = [
        {"id": 1, "instruction": "q", "meta": {"a": 1}},
        {"id": "x", "instruction": ["oops"], "meta": None},
    ]
    (tmp_path / "mixed.json").write_text(json.dumps(records))
    assert list(read_records(tmp_path / "mixed.json")) == records


def test_unreadable_files_raise_naming_the_file(tmp_path):
    (tmp_path / "bad.json").write_text("[{not json")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="bad.json"):
        list(read_records(tmp_path / "bad.json"))
    with pytest.raises(DataError, match="bad.parquet"):
        list(read_records(tmp_path / "bad.parquet"))
    with pytest.raises(DataError, match="no such file or folder"):
        list_files(tmp_path / "missing.jsonl")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="unknown extension"):
        list_files(tmp_path / "notes.txt")


def test_folders_and_globs_list_data_files_in_order(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.jsonl", "a.jsonl", "sub/c.jsonl"):
        _jsonl(tmp_path / name, [{"id": name}])
    (tmp_path / "readme.md").write_text("not data")
    assert [p.name for p in list_files(tmp_path)] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert [p.name for p in list_files(str(tmp_path / "*.jsonl"))] == ["a.jsonl", "b.jsonl"]
    assert [r["id"] for r in read_records([tmp_path / "b.jsonl", tmp_path / "a.jsonl"])] == [
        "b.jsonl",
        "a.jsonl",
    ]


def test_shuffle_buffer_is_seeded_and_keeps_positions(tmp_path):
    path = _jsonl(tmp_path / "n.jsonl", [{"n": i} for i in range(50)])
    first = [(r.index, r.data["n"]) for r in iter_records(path, shuffle_buffer=16, seed=3)]
    again = [(r.index, r.data["n"]) for r in iter_records(path, shuffle_buffer=16, seed=3)]
    other = [(r.index, r.data["n"]) for r in iter_records(path, shuffle_buffer=16, seed=4)]
    assert first == again != other
    assert sorted(first) == [(i, i) for i in range(50)] and first != sorted(first)


# -- converters ------------------------------------------------------------------------------------------
def test_s3_record_paper_fig3(tmp_path):
    cache = tmp_path / "cache"
    (cache / "example.com/audio").mkdir(parents=True)
    (cache / "example.com/audio/birdsong.mp3").write_bytes(b"x")
    record = {
        "id": 0,
        "messages": [
            {"role": "user", "type": "image", "text": "images/bird.jpg"},
            {"role": "user", "type": "audio", "text": "https://example.com/audio/birdsong.mp3"},
            {"role": "user", "type": "text", "text": "How can be the image and the audio related?"},
            {"role": "bot", "type": "text", "text": "The image shows a Northern Cardinal."},
        ],
    }
    sample = convert(record, "s3", _ctx(tmp_path, media_root=tmp_path / "media", url_cache=cache))
    assert sample.id == "0" and sample.dataset == "d" and sample.index == 7
    assert [(m["role"], m["type"]) for m in sample.messages] == [
        ("user", "image"),
        ("user", "audio"),
        ("user", "text"),
        ("assistant", "text"),
    ]
    assert sample.messages[0]["content"] == str(tmp_path / "media/images/bird.jpg")
    assert sample.messages[1]["content"] == str(cache / "example.com/audio/birdsong.mp3")
    record["messages"][1]["text"] = "https://example.com/not-cached.wav"
    with pytest.raises(DataError, match="not in the local cache.*nothing is downloaded"):
        convert(record, "s3", _ctx(tmp_path, url_cache=cache))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": 1, "messages": "hi"}, "field 'messages' must be a list, got str"),
        (
            {"id": 1, "messages": [{"role": "robot", "type": "text", "text": "x"}]},
            "message 0 field 'role' is 'robot'",
        ),
        (
            {"id": 1, "messages": [{"role": "user", "type": "smell", "text": "x"}]},
            "message 0 field 'type' is 'smell'",
        ),
        (
            {"id": 1, "messages": [{"role": "user", "type": "image"}]},
            "message 0 \\(image\\) has no 'content'",
        ),
        ({"id": 1, "messages": [{"role": "user", "type": "text", "text": "q"}]}, "no assistant text message"),
    ],
)
def test_s3_schema_errors_name_dataset_record_and_field(tmp_path, record, message):
    with pytest.raises(DataError, match=r"dataset 'd', record 7 \(id '1'\): " + message):
        convert(record, "s3", _ctx(tmp_path))


def test_m3it_images_instruction_inputs_outputs_meta(tmp_path):
    images = [_png_b64("red"), _png_b64("blue")]
    record = {
        "instruction": "Analyze the image and answer.",
        "inputs": "Which colour is first?",
        "outputs": "Red.",
        "image_base64_str": images,
        "meta": {"kilt_id": "qw_1524"},
    }
    sample = convert(record, "m3it", _ctx(tmp_path))
    assert [m["type"] for m in sample.messages] == ["image", "image", "text", "text"]
    assert sample.messages[0]["content"] == images[0]  # base64 stays base64
    assert sample.messages[2]["content"] == "Analyze the image and answer.\nWhich colour is first?"
    assert sample.messages[3] == {"role": "assistant", "type": "text", "content": "Red."}
    assert sample.meta["m3it_meta"] == {"kilt_id": "qw_1524"}
    video = convert(dict(record, meta={"video_id": "v1"}), "m3it", _ctx(tmp_path))
    assert [m["type"] for m in video.messages] == ["video", "text", "text"]
    assert video.messages[0]["content"] == images
    with pytest.raises(DataError, match="field 'outputs' must be a non-empty string"):
        convert(dict(record, outputs=None), "m3it", _ctx(tmp_path))
    with pytest.raises(DataError, match="list of base64 strings"):
        convert(dict(record, image_base64_str=[1, 2]), "m3it", _ctx(tmp_path))


def test_m3it_instruction_pool_picks_per_instance_and_deterministically(tmp_path):
    pool = InstructionPool.from_spec([f"Instruction {i}." for i in range(10)], "vqa")
    record = {"instruction": "orig", "inputs": "", "outputs": "a", "images": [_png_b64()]}
    picks = [
        convert(
            record, "m3it", _ctx(tmp_path, index=i, instruction_pool=pool, options={"task": "vqa"})
        ).messages[1]
        for i in range(40)
    ]
    again = [
        convert(
            record, "m3it", _ctx(tmp_path, index=i, instruction_pool=pool, options={"task": "vqa"})
        ).messages[1]
        for i in range(40)
    ]
    assert picks == again
    assert len({m["content"] for m in picks}) > 5 and all(
        m["content"].startswith("Instruction") for m in picks
    )


def test_macaw_media_none_ids_and_audio_with_video(tmp_path):
    record = {
        "id": "vid7",
        "instruction": "What happens?",
        "response": "A dog runs.",
        "image": "None",
        "video": "None",
    }
    ctx = _ctx(tmp_path, options={"media_from_id": {"video": "videos/{id}.mp4"}, "audio_from_video": True})
    sample = convert(record, "macaw", ctx)
    video = str(tmp_path / "videos/vid7.mp4")
    assert [(m["type"], m["content"]) for m in sample.messages[:2]] == [("video", video), ("audio", video)]
    assert sample.messages[2:] == [
        {"role": "user", "type": "text", "content": "What happens?"},
        {"role": "assistant", "type": "text", "content": "A dog runs."},
    ]
    image_only = convert(
        {"image": "coco/1.jpg", "instruction": "q", "response": "r"}, "macaw", _ctx(tmp_path)
    )
    assert [m["type"] for m in image_only.messages] == ["image", "text", "text"]
    with pytest.raises(DataError, match="audio-with-video needs a 'video'"):
        convert({"instruction": "q", "response": "r", "audio": "video"}, "macaw", _ctx(tmp_path))
    with pytest.raises(DataError, match="field 'response'"):
        convert({"instruction": "q", "image": "a.jpg"}, "macaw", _ctx(tmp_path))


def test_llava_image_markers_become_image_messages_in_place(tmp_path):
    record = {
        "id": "000000033471",
        "image": "coco/train2017/000000033471.jpg",
        "conversations": [
            {"from": "human", "value": "What colour is the bus?\n<image>"},
            {"from": "gpt", "value": "The bus is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "An advertisement."},
        ],
    }
    sample = convert(record, "llava", _ctx(tmp_path, media_root=tmp_path))
    assert [(m["role"], m["type"]) for m in sample.messages[:3]] == [
        ("user", "text"),
        ("user", "image"),
        ("assistant", "text"),
    ]
    assert sample.messages[1]["content"] == str(tmp_path / "coco/train2017/000000033471.jpg")
    unmarked = dict(
        record, conversations=[{"from": "human", "value": "Describe."}, {"from": "gpt", "value": "A bus."}]
    )
    assert [m["type"] for m in convert(unmarked, "llava", _ctx(tmp_path)).messages] == [
        "image",
        "text",
        "text",
    ]
    text_only = {
        "id": "t",
        "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}],
    }
    assert [m["type"] for m in convert(text_only, "llava", _ctx(tmp_path)).messages] == ["text", "text"]
    two_markers = dict(
        record, conversations=[{"from": "human", "value": "<image> <image>"}, {"from": "gpt", "value": "x"}]
    )
    with pytest.raises(DataError, match="2 <image> marker\\(s\\) but 1 image"):
        convert(two_markers, "llava", _ctx(tmp_path))
    with pytest.raises(DataError, match="field 'from' is 'robot'"):
        convert(dict(record, conversations=[{"from": "robot", "value": "x"}]), "llava", _ctx(tmp_path))


def test_shots_frames_time_ranges_and_asr(tmp_path):
    record = {
        "id": "s1",
        "video": "clip.mp4",
        "shots": [{"frames": ["f/0.png", "f/1.png"]}, {"start": 1, "end": 2.5}, "shot3_frames/"],
        "asr": "hello there",
        "caption": "A person waves, then walks away.",
    }
    sample = convert(record, "shots", _ctx(tmp_path, media_root=tmp_path))
    content = sample.messages[0]["content"]
    assert sample.messages[0]["type"] == "video" and content["asr"] == "hello there"
    assert content["shots"][0] == [str(tmp_path / "f/0.png"), str(tmp_path / "f/1.png")]
    assert content["shots"][1] == {"video": str(tmp_path / "clip.mp4"), "start": 1.0, "end": 2.5}
    assert content["shots"][2] == str(tmp_path / "shot3_frames")
    assert sample.messages[1]["content"] == "Describe this video in detail."
    assert sample.messages[2] == {
        "role": "assistant",
        "type": "text",
        "content": "A person waves, then walks away.",
    }
    no_video = dict(record, video=None)
    with pytest.raises(
        DataError, match="shot 1 is a time range but neither it nor the record names a 'video'"
    ):
        convert(no_video, "shots", _ctx(tmp_path))
    backwards = dict(record, shots=[{"start": 3, "end": 1}])
    with pytest.raises(DataError, match="start < end"):
        convert(backwards, "shots", _ctx(tmp_path))
    per_shot_asr = dict(
        record, asr=None, shots=[{"frames": ["a.png"], "asr": "one"}, {"frames": ["b.png"], "asr": "two"}]
    )
    assert convert(per_shot_asr, "shots", _ctx(tmp_path)).messages[0]["content"]["asr"] == "one two"


def test_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="unknown format 'csv'"):
        convert({}, "csv", _ctx(tmp_path))
