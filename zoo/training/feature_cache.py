"""Frozen-encoder feature cache: each media item is encoded once, stored as safetensors, and reused.

A frozen encoder gives the same output for the same input every time, and encoding is where most of a
small model's training time goes (Whisper computes 30 s of frames even for a 2 s clip). With
``model.use_feature_cache(FeatureCache(root))``, ``ZooModel.encode_media`` looks each preprocessed item up
here and runs the encoder only on the items it has not seen, in one batch; training epochs, later stages
and evaluation all read the stored outputs.

Keys. An item is identified by the sha256 of its preprocessed input tensor (dtype, shape and bytes), so
the same picture decoded twice hits the same entry and an augmented or differently preprocessed one does
not. An encoder is identified by a hash of its spec (name, args, weight source, the resolved revision of
a Hub source, the providing distribution and version) *and* of its weights: a random-init encoder (no
weight source) or a local folder that changed would otherwise be served another encoder's features.
Changing any of these gives a new key, so stale features are never read (their folder can be deleted).

Layout::

    ROOT/<encoder key>/encoder.json              the spec the key was made from, for people
    ROOT/<encoder key>/<random id>.safetensors   a shard: one tensor per item, named by the item's hash;
                                                 its metadata holds each tensor's sha256

Concurrency. Lookups and writes happen in the process that runs ``forward`` (DataLoader workers only
decode and collate), so no worker touches the cache. Each shard is written to a temporary file and
renamed into place, so a reader never sees half a shard; processes sharing a root (several ranks, two
runs) each write their own shards and pick up each other's on their next miss.

A damaged shard (unreadable header, or a tensor whose bytes no longer match its checksum) is moved aside
as ``*.corrupt`` with a warning naming it, and its items are recomputed: everything in the cache can be
rebuilt from the media and the frozen encoder, so stopping a run for it would lose work for nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

log = logging.getLogger("zoo.training")

FORMAT = "zoo-feature-cache"
FORMAT_VERSION = 1
SPEC_FILE = "encoder.json"
SHARD_SUFFIX = ".safetensors"


def tensor_digest(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's dtype, shape and bytes (any dtype, any device)."""
    data = tensor.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{data.dtype}:{tuple(data.shape)}:".encode())
    digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer of ``module`` (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        digest.update(name.encode())
        digest.update(tensor_digest(tensor).encode())
    return digest.hexdigest()


def encoder_identity(spec: dict, weights_sha256: str) -> dict:
    """What an encoder's outputs depend on: its whole spec (name, args, weight source and revision, providing
    distribution and version), the commit its Hub source resolves to, and the digest of its weights."""
    from zoo.weights import resolve_revision

    source = spec.get("source")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec,
        "resolved_revision": resolve_revision(source) if source else None,
        "weights_sha256": weights_sha256,
    }


