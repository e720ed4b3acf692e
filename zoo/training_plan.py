"""A recipe stage's training plan: which parts are frozen, LoRA-adapted or fully trained, and at what rate.

Parts are ``encoders``, ``projectors``, ``backbone``, one modality (``encoders.image``), ``embeddings`` and
``lm_head`` of the backbone, and ``backbone.<leaf>``: every module of the backbone whose own name is
``<leaf>`` (``backbone.q_proj`` = all query projections). General parts are applied before specific ones,
so ``{backbone: frozen, backbone.q_proj: full}`` trains only the query projections, and the most specific
part also decides a parameter's learning rate. ``optimizer_groups`` / ``make_optimizer`` /
``make_scheduler`` turn a stage into torch param groups, AdamW and a transformers schedule; weight decay
skips biases and norm weights as transformers' ``Trainer`` does. Every decision is logged.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import torch
from torch import nn

from zoo.errors import RecipeError
from zoo.stages import OPTIMIZER_DEFAULTS, lora_options, part_level, stage_plan

log = logging.getLogger("zoo.training")
# transformers.Trainer.get_decay_parameter_names: no weight decay on these (matched on lower-cased names)
NO_DECAY_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def _leaf_modules(model: Any, leaf: str) -> list[nn.Module]:
    return [m for name, m in model.backbone.model.named_modules() if name.rsplit(".", 1)[-1] == leaf]


def part_modules(model: Any, part: str) -> list[nn.Module]:
    """The modules a part names in ``model``; an unknown part or unmatched leaf name is a RecipeError."""
    backbone = model.backbone.model
    if part == "embeddings":
        return [backbone.get_input_embeddings()]
    if part == "lm_head":
        return [backbone.get_output_embeddings()]
    if part == "backbone":
        return [model.backbone]
    group, _, rest = part.partition(".")
    if group == "backbone" and rest:
        modules = _leaf_modules(model, rest)
        if modules:
            return modules
        raise RecipeError(
            f"stage part {part!r}: the backbone has no module named {rest!r}; "
            f"its linear layers are {', '.join(model.backbone.lora_targets)}"
        )
    if group in {"encoders", "projectors"}:
        modules = getattr(model, group)
        if not rest:
            return list(modules.values())
        if rest in modules:
            return [modules[rest]]
    raise RecipeError(
        f"stage part {part!r} is not a part of this model; use encoders, projectors, backbone, embeddings, "
        "lm_head, backbone.<module name> or one modality such as "
        f"encoders.{next(iter(model.encoders), 'image')}"
    )


def _lora_target_matches(model: Any, target: str) -> bool:
    names = [name for name, _ in model.backbone.model.named_modules()]
    return any(name == target or name.endswith(f".{target}") for name in names)  # peft's suffix rule


def stage_problems(model: Any, stage: dict) -> list[tuple[tuple, str]]:
    """(field path inside the stage, message) for each part or LoRA target that ``model`` lacks."""
    problems = []
    for key in ("train", "lr"):
        for part in stage.get(key) or {}:
            if part == "default":
                continue
            try:
                part_modules(model, part)
            except RecipeError as error:
                problems.append(((key, part), str(error)))
    for index, target in enumerate((stage.get("lora") or {}).get("targets") or []):
        if not _lora_target_matches(model, target):
            message = (
                f"LoRA target {target!r} would match no module of the backbone; "
                f"its linear layers are {', '.join(model.backbone.lora_targets)}"
            )
            problems.append((("lora", "targets", index), message))
    return problems


def _inject_lora(model: Any, options: dict) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    backbone = model.backbone
    targets = options.get("targets") or backbone.lora_targets
    config = LoraConfig(
        r=int(options["r"]),
        lora_alpha=options["alpha"],
        lora_dropout=float(options["dropout"]),
        target_modules=list(targets),
    )
    try:
        inject_adapter_in_model(config, backbone.model)
    except ValueError as error:
        raise RecipeError(
            f"LoRA targets {list(targets)} match no module of the backbone "
            f"(its linear layers are {backbone.lora_targets}): {error}"
        ) from None


def merge_lora(model: Any) -> None:
    """Fold every LoRA adapter into its base layer (peft's ``merge``) and put the base layer back in place."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    backbone = model.backbone.model
    for name, module in list(backbone.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(
                backbone.get_submodule(parent_name) if parent_name else backbone,
                child,
                module.get_base_layer(),
            )
    if hasattr(backbone, "peft_config"):
        del backbone.peft_config


def active_adapter(stages: list[dict]) -> dict | None:
    """The LoRA options of the adapter the backbone carries after ``stages`` (None when it carries none).

    A ``backbone: lora`` stage injects an adapter, or continues the one there; a stage that trains the
    backbone in full merges it into the base weights first; any other stage keeps it, frozen.
    """
    active = None
    for stage in stages:
        mode = stage_plan(stage)["backbone"]
        if mode == "lora":
            active = active or lora_options(stage)
        elif mode == "full":
            active = None
    return active


def _prepare_backbone(model: Any, stage: dict, plan: dict[str, str]) -> None:
    """Inject, continue or merge the LoRA adapter as ``stage`` needs (never injected twice)."""
    if "lora" in plan.values() and plan.get("backbone") != "lora":
        raise RecipeError("LoRA applies to the backbone only: set `train.backbone: lora`")
    active = active_adapter(applied_stages(model))
    if plan["backbone"] == "lora":
        options = lora_options(stage)
        if active is None:
            _inject_lora(model, options)
        elif active != options:
            raise RecipeError(
                f"stage {stage.get('name', '?')!r}: the backbone already carries a LoRA adapter with options "
                f"{active} from an earlier stage; a later LoRA stage continues that adapter, so give it the same "
                f"`lora` options (got {options})"
            )
    elif active is not None and plan["backbone"] == "full":
        log.info(
            "stage %s: merging the earlier stage's LoRA adapter into the backbone", stage.get("name", "?")
        )
        merge_lora(model)


def applied_stages(model: Any) -> list[dict]:
    """The stages applied to ``model`` so far, in order (recorded in its config)."""
    return list(getattr(getattr(model, "config", None), "applied_stages", None) or [])


def _set_mode(module: nn.Module, mode: str) -> None:
    for name, parameter in module.named_parameters():
        is_lora = "lora_" in name
        parameter.requires_grad_(mode == "full" or (mode == "lora" and is_lora))


def _trainable(modules: list[nn.Module]) -> dict[int, nn.Parameter]:
    return {id(p): p for m in modules for p in m.parameters() if p.requires_grad}


def trainable_counts(model: Any, stage: dict) -> dict[str, int]:
    """Trainable parameters per part of ``stage``'s plan, each counted once under the most specific part
    that holds it (``backbone: lora`` + ``embeddings: full`` count the adapters and the embedding table
    apart), so the counts add up to the model's trainable total."""
    owner: dict[int, tuple[str, int]] = {}
    for part in stage_plan(stage):  # general parts first: a more specific part takes its parameters over
        for key, parameter in _trainable(part_modules(model, part)).items():
            owner[key] = (part, parameter.numel())
    counts = dict.fromkeys(stage_plan(stage), 0)
    for part, size in owner.values():
        counts[part] += size
    return counts


def apply_stage(model: Any, stage: dict) -> dict[str, int]:
    """Freeze / unfreeze / LoRA-adapt the model's parts for ``stage``; returns trainable counts per part.

    The model may carry earlier stages: LoRA is injected once (see ``active_adapter``). The stage is
    recorded in ``model.config.applied_stages``, and every parameter it trains joins the model's
    ``trained_parameter_names`` (what a checkpoint must hold). Each trainable parameter is counted once,
    under the most specific part of the plan that holds it.
    """
    plan = stage_plan(stage)
    _prepare_backbone(model, stage, plan)
    for part, mode in plan.items():
        for module in part_modules(model, part):
            _set_mode(module, mode)
    counts = trainable_counts(model, stage)
    for part, mode in plan.items():
        log.info(
            "stage %s: %s -> %s (%s trainable parameters)",
            stage.get("name", "?"),
            part,
            mode,
            f"{counts[part]:,}",
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise RecipeError(f"stage {stage.get('name', '?')!r} trains nothing: every part is frozen")
    _record(model, stage)
    return counts


def _record(model: Any, stage: dict) -> None:
    config = getattr(model, "config", None)
    if config is not None:
        config.applied_stages = [*applied_stages(model), copy.deepcopy(stage)]
    trained = getattr(model, "trained_parameter_names", None)
    if isinstance(trained, set):
        trained.update(name for name, p in model.named_parameters() if p.requires_grad)


# --- optimisation ----------------------------------------------------------------------------------------


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters that get weight decay (all but biases and norm weights), as Trainer does."""
    from transformers.trainer_pt_utils import get_parameter_names

    return set(get_parameter_names(model, [nn.LayerNorm], NO_DECAY_PATTERNS))


def learning_rates(stage: dict) -> dict[str, float]:
    """The stage's ``lr`` as part → rate (a bare number is the ``default`` rate)."""
    rates = stage.get("lr") or {}
    return dict(rates) if isinstance(rates, dict) else {"default": float(rates)}


def learning_rate_owners(model: Any, stage: dict) -> dict[int, str]:
    """Parameter id → the most specific part of ``stage.lr`` that holds it (absent: the default rate)."""
    rates = learning_rates(stage)
    owners: dict[int, str] = {}
    for part in sorted((p for p in rates if p != "default"), key=part_level):
        found = _trainable(part_modules(model, part))
        if not found:
            raise RecipeError(
                f"stage {stage.get('name', '?')!r}: lr.{part} is set but that part trains no parameter"
            )
        owners.update(dict.fromkeys(found, part))
    return owners


def optimizer_groups(model: Any, stage: dict) -> list[dict]:
    """Torch param groups for ``stage``: one per (lr part, decay or not); each trainable parameter once.

    Each group carries ``lr``, ``weight_decay`` and, for reading, ``part`` (the lr part, or ``default``).
    """
    rates = learning_rates(stage)
    weight_decay = {**OPTIMIZER_DEFAULTS, **(stage.get("optimizer") or {})}["weight_decay"]
    owners = learning_rate_owners(model, stage)
    decay = decay_parameter_names(model)
    grouped: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        part = owners.get(id(parameter), "default")
        if part not in rates:
            raise RecipeError(
                f"stage {stage.get('name', '?')!r}: parameter {name} is trained but has no learning rate; "
                "set `lr: NUMBER` or `lr: {default: NUMBER, ...}`"
            )
        grouped.setdefault((part, name in decay), []).append(parameter)
    return [
        {"params": params, "lr": rates[part], "weight_decay": weight_decay if decays else 0.0, "part": part}
        for (part, decays), params in grouped.items()
    ]


def make_optimizer(model: Any, stage: dict) -> torch.optim.Optimizer:
    """``torch.optim.AdamW`` over ``optimizer_groups`` with the stage's betas, eps and weight decay."""
    options = {**OPTIMIZER_DEFAULTS, **(stage.get("optimizer") or {})}
    if options["name"] != "adamw":
        raise RecipeError(f"stage {stage.get('name', '?')!r}: optimizer {options['name']!r} is not supported")
    groups = optimizer_groups(model, stage)
    return torch.optim.AdamW(groups, betas=tuple(options["betas"]), eps=options["eps"])


def warmup_steps(stage: dict, num_training_steps: int) -> int:
    """The stage's ``warmup_steps``, or ceil(``warmup_ratio`` × steps) as transformers' Trainer."""
    schedule = stage.get("schedule") or {}
    if "warmup_ratio" in schedule:
        return math.ceil(schedule["warmup_ratio"] * num_training_steps)
    return int(schedule.get("warmup_steps", 0))


def make_scheduler(optimizer: torch.optim.Optimizer, stage: dict, num_training_steps: int) -> Any:
    """The stage's learning-rate schedule from ``transformers.get_scheduler`` (cosine, linear, constant)."""
    from transformers import get_scheduler

    name = (stage.get("schedule") or {}).get("name", "linear")
    warmup = warmup_steps(stage, num_training_steps)
    if name == "constant" and warmup:
        name = "constant_with_warmup"
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=num_training_steps)
