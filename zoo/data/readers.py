"""Read dataset files as a stream of records and convert each record into a canonical ``Sample``.

Files are read through the ``datasets`` library in streaming mode, so a dataset larger than memory is
never loaded whole: JSON Lines (``.jsonl``/``.ndjson``) line by line, Parquet row group by row group, and
JSON documents (``.json``: an array of records, or an object whose ``field`` holds one) parsed whole, as a
JSON document must be. JSON Lines are parsed one line at a time, so one malformed line is reported with
its line number instead of failing the whole file.

Readers map one record of a known format to a ``Sample``; they check the schema only (media files are
decoded later, in the pipeline) and raise ``DataError`` naming the dataset, the record and the field.
Relative media paths are resolved against ``media_root`` (default: the data file's folder). A reader is a
plugin kind: the five formats here register in the ``zoo.readers`` entry-point group exactly as an outside
package's reader does, and a dataset's ``format`` is looked up in the registry (``reader_for``).
"""

from __future__ import annotations

import codecs
import glob
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from zoo.data.schema import ROLES, Sample, show_id, validate_messages, where
from zoo.errors import DataError, MediaError, UnknownComponentError
from zoo.media import base64_payload, is_dir, is_file
from zoo.registry import get_registry, list_components

logger = logging.getLogger(__name__)

SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}
MEDIA_TYPES = ("image", "video", "audio")
SHOT_PROMPT = "Describe this video in detail."  # Shot2Story's captioning prompt (its ASR goes before it)
IMAGE_MARKER = "<image>"
EVALUATION_FIELDS = ("task", "options", "references")
# Bytes that are not UTF-8 become NUL characters, which JSON never allows unescaped: such a line fails to
# parse and is reported as not UTF-8, instead of the decoder failing the whole file.
_INVALID_UTF8 = "zoo.invalid-utf8"
_BAD_BYTE = "\x00"
codecs.register_error(_INVALID_UTF8, lambda error: (_BAD_BYTE * (error.end - error.start), error.end))


@dataclass
class RawRecord:
    """One record as read: its file, its position there (line index for JSON Lines), data or error.

    A file that cannot be read (or whose rest cannot be read) is one ``RawRecord`` with ``error`` set at
    the position where reading stopped: it is listed, and the other files are still read."""

    source: str
    index: int
    data: dict | None
    error: str | None = None


