"""Pulling a zoo checkpoint from the Hub: small files first, checks, then the weights, each file verified.

``fetch(repo_id, revision)`` returns a local snapshot folder that the local loading path reads:

1. ``config.json`` and the checkpoint manifest are downloaded alone (``snapshot_download`` also caches the
   repo's file listing for that commit, which is how later offline runs still know what the repo reports);
2. the repo must be a zoo checkpoint with safetensors weights (a repo that offers only pickles is refused),
   and every component's plugin must be installed in a compatible version, every package-held weight file
   the one it was made with — before any weight is downloaded;
3. the checkpoint's own files are downloaded (never code, never pickles), and each file's size and hash
   are compared with the repo's listing: a truncated or corrupted file is refused.

Every failure is a ``HubError`` naming the repo, the revision, the file and the cause. With
``HF_HUB_OFFLINE=1`` everything comes from the Hugging Face cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from zoo.errors import HubError
from zoo.hub.provenance import check_components

log = logging.getLogger("zoo.hub")
CONFIG = "config.json"
MANIFEST = "zoo_checkpoint.json"
# Files of the processor, fetched even when a manifest does not list them.
EXTRA_FILES = ["processor_config.json", "chat_template.jinja"]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def fetch(
    repo_id: str,
    revision: str | None = None,
    *,
    token: str | bool | None = None,
    force_download: bool = False,
) -> Path:
    """Download a zoo checkpoint's files from ``repo_id`` (checked and verified); returns the snapshot folder."""
    where = f"{repo_id}@{revision or 'main'}"
    head = _snapshot(repo_id, revision, [CONFIG, MANIFEST], token, force_download, where)
    commit = head.name
    where = f"{repo_id}@{revision or 'main'} (commit {commit[:12]})"
    listing = _listing(repo_id, commit, head)
    _check_is_zoo_checkpoint(listing, head, where)
    config = json.loads((head / CONFIG).read_text(encoding="utf-8"))
    check_components(config, f"{where} {CONFIG}")
    wanted = sorted(set(_manifest_files(head, where)) | {CONFIG, MANIFEST} | set(EXTRA_FILES))
    wanted = [name for name in wanted if listing is None or name in listing]
    folder = _snapshot(repo_id, commit, wanted, token, force_download, where)
    if listing is not None:
        for name in wanted:
            verify_file(folder / name, listing[name], where)
    return folder


def is_repo_id(text: str | Path) -> bool:
    """Whether ``text`` names a Hub repo (``org/name``) rather than a local path."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(text)
    if Path(text).expanduser().exists() or text.startswith(("/", "./", "../", "~")) or text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _snapshot(
    repo_id: str, revision: str | None, files: list[str], token: Any, force_download: bool, where: str
) -> Path:
    """``snapshot_download`` of exactly ``files``, its errors turned into ``HubError`` naming ``where``."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub import errors as hub_errors

    try:
        path = snapshot_download(
            repo_id, revision=revision, allow_patterns=files, token=token, force_download=force_download
        )
    except hub_errors.RevisionNotFoundError:
        raise HubError(
            f"{where}: the repo has no revision {revision!r} (no such branch, tag or commit)"
        ) from None
    except hub_errors.RepositoryNotFoundError:
        raise HubError(
            f"{where}: no such repo on {constants.ENDPOINT}, or it is private and no token with access was "
            "found (log in with `hf auth login` or set HF_TOKEN)"
        ) from None
    except (hub_errors.LocalEntryNotFoundError, hub_errors.IncompleteSnapshotError) as error:
        why = (
            "HF_HUB_OFFLINE is set"
            if constants.HF_HUB_OFFLINE
            else f"the Hub at {constants.ENDPOINT} cannot be reached"
        )
        raise HubError(
            f"{where}: not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: "
            f"{first_line(error)}"
        ) from None
    except hub_errors.HfHubHTTPError as error:
        raise HubError(f"{where}: the Hub request failed: {first_line(error)}") from None
    except OSError as error:  # e.g. "Consistency check failed: file should be of size …" on a broken transfer
        raise HubError(f"{where}: a download failed and nothing was loaded: {first_line(error)}") from None
    return Path(path)


