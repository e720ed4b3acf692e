"""Checkpoint bytes as pushed (the delta) versus the standalone export (``zoo push --merged``), per stage.

Full-size recipes are built on the meta device (no weights, no download) with their stages applied in
order, as a training run applies them; a checkpoint after stage k holds what ``delta_state_dict`` holds:
every parameter trained under stages 0..k (LoRA adapters included), the recipe tokens' embedding rows,
and every parameter of a component without a weight source; its bytes are those tensors' element counts ×
their dtype sizes. The standalone export holds every parameter once (LoRA merged into the base weights)
and the persistent buffers. The small recipes are also saved for real, and their files measured.

    .venv/bin/python bench/checkpoint_sizes.py [RECIPE ...]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

import zoo
from zoo.training_plan import apply_stage

FULL = ["s3-7b", "macaw-7b", "ying-vlm-13b", "llava-1.5-7b"]
SMALL = ["tiny", "s3-smol"]


def tensor_bytes(tensors: dict) -> tuple[int, int]:
    """(elements, bytes) of a name → tensor mapping."""
    return sum(t.numel() for t in tensors.values()), sum(
        t.numel() * t.element_size() for t in tensors.values()
    )


def delta_tensors(model: zoo.ZooModel) -> dict:
    """What ``delta_state_dict`` holds, as (meta) tensors: it moves tensors to the CPU, which meta cannot."""
    names = model.delta_parameter_names()
    parameters = dict(model.named_parameters())
    values = dict(model.state_dict())
    tensors = {name: parameters[name] for name in names}
    tensors.update(model._delta_buffers(names, values))
    tensors.update(model._token_rows(set(names)))
    return tensors


def merged_tensors(model: zoo.ZooModel) -> dict:
    """What the standalone export holds: every parameter once, LoRA folded in (so its tensors are not
    counted), and the persistent buffers."""
    state = model.state_dict()
    names = [*dict(model.named_parameters()), *(n for n, _ in model.named_buffers())]
    return {n: state[n] for n in names if n in state and "lora_" not in n}


def meta_rows(name: str) -> list[tuple]:
    recipe = zoo.load_recipe(name)
    model = zoo.build(name, device="meta", stage=0)
    rows = []
    for index, stage in enumerate(recipe.stages):
        if index:
            apply_stage(model, stage)
        elements, size = tensor_bytes(delta_tensors(model))
        merged_elements, merged_size = tensor_bytes(merged_tensors(model))
        applied = "+".join(s["name"] for s in recipe.stages[: index + 1])
        rows.append((name, applied, elements, size, merged_elements, merged_size))
    return rows


def saved_row(name: str) -> tuple:
    """A small recipe built for real (the tiny backbone made LoRA), saved, and exported standalone."""
    from zoo.hub.merged import export_merged

    overrides = {}
    if name == "tiny":
        overrides["stages"] = [
            {"name": "finetune", "train": {"backbone": "lora"}, "lora": {"r": 4, "alpha": 8}}
        ]
    torch.manual_seed(0)
    model = zoo.build(name, **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(Path(tmp, "delta"))
        export_merged(Path(tmp, "delta"), Path(tmp, "merged"))
        delta = Path(tmp, "delta", "model.safetensors").stat().st_size
        merged = Path(tmp, "merged", "model.safetensors").stat().st_size
    elements, _ = tensor_bytes(delta_tensors(model))
    merged_elements, _ = tensor_bytes(merged_tensors(model))
    applied = "+".join(s["name"] for s in model.config.applied_stages)
    return (f"{name} (saved files)", applied, elements, delta, merged_elements, merged)


def main(names: list[str]) -> None:
    rows = []
    for name in names:
        rows += [saved_row(name)] if name in SMALL else meta_rows(name)
    header = (
        "recipe",
        "stages applied",
        "delta params",
        "delta bytes",
        "merged params",
        "merged bytes",
        "delta/merged",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for recipe, applied, elements, size, merged_elements, merged_size in rows:
        cells = [recipe, applied, f"{elements:,}", _human(size), f"{merged_elements:,}", _human(merged_size)]
        print("| " + " | ".join(cells) + f" | {size / merged_size:.2%} |")


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1000
    return f"{size:.1f} GB"


if __name__ == "__main__":
    main(sys.argv[1:] or SMALL + FULL)
