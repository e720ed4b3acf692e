"""`zoo train` refuses bad input before the first step, naming the input; and the pieces it checks with:
``--set`` overrides, the batch split over processes, and the loader's disjoint shares per process.

Every error here comes before any model is built (except the one that needs the saved earlier stage),
so these tests take about a second each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.data.pipeline import EncodedDataset
from zoo.data.schema import Sample, Skip
from zoo.data.synthetic import make_synthetic_dataset
from zoo.errors import RecipeError, TrainingError
from zoo.recipes_api import load_recipe
from zoo.training.arguments import batch_plan, precision_flags
from zoo.training.overrides import overrides_from_sets, recipe_data


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    return make_synthetic_dataset(root, n_train=4, n_test=0, modalities=("image",), seed=0)["train"]


def train_error(capsys, *argv: str) -> str:
    """Run `zoo train ...`, expect exit status 2 and return the error message."""
    assert main(["train", *argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: "), err
    return err


def test_an_unknown_override_key_is_named(capsys, images, tmp_path) -> None:
    err = train_error(
        capsys, "tiny", "--data", str(images), "-o", str(tmp_path / "o"), "--set", "stages.0.bach.size=2"
    )
    assert "stages[0].bach: unknown field (did you mean 'batch'?)" in err
    err = train_error(
        capsys, "tiny", "--data", str(images), "-o", str(tmp_path / "o"), "--set", "stages.align.lr=1"
    )
    assert "no entry named 'align'; its names are ['finetune']" in err
    assert not (tmp_path / "o").exists()  # nothing was written


def test_an_unknown_stage_is_named(capsys, images, tmp_path) -> None:
    err = train_error(capsys, "tiny", "--data", str(images), "-o", str(tmp_path / "o"), "--stage", "align")
    assert "recipe 'tiny' has no stage 'align'; its stages are ['finetune']" in err


def test_an_output_folder_in_use_is_refused(capsys, images, tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    record = {"recipe": "tiny", "overrides": {}, "seed": 0}
    (run / "train_report.json").write_text(json.dumps({"run": record, "stages": {}}))
    err = train_error(capsys, "tiny", "--data", str(images), "-o", str(run))
    assert f"output folder {run} holds a run of recipe 'tiny'; pass --resume" in err and "--overwrite" in err
    err = train_error(capsys, "tiny", "--data", str(images), "-o", str(run), "--resume", "--seed", "1")
    assert "trained with other settings (seed: 0 before, 1 now)" in err
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"not a run")
    err = train_error(capsys, "tiny", "--data", str(images), "-o", str(other), "--overwrite")
    assert "is not empty and holds no zoo training run" in err
    assert (other / "cat.jpg").exists()  # --overwrite never deletes what zoo did not write


def test_data_with_no_usable_sample_is_refused(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": "not a list"}\n{"messages": 3}\n')
    err = train_error(capsys, "tiny", "--data", str(bad), "-o", str(tmp_path / "o"))
    assert f"data {bad}: no usable sample (2 records read, all skipped)" in err
    assert "field 'messages' must be a list" in err
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"question": "?", "answer": "!"}\n')
    err = train_error(capsys, "tiny", "--data", str(odd), "-o", str(tmp_path / "o"))
    assert "cannot tell its format from the first record's keys ['answer', 'question']" in err


def test_media_the_recipe_has_no_encoder_for_is_refused(capsys, tmp_path) -> None:
    videos = make_synthetic_dataset(tmp_path / "v", n_train=2, n_test=0, modalities=("video",))["train"]
    err = train_error(capsys, "llava-smol", "--data", str(videos), "-o", str(tmp_path / "o"))
    assert f"data {videos} has 2 video samples (e.g. dataset 'train' record 0" in err
    assert "the recipe has encoders only for image" in err


def test_a_batch_that_cannot_divide_is_refused(capsys, images, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")  # as torchrun --nproc-per-node 3 sets it (checked before it starts)
    err = train_error(capsys, "tiny", "--data", str(images), "-o", str(tmp_path / "o"))
    assert "stage 'finetune': the global batch 4 cannot be split over 3 processes" in err
    assert "--set stages.finetune.batch.size=N" in err
    monkeypatch.setenv("WORLD_SIZE", "2")
    err = train_error(
        capsys,
        "tiny",
        "--data",
        str(images),
        "-o",
        str(tmp_path / "o"),
        "--set",
        "stages.0.batch={per_device: 4}",
    )
    assert "the global batch 4 cannot be made of 4 per device × 2 processes" in err


def test_a_later_stage_needs_the_earlier_stages_model(capsys, images, tmp_path) -> None:
    stages = "[{name: align, lr: 1.0e-3}, {name: tune, lr: 1.0e-3}]"
    err = train_error(
        capsys,
        "tiny",
        "--data",
        str(images),
        "-o",
        str(tmp_path / "o"),
        "--set",
        f"stages={stages}",
        "--stage",
        "tune",
    )
    assert "stage 'tune' starts from the model trained by the stages before it (align)" in err
    assert "--stage align" in err


def test_data_per_stage_must_name_the_recipes_stages(capsys, images, tmp_path) -> None:
    stages = "[{name: align, lr: 1.0e-3}, {name: tune, lr: 1.0e-3}]"
    argv = ["tiny", "-o", str(tmp_path / "o"), "--set", f"stages={stages}", "--data", f"align={images}"]
    err = train_error(capsys, *argv, "--data", f"tuen={images}")
    assert "data given for stages ['tuen'], but recipe 'tiny' has stages ['align', 'tune']" in err
    err = train_error(capsys, *argv)
    assert "no data for stage 'tune': give it with --data tune=DATA (data was given for align)" in err


def test_options_that_are_not_there_yet_say_so(capsys, images, tmp_path) -> None:
    import importlib.util

    if importlib.util.find_spec("zoo.training.feature_cache") is None:
        err = train_error(
            capsys, "tiny", "--data", str(images), "-o", str(tmp_path / "o"), "--cache-features"
        )
        assert "feature cache (zoo.training.feature_cache) is not available" in err
    if importlib.util.find_spec("zoo.evaluation") is None:
        err = train_error(
            capsys, "tiny", "--data", str(images), "-o", str(tmp_path / "o"), "--eval-data", "x"
        )
        assert "--eval-data needs zoo.evaluation" in err


# --- --set ----------------------------------------------------------------------------------------------


def test_set_reaches_list_entries_by_index_or_name_and_part_names_keep_their_dots() -> None:
    data = recipe_data("ying-vlm-smol")
    overrides = overrides_from_sets(
        data, ["stages.instruct.lr=2e-5", "stages.0.batch.size=8", "stages.1.train.backbone.k_proj=full"]
    )
    stages = overrides["stages"]  # a key below a list carries the whole list
    assert [s["name"] for s in stages] == ["align", "instruct"]
    assert stages[0]["batch"] == {"size": 8} and stages[1]["lr"] == 2e-5
    assert stages[1]["train"]["backbone.k_proj"] == "full" and stages[1]["train"]["backbone.q_proj"] == "full"
    assert overrides_from_sets(data, ["max_length=64", "projectors.image.args.num_queries=4"]) == {
        "max_length": 64,
        "projectors": {"image": {"args": {"num_queries": 4}}},
    }


def test_set_reaches_stages_a_recipe_inherits_through_extends(capsys, images, tmp_path) -> None:
    child = tmp_path / "child.yaml"
    child.write_text("extends: tiny\nmax_length: 64\n")
    overrides = overrides_from_sets(recipe_data(child), ["stages.0.lr=2e-4", "stages.finetune.batch.size=2"])
    stage = load_recipe(child, **overrides).stages[0]
    assert (stage["name"], stage["lr"]["default"], stage["batch"]["size"]) == ("finetune", 2e-4, 2)
    # `zoo train` takes the same path: the key reaches the inherited stage and is checked there
    err = train_error(
        capsys, str(child), "--data", str(images), "-o", str(tmp_path / "o"), "--set", "stages.0.bach.size=2"
    )
    assert "stages[0].bach: unknown field (did you mean 'batch'?)" in err


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("stages.5.lr=1", "stages has 2 entries; index 5 does not exist"),
        ("stages.0.lr.x=1", "stages.0.lr is 5e-05, not a mapping or a list"),
        ("novalue", "expected KEY=VALUE"),
        ("stages.0.lr=[1", "the value is not valid YAML"),
    ],
)
def test_bad_set_assignments_are_named(assignment: str, message: str) -> None:
    with pytest.raises(RecipeError, match=rf"--set .*{message[:20]}"):
        overrides_from_sets(recipe_data("ying-vlm-smol"), [assignment])


# --- the batch split ---------------------------------------------------------------------------------------


def split(stage: dict, world: int) -> tuple[int, int, int]:
    plan = batch_plan(stage, world)
    assert plan.per_device * plan.accumulation * plan.world_size == plan.size
    return plan.per_device, plan.accumulation, plan.world_size


def test_the_global_batch_is_split_over_the_processes() -> None:
    macaw = {"name": "finetune", "batch": {"size": 96, "per_device": 4, "accumulation": 3, "devices": 8}}
    assert split(macaw, 8) == (4, 3, 8)  # the paper's set-up
    assert split(macaw, 1) == (4, 24, 1)  # one GPU: same global batch, more accumulation
    assert split({"batch": {"size": 256}}, 8) == (8, 4, 8)  # per device at most 8 by default
    assert split({"batch": {"size": 4}}, 2) == (2, 1, 2)
    with pytest.raises(TrainingError, match="global batch 6 cannot be split over 4 processes"):
        batch_plan({"name": "x", "batch": {"size": 6}}, 4)


@pytest.mark.parametrize(
    ("wanted", "device", "native_bf16", "used"),
    [
        ("bf16", "cpu", True, "bf16"),  # a CPU with AVX512-BF16/AMX: autocast
        ("bf16", "cpu", False, "fp32"),
        ("fp16", "cpu", True, "fp32"),  # no fp16 autocast path for CPU training
        (None, "cpu", True, "fp32"),  # the CPU never picks bf16 on its own
        (None, "cuda", True, "bf16"),
        ("bf16", "cuda", False, "fp16"),
        ("fp32", "cuda", True, "fp32"),
    ],
)
def test_precision_follows_the_stage_and_what_the_device_computes_natively(
    wanted: str | None, device: str, native_bf16: bool, used: str
) -> None:
    stage = {"name": "s"} | ({"precision": wanted} if wanted else {})
    flags, name = precision_flags(stage, device, native_bf16)
    assert name == used
    assert flags == {"bf16": used == "bf16", "fp16": used == "fp16"}


# --- each process reads a disjoint share ---------------------------------------------------------------------


class _Encoder:
    """A processor stand-in: the "encoded" sample is its id; sample 'bad-*' cannot be encoded."""

    max_length = None

    def encode(self, messages):
        if messages[0]["content"].startswith("bad"):
            raise ValueError("cannot decode")
        return messages[0]["content"]

    def collate(self, encoded, **kwargs):
        return {"ids": list(encoded)}


def _stream(n: int) -> list:
    items = []
    for i in range(n):
        name = f"bad-{i}" if i % 7 == 3 else f"s{i}"
        if i % 11 == 5:
            items.append(Skip("d", i, None, "read", "broken line"))
        else:
            items.append(Sample(name, "d", i, [{"role": "user", "type": "text", "content": name}]))
    return items


def _batches(world: int, rank: int, workers: int, start: int = 0) -> list[dict]:
    import torch

    dataset = EncodedDataset(
        _Encoder(), _stream(40), batch_size=3, rank=rank, world_size=world, start_batch=start
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers, collate_fn=lambda x: x
    )
    return list(loader)


def test_processes_and_workers_read_disjoint_shares_and_the_same_batches() -> None:
    single = _batches(1, 0, 0)
    assert [b["index"] for b in single] == list(range(14))
    for world, workers in ((2, 0), (2, 2), (3, 1)):
        shares = [_batches(world, rank, workers) for rank in range(world)]
        seen = [ref["index"] for share in shares for b in share for ref in b["used"]]
        seen += [skip.index for share in shares for b in share for skip in b["skipped"]]
        assert sorted(seen) == list(range(40))  # every sample once: none twice, none lost
        # global batch k is the same whatever the number of processes and workers
        by_position = {b["index"] * world + rank: b for rank, share in enumerate(shares) for b in share}
        assert [by_position[k]["batch"] for k in range(14)] == [b["batch"] for b in single]
    resumed = _batches(2, 1, 2, start=3)
    assert [b["index"] for b in resumed] == [3, 4, 5, 6]  # earlier batches passed over, not encoded
