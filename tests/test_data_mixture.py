"""Mixtures: counts and weights, determinism by seed, system prompts, S3 augmentations, instruction pools."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from zoo.data.augment import InstructionPool, concat_dialogs, reorder_media
from zoo.data.mixture import S3_COUNTS, S3_SYSTEM_PROMPTS, Mixture
from zoo.data.schema import Sample, Skip
from zoo.errors import DataError


def _s3_file(path, n, prefix, bad=()):
    with open(path, "w") as f:
        for i in range(n):
            if i in bad:
                f.write(json.dumps({"id": f"{prefix}{i}", "messages": "not a list"}) + "\n")
                continue
            messages = [
                {"role": "user", "type": "image", "text": f"{prefix}{i}.png"},
                {"role": "user", "type": "text", "text": f"question {i}"},
                {"role": "bot", "type": "text", "text": f"answer {i}"},
            ]
            f.write(json.dumps({"id": f"{prefix}{i}", "messages": messages}) + "\n")
    return str(path)


@pytest.fixture
def two_files(tmp_path):
    return _s3_file(tmp_path / "a.jsonl", 30, "a", bad={4}), _s3_file(tmp_path / "b.jsonl", 10, "b")


def _ids(mixture):
    return [item.id if isinstance(item, Sample) else f"skip:{item.index}" for item in mixture]


def test_counts_are_exact_interleaved_and_repeat_a_short_dataset(two_files):
    a, b = two_files
    config = {"seed": 0, "datasets": [{"name": "a", "path": a, "format": "s3", "count": 12},
                                      {"name": "b", "path": b, "format": "s3", "count": 15}]}  # fmt: skip
    items = list(Mixture.from_dict(config))
    per_dataset = Counter(item.dataset for item in items)
    assert per_dataset == {"a": 12, "b": 15}
    assert [i.dataset for i in items] != sorted(
        i.dataset for i in items
    )  # interleaved, not one after another
    b_ids = [i.id for i in items if i.dataset == "b"]
    assert b_ids[:10] == [f"b{i}" for i in range(10)] and b_ids[10:] == [f"b{i}" for i in range(5)]
    skips = [i for i in items if isinstance(i, Skip)]
    assert [(s.dataset, s.index, s.id, s.stage) for s in skips] == [("a", 4, "a4", "convert")]


def test_same_seed_same_sequence_other_seed_other_sequence(two_files):
    a, b = two_files
    config = {"datasets": [{"name": "a", "path": a, "format": "s3", "weight": 3},
                           {"name": "b", "path": b, "format": "s3", "weight": 1}], "num_samples": 60}  # fmt: skip
    first = _ids(Mixture.from_dict(config, seed=1))
    assert first == _ids(Mixture.from_dict(config, seed=1))
    assert first != _ids(Mixture.from_dict(config, seed=2))
    assert len(first) == 60


def test_weights_set_proportions_and_stopping_strategies(two_files):
    a, b = two_files
    datasets = [
        {"name": "a", "path": a, "format": "s3", "weight": 3},
        {"name": "b", "path": b, "format": "s3", "weight": 1},
    ]
    many = list(Mixture.from_dict({"datasets": datasets, "num_samples": 400, "seed": 0}))
    share = Counter(i.dataset for i in many)["a"] / 400
    assert 0.68 < share < 0.82
    first = list(Mixture.from_dict({"datasets": datasets, "seed": 0}))
    assert Counter(i.dataset for i in first)["b"] == 10 or Counter(i.dataset for i in first)["a"] == 30
    every = list(Mixture.from_dict({"datasets": datasets, "seed": 0, "stopping_strategy": "all_exhausted"}))
    assert {i.id for i in every if isinstance(i, Sample)} >= {f"a{i}" for i in range(30) if i != 4}


def test_system_prompt_per_dataset_and_the_s3_table():
    assert S3_SYSTEM_PROMPTS["TextCaps"] == "Answer the question using a single word or phrase"
    assert S3_SYSTEM_PROMPTS["ScienceQA"].startswith("Answer with the option")
    assert sum(S3_COUNTS.values()) == 145250  # the paper's total


def test_system_prompt_becomes_the_first_message(two_files):
    a, _ = two_files
    config = {
        "datasets": [{"name": "a", "path": a, "format": "s3", "count": 3, "system_prompt": "Be brief."}]
    }
    for sample in Mixture.from_dict(config):
        assert sample.messages[0] == {"role": "system", "type": "text", "content": "Be brief."}
        assert [m["role"] for m in sample.messages].count("system") == 1


def test_media_before_or_after_the_question(two_files):
    a, _ = two_files

    def order(augment, seed=0):
        config = {
            "seed": seed,
            "datasets": [{"name": "a", "path": a, "format": "s3", "count": 20, "augment": augment}],
        }
        return [
            tuple(m["type"] for m in s.messages) for s in Mixture.from_dict(config) if isinstance(s, Sample)
        ]

    assert set(order({"media_order": "after"})) == {("text", "image", "text")}
    assert set(order({"media_order": "before"})) == {("image", "text", "text")}
    mixed = order({"media_order": "random", "media_order_p": 0.5})
    assert set(mixed) == {("text", "image", "text"), ("image", "text", "text")}
    assert mixed == order({"media_order": "random", "media_order_p": 0.5})
    assert mixed != order({"media_order": "random", "media_order_p": 0.5}, seed=5)


def test_reorder_keeps_relative_order_and_other_turns():
    messages = [
        {"role": "user", "type": "text", "content": "q1"},
        {"role": "user", "type": "image", "content": "i1"},
        {"role": "user", "type": "audio", "content": "a1"},
        {"role": "assistant", "type": "text", "content": "r1"},
    ]
    out = reorder_media(messages, "before", rng=None)
    assert [m["content"] for m in out] == ["i1", "a1", "q1", "r1"]
    with pytest.raises(DataError, match="media_order 'sideways'"):
        reorder_media(messages, "sideways", rng=None)


def test_concatenated_dialogs_keep_their_parts(two_files):
    a, _ = two_files
    config = {"seed": 0, "datasets": [{"name": "a", "path": a, "format": "s3", "count": 30, "system_prompt": "S",
                                       "augment": {"concat": {"max_dialogs": 3, "p": 1.0}}}]}  # fmt: skip
    items = list(Mixture.from_dict(config))
    samples = [i for i in items if isinstance(i, Sample)]
    assert all(2 <= len(s.parts) <= 3 for s in samples[:-1])
    parts = [p["id"] for s in samples for p in s.parts]
    assert parts == [f"a{i}" for i in range(30) if i != 4]  # every dialog once, in order
    joined = samples[0]
    assert joined.id == "+".join(p["id"] for p in joined.parts)
    assert [m["role"] for m in joined.messages].count("system") == 1 and joined.messages[0][
        "role"
    ] == "system"
    assert [m["content"] for m in joined.messages if m["role"] == "assistant"][:2] == ["answer 0", "answer 1"]


def test_concat_respects_a_message_budget():
    samples = [
        Sample(
            f"s{i}",
            "d",
            i,
            [
                {"role": "user", "type": "text", "content": "q"},
                {"role": "assistant", "type": "text", "content": "a"},
            ],
        )
        for i in range(6)
    ]
    import random

    out = list(concat_dialogs(samples, random.Random(0), max_dialogs=3, p=1.0, max_messages=4))
    assert all(len(s.messages) <= 4 for s in out) and sum(len(s.parts) for s in out) == 6


def test_instruction_pool_file_mapping_task_to_list(tmp_path):
    pool_file = tmp_path / "pools.json"
    pool_file.write_text(
        json.dumps({"vqa": ["Answer the question.", "Look and answer."], "cap": ["Describe."]})
    )
    records = [{"instruction": "orig", "inputs": f"q{i}", "outputs": "a", "images": []} for i in range(20)]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    config = {"datasets": [{"name": "m", "path": str(tmp_path / "m.jsonl"), "format": "m3it", "count": 20,
                            "task": "vqa", "instruction_pool": str(pool_file)}]}  # fmt: skip
    prompts = [s.messages[0]["content"].split("\n")[0] for s in Mixture.from_dict(config)]
    assert set(prompts) == {"Answer the question.", "Look and answer."}
    with pytest.raises(DataError, match="has no task 'ocr'"):
        InstructionPool.from_spec(str(pool_file), "x").choose("ocr", None)


def test_yaml_paths_are_relative_to_the_file(tmp_path, two_files):
    (tmp_path / "mix.yaml").write_text(
        "seed: 3\ndatasets:\n  - {name: a, path: a.jsonl, format: s3, count: 5, media_root: media}\n"
    )
    samples = [s for s in Mixture.from_yaml(tmp_path / "mix.yaml") if isinstance(s, Sample)]
    assert samples[0].messages[0]["content"] == str(tmp_path / "media" / "a0.png")


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ([{"name": "a", "path": "x.jsonl", "format": "s3", "count": 1, "wieght": 2}], "unknown keys \\['wieght'\\]"),
        ([{"name": "a", "path": "x.jsonl", "format": "csv"}], "unknown format 'csv'; installed formats: .*llava.*s3"),
        ([{"name": "a", "path": "x.jsonl", "format": "s3", "count": 1}, {"name": "b", "path": "x.jsonl", "format": "s3", "weight": 1}],
         "not both kinds"),
        ([{"name": "a", "path": "x.jsonl", "format": "s3"}, {"name": "a", "path": "y.jsonl", "format": "s3"}], "names must be unique"),
    ],
)  # fmt: skip
def test_bad_mixture_configs_are_clear_errors(datasets, message, tmp_path, monkeypatch):
    _s3_file(tmp_path / "x.jsonl", 1, "x")
    _s3_file(tmp_path / "y.jsonl", 1, "y")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=message):
        Mixture.from_dict({"datasets": datasets})


def test_an_explicit_seed_overrides_the_mixtures_own(two_files):
    datasets = [
        {"name": n, "path": p, "format": "s3", "weight": 1} for n, p in zip("ab", two_files, strict=True)
    ]
    config = {"seed": 5, "datasets": datasets, "num_samples": 30}
    own = _ids(Mixture.from_dict(config))
    assert own == _ids(Mixture.from_dict(config, seed=5)) == _ids(Mixture.from_dict(config).reseeded(5))
    assert _ids(Mixture.from_dict(config, seed=6)) == _ids(Mixture.from_dict(config).reseeded(6)) != own