def _listing(repo_id: str, commit: str, folder: Path) -> dict[str, Any] | None:
    """The repo's files at ``commit`` as the Hub reported them (cached on disk by ``snapshot_download``)."""
    from huggingface_hub import get_cached_repo_tree
    from huggingface_hub.errors import CachedRepoTreeNotFoundError

    try:
        return {entry.path: entry for entry in get_cached_repo_tree(repo_id, revision=commit)}
    except CachedRepoTreeNotFoundError:
        log.info(
            "no cached file listing for %s at %s: files are checked against the manifest only",
            repo_id,
            commit,
        )
        return None


def _check_is_zoo_checkpoint(listing: dict | None, folder: Path, where: str) -> None:
    names = set(listing) if listing is not None else {p.name for p in folder.iterdir()}
    weights = sorted(n for n in names if n.endswith(".safetensors"))
    pickles = sorted(n for n in names if n.endswith(PICKLE_SUFFIXES))
    if pickles and not weights:
        raise HubError(
            f"{where}: the repo offers only pickle weights ({', '.join(pickles)}); zoo loads safetensors only and "
            "never unpickles a file"
        )
    if CONFIG not in names:
        raise HubError(f"{where}: not a zoo checkpoint: the repo has no {CONFIG}")
    try:
        config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HubError(f"{where}: {CONFIG} is not valid JSON ({error})") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type != "zoo":
        raise HubError(
            f"{where}: not a zoo checkpoint: {CONFIG} has model_type {model_type!r} (a zoo checkpoint has 'zoo'); "
            "load other models with transformers"
        )
    if MANIFEST not in names:
        raise HubError(f"{where}: not a complete zoo checkpoint: the repo has {CONFIG} but no {MANIFEST}")


def _manifest_files(folder: Path, where: str) -> list[str]:
    from zoo.checkpoint import read_manifest
    from zoo.errors import CheckpointError

    try:
        names = list(read_manifest(folder, verify=False)["files"])
    except CheckpointError as error:
        raise HubError(f"{where}: {error}") from None
    for name in names:
        if name.startswith("/") or ".." in name.split("/"):
            raise HubError(f"{where}: {MANIFEST} lists {name!r}, which is not a file inside the repo")
    return names


def verify_file(path: Path, entry: Any, where: str) -> None:
    """Refuse a downloaded file whose size or content differs from the repo's listing entry (``RepoFile``).

    The listing gives a git object id for every file: the blob's own for a regular file, the LFS pointer's
    (which embeds the content's sha256 and size) for a large one; when it also gives the LFS sha256, that
    is compared directly. Either way the whole content is checked in one read.
    """
    size = path.stat().st_size
    advice = f"it was not loaded; the cached copy is {path.resolve()} (load again with force_download=True)"
    if entry.size is not None and size != entry.size:
        raise HubError(
            f"{where}: {entry.path} has {size} bytes but the repo reports {entry.size} (truncated or corrupted); "
            f"{advice}"
        )
    sha256, git_oid = _digests(path, size)
    lfs_sha256 = getattr(getattr(entry, "lfs", None), "sha256", None)
    if lfs_sha256:
        matches, reported = sha256 == lfs_sha256.lower(), f"sha256 {lfs_sha256[:12]}…"
    else:
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
        pointer_oid = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
        matches, reported = entry.blob_id in (git_oid, pointer_oid), f"git object {str(entry.blob_id)[:12]}…"
    if not matches:
        raise HubError(
            f"{where}: {entry.path} (sha256 {sha256[:12]}…) does not match what the repo reports for it "
            f"({reported}): corrupted; {advice}"
        )


def _digests(path: Path, size: int) -> tuple[str, str]:
    """sha256 and git blob id of a file, in one read."""
    sha256, git = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            sha256.update(chunk)
            git.update(chunk)
    return sha256.hexdigest(), git.hexdigest()


def first_line(error: BaseException) -> str:
    """The first lines of an error's message (huggingface_hub's messages run long)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:3]) if lines else type(error).__name__
