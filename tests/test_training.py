"""`zoo.train` on the tiny recipe: the loss falls, checkpoints resume exactly, saves are atomic, stages
freeze what they say, the saved weights are exactly the delta, and a NaN loss stops the run clearly.

The runs use synthetic image questions (16 samples, batch 4) and no loader worker processes, so each run
takes seconds. Runs shared by several tests are module fixtures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import set_seed

import zoo
from zoo.data.synthetic import make_synthetic_dataset
from zoo.errors import NonFiniteLossError
from zoo.training.checkpoints import complete_checkpoints, latest_checkpoint
from zoo.training.trainer import ZooTrainer

STEPS = 8
RUN = {
    "overrides": ["stages.0.lr=3e-3"],
    "max_steps": STEPS,
    "save_steps": 3,
    "num_workers": 0,
    "progress": False,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, n_train=16, n_test=0, modalities=("image",), seed=0)["train"]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> tuple[Path, zoo.training.TrainReport]:
    out = tmp_path_factory.mktemp("run") / "out"
    return out, zoo.train("tiny", str(data), out, **RUN)


def losses(report) -> list[float]:
    return [loss for _, loss in report.stages["finetune"].losses]


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118


def test_loss_falls_and_the_run_is_reported(trained) -> None:
    out, report = trained
    stage = report.stages["finetune"]
    assert stage.status == "done" and stage.steps == STEPS and len(stage.losses) == STEPS
    assert stage.last_loss < stage.first_loss - 0.5, stage.losses
    assert (stage.global_batch, stage.per_device_batch, stage.accumulation) == (4, 4, 1)
    assert stage.samples_used == STEPS * 4 and stage.samples_skipped == 0 and stage.samples_per_epoch == 16
    written = json.loads((out / "train_report.json").read_text())
    assert written["stages"]["finetune"]["losses"] == stage.losses
    assert written["run"]["recipe"] == "tiny" and written["run"]["seed"] == 0
    assert (out / "loss_finetune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "skipped_samples.jsonl").read_text() == ""
    assert list((out / "runs" / "finetune").glob("events.out.tfevents.*")), "no TensorBoard log"


def test_checkpoints_hold_the_training_state_without_pickle(trained) -> None:
    out, _ = trained
    kept = complete_checkpoints(out / "checkpoints" / "finetune")
    assert [p.name for p in kept] == ["checkpoint-6", "checkpoint-8"]  # the last two are kept
    last = kept[-1]
    for name in ("optimizer.safetensors", "scheduler.json", "rng_state.json", "trainer_state.json"):
        assert (last / name).is_file(), name
    data_state = json.loads((last / "zoo_data_state.json").read_text())
    assert data_state["global_step"] == STEPS and data_state["positions"] == STEPS * 4
    pickles = [p for p in out.rglob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl")]
    assert pickles == []
    final, checkpoint = tensors(out / "model.safetensors"), tensors(last / "model.safetensors")
    assert final.keys() == checkpoint.keys()
    assert all(torch.equal(final[k], checkpoint[k]) for k in final)


@pytest.mark.slow
def test_the_trained_model_reloads_in_a_fresh_interpreter(trained, tmp_path) -> None:
    out, _ = trained
    script = (
        "import sys, torch, zoo\n"
        "from safetensors.torch import save_file\n"
        "model = zoo.load(sys.argv[1])\n"
        "ids = torch.arange(1, 17).unsqueeze(0)\n"
        "with torch.no_grad():\n"
        "    save_file({'logits': model(input_ids=ids).logits.contiguous()}, sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "logits.safetensors")], check=True)
    model = zoo.load(out)
    with torch.no_grad():
        here = model(input_ids=torch.arange(1, 17).unsqueeze(0)).logits
    assert torch.equal(tensors(tmp_path / "logits.safetensors")["logits"], here)


# --- an interrupted save, then --resume -----------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted(data, tmp_path_factory) -> Path:
    """A run whose second checkpoint save (step 6) dies after writing part of the weights."""
    out = tmp_path_factory.mktemp("interrupted") / "out"
    real_save = zoo.ZooModel.save_pretrained
    calls = []

    def save_then_die(self, folder, *args, **kwargs):
        calls.append(folder)
        if len(calls) == 2:
            Path(folder, "model.safetensors").write_bytes(b"\0" * 100)  # half-written weights
            raise OSError("No space left on device")
        return real_save(self, folder, *args, **kwargs)

    zoo.ZooModel.save_pretrained = save_then_die
    try:
        with pytest.raises(OSError, match="No space left"):
            zoo.train("tiny", str(data), out, **RUN)
    finally:
        zoo.ZooModel.save_pretrained = real_save
    return out


def test_an_interrupted_save_leaves_the_previous_checkpoint_as_the_latest(interrupted) -> None:
    stage_dir = interrupted / "checkpoints" / "finetune"
    assert latest_checkpoint(stage_dir) == stage_dir / "checkpoint-3"
    assert not (stage_dir / "checkpoint-6").exists()
    partial = stage_dir / ".partial-checkpoint-6"
    assert partial.is_dir() and not (partial / "zoo_checkpoint.json").exists()
    report = json.loads((interrupted / "train_report.json").read_text())["stages"]["finetune"]
    assert report["status"] == "failed" and "No space left" in report["error"]


def test_resume_continues_exactly_where_the_checkpoint_was(interrupted, trained, data) -> None:
    # Steps 4-8 are recomputed from checkpoint-3 (optimizer, schedule, RNG of the projector's dropout,
    # data position) and give the same losses, bit for bit, as the run that was never interrupted.
    report = zoo.train("tiny", str(data), interrupted, resume=True, **RUN)
    assert losses(report) == losses(trained[1])
    assert report.stages["finetune"].samples_used == STEPS * 4
    assert not (interrupted / "checkpoints" / "finetune" / ".partial-checkpoint-6").exists()


def test_a_run_stopped_after_its_last_step_finishes_without_training_more(
    data, tmp_path, monkeypatch
) -> None:
    from zoo.training import stage

    out = tmp_path / "out"
    options = {**RUN, "max_steps": 2}
    with monkeypatch.context() as patch:  # the process dies while moving the final model into place
        patch.setattr(stage, "publish_model", lambda *a: (_ for _ in ()).throw(OSError("killed")))
        with pytest.raises(OSError, match="killed"):
            zoo.train("tiny", str(data), out, **options)
    report = zoo.train("tiny", str(data), out, resume=True, **options).stages["finetune"]
    assert report.status == "done" and report.steps == 2 and len(report.losses) == 2
    assert (
        tensors(out / "model.safetensors").keys()
        == tensors(out / "checkpoints/finetune/checkpoint-2/model.safetensors").keys()
    )
    again = zoo.train("tiny", str(data), out, resume=True, **options)  # nothing left to do
    assert again.stages["finetune"].steps == 2


# --- stages: what is frozen stays, what is trained moves; the saved delta --------------------------------

TWO_STAGES = [
    {
        "name": "align",
        "train": {"projectors": "full", "backbone": "frozen"},
        "lr": 3e-3,
        "batch": {"size": 4},
    },
    {
        "name": "tune",
        "train": {"projectors": "full", "backbone": "lora"},
        "lora": {"r": 2, "alpha": 4},
        "lr": 3e-3,
        "batch": {"size": 4},
    },
]


@pytest.fixture(scope="module")
def two_stages(data, tmp_path_factory) -> tuple[Path, dict, list]:
    """The tiny recipe with its backbone read from a weight source, trained in two stages, evaluated at the
    end of each by a stand-in for zoo.evaluation (which its own branch builds) that records its calls."""
    root = tmp_path_factory.mktemp("two-stages")
    backbone = zoo.build("tiny").backbone.model
    backbone.save_pretrained(root / "lm")
    overrides = {"backbone": {"source": str(root / "lm")}, "stages": TWO_STAGES}
    calls = []

    def evaluate(model, data, metrics, output_dir=None, **options):
        calls.append({"model": model, "data": data, "metrics": metrics, "output_dir": output_dir})
        return types.SimpleNamespace(scores={"exact_match": 0.25 * len(calls)})

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "zoo.evaluation", types.SimpleNamespace(evaluate=evaluate))
        zoo.train(
            "tiny",
            str(data),
            root / "out",
            overrides=overrides,
            max_steps=3,
            num_workers=0,
            progress=False,
            eval_data=str(data),
        )
    return root / "out", overrides, calls


def test_eval_data_is_scored_at_the_end_of_each_stage(two_stages, data) -> None:
    out, _, calls = two_stages
    assert [c["output_dir"] for c in calls] == [out / "eval" / "align", out / "eval" / "tune"]
    assert all(c["data"] == str(data) and c["metrics"] == ["exact_match"] for c in calls)
    assert all(isinstance(c["model"], zoo.ZooModel) for c in calls)
    report = json.loads((out / "train_report.json").read_text())["stages"]
    assert report["align"]["eval"] == {"exact_match": 0.25} and report["tune"]["eval"] == {"exact_match": 0.5}


def _state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_each_stage_trains_what_it_says_and_nothing_else(two_stages) -> None:
    out, overrides, _ = two_stages
    set_seed(0)  # the run's seed: the same random initialisation
    start = _state(zoo.build("tiny", **overrides))
    after_align = _state(zoo.load(out / "checkpoints" / "align" / "checkpoint-3"))
    after_tune = _state(zoo.load(out))

    def changed(a: dict, b: dict, prefix: str) -> list[bool]:
        return [not torch.equal(a[n], b[n]) for n in a if n.startswith(prefix) and n in b]

    assert not any(changed(start, after_align, "encoders."))
    assert not any(changed(start, after_align, "backbone."))  # frozen in stage align
    assert all(changed(start, after_align, "projectors.image."))
    lora = [n for n in after_tune if "lora_" in n]
    assert lora and not any(n.startswith("backbone.") and "lora_" in n for n in after_align)
    base = {n.replace(".base_layer", ""): v for n, v in after_tune.items() if "lora_" not in n}
    assert not any(changed(after_align, base, "encoders."))
    assert not any(changed(after_align, base, "backbone."))  # the LoRA stage leaves base weights alone
    assert all(changed(after_align, base, "projectors.image."))
    assert any(not torch.equal(after_tune[n], torch.zeros_like(after_tune[n])) for n in lora if "lora_B" in n)


def test_the_saved_weights_are_exactly_the_delta(two_stages) -> None:
    out, _, _ = two_stages
    model = zoo.load(out)
    params = dict(model.named_parameters())
    components = sum(p.numel() for n, p in params.items() if n.startswith(("encoders.", "projectors.")))
    lora = sum(p.numel() for n, p in params.items() if "lora_" in n)
    token_rows = len(model.config.token_ids) * model.config.text_config.hidden_size  # tied: one table
    saved = tensors(out / "model.safetensors")
    assert sum(t.numel() for t in saved.values()) == components + lora + token_rows
    frozen_backbone = [n for n in saved if n.startswith("backbone.") and "lora_" not in n]
    assert frozen_backbone == []  # the backbone's own weights come back from its source


# --- a loss that is not a number -------------------------------------------------------------------------


def test_a_nan_loss_stops_the_run_naming_step_samples_and_checkpoint(data, tmp_path, monkeypatch) -> None:
    real = ZooTrainer.compute_loss

    def nan_at_step_3(self, model, inputs, *args, **kwargs):
        loss = real(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step == 2 else loss

    monkeypatch.setattr(ZooTrainer, "compute_loss", nan_at_step_3)
    with pytest.raises(NonFiniteLossError) as caught:
        zoo.train("tiny", str(data), tmp_path / "out", **{**RUN, "save_steps": 2, "max_steps": 4})
    message = str(caught.value)
    assert "the loss is nan at step 3" in message
    assert message.count("train:train-") == 4  # the four samples of the batch
    assert str(tmp_path / "out" / "checkpoints" / "finetune" / "checkpoint-2") in message
    report = json.loads((tmp_path / "out" / "train_report.json").read_text())["stages"]["finetune"]
    assert report["status"] == "failed"