class FeatureCache:
    """Encoder outputs on disk under ``root``, keyed by input content and encoder identity (see module doc).

    ``hits`` and ``misses`` count items served from the cache and items the encoder had to compute.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0
        self._weights: dict[int, tuple[torch.nn.Module, str]] = {}  # id(encoder) -> (encoder, digest)
        self._keys: dict[tuple[int, str], str] = {}  # (id(encoder), spec as JSON) -> key
        self._index: dict[str, dict[str, Path]] = {}  # key -> {item hash: shard}
        self._seen: dict[str, set[str]] = {}  # key -> shard file names already indexed

    # -- public ---------------------------------------------------------------------------------------
    def encode(
        self, spec: dict, encoder: torch.nn.Module, inputs: torch.Tensor, compute: Callable | None = None
    ) -> torch.Tensor:
        """Features of ``inputs`` (a batch of preprocessed items) from the cache, computing only the missing
        ones with ``compute`` (default: ``encoder``) in one batch and storing them as a new shard."""
        compute = compute or encoder
        key = self.encoder_key(spec, encoder)
        hashes = [tensor_digest(item) for item in inputs]
        found = self._lookup(key, hashes)
        missing = [i for i, h in enumerate(hashes) if h not in found]
        if missing:
            self._refresh(key)  # another process may have written them meanwhile
            found.update(self._lookup(key, [hashes[i] for i in missing]))
            missing = [i for i, h in enumerate(hashes) if h not in found]
        if missing:
            computed = compute(inputs[missing])
            new = {hashes[i]: computed[row] for row, i in enumerate(missing)}
            self._write_shard(key, new)
            found.update(new)
        self.misses += len(missing)
        self.hits += len(hashes) - len(missing)
        return torch.stack([found[h].to(inputs.device) for h in hashes])

    def encoder_key(self, spec: dict, encoder: torch.nn.Module) -> str:
        """The folder name of ``encoder``'s features: its identity, hashed. The weights are hashed once per
        encoder object (a frozen encoder's weights do not change while it is in use)."""
        text = json.dumps(spec, sort_keys=True, default=str)
        key = self._keys.get((id(encoder), text))
        if key is not None and self._weights[id(encoder)][0] is encoder:
            return key
        known = self._weights.get(id(encoder))
        if known is None or known[0] is not encoder:
            known = self._weights[id(encoder)] = (encoder, weights_digest(encoder))
        identity = encoder_identity(spec, known[1])
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
        key = self._keys[(id(encoder), text)] = f"{_slug(str(spec.get('name', 'encoder')))}-{digest[:24]}"
        self._write_spec(key, identity)
        return key

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses}

    # -- reading --------------------------------------------------------------------------------------
    def _lookup(self, key: str, hashes: list[str]) -> dict[str, torch.Tensor]:
        if key not in self._index:
            self._refresh(key)
        index = self._index[key]
        by_shard: dict[Path, list[str]] = {}
        for item in dict.fromkeys(hashes):
            if item in index:
                by_shard.setdefault(index[item], []).append(item)
        found: dict[str, torch.Tensor] = {}
        for shard, items in by_shard.items():
            found.update(self._read(key, shard, items))
        return found

    def _read(self, key: str, shard: Path, items: list[str]) -> dict[str, torch.Tensor]:
        from safetensors import safe_open

        try:
            with safe_open(str(shard), framework="pt") as handle:
                checksums = handle.metadata() or {}
                tensors = {item: handle.get_tensor(item) for item in items}
        except FileNotFoundError:  # moved aside by another process: recompute
            self._forget(key, shard)
            return {}
        except Exception as error:  # safetensors raises its own error types for damaged files
            self._quarantine(key, shard, f"cannot be read ({error})")
            return {}
        for item, tensor in tensors.items():
            if checksums.get(item) != tensor_digest(tensor):
                self._quarantine(key, shard, f"tensor {item[:12]}... does not match its checksum")
                return {}
        return tensors

    def _refresh(self, key: str) -> None:
        """Index the shards of ``key`` written since the last look (by this or another process)."""
        from safetensors import safe_open

        index = self._index.setdefault(key, {})
        seen = self._seen.setdefault(key, set())
        folder = self.root / key
        if not folder.is_dir():
            return
        for shard in sorted(folder.glob(f"*{SHARD_SUFFIX}")):
            if shard.name in seen:
                continue
            seen.add(shard.name)
            try:
                with safe_open(str(shard), framework="pt") as handle:
                    names = list(handle.keys())
            except FileNotFoundError:
                continue
            except Exception as error:
                self._quarantine(key, shard, f"cannot be read ({error})")
                continue
            index.update(dict.fromkeys(names, shard))

    def _forget(self, key: str, shard: Path) -> None:
        index = self._index.get(key, {})
        for item in [i for i, s in index.items() if s == shard]:
            del index[item]

    def _quarantine(self, key: str, shard: Path, reason: str) -> None:
        message = (
            f"feature cache: shard {shard} {reason}; it is moved aside as {shard.name}.corrupt and its "
            "items are recomputed"
        )
        warnings.warn(message, stacklevel=3)
        log.warning(message)
        self._forget(key, shard)
        with contextlib.suppress(FileNotFoundError):  # another process moved it first
            os.replace(shard, shard.with_name(shard.name + ".corrupt"))

    # -- writing --------------------------------------------------------------------------------------
    def _write_shard(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save

        folder = self.root / key
        folder.mkdir(parents=True, exist_ok=True)
        stored = {item: t.detach().to("cpu").contiguous().clone() for item, t in tensors.items()}
        metadata = {item: tensor_digest(t) for item, t in stored.items()}
        final = folder / f"{uuid.uuid4().hex}{SHARD_SUFFIX}"
        _atomic_write(final, save(stored, metadata=metadata))
        self._index.setdefault(key, {}).update(dict.fromkeys(stored, final))
        self._seen.setdefault(key, set()).add(final.name)

    def _write_spec(self, key: str, identity: dict) -> None:
        path = self.root / key / SPEC_FILE
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, (json.dumps(identity, indent=2, sort_keys=True, default=str) + "\n").encode())


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40] or "encoder"