# -- files and records ---------------------------------------------------------------------------------
def list_files(path_or_paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """The data files named by a path, a folder (its JSON/JSONL/Parquet files), a glob, or a list of these."""
    items = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    files: list[Path] = []
    for item in items:
        text = str(item)
        if any(ch in text for ch in "*?["):
            found = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        elif is_dir(text):
            found = sorted(p for p in Path(text).rglob("*") if p.suffix.lower() in SUFFIXES and is_file(p))
        elif is_file(text):
            found = [Path(text)]
        else:
            raise DataError(f"data path {text!r}: no such file or folder")
        if not found:
            raise DataError(f"data path {text!r}: matches no .json, .jsonl or .parquet file")
        for path in found:
            if path.suffix.lower() not in SUFFIXES:
                raise DataError(f"data file {str(path)!r}: unknown extension (use .json, .jsonl or .parquet)")
        files += found
    return files


def iter_records(
    path_or_paths: str | Path | Iterable[str | Path],
    *,
    streaming: bool = True,
    field: str | None = None,
    shuffle_buffer: int | None = None,
    seed: int = 0,
) -> Iterator[RawRecord]:
    """Every record of the files, in order (or shuffled with a buffer), each with its file and position.

    A record that cannot be parsed (a malformed JSON line, a value that is not an object) comes back with
    ``error`` set; a file that cannot be read at all raises ``DataError`` naming it.
    """
    files = list_files(path_or_paths)
    if shuffle_buffer:
        random.Random(seed).shuffle(files)
    for path in files:
        yield from _iter_file(
            path, streaming=streaming, field=field, shuffle_buffer=shuffle_buffer, seed=seed
        )


def read_records(
    path_or_paths: str | Path | Iterable[str | Path], *, streaming: bool = True, field: str | None = None
) -> Iterator[dict]:
    """The records of the files as dicts; a record that cannot be parsed raises ``DataError``."""
    for record in iter_records(path_or_paths, streaming=streaming, field=field):
        if record.error is not None:
            raise DataError(f"{record.source}: record {record.index}: {record.error}")
        yield record.data


def _iter_file(
    path: Path, *, streaming: bool, field: str | None, shuffle_buffer: int | None, seed: int
) -> Iterator[RawRecord]:
    """The records of one file; a failure to read it becomes one error record where reading stopped."""
    kind = SUFFIXES[path.suffix.lower()]
    read = 0
    try:
        for record in _file_records(path, kind, streaming, field, shuffle_buffer, seed):
            read += 1
            yield record
    except (DataError, MediaError) as error:
        yield RawRecord(str(path), read, None, f"{_rest(read)}: {error}")
    except Exception as error:  # whatever a reader library raises on a broken file
        message = f"cannot be read as {kind} ({type(error).__name__}: {str(error)[:300]})"
        yield RawRecord(str(path), read, None, f"{_rest(read)}: data file {str(path)!r}: {message}")


def _rest(read: int) -> str:
    return "the file cannot be read" if read == 0 else f"the file cannot be read past record {read}"


def _file_records(
    path: Path, kind: str, streaming: bool, field: str | None, shuffle_buffer: int | None, seed: int
) -> Iterator[RawRecord]:
    if kind == "jsonl":
        rows = _load(path, "jsonl-lines", streaming, shuffle_buffer, seed)
        # blank: JSON's own white space only (a line of U+3000 is a bad record, not a blank line)
        yield from (_parse_line(str(path), i, row["text"]) for i, row in rows if row["text"].strip(" \t\r\n"))
        return
    options = {"field": field, "on_mixed_types": None} if kind == "json" else {}
    yielded = False
    try:
        for i, row in _load(path, kind, streaming, shuffle_buffer, seed, **options):
            yielded = True
            yield _checked(str(path), i, row)
    except Exception as error:
        if yielded or kind != "json":
            raise DataError(f"data file {str(path)!r}: cannot be read as {kind} ({error})") from error
        # datasets could not give the records one arrow type (fields whose type varies between records):
        # the document is parsed whole either way, so read it with the json module instead.
        yield from _iter_json_document(path, field)


def _load(
    path: Path, builder: str, streaming: bool, shuffle_buffer: int | None, seed: int, **options: Any
) -> Any:
    """``(position, row)`` pairs of one file through ``datasets.load_dataset`` (JSON Lines: a ``datasets``
    dataset over its lines, see ``_jsonl_lines``)."""
    from datasets import Dataset, IterableDataset, load_dataset

    options = {k: v for k, v in options.items() if v is not None or k == "on_mixed_types"}
    if builder != "json":
        options.pop("on_mixed_types", None)
    try:
        if builder == "jsonl-lines":
            maker = IterableDataset.from_generator if streaming else Dataset.from_generator
            ds = maker(_jsonl_lines, gen_kwargs={"path": str(path)})
        else:
            ds = load_dataset(builder, data_files=str(path), split="train", streaming=streaming, **options)
    except Exception as error:
        raise DataError(f"data file {str(path)!r}: cannot be opened as {builder} ({error})") from error
    if not shuffle_buffer:
        return enumerate(_rows(ds))
    ds = ds.map(lambda _, i: {"__position__": i}, with_indices=True)
    ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer) if streaming else ds.shuffle(seed=seed)
    return ((row.pop("__position__"), row) for row in _rows(ds))


def _jsonl_lines(path: str) -> Iterator[dict]:
    """The lines of a JSON Lines file as ``{"text": line}``, split at ``\\n`` only. (The ``text`` builder
    splits with ``str.splitlines``, which also breaks at U+2028, U+2029 and NEL: characters a JSON string
    may hold as they are, so one record became two halves that are not JSON.) Bytes that are not UTF-8
    become NUL characters, which no JSON text allows unescaped: that line is reported, not the file."""
    with open(path, "rb") as f:
        for line in f:
            yield {"text": line.rstrip(b"\r\n").decode("utf-8", errors=_INVALID_UTF8)}


