"""Saved models come back as they were: the delta format, stage replay, and every way a folder can be bad.

The backbone here is a tiny LLaMA saved as a local weight source, so the checkpoint must reference it and
hold only what the stage trained (plus the random-init encoders and the recipe tokens' rows).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import zoo
from zoo.checkpoint import MANIFEST, WEIGHTS, read_tensors, write_manifest
from zoo.errors import CheckpointError, RecipeError, WeightSourceError
from zoo.training_plan import apply_stage

TOKENIZER = Path(zoo.__file__).parent / "recipes" / "assets" / "tiny-tokenizer"
LORA = {"name": "finetune", "train": {"backbone": "lora"}, "lora": {"r": 4, "alpha": 8}}


@pytest.fixture(scope="module")
def backbone_source(tmp_path_factory) -> Path:
    """A tiny LLaMA with its tokenizer in a folder: a real `local` weight source."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    fields = dict(zoo.load_recipe("tiny").backbone["args"]["config"])
    config = AutoConfig.for_model(fields.pop("model_type"), **fields)
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    shutil.copytree(TOKENIZER, folder, dirs_exist_ok=True)
    return folder


def build(source: Path, *stages: dict, **overrides) -> zoo.ZooModel:
    torch.manual_seed(0)
    backbone = {"name": "causal-lm", "source": str(source), "args": {"config": None, "tokenizer": None}}
    return zoo.build("tiny", backbone=backbone, stages=list(stages or [LORA]), **overrides)


def pretend_training(model: zoo.ZooModel) -> None:
    """Move every trainable parameter, so a reload that dropped any of them would show."""
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)


def inputs() -> dict:
    ids = torch.tensor([[1, 50, 60, 70, 80, 2]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model: zoo.ZooModel) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs()).logits


def trainable(model: zoo.ZooModel) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def lora_layers(model: zoo.ZooModel) -> int:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return sum(isinstance(m, BaseTunerLayer) for m in model.modules())


@pytest.fixture
def saved(backbone_source, tmp_path) -> tuple[zoo.ZooModel, Path]:
    model = build(backbone_source)
    pretend_training(model)
    model.save_pretrained(tmp_path / "model")
    return model, tmp_path / "model"


def test_a_lora_stage_comes_back_identical_in_a_fresh_interpreter(saved, tmp_path) -> None:
    model, folder = saved
    script = (
        "import json, sys, torch, zoo\n"
        "model = zoo.load(sys.argv[1])\n"
        "ids = torch.tensor([[1, 50, 60, 70, 80, 2]])\n"
        "with torch.no_grad():\n"
        "    out = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits\n"
        "torch.save(out, sys.argv[2])\n"  # a test artefact written and read by this test only
        "print(json.dumps(sorted(n for n, p in model.named_parameters() if p.requires_grad)))\n"
    )
    out = tmp_path / "logits.pt"
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder), str(out)], capture_output=True, text=True, check=True
    )
    assert set(json.loads(done.stdout.strip().splitlines()[-1])) == trainable(model)
    assert torch.equal(torch.load(out, weights_only=True), logits(model))


def test_the_checkpoint_holds_the_delta_and_nothing_frozen_from_a_source(saved) -> None:
    model, folder = saved
    with safe_open(str(folder / WEIGHTS), "pt") as handle:
        stored = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118
    base = [k for k in stored if k.startswith("backbone.") and "lora_" not in k]
    assert base == [], "frozen backbone weights come from the source, never from the checkpoint"
    lora = [k for k in stored if "lora_" in k]
    assert len(lora) == 2 * lora_layers(model)  # lora_A and lora_B of every adapted layer
    frozen_random_init = sum(p.numel() for p in model.encoders.parameters())  # no source: saved whole
    rows = len(model.config.token_ids) * model.backbone.hidden_size  # tied embeddings: one table
    expected = sum(p.numel() for p in model.parameters() if p.requires_grad) + frozen_random_init + rows
    assert sum(torch.Size(shape).numel() for shape in stored.values()) == expected


def test_reloaded_model_has_the_stage_applied(saved) -> None:
    model, folder = saved
    reloaded = zoo.ZooModel.from_pretrained(folder)
    assert trainable(reloaded) == trainable(model)
    assert lora_layers(reloaded) == lora_layers(model)
    assert reloaded.config.applied_stages == model.config.applied_stages
    assert not reloaded.training


