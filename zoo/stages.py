"""The training-stage vocabulary, shared by the recipe parser and the training plan (imports nothing heavy).

A stage says, per part of the model, whether it is ``frozen``, trained in ``full`` or adapted with ``lora``.
Parts are the whole groups (``encoders``, ``projectors``, ``backbone``, ``embeddings``, ``lm_head``) and the
specific ones: one modality (``encoders.image``) or ``backbone.<leaf>`` (every backbone module with that
name). General parts are applied first; a more specific part overrides them (``part_level``).
"""

from __future__ import annotations

TRAIN_MODES = ("frozen", "full", "lora")
GENERAL_PARTS = ("encoders", "projectors", "backbone", "embeddings", "lm_head")
PRECISIONS = ("bf16", "fp16", "fp32")
SCHEDULES = ("cosine", "linear", "constant")
OPTIMIZERS = ("adamw",)
# What a stage does to a part it does not mention.
DEFAULT_PLAN = {"encoders": "frozen", "projectors": "full", "backbone": "full"}
OPTIMIZER_DEFAULTS = {"name": "adamw", "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8}
LORA_DEFAULTS = {"r": 8, "alpha": 16, "dropout": 0.0}


def part_level(part: str) -> int:
    """0 for the whole-group parts (encoders, projectors, backbone); 1 for the specific ones."""
    return 0 if part in DEFAULT_PLAN else 1


def stage_plan(stage: dict) -> dict[str, str]:
    """Part → mode, defaults filled in, general parts first (the order they are applied in)."""
    plan = {**DEFAULT_PLAN, **(stage.get("train") or {})}
    return dict(sorted(plan.items(), key=lambda item: part_level(item[0])))


def lora_options(stage: dict) -> dict:
    """The stage's LoRA options with defaults filled in (``targets`` stays absent when not given)."""
    return {**LORA_DEFAULTS, **(stage.get("lora") or {})}
