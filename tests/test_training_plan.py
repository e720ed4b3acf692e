"""Stage plans on the tiny recipe: per-part freezing, ``backbone.<leaf>``, optimizer groups, schedules."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import RecipeError
from zoo.training_plan import (
    apply_stage,
    decay_parameter_names,
    make_optimizer,
    make_scheduler,
    optimizer_groups,
    trainable_counts,
    warmup_steps,
)

ADAMW = {"name": "adamw", "weight_decay": 0.1, "betas": [0.9, 0.95], "eps": 1e-6}


def tiny(**stage) -> tuple:
    """The tiny model (random init, CPU) with ``stage`` applied, and that stage."""
    model = zoo.build("tiny", stages=[{"name": "s", **stage}])
    return model, model.recipe.stages[0]


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_backbone_leaf_part_trains_exactly_those_linears() -> None:
    model, stage = tiny(train={"projectors": "frozen", "backbone": "frozen", "backbone.q_proj": "full"})
    names = trainable_names(model)
    layers = model.backbone.model.config.num_hidden_layers
    assert len(names) == layers and all(n.endswith("self_attn.q_proj.weight") for n in names)
    q_proj = model.backbone.model.model.layers[0].self_attn.q_proj.weight
    counts = apply_stage(model, stage)
    assert counts["backbone.q_proj"] == layers * q_proj.numel() and counts["backbone"] == 0
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_unmatched_leaf_lists_the_backbone_linear_layers() -> None:
    with pytest.raises(
        RecipeError, match=r"no module named 'query'; its linear layers are down_proj, gate_proj, k_proj"
    ):
        tiny(train={"backbone": "frozen", "backbone.query": "full"})


def test_lora_with_trained_embeddings_counts_each_parameter_under_one_part() -> None:
    model, stage = tiny(
        train={"backbone": "lora", "embeddings": "full"}, lora={"r": 2, "targets": ["q_proj", "v_proj"]}
    )
    embeddings = model.get_input_embeddings().weight
    lora = {n for n in trainable_names(model) if "lora_" in n}
    assert lora and all(".q_proj." in n or ".v_proj." in n for n in lora)
    assert embeddings.requires_grad
    counts = trainable_counts(model, stage)
    assert counts["embeddings"] == embeddings.numel()
    assert counts["backbone"] == sum(p.numel() for n, p in model.named_parameters() if n in lora)
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_optimizer_groups_hold_each_trainable_parameter_once_with_its_part_rate() -> None:
    lr = {"default": 1e-5, "projectors": 1e-4, "projectors.image": 3e-4, "embeddings": 2e-5}
    model, stage = tiny(lr=lr, optimizer=ADAMW)
    groups = optimizer_groups(model, stage)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters() if p.requires_grad}
    rate = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert all(rate[id(p)] == 3e-4 for p in model.projectors["image"].parameters())  # most specific wins
    assert all(rate[id(p)] == 1e-4 for p in model.projectors["audio"].parameters())
    assert rate[id(model.get_input_embeddings().weight)] == 2e-5
    assert rate[id(model.backbone.model.model.layers[0].mlp.up_proj.weight)] == 1e-5


def test_no_weight_decay_on_biases_and_norm_weights() -> None:
    model, stage = tiny(lr=1e-4, optimizer=ADAMW)
    decay = {id(p): g["weight_decay"] for g in optimizer_groups(model, stage) for p in g["params"]}
    named = dict(model.named_parameters())
    norm = named["backbone.model.model.layers.0.input_layernorm.weight"]
    final_norm = named["backbone.model.model.norm.weight"]
    biases = [p for n, p in named.items() if n.endswith(".bias") and p.requires_grad]
    assert biases and all(decay[id(p)] == 0.0 for p in biases)
    assert decay[id(norm)] == decay[id(final_norm)] == 0.0
    assert decay[id(named["backbone.model.model.layers.0.self_attn.q_proj.weight"])] == 0.1
    assert "backbone.model.model.norm.weight" not in decay_parameter_names(model)


def test_lr_for_a_part_that_trains_nothing_and_missing_default_are_errors() -> None:
    model, stage = tiny(train={"backbone": "frozen"}, lr={"default": 1e-4, "embeddings": 1e-5})
    with pytest.raises(RecipeError, match=r"lr\.embeddings is set but that part trains no parameter"):
        optimizer_groups(model, stage)
    model, stage = tiny(lr={"projectors": 1e-4})
    with pytest.raises(RecipeError, match=r"parameter backbone\..* has no learning rate"):
        optimizer_groups(model, stage)


def test_make_optimizer_uses_the_stage_settings_and_steps_only_trained_parts() -> None:
    model, stage = tiny(train={"backbone": "frozen"}, lr={"default": 1e-3}, optimizer=ADAMW)
    optimizer = make_optimizer(model, stage)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert {g["betas"] for g in optimizer.param_groups} == {(0.9, 0.95)}
    assert {g["eps"] for g in optimizer.param_groups} == {1e-6}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    conversation = [
        {"role": "user", "type": "image", "content": Image.new("RGB", (32, 32), "red")},
        {"role": "user", "type": "text", "content": "What colour?"},
        {"role": "assistant", "type": "text", "content": "Red."},
    ]
    model(**zoo.ZooProcessor.from_model(model)(conversation)).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("projectors.image.") for n in changed)


def _rates(stage: dict, steps: int) -> list[float]:
    model, _ = tiny(lr=1.0)
    optimizer = make_optimizer(model, {**stage, "lr": {"default": 1.0}})
    scheduler = make_scheduler(optimizer, stage, steps)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_cosine_schedule_warms_up_then_decays() -> None:
    rates = _rates({"schedule": {"name": "cosine", "warmup_steps": 4}}, 20)
    assert rates[0] == 0.0 and rates[2] == pytest.approx(0.5) and rates[4] == pytest.approx(1.0)
    assert rates[4:] == sorted(rates[4:], reverse=True) and rates[-1] < 0.05


def test_warmup_ratio_rounds_up_as_trainer_does_and_constant_keeps_the_peak() -> None:
    assert warmup_steps({"schedule": {"name": "cosine", "warmup_ratio": 0.03}}, 100) == 3
    assert warmup_steps({"schedule": {"name": "cosine", "warmup_ratio": 0.03}}, 110) == 4
    rates = _rates({"schedule": {"name": "constant", "warmup_ratio": 0.25}}, 8)
    assert rates[:2] == [0.0, 0.5] and rates[2:] == [1.0] * 6
