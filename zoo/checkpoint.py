"""The files of a saved zoo model: a manifest written last, and strict reading of its safetensors weights.

A folder written by ``ZooModel.save_pretrained`` holds ``config.json``, the weights as ``model.safetensors``
(only what the weight sources cannot give back: see ``ZooModel.delta_state_dict``), the tokenizer and,
written last, ``zoo_checkpoint.json``: the format version, whether the weights are a ``delta`` or ``full``,
and the size and sha256 of every file. A save that was interrupted leaves no manifest; a file changed or cut
short after the save no longer matches it. Either way loading stops with an error naming the folder and the
file, so a half-written or corrupted checkpoint never turns into a model with silently random parts.

Weights are read with safetensors only: pickle files (``pytorch_model.bin``, ``*.pt``) are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError
from zoo.weights import PICKLE_SUFFIXES, is_pickle_file

MANIFEST = "zoo_checkpoint.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1
WEIGHT_KINDS = ("delta", "full")


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def begin_save(folder: Path) -> None:
    """Remove an old manifest first, so a save interrupted from here on never looks complete."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)


def write_manifest(folder: Path, weights: str, extra: dict[str, Any] | None = None) -> Path:
    """Record every file of ``folder`` (size and sha256), then write the manifest atomically.

    ``weights`` is ``delta`` (base parts come from their weight sources) or ``full`` (every tensor saved).
    """
    if weights not in WEIGHT_KINDS:
        raise ValueError(f"weights must be one of {WEIGHT_KINDS}, got {weights!r}")
    files = {
        str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(_files(folder))
    }
    manifest = {"format": "zoo", "format_version": FORMAT_VERSION, "weights": weights, "files": files}
    manifest.update(extra or {})
    target = folder / MANIFEST
    staging = folder / f".{MANIFEST}.tmp"
    with staging.open("w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, target)
    return target


def _files(folder: Path) -> Iterable[Path]:
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and path.name != MANIFEST and not relative.parts[0].startswith("."):
            yield path


def read_manifest(folder: Path, verify: bool = True) -> dict[str, Any]:
    """The manifest of a saved model folder, after checking that every file it lists is intact.

    Raises ``CheckpointError`` naming the folder (and the file) when the folder holds no zoo model, was left
    incomplete by an interrupted save, or has a file whose size or sha256 differs from the manifest.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise CheckpointError(_missing_manifest_message(folder))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: the checkpoint manifest cannot be read ({error})") from None
    _check_manifest_fields(path, manifest)
    if verify:
        for name, expected in manifest["files"].items():
            _verify_file(folder, name, expected)
    return manifest


def _missing_manifest_message(folder: Path) -> str:
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and is_pickle_file(p))
    if pickles and not (folder / WEIGHTS).exists():
        return (
            f"{folder}: the weights are pickle files ({', '.join(pickles)}), which zoo never loads because "
            "unpickling can run arbitrary code; convert them to safetensors"
        )
    if (folder / "config.json").is_file():
        return (
            f"{folder}: no {MANIFEST}: the save that wrote this folder did not finish (it is written last), "
            "or the folder was not written by zoo's save_pretrained; save the model again"
        )
    return f"{folder}: not a saved zoo model (no config.json and no {MANIFEST})"


def _check_manifest_fields(path: Path, manifest: Any) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != "zoo":
        raise CheckpointError(f"{path}: not a zoo checkpoint manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is newer than this zoo reads ({FORMAT_VERSION}); "
            "upgrade zoo"
        )
    if manifest.get("weights") not in WEIGHT_KINDS or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{path}: the manifest lacks `weights` ({'/'.join(WEIGHT_KINDS)}) or `files`")


def _verify_file(folder: Path, name: str, expected: dict) -> None:
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"{folder}: {name} is listed in {MANIFEST} but missing")
    size = path.stat().st_size
    if size != expected.get("size"):
        raise CheckpointError(
            f"{folder}: {name} has {size} bytes but {expected.get('size')} were saved (truncated or replaced)"
        )
    if file_sha256(path) != expected.get("sha256"):
        raise CheckpointError(
            f"{folder}: {name} does not match the sha256 recorded when it was saved (corrupted)"
        )


def read_tensors(path: Path) -> dict[str, Any]:
    """Every tensor of a safetensors file, copied into fresh memory (no memory-mapped aliasing).

    Raises ``CheckpointError`` naming the file when it cannot be parsed or a tensor holds NaN or infinity.
    """
    import torch
    from safetensors import SafetensorError, safe_open

    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: pickle weights are never loaded; convert them to safetensors")
    tensors = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                tensors[key] = handle.get_tensor(key).clone()
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    for key, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: tensor {key} holds NaN or infinite values")
    return tensors
