"""Resumable checkpoints: training state without pickle, atomic folders, finding the latest complete one.

A checkpoint ``checkpoints/<stage>/checkpoint-<step>/`` holds the model as ``save_pretrained`` writes it
(the delta, config, tokenizer and the manifest ``zoo_checkpoint.json``, written last and listing every
file of the folder), plus the training state: ``optimizer.safetensors`` + ``optimizer.json``,
``scheduler.json``, ``scaler.json`` (fp16), ``rng_state[_<rank>].json`` + ``.safetensors``,
``trainer_state.json`` (Trainer's own JSON) and ``zoo_data_state.json`` with the skipped-sample list up
to that step. Tensors go into safetensors and everything else into JSON: resuming never unpickles.

A save is written into ``.partial-checkpoint-<step>/``, flushed to disk, and renamed into place only when
complete, so a save killed midway leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
PARTIAL_PREFIX = ".partial-"
DATA_STATE = "zoo_data_state.json"
LEDGER_SNAPSHOT = "skipped_samples.jsonl"


# --- folders ----------------------------------------------------------------------------------------------


def checkpoint_step(path: Path) -> int | None:
    match = CHECKPOINT.match(path.name)
    return int(match.group(1)) if match else None


def complete_checkpoints(stage_dir: Path) -> list[Path]:
    """The finished checkpoints of a stage, oldest first (a folder without its manifest is not one)."""
    from zoo.checkpoint import MANIFEST

    if not stage_dir.is_dir():
        return []
    found = [p for p in stage_dir.iterdir() if checkpoint_step(p) is not None and (p / MANIFEST).is_file()]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(stage_dir: Path) -> Path | None:
    found = complete_checkpoints(stage_dir)
    return found[-1] if found else None


def remove_partial_saves(stage_dir: Path) -> None:
    """Delete what interrupted saves left behind (never a finished checkpoint)."""
    if stage_dir.is_dir():
        for path in stage_dir.iterdir():
            if path.name.startswith(PARTIAL_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


def staging_dir(stage_dir: Path, step: int) -> Path:
    return stage_dir / f"{PARTIAL_PREFIX}checkpoint-{step}"


def fsync_tree(folder: Path) -> None:
    """Flush every file of ``folder`` and the folders themselves to disk."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for directory in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        fsync_dir(directory)


def fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def publish(staging: Path, final: Path) -> None:
    """Make a fully written staging folder the checkpoint ``final`` with one rename."""
    fsync_tree(staging)
    if final.exists():  # the same step saved again (a stop signal right at a save step)
        shutil.rmtree(final)
    os.replace(staging, final)
    fsync_dir(final.parent)


# --- state files ------------------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent}: {path.name} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from None


def _split_tensors(value: Any, prefix: str, tensors: dict) -> Any:
    """``value`` with every tensor replaced by ``{"__tensor__": key}`` (the tensor goes into ``tensors``)."""
    import torch

    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().cpu().contiguous()
        return {"__tensor__": prefix}
    if isinstance(value, dict):
        return {str(k): _split_tensors(v, f"{prefix}.{k}", tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_tensors(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {prefix} without pickle")


def _join_tensors(value: Any, tensors: dict) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        return {k: _join_tensors(v, tensors) for k, v in value.items()}
    if isinstance(value, list):
        return [_join_tensors(v, tensors) for v in value]
    return value


def save_state(folder: Path, name: str, state: Any) -> None:
    """A state dict as ``name.json`` (structure) and ``name.safetensors`` (its tensors, if any)."""
    from safetensors.torch import save_file

    tensors: dict = {}
    structure = _split_tensors(state, "", tensors)
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
    write_json(folder / f"{name}.json", structure)


def load_state(folder: Path, name: str) -> Any:
    """What ``save_state`` wrote (tensors on the CPU)."""
    from zoo.checkpoint import read_tensors

    structure = read_json(folder / f"{name}.json")
    tensors_file = folder / f"{name}.safetensors"
    tensors = read_tensors(tensors_file) if tensors_file.is_file() else {}
    return _join_tensors(structure, tensors)


def optimizer_state(state: dict) -> dict:
    """Integer keys of an optimizer's ``state`` restored after the JSON round trip."""
    return {**state, "state": {int(k): v for k, v in state.get("state", {}).items()}}


def rng_state() -> dict:
    """Python, NumPy, torch and (when present) CUDA random states, as tensors and JSON values."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.random.get_rng_state_all())
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.random.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.random.set_rng_state_all(state["cuda"])
