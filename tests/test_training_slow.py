"""`zoo train` end to end as a user runs it: two processes under torchrun equal one, SIGINT saves and
stops, and every stage of every `-smol` recipe trains (real SmolLM2 / Whisper weights; slow)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from zoo.data.synthetic import make_synthetic_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    return make_synthetic_dataset(root, n_train=16, n_test=0, modalities=("image",), seed=0)["train"]


PYTHON_M = (sys.executable, "-m")
TORCHRUN_M = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m")


def zoo_train(*argv: str, launcher: tuple[str, ...] = PYTHON_M) -> subprocess.CompletedProcess:
    """``python -m zoo train ARGV`` (or under another launcher), as a user runs it."""
    command = [*launcher, "zoo", "train", *argv, "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def report_losses(folder: Path, stage: str = "finetune") -> list[float]:
    report = json.loads((folder / "train_report.json").read_text())
    return [loss for _, loss in report["stages"][stage]["losses"]]


def test_two_processes_on_gloo_train_like_one_with_the_same_global_batch(images, tmp_path) -> None:
    # The projector's dropout is off: its random masks depend on how a batch is split over processes.
    # What remains is float summation order (each process sums its half of the batch, the gradient
    # all-reduce adds the halves), a few units in the last place, so the losses agree to 1e-5.
    common = ["tiny", "--data", str(images), "--max-steps", "6", "--set", "projectors.image.args.dropout=0.0"]
    one = zoo_train(*common, "--output", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = zoo_train(*common, "--output", str(tmp_path / "two"), launcher=TORCHRUN_M)
    assert two.returncode == 0, two.stderr
    assert "global batch 4 = 2 per device × 1 accumulation × 2 processes" in two.stderr
    single, double = report_losses(tmp_path / "one"), report_losses(tmp_path / "two")
    assert len(single) == len(double) == 6
    assert double == pytest.approx(single, rel=1e-5)
    assert single[-1] < single[0]
    report = json.loads((tmp_path / "two" / "train_report.json").read_text())["stages"]["finetune"]
    assert report["samples_used"] == 24 and report["processes"] == 2
    assert not list((tmp_path / "two").glob("skipped_samples.rank*.jsonl"))
    zoo.load(tmp_path / "two")  # the model rank 0 saved loads


def test_sigint_saves_a_resumable_checkpoint_and_exits_non_zero(images, tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["tiny", "--data", str(images), "--output", str(out), "--max-steps", "12", "--save-steps", "2"]
    argv += ["--set", "stages.0.batch.size=8", "--workers", "2"]
    process = subprocess.Popen(
        [*PYTHON_M, "zoo", "train", *argv, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = out / "checkpoints" / "finetune" / "checkpoint-2"
    deadline = time.monotonic() + 300
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)  # as Ctrl-C does (the loader's workers leave it to the main process)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGINT, err
    assert "SIGINT: stage 'finetune' stopped at step" in err and "--resume" in err
    report = json.loads((out / "train_report.json").read_text())["stages"]["finetune"]
    assert report["status"] == "interrupted" and 2 <= report["steps"] < 12
    assert report["checkpoint"].endswith(f"checkpoint-{report['steps']}")
    resumed = zoo_train(*argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {report['checkpoint']}" in resumed.stderr
    final = json.loads((out / "train_report.json").read_text())["stages"]["finetune"]
    assert final["status"] == "done" and final["steps"] == 12 and final["samples_used"] == 12 * 8


@pytest.mark.parametrize("recipe", ["s3-smol", "macaw-smol", "llava-smol", "ying-vlm-smol"])
def test_every_stage_of_every_smol_recipe_trains_through_zoo_train(recipe, images, tmp_path) -> None:
    stages = [s["name"] for s in zoo.load_recipe(recipe).stages]
    sets = [a for name in stages for a in ("--set", f"stages.{name}.batch={{size: 1}}")]
    out = tmp_path / recipe
    done = zoo_train(
        recipe, "--data", str(images), "--output", str(out), "--max-steps", "1", "--workers", "0", *sets
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "train_report.json").read_text())["stages"]
    assert list(report) == stages
    for name in stages:
        assert report[name]["status"] == "done" and report[name]["steps"] == 1, report[name]
        assert all(loss == loss for _, loss in report[name]["losses"])  # finite numbers
        assert (out / f"loss_{name}.png").is_file()
    config = json.loads((out / "config.json").read_text())  # the saved model carries every stage
    assert [s["name"] for s in config["applied_stages"]] == stages
