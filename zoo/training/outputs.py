"""The files of a run's output folder besides checkpoints: the skip list, the model moved into place, and
clearing a run for --overwrite."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from zoo.training import checkpoints as ckpt

LEDGER = "skipped_samples.jsonl"
RUN_MARKERS = ("train_report.json", "zoo_checkpoint.json", "checkpoints")
MODEL_STAGING = ".model-staging"


def remove_run(folder: Path) -> None:
    """Delete a run's files from ``folder``: its markers last, so that while this runs another process
    sees either a run or an empty folder."""
    paths = sorted(folder.iterdir(), key=lambda p: p.name in RUN_MARKERS)
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def publish_model(staging: Path, folder: Path) -> None:
    """Move a saved model from ``staging`` into ``folder``: the old manifest goes first, the new one last,
    so a crash in between leaves a folder that loading refuses as incomplete."""
    from zoo.checkpoint import MANIFEST

    ckpt.fsync_tree(staging)
    (folder / MANIFEST).unlink(missing_ok=True)
    for path in sorted(staging.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            target = folder / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    ckpt.fsync_dir(folder)
    os.replace(staging / MANIFEST, folder / MANIFEST)
    ckpt.fsync_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)


def read_ledger(path: Path) -> list[dict]:
    """The entries of a skip list written by ``write_ledger`` (none when the file is missing)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_ledger(path: Path, entries: list[dict]) -> None:
    """A skip list as JSON Lines, replaced in one rename (a reader never sees half of it); a lone surrogate
    in an id is written as its JSON escape (``\\udce9``), which reads back the same."""
    staging = path.with_name(f".{path.name}.tmp")
    with staging.open("w", encoding="utf-8", errors="backslashreplace") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    os.replace(staging, path)
