"""What one training stage runs with: the batch split over processes, precision, and TrainingArguments.

A recipe stage gives the global batch (``batch.size``, or ``per_device × accumulation × devices``). At run
time the global batch stays what the recipe says and is split over the processes that exist:
``per_device × accumulation × world_size = size``. A stage that names ``per_device`` keeps it and gets the
accumulation that makes up the rest; otherwise the per-device batch is the largest divisor of
``size / world_size`` not above ``MAX_PER_DEVICE`` (the paper's ``devices`` count is informational). A
split that does not divide is an error naming the stage and what to set.

Precision: the stage's ``bf16``/``fp16`` on a GPU that has it (bf16 falls back to fp16 where the GPU lacks
bf16), fp32 on CPU (noted in the log); a stage without ``precision`` uses bf16 where the GPU has it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import TrainingError

log = logging.getLogger("zoo.training")

MAX_PER_DEVICE = 8  # per-device batch when the recipe gives only the global size
DEFAULT_GLOBAL_BATCH = 8  # a stage without `batch`


@dataclass(frozen=True)
class BatchPlan:
    """How a stage's global batch is made: ``per_device × accumulation × world_size == size``."""

    size: int
    per_device: int
    accumulation: int
    world_size: int

    def describe(self) -> str:
        process = "process" if self.world_size == 1 else "processes"
        return (
            f"global batch {self.size} = {self.per_device} per device × {self.accumulation} accumulation × "
            f"{self.world_size} {process}"
        )