def _rows(ds: Any, batch_size: int = 64) -> Iterator[dict]:
    """Every row of a dataset. ``iter`` (unlike ``__iter__``) does not hand each DataLoader worker only some
    files: the pipeline shards samples across workers itself, so every worker must see every record."""
    for batch in ds.iter(batch_size=batch_size):
        yield from (dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True))


def _parse_line(source: str, index: int, line: str) -> RawRecord:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as error:  # also: integers past 4300 digits, nesting past the stack
        if _BAD_BYTE in line:
            return RawRecord(source, index, None, f"line {index + 1} is not valid UTF-8")
        problem = (
            "is nested too deeply" if isinstance(error, RecursionError) else f"is not valid JSON ({error})"
        )
        return RawRecord(source, index, None, f"line {index + 1} {problem}")
    return _checked(source, index, data)


def _checked(source: str, index: int, data: Any) -> RawRecord:
    if not isinstance(data, dict):
        return RawRecord(source, index, None, f"a record must be a JSON object, got {type(data).__name__}")
    return RawRecord(source, index, data)


def _iter_json_document(path: Path, field: str | None) -> Iterator[RawRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"data file {str(path)!r}: not valid UTF-8 ({error})") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise DataError(f"data file {str(path)!r}: nested too deeply") from None
    except ValueError as error:
        if text.lstrip().startswith("{") and "\n" in text.strip():  # JSON Lines in a .json file
            lines = text.splitlines()
            yield from (_parse_line(str(path), i, line) for i, line in enumerate(lines) if line.strip())
            return
        raise DataError(f"data file {str(path)!r}: not valid JSON ({error})") from None
    if field is not None:
        if not isinstance(document, dict) or field not in document:
            raise DataError(f"data file {str(path)!r}: has no top-level field {field!r}")
        document = document[field]
    if not isinstance(document, list):
        raise DataError(f"data file {str(path)!r}: expected a JSON array of records (or pass `field`)")
    yield from (_checked(str(path), i, item) for i, item in enumerate(document))


# -- conversion ----------------------------------------------------------------------------------------
@dataclass
class Context:
    """Where a record comes from and the dataset's options; converters use it to resolve and report."""

    dataset: str
    index: int
    source: str | None = None
    media_root: Path | None = None
    url_cache: Path | None = None
    options: dict = field(default_factory=dict)
    instruction_pool: Any = None  # zoo.data.augment.InstructionPool
    seed: int = 0

    def error(self, message: str, sample_id: Any = None) -> DataError:
        """A ``DataError`` naming this record (dataset, position, id): raise it for a bad field."""
        return DataError(f"{where(self.dataset, self.index, sample_id)}: {message}")

    def sample(self, messages: list[dict], sample_id: Any = None, meta: dict | None = None) -> Sample:
        """The checked ``Sample`` of this record: ``messages`` of ``{"role", "type", "content"}``."""
        return _sample(self, sample_id, messages, meta)

    def rng(self, purpose: str = "") -> random.Random:
        """A generator seeded by this record (and a purpose) alone: choices do not depend on order or worker."""
        name = Path(self.source).name if self.source else ""
        return random.Random(f"{self.seed}:{self.dataset}:{name}:{self.index}:{purpose}")

    def media(self, value: Any, sample_id: Any = None) -> Any:
        """A media reference made usable: relative paths joined to the media root, cached URLs mapped;
        base64 (bare or a ``data:`` URL) stays as it is."""
        if not isinstance(value, str) or value.startswith("data:"):
            return value
        if "\x00" in value:
            raise self.error("a media reference contains a NUL character", sample_id)
        root = self.media_root or (Path(self.source).parent if self.source else None)
        if base64_payload(value) is not None and not is_file(value if root is None else root / value):
            return value
        try:
            url = urlparse(value)
        except ValueError as error:  # e.g. "http://[x/a.jpg"
            raise self.error(
                f"media reference {_short(value)} is not a valid URL ({error})", sample_id
            ) from None
        if url.scheme in ("http", "https"):
            return self._cached(value, url, sample_id)
        if url.scheme == "file":
            return unquote(url.path)
        try:
            path = Path(value).expanduser()
        except RuntimeError as error:  # ~nosuchuser
            raise self.error(f"media path {_short(value)}: {error}", sample_id) from None
        return str(path if path.is_absolute() or root is None else root / path)

    def _cached(self, value: str, url: Any, sample_id: Any) -> str:
        if self.url_cache is None:
            return value  # the media loader looks it up in its own cache, or says it is not cached
        local = self.url_cache / url.netloc / unquote(url.path).lstrip("/")
        if not is_file(local):
            raise self.error(
                f"URL {value!r} is not in the local cache (looked for {local}); nothing is downloaded",
                sample_id,
            )
        return str(local)