def test_a_folder_without_its_manifest_is_an_interrupted_save(saved) -> None:
    _, folder = saved
    (folder / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="did not finish"):
        zoo.load(folder)


def test_a_truncated_weights_file_is_refused(saved) -> None:
    _, folder = saved
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors has \d+ bytes but \d+ were saved \(truncated"
    ):
        zoo.load(folder)


def test_a_corrupted_weights_file_is_refused(saved) -> None:
    _, folder = saved
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-10] ^= 0xFF
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        zoo.load(folder)


def rewrite_weights(folder: Path, change) -> None:
    """Change the stored tensors and re-record the manifest, as a buggy tool that saved them would."""
    tensors = read_tensors(folder / WEIGHTS)
    change(tensors)
    save_file(tensors, str(folder / WEIGHTS))
    write_manifest(folder, "delta")


def test_missing_projector_tensors_are_an_error_not_random_weights(saved) -> None:
    _, folder = saved
    rewrite_weights(folder, lambda t: [t.pop(k) for k in list(t) if k.startswith("projectors.image.")])
    with pytest.raises(CheckpointError, match=r"missing \(e\.g\. \['projectors\.image\."):
        zoo.load(folder)


def test_non_finite_weights_are_refused(saved) -> None:
    _, folder = saved

    def poison(tensors: dict) -> None:
        key = next(k for k in tensors if k.startswith("projectors."))
        tensors[key] = tensors[key].clone().fill_(float("nan"))

    rewrite_weights(folder, poison)
    with pytest.raises(CheckpointError, match="NaN"):
        zoo.load(folder)


def test_a_tensor_of_the_wrong_shape_is_named(saved) -> None:
    _, folder = saved

    def reshape(tensors: dict) -> None:
        key = next(k for k in tensors if "lora_A" in k)
        tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])

    rewrite_weights(folder, reshape)
    with pytest.raises(CheckpointError, match="lora_A.* has shape"):
        zoo.load(folder)


def test_pickle_weights_are_never_loaded(saved, backbone_source, tmp_path) -> None:
    _, folder = saved
    torch.save(read_tensors(folder / WEIGHTS), folder / "pytorch_model.bin")  # what other tools write
    (folder / WEIGHTS).unlink()
    (folder / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="pickle"):
        zoo.load(folder)
    pickled = tmp_path / "pickled-source"
    shutil.copytree(backbone_source, pickled)
    torch.save(read_tensors(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(WeightSourceError, match="only pickle weights"):
        build(pickled)


def test_zoo_chat_on_an_interrupted_save_says_what_happened(saved, capsys) -> None:
    from zoo.cli import main

    _, folder = saved
    (folder / MANIFEST).unlink()
    assert main(["chat", str(folder), "-p", "hi"]) == 2
    assert "did not finish" in capsys.readouterr().err


def test_a_later_lora_stage_continues_the_adapter(backbone_source) -> None:
    model = build(backbone_source)
    layers = lora_layers(model)
    apply_stage(model, {**LORA, "name": "more"})
    assert lora_layers(model) == layers
    with pytest.raises(RecipeError, match="same `lora` options"):
        apply_stage(model, {**LORA, "name": "other", "lora": {"r": 8, "alpha": 8}})


def test_a_full_stage_merges_the_adapter_and_computes_the_same(backbone_source) -> None:
    model = build(backbone_source)
    pretend_training(model)
    before = logits(model)
    apply_stage(model, {"name": "full", "train": {"backbone": "full"}})
    assert lora_layers(model) == 0
    torch.testing.assert_close(logits(model), before, rtol=1e-4, atol=1e-5)


def test_two_stages_replay_on_reload(backbone_source, tmp_path) -> None:
    frozen = {"name": "projectors-only", "train": {"backbone": "frozen"}}
    model = build(backbone_source, LORA, frozen)  # build applies the first stage
    pretend_training(model)
    apply_stage(model, frozen)
    pretend_training(model)
    model.save_pretrained(tmp_path)
    reloaded = zoo.load(tmp_path)
    assert [s["name"] for s in reloaded.config.applied_stages] == ["finetune", "projectors-only"]
    assert trainable(reloaded) == trainable(model)
    assert torch.equal(logits(reloaded), logits(model))