def batch_plan(stage: dict, world_size: int) -> BatchPlan:
    """Split the stage's global batch over ``world_size`` processes (see the module docstring)."""
    batch = stage.get("batch") or {}
    size = int(batch.get("size") or DEFAULT_GLOBAL_BATCH)
    name = stage.get("name", "?")
    per_device, accumulation = batch.get("per_device"), batch.get("accumulation")
    hint = (
        f"set the global batch with --set stages.{name}.batch.size=N (a multiple of the processes), "
        f"or the per-device batch with --set stages.{name}.batch.per_device=N"
    )
    if size % world_size:
        raise TrainingError(
            f"stage {name!r}: the global batch {size} cannot be split over {world_size} processes "
            f"({size} is not a multiple of {world_size}); {hint}"
        )
    per_process = size // world_size
    if per_device is None and accumulation is not None and per_process % accumulation == 0:
        per_device = per_process // accumulation
    if per_device is None:
        per_device = max(d for d in range(1, min(per_process, MAX_PER_DEVICE) + 1) if per_process % d == 0)
    if per_process % per_device:
        raise TrainingError(
            f"stage {name!r}: the global batch {size} cannot be made of {per_device} per device × "
            f"{world_size} processes ({size} is not a multiple of {per_device * world_size}); {hint}"
        )
    plan = BatchPlan(size, per_device, per_process // per_device, world_size)
    devices = batch.get("devices")
    if devices and devices != world_size:
        log.info(
            "stage %s: the recipe was written for %d devices; on %d the global batch stays %d (%s)",
            name,
            devices,
            world_size,
            size,
            plan.describe(),
        )
    return plan


def precision_flags(stage: dict, device_type: str, bf16_supported: bool) -> tuple[dict[str, bool], str]:
    """``{"bf16": .., "fp16": ..}`` for TrainingArguments and the precision name actually used.

    ``bf16_supported`` says whether the device computes bf16 natively (a GPU with bf16, or a CPU whose
    oneDNN has a bf16 path, e.g. AVX512-BF16 or AMX). On a GPU a stage without ``precision`` uses bf16
    where it can; on a CPU only a stage that asks for bf16 gets it (autocast, fp32 master weights).
    """
    wanted = stage.get("precision")
    name = stage.get("name", "?")
    if device_type != "cuda":
        if wanted == "bf16" and bf16_supported:
            return {"bf16": True, "fp16": False}, "bf16"
        if wanted in ("bf16", "fp16"):
            log.info(
                "stage %s asks for %s; this %s has no native %s, so training runs in fp32",
                name,
                wanted,
                device_type.upper(),
                wanted,
            )
        return {"bf16": False, "fp16": False}, "fp32"
    if wanted in (None, "bf16") and bf16_supported:
        return {"bf16": True, "fp16": False}, "bf16"
    if wanted == "bf16":
        log.info("stage %s asks for bf16, which this GPU lacks: training in fp16", name)
    if wanted in ("bf16", "fp16"):
        return {"bf16": False, "fp16": True}, "fp16"
    return {"bf16": False, "fp16": False}, "fp32"


def bf16_supported(device_type: str) -> bool:
    """Whether the device computes bf16 natively (CUDA bf16, or oneDNN's bf16 path on this CPU)."""
    import torch

    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def steps_for(stage: dict, positions_per_epoch: int, plan: BatchPlan, max_steps: int | None) -> int:
    """Optimizer steps of a stage: ``max_steps`` when given, else ceil(epochs × samples / global batch)."""
    if max_steps is not None:
        return max_steps
    epochs = float(stage.get("epochs") or 1)
    return max(1, math.ceil(epochs * positions_per_epoch / plan.size))


@dataclass
class RunOptions:
    """What ``zoo.train`` was asked for, besides the recipe and the data."""

    output_dir: Path
    stage: str | int | None = None
    max_steps: int | None = None
    epochs: float | None = None
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    save_steps: int = 500
    keep_checkpoints: int | None = 2
    num_workers: int = 2
    max_failure_rate: float = 0.05
    gradient_checkpointing: bool = False
    cache_features: bool = False
    eval_data: Any = None
    eval_metrics: tuple[str, ...] = ("exact_match",)
    fsdp: str | None = None
    fsdp_config: Any = None
    deepspeed: Any = None
    progress: bool = True
    training_args: dict = field(default_factory=dict)


def training_arguments(
    options: RunOptions, stage: dict, plan: BatchPlan, max_steps: int, checkpoint_dir: Path
) -> Any:
    """``transformers.TrainingArguments`` for one stage: our batch split, steps, precision, saving.

    The optimizer and schedule are not set here: ``ZooTrainer`` takes them from the stage.
    """
    import torch
    from transformers import TrainingArguments

    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    flags, _ = precision_flags(stage, device_type, bf16_supported(device_type))
    arguments: dict[str, Any] = {
        "output_dir": str(checkpoint_dir),
        "per_device_train_batch_size": plan.per_device,
        "gradient_accumulation_steps": plan.accumulation,
        "max_steps": max_steps,
        "learning_rate": _first_rate(stage),
        "save_strategy": "steps",
        "save_steps": options.save_steps,
        "save_total_limit": options.keep_checkpoints,
        "logging_steps": 1,
        "logging_nan_inf_filter": False,  # a NaN loss must show, so the run can stop on it
        "report_to": "none",  # TensorBoard is added by zoo.training.callbacks with its own log folder
        "disable_tqdm": True,  # zoo's own progress bar replaces Trainer's
        "ignore_data_skip": True,  # the loader starts at the saved data position itself
        "remove_unused_columns": False,
        "ddp_find_unused_parameters": True,  # a batch may hold no audio: its projector gets no gradient
        "seed": options.seed,
        "use_cpu": device_type == "cpu",
        "fsdp": options.fsdp or "",
        "fsdp_config": options.fsdp_config,
        "deepspeed": options.deepspeed,
        **flags,
    }
    arguments.update(options.training_args)
    return TrainingArguments(**arguments)


def _first_rate(stage: dict) -> float:
    rates = stage.get("lr")
    if isinstance(rates, dict):
        return float(rates.get("default", next(iter(rates.values()), 1e-4)))
    return float(rates) if rates is not None else 1e-4