Reader = Callable[[dict, Context], Sample]


def reader_for(fmt: str, dataset: str | None = None) -> Reader:
    """The reader of format ``fmt`` (a name in ``zoo list --kind reader``), loaded through the registry."""
    try:
        return get_registry().load("reader", fmt)
    except UnknownComponentError as error:
        raise DataError(
            f"dataset {dataset!r}: unknown format {fmt!r}; installed formats: {', '.join(sorted(READERS))} "
            f"({error})"
        ) from None


def convert(record: dict, fmt: str, ctx: Context) -> Sample:
    """The ``Sample`` of one record of format ``fmt`` (see ``reader_for``)."""
    return reader_for(fmt, ctx.dataset)(record, ctx)


class _InstalledReaders(Mapping):
    """The installed readers by format name, a read-only view of the registry (loaded on first use)."""

    def __getitem__(self, fmt: str) -> Reader:
        try:
            return get_registry().load("reader", fmt)
        except UnknownComponentError:
            raise KeyError(fmt) from None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(entry.name for entry in list_components("reader")))

    def __len__(self) -> int:
        return len(list(iter(self)))


READERS: Mapping[str, Reader] = _InstalledReaders()


def _sample(ctx: Context, sample_id: Any, messages: list[dict], meta: dict | None = None) -> Sample:
    checked = validate_messages(messages, dataset=ctx.dataset, index=ctx.index, sample_id=sample_id)
    meta = {"source": ctx.source, **(meta or {})}
    if sample_id is None:
        sample_id = f"{Path(ctx.source).stem if ctx.source else ctx.dataset}:{ctx.index}"
    return Sample(id=show_id(sample_id), dataset=ctx.dataset, index=ctx.index, messages=checked, meta=meta)


def _text(record: dict, key: str, ctx: Context, sample_id: Any, *, required: bool = True) -> str:
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ctx.error(f"field {key!r} must be a non-empty string, got {_short(value)}", sample_id)
    return value


