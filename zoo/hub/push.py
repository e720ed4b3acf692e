"""Pushing a zoo checkpoint to the Hub through huggingface_hub's own API, as one commit.

``push(folder_or_model, repo_id, ...)`` stages what goes to the repo in a temporary folder, then creates
the repo (``create_repo``), the branch (``create_branch``) and one commit (``create_commit``) holding every
file, so a reader never sees half a checkpoint. Staged:

- the checkpoint itself: ``config.json`` (every weight source pinned, see ``provenance.pin_config``), the
  safetensors weights (the delta; ``merged=True``: every weight, LoRA merged), tokenizer, generation config,
  the processor (``processor_config.json``) and the manifest, rewritten for the staged files;
- a training run's summaries when the folder has them: ``train_report.json``, ``results.json``,
  ``loss_<stage>.png``;
- ``README.md``: the model card (``card.build_card``).

Never staged: ``checkpoints/`` (resumable training state), pickles, ``skipped_samples.jsonl`` and
``predictions.jsonl`` (they may quote the data), anything else. The token is read by huggingface_hub the way
it always is (``HF_TOKEN``, ``hf auth login``) unless one is passed; it is never written anywhere.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError, HubError
from zoo.hub.card import build_card
from zoo.hub.provenance import pin_config
from zoo.hub.pull import first_line

log = logging.getLogger("zoo.hub")
CONFIG = "config.json"
PROCESSOR_CONFIG = "processor_config.json"
SUMMARIES = ("train_report.json", "results.json")
SUMMARY_PATTERNS = ("loss_*.png",)


def push(
    folder_or_model: str | Path | Any,
    repo_id: str,
    revision: str | None = None,
    private: bool = False,
    merged: bool = False,
    *,
    commit_message: str | None = None,
    license: str | None = None,
    token: str | bool | None = None,
) -> Any:
    """Push a checkpoint folder (or a ``ZooModel``) to ``repo_id``; returns huggingface_hub's ``CommitInfo``.

    ``revision`` is a branch (created from ``main`` when missing); ``private`` applies when the repo is
    created; ``merged`` pushes a standalone export (LoRA merged, every weight included) instead of the
    delta; ``license`` overrides the license derived from the components'.
    """
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        staging = Path(tmp)
        source = stage_checkpoint(folder_or_model, staging, merged=merged)
        card = build_card(staging, repo_id, revision=revision, license=license)
        card.save(staging / "README.md")
        message = commit_message or f"Upload {'standalone export of ' if merged else ''}{source} with zoo"
        return upload_folder_as_commit(staging, repo_id, revision, private, message, token)


def stage_checkpoint(folder_or_model: str | Path | Any, staging: Path, merged: bool = False) -> str:
    """Write into ``staging`` exactly what gets pushed (see the module docstring); returns a label of the input."""
    if not isinstance(folder_or_model, (str, Path)):
        model = folder_or_model
        with tempfile.TemporaryDirectory(prefix="zoo-save-") as saved:
            model.save_pretrained(saved)
            stage_checkpoint(saved, staging, merged=merged)
        return f"a {getattr(model.config, 'recipe', None) or 'zoo'} model"
    from zoo.checkpoint import read_manifest

    folder = Path(folder_or_model)
    try:
        manifest = read_manifest(folder)
    except CheckpointError as error:
        raise HubError(f"cannot push {folder}: {error}") from None
    if merged:
        from zoo.hub.merged import export_merged

        export_merged(folder, staging)
    else:
        _copy_files(folder, staging, list(manifest["files"]))
    if not (staging / PROCESSOR_CONFIG).is_file():
        log.warning("%s has no %s: AutoProcessor will not load the pushed repo", folder, PROCESSOR_CONFIG)
    _pin_staged_config(staging, "full" if merged else manifest["weights"])
    _copy_summaries(folder, staging)
    return folder.resolve().name


def _copy_files(folder: Path, staging: Path, names: list[str]) -> None:
    for name in names:
        target = staging / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / name, target)


def _copy_summaries(folder: Path, staging: Path) -> None:
    names = [name for name in SUMMARIES if (folder / name).is_file()]
    names += [p.name for pattern in SUMMARY_PATTERNS for p in sorted(folder.glob(pattern))]
    _copy_files(folder, staging, names)


def _pin_staged_config(staging: Path, weights: str) -> None:
    """Pin every weight source in the staged config and rewrite the manifest for the staged files."""
    from zoo.checkpoint import write_manifest

    path = staging / CONFIG
    config = json.loads(path.read_text(encoding="utf-8"))
    pinned = pin_config(config)
    if pinned != config:
        path.write_text(json.dumps(pinned, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_manifest(staging, weights)


def upload_folder_as_commit(
    staging: Path, repo_id: str, revision: str | None, private: bool, message: str, token: str | bool | None
) -> Any:
    """``create_repo`` / ``create_branch`` / one ``create_commit`` adding every staged file; weights files
    the repo holds that the new checkpoint has not are deleted in the same commit (they would mix)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(token=token)
    branch = revision or "main"
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        remote = [
            f.path
            for f in api.list_repo_tree(repo_id, revision=branch, recursive=True)
            if isinstance(f, RepoFile)
        ]
        stale = [p for p in remote if p.endswith(".safetensors") and p not in files]
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(staging / name)) for name in files
        ]
        operations += [CommitOperationDelete(path_in_repo=name) for name in stale]
        commit = api.create_commit(repo_id, operations, commit_message=message, revision=branch)
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", None)
        hint = (
            "; pushing needs a token with write access to the repo (`hf auth login`, or set HF_TOKEN)"
            if status in (401, 403)
            else ""
        )
        raise HubError(f"push to {repo_id}@{branch} failed: {first_line(error)}{hint}") from None
    except ValueError as error:  # e.g. invalid card metadata, reported by the Hub's YAML validation
        raise HubError(f"push to {repo_id}@{branch} failed: {error}") from None
    log.info("pushed %d files to %s@%s: commit %s", len(files), repo_id, branch, commit.oid)
    return commit