def _short(value: Any) -> str:
    """A value for an error message: strings and numbers shortened, containers by type (never a deep repr)."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:40] + "…" + value[-10:])
    if isinstance(value, (bool, float)) or (isinstance(value, int) and abs(value) < 10**30):
        return repr(value)
    return f"a {type(value).__name__}"


def _record_mapping(record: Any, ctx: Context) -> dict:
    if not isinstance(record, dict):
        raise ctx.error(f"a record must be a mapping, got {type(record).__name__}")
    return record


def _msg(role: str, kind: str, content: Any) -> dict:
    return {"role": role, "type": kind, "content": content}


def from_s3(record: dict, ctx: Context) -> Sample:
    """S3 chat JSON (paper Fig. 3): ``{"id", "messages": [{"role": user|bot, "type", "text"}]}``."""
    sample_id = _record_mapping(record, ctx).get("id")
    messages = record.get("messages")
    if not isinstance(messages, list):
        raise ctx.error(f"field 'messages' must be a list, got {type(messages).__name__}", sample_id)
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ctx.error(f"message {i} must be a mapping, got {type(message).__name__}", sample_id)
        kind = str(message.get("type") or "text").lower()
        content = message.get("text", message.get("content"))
        out.append(
            _msg(message.get("role"), kind, ctx.media(content, sample_id) if kind in MEDIA_TYPES else content)
        )
    return _sample(ctx, sample_id, out, _evaluation_fields(record))


def _evaluation_fields(record: dict) -> dict:
    """``task``, ``options`` and extra ``references`` of a record (top level or its ``meta``), for evaluation."""
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    fields = {key: record.get(key, meta.get(key)) for key in EVALUATION_FIELDS}
    return {key: value for key, value in fields.items() if value is not None}


def from_m3it(record: dict, ctx: Context) -> Sample:
    """An M3IT instance: ``image_base64_str`` (or ``images``), ``instruction``, ``inputs``, ``outputs``, ``meta``.

    The images come first in the user turn, then the instruction and the inputs; ``outputs`` is the
    response. Several frames of a video task (dataset option ``video: true``, or a ``meta`` that mentions
    video) become one video item; otherwise each string is one image.
    """
    meta = _m3it_meta(_record_mapping(record, ctx).get("meta"))
    sample_id = record.get("id", meta.get("id"))
    images = record.get("image_base64_str")
    images = record.get("images") if images is None else images
    images = [images] if isinstance(images, str) else images if images is not None else []
    if not isinstance(images, list) or not all(isinstance(x, str) and x for x in images):
        raise ctx.error("field 'image_base64_str'/'images' must be a list of base64 strings", sample_id)
    instruction = _text(record, "instruction", ctx, sample_id)
    if ctx.instruction_pool is not None:
        instruction = ctx.instruction_pool.choose(
            ctx.options.get("task", ctx.dataset), ctx.rng("instruction")
        )
    inputs = _text(record, "inputs", ctx, sample_id, required=False).strip()
    outputs = _text(record, "outputs", ctx, sample_id)
    as_video = ctx.options.get("video", len(images) > 1 and _mentions(meta, "video"))
    if as_video and images:
        media = [_msg("user", "video", images)]  # base64 frames, decoded as they are
    else:
        media = [_msg("user", "image", x) for x in images]
    prompt = instruction.strip() + ("\n" + inputs if inputs else "")
    messages = media + [_msg("user", "text", prompt), _msg("assistant", "text", outputs)]
    return _sample(ctx, sample_id, messages, {"m3it_meta": meta, "instruction": instruction})


def _m3it_meta(meta: Any) -> dict:
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except (ValueError, RecursionError):
            return {"text": meta}
    return {k: v for k, v in meta.items() if v is not None} if isinstance(meta, dict) else {}


def _mentions(value: Any, word: str, budget: int = 10_000) -> bool:
    """Whether any string (key or value) in a nested structure contains ``word``; walks at most ``budget``
    items, without recursion."""
    pending = [value]
    while pending and budget > 0:
        item = pending.pop()
        budget -= 1
        if isinstance(item, str):
            if word in item.lower():
                return True
        elif isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple)):
            pending += item
    return False


def from_macaw(record: dict, ctx: Context) -> Sample:
    """Macaw-LLM instruction data: ``instruction``, ``response`` and ``image`` / ``video`` / ``audio`` paths.

    ``"None"`` means no such media (as in Macaw's files). Media referenced by id come from the dataset
    option ``media_from_id`` (e.g. ``{"video": "videos/{id}.mp4"}``); ``audio_from_video: true`` (or an
    ``audio`` value of ``"video"``) takes the audio track of the sample's video file.
    """
    sample_id = _record_mapping(record, ctx).get("id")
    templates = ctx.options.get("media_from_id") or {}
    found = {}
    for kind in MEDIA_TYPES:
        # `image` or `image_path`: a .json/.parquet reader fills a column a record lacks with None
        value = next((v for v in (record.get(kind), record.get(f"{kind}_path")) if not _no_media(v)), None)
        if value is None and kind in templates and sample_id is not None:
            value = _from_template(templates[kind], sample_id, kind, ctx)
        if value is not None:
            found[kind] = value
    if found.get("audio") == "video" or (ctx.options.get("audio_from_video") and "audio" not in found):
        if "video" not in found:
            raise ctx.error("audio-with-video needs a 'video' path", sample_id)
        found["audio"] = found["video"]
    for kind, value in found.items():
        if not isinstance(value, str):
            raise ctx.error(f"field {kind!r} must be a path string, got {type(value).__name__}", sample_id)
    media = [_msg("user", kind, ctx.media(value, sample_id)) for kind, value in found.items()]
    instruction = _text(record, "instruction", ctx, sample_id)
    response = _text(record, "response", ctx, sample_id)
    messages = media + [_msg("user", "text", instruction), _msg("assistant", "text", response)]
    return _sample(ctx, sample_id, messages, {"audio_from_video": found.get("audio") == found.get("video")})


def _no_media(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value in ("", "None"))


def _from_template(template: Any, sample_id: Any, kind: str, ctx: Context) -> str:
    if not isinstance(sample_id, (str, int)) or isinstance(sample_id, bool):
        raise ctx.error(f"media_from_id needs a string or integer 'id', got {_short(sample_id)}", sample_id)
    try:
        return str(template).format(id=sample_id)
    except (KeyError, IndexError, ValueError, AttributeError) as error:
        raise ctx.error(
            f"media_from_id template for {kind} {template!r} fails ({error})", sample_id
        ) from None


def from_llava(record: dict, ctx: Context) -> Sample:
    """LLaVA conversation JSON: ``conversations`` of ``{"from": human|gpt, "value"}`` with ``<image>`` markers.

    Each marker becomes an image message at its position; with an ``image`` but no marker the image opens
    the first human turn (LLaVA's own convention). Markers and images must pair up.
    """
    sample_id = _record_mapping(record, ctx).get("id")
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ctx.error("field 'conversations' must be a non-empty list", sample_id)
    images = record.get("image")
    images = [] if images is None or images == "" else [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(x, str) and x for x in images):
        raise ctx.error(f"field 'image' must be a path or a list of paths, got {_short(images)}", sample_id)
    values = [_llava_turn(turn, t, ctx, sample_id) for t, turn in enumerate(turns)]
    markers = sum(value.count(IMAGE_MARKER) for _, value in values)
    if markers == 0 and images:
        role, value = values[0]
        values[0] = (role, IMAGE_MARKER * len(images) + "\n" + value)
    elif markers != len(images):
        raise ctx.error(f"{markers} {IMAGE_MARKER} marker(s) but {len(images)} image(s)", sample_id)
    pending = iter(images)
    messages = []
    for role, value in values:
        for j, piece in enumerate(value.split(IMAGE_MARKER)):
            if j:
                messages.append(_msg(role, "image", ctx.media(next(pending), sample_id)))
            if piece.strip():
                messages.append(_msg(role, "text", piece.strip()))
    return _sample(ctx, sample_id, messages)


def _llava_turn(turn: Any, t: int, ctx: Context, sample_id: Any) -> tuple[str, str]:
    if not isinstance(turn, dict):
        raise ctx.error(f"conversation turn {t} must be a mapping", sample_id)
    role = ROLES.get(str(turn.get("from", "")).lower())
    if role is None:
        raise ctx.error(
            f"conversation turn {t} field 'from' is {turn.get('from')!r} (use human or gpt)", sample_id
        )
    value = turn.get("value")
    if not isinstance(value, str):
        raise ctx.error(f"conversation turn {t} field 'value' must be a string", sample_id)
    return role, value


def from_shots(record: dict, ctx: Context) -> Sample:
    """A shot-structured video: ``shots`` of frames or ``{start, end}`` ranges of ``video``, ``asr``, answer.

    The user turn is one video message ``{"shots": [...], "asr": ...}`` and the ``question`` (default
    Shot2Story's "Describe this video in detail."); the answer is ``answer``, ``caption`` or ``summary``.
    """
    sample_id = _record_mapping(record, ctx).get("id")
    shots = record.get("shots")
    if not isinstance(shots, list) or not shots:
        raise ctx.error("field 'shots' must be a non-empty list", sample_id)
    video = record.get("video")
    content = {
        "shots": [_shot(s, shot, video, ctx, sample_id) for s, shot in enumerate(shots)],
        "asr": _asr(record, shots, ctx, sample_id),
    }
    question = record.get("question") or ctx.options.get("prompt") or SHOT_PROMPT
    if not isinstance(question, str):
        raise ctx.error(f"field 'question' must be a string, got {_short(question)}", sample_id)
    key = next(
        (k for k in ("answer", "caption", "summary", "response") if record.get(k) is not None), "answer"
    )
    answer = _text(record, key, ctx, sample_id)
    messages = [
        _msg("user", "video", content),
        _msg("user", "text", question),
        _msg("assistant", "text", answer),
    ]
    return _sample(ctx, sample_id, messages, {"num_shots": len(shots)})


def _shot(s: int, shot: Any, video: Any, ctx: Context, sample_id: Any) -> Any:
    if isinstance(shot, dict) and shot.get("frames") is not None:
        shot = shot["frames"]
    if isinstance(shot, str) and shot:
        return ctx.media(shot, sample_id)
    if isinstance(shot, list) and shot:
        if not all(isinstance(frame, str) and frame for frame in shot):
            raise ctx.error(f"shot {s} must list its frames as paths or base64 strings", sample_id)
        return [ctx.media(frame, sample_id) for frame in shot]
    if isinstance(shot, dict) and "start" in shot and "end" in shot:
        source = shot.get("video") or video
        if not isinstance(source, str) or not source:
            raise ctx.error(
                f"shot {s} is a time range but neither it nor the record names a 'video'", sample_id
            )
        start, end = _seconds(shot["start"], s, ctx, sample_id), _seconds(shot["end"], s, ctx, sample_id)
        if not start < end:
            raise ctx.error(f"shot {s} needs start < end, got {start}s..{end}s", sample_id)
        return {"video": ctx.media(source, sample_id), "start": start, "end": end}
    raise ctx.error(
        f"shot {s} must be frames, a folder or {{start, end}}, got {type(shot).__name__}", sample_id
    )


def _seconds(value: Any, s: int, ctx: Context, sample_id: Any) -> float:
    """A shot boundary in seconds: a finite, non-negative number (or a numeric string)."""
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer like 10**400
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ctx.error(f"shot {s} 'start'/'end' must be finite seconds >= 0, got {_short(value)}", sample_id)
    return seconds


def _asr(record: dict, shots: list, ctx: Context, sample_id: Any) -> str | None:
    asr = record.get("asr")
    if isinstance(asr, list):
        if not all(isinstance(x, str) or x is None for x in asr):
            raise ctx.error("field 'asr' must be a string or a list of strings", sample_id)
        asr = " ".join(x for x in asr if x)
    if asr is not None and not isinstance(asr, str):
        raise ctx.error(f"field 'asr' must be a string or a list of strings, got {_short(asr)}", sample_id)
    if asr is None:
        parts = [
            shot.get("asr") for shot in shots if isinstance(shot, dict) and isinstance(shot.get("asr"), str)
        ]
        asr = " ".join(p for p in parts if p) or None
    return asr or None


# -- examples: one record of each format, read by the conformance kit (zoo.testing) and shown in docs ----
RED_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
from_s3.examples = [
    {
        "id": "s3-1",
        "messages": [
            {"role": "user", "type": "image", "text": "images/cat.jpg"},
            {"role": "user", "type": "text", "text": "What is in the picture?"},
            {"role": "bot", "type": "text", "text": "A cat on a sofa."},
        ],
    }
]
from_m3it.examples = [
    {
        "instruction": "Answer the question.",
        "inputs": "What colour is it?",
        "outputs": "Red.",
        "image_base64_str": [RED_PNG],
    }
]
from_macaw.examples = [
    {
        "id": "m-1",
        "instruction": "What sound is this?",
        "response": "A bell.",
        "audio": "audio/bell.wav",
        "image": "None",
    }
]
from_llava.examples = [
    {
        "id": "l-1",
        "image": "coco/1.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat is here?"},
            {"from": "gpt", "value": "A dog."},
        ],
    }
]
from_shots.examples = [
    {
        "id": "v-1",
        "video": "videos/v1.mp4",
        "shots": [{"start": 0.0, "end": 2.0, "asr": "hello"}, {"start": 2.0, "end": 4.5}],
        "caption": "A person waves, then walks away.",
    }
]
