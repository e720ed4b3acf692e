"""A data mixture as data: datasets with weights or sample counts, one system prompt each, augmentations.

```yaml
seed: 0
datasets:
  - {name: coco, path: data/coco.jsonl, format: s3, count: 5000,
     system_prompt: "Provide a one-sentence answer for the provided question",
     augment: {media_order: random, concat: {max_dialogs: 3, p: 0.5}}}
  - {name: vqa, path: data/m3it-vqa/, format: m3it, count: 2000, instruction_pool: pools.json}
```

Iterating a ``Mixture`` yields ``Sample``s, and a ``Skip`` for each record that could not be read or
converted, interleaved across datasets: with ``count`` exactly that many records of each dataset (a
dataset shorter than its count is repeated), with ``weight`` a weighted random choice per sample until
``num_samples`` or, without it, the ``stopping_strategy`` of ``datasets.interleave_datasets``. Datasets are
streamed, never loaded whole. The same seed gives the same sequence.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.data.augment import MEDIA_ORDERS, InstructionPool, concat_dialogs, reorder_media, with_system_prompt
from zoo.data.readers import Context, convert, iter_records, list_files, reader_for
from zoo.data.schema import Sample, Skip, show_id
from zoo.errors import DataError

logger = logging.getLogger(__name__)

# S3 paper, Table 1: the system prompt of each dataset of its mixture (CLOTHO-Captions has none listed).
S3_SYSTEM_PROMPTS = {
    "COCO": "Provide a one-sentence answer for the provided question",
    "GQA": "Answer the question using a single phrase",
    "ImageChat": "Show reaction and emotion in response to images",
    "Visual Dialog": "Answer the question using a single word or phrase",
    "LLaVA": "Answer questions thoroughly and in detail",
    "ScienceQA": "Answer with the option’s letter from the given choices directly",
    "OCR-VQA": "Answer the question using a single word or phrase",
    "TextCaps": "Answer the question using a single word or phrase",
    "VizWiz": "Answer the question using a single word or phrase",
    "Visual Genome": "Answer the question using a single word or phrase",
    "OKVQA": "Answer the question using a single word or phrase",
    "AOKVQA": "Answer questions thoroughly and in detail",
    "CLOTHO-AQA": "Answer the question using a single word or phrase",
    "AudioSet": "Provide a one-sentence answer for the provided question",
    "OpenAssistant": "You are helpful AI assistant",
}
# S3 paper, Table 1: samples of each dataset in its 145,250-sample mixture.
S3_COUNTS = {
    "COCO": 5000, "GQA": 10000, "ImageChat": 5000, "Visual Dialog": 24000, "LLaVA": 31000,
    "ScienceQA": 10000, "OCR-VQA": 1000, "TextCaps": 14000, "VizWiz": 10000, "Visual Genome": 5500,
    "OKVQA": 5000, "AOKVQA": 10000, "CLOTHO-Captions": 3750, "CLOTHO-AQA": 1000, "AudioSet": 5000,
    "OpenAssistant": 5000,
}  # fmt: skip
# `all_exhausted_without_replacement` (datasets' name): every dataset read whole, once; the default when no
# dataset has a weight, so that no record of any dataset goes unread.
STOPPING = ("first_exhausted", "all_exhausted", "all_exhausted_without_replacement")
WHOLE = "all_exhausted_without_replacement"
_SPEC_KEYS = {
    "name", "path", "format", "weight", "count", "system_prompt", "media_root", "url_cache", "field",
    "instruction_pool", "task", "augment", "options", "shuffle_buffer",
}  # fmt: skip
_MIXTURE_KEYS = {"seed", "datasets", "num_samples", "stopping_strategy"}
_AUGMENT_KEYS = {"media_order", "media_order_p", "concat"}
_CONCAT_KEYS = {"max_dialogs", "p", "max_messages"}
# The options each built-in format's reader reads (zoo.data.readers).
FORMAT_OPTIONS = {
    "s3": {},
    "m3it": {"video": "true or false"},
    "macaw": {"media_from_id": "a mapping of image/video/audio to a path template with {id}",
              "audio_from_video": "true or false"},
    "llava": {},
    "shots": {"prompt": "a non-empty string"},
}  # fmt: skip
_EPOCH_END = object()


def _check(ok: bool, name: str, key: str, expected: str, value: Any) -> None:
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise DataError(f"mixture dataset {name!r}: {key!r} must be {expected}, got {shown}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_probability(value: Any) -> bool:
    return _is_number(value) and 0 <= value <= 1


def _check_entry(entry: dict, name: str) -> None:
    """Every field of one dataset entry: its type and range, before anything is read."""
    unknown = set(entry) - _SPEC_KEYS
    if unknown:
        raise DataError(
            f"mixture dataset {name!r}: unknown keys {sorted(unknown)} (known: {sorted(_SPEC_KEYS)})"
        )
    if not isinstance(entry.get("format"), str):
        raise DataError(
            f"mixture dataset {name!r}: needs a 'format' (a reader name: `zoo list --kind reader`)"
        )
    reader_for(entry["format"], name)  # an unknown format fails here, naming the installed ones
    path = entry.get("path")
    if path is None:
        raise DataError(f"mixture dataset {name!r}: needs a 'path' (file, folder, glob or list)")
    paths = path if isinstance(path, list) else [path]
    _check(bool(paths) and all(isinstance(p, (str, Path)) and str(p) for p in paths), name, "path",
           "a file, folder or glob, or a non-empty list of them", path)  # fmt: skip
    weight, count, buffer = entry.get("weight"), entry.get("count"), entry.get("shuffle_buffer")
    _check(weight is None or (_is_number(weight) and weight >= 0), name, "weight", "a number >= 0", weight)
    _check(count is None or (_is_int(count) and count >= 0), name, "count", "an integer >= 0", count)
    _check(buffer is None or (_is_int(buffer) and buffer >= 1), name, "shuffle_buffer",
           "an integer >= 1 (records held for shuffling), or null for file order", buffer)  # fmt: skip
    for key in ("system_prompt", "field", "task"):
        value = entry.get(key)
        _check(
            value is None or (isinstance(value, str) and value.strip() != ""),
            name,
            key,
            "a non-empty string",
            value,
        )
    for key in ("media_root", "url_cache"):
        value = entry.get(key)
        _check(value is None or (isinstance(value, (str, Path)) and str(value)), name, key, "a folder", value)
    pool = entry.get("instruction_pool")
    _check(pool is None or isinstance(pool, (str, Path, list, dict)), name, "instruction_pool",
           "a list, a mapping or a JSON file", pool)  # fmt: skip
    _check_augment(entry.get("augment"), name)
    _check_options(entry.get("options"), entry["format"], name)


def _check_augment(augment: Any, name: str) -> None:
    if augment is None:
        return
    _check(isinstance(augment, dict), name, "augment", "a mapping", augment)
    unknown = set(augment) - _AUGMENT_KEYS
    if unknown:
        raise DataError(f"mixture dataset {name!r}: unknown augment keys {sorted(unknown)}")
    order = augment.get("media_order", "keep")
    _check(order in MEDIA_ORDERS, name, "augment.media_order", f"one of {', '.join(MEDIA_ORDERS)}", order)
    p = augment.get("media_order_p", 0.5)
    _check(_is_probability(p), name, "augment.media_order_p", "a probability in [0, 1]", p)
    concat = augment.get("concat")
    if concat is None:
        return
    _check(
        isinstance(concat, dict), name, "augment.concat", "a mapping of max_dialogs, p, max_messages", concat
    )
    unknown = set(concat) - _CONCAT_KEYS
    if unknown:
        raise DataError(f"mixture dataset {name!r}: unknown augment.concat keys {sorted(unknown)}")
    dialogs, p, messages = concat.get("max_dialogs", 3), concat.get("p", 0.5), concat.get("max_messages")
    _check(_is_int(dialogs) and dialogs >= 1, name, "augment.concat.max_dialogs", "an integer >= 1", dialogs)
    _check(_is_probability(p), name, "augment.concat.p", "a probability in [0, 1]", p)
    _check(messages is None or (_is_int(messages) and messages >= 1), name, "augment.concat.max_messages",
           "an integer >= 1", messages)  # fmt: skip


def _check_options(options: Any, fmt: str, name: str) -> None:
    if options is None:
        return
    _check(isinstance(options, dict), name, "options", "a mapping", options)
    if fmt not in FORMAT_OPTIONS:  # a reader from another distribution checks its own options
        return
    known = FORMAT_OPTIONS[fmt]
    unknown = set(options) - set(known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise DataError(
            f"mixture dataset {name!r}: format {fmt!r} has no options {sorted(unknown)} (it takes: {accepted})"
        )
    for key in ("video", "audio_from_video"):
        if key in options:
            _check(isinstance(options[key], bool), name, f"options.{key}", "true or false", options[key])
    if "prompt" in options:
        prompt = options["prompt"]
        _check(
            isinstance(prompt, str) and prompt.strip() != "",
            name,
            "options.prompt",
            "a non-empty string",
            prompt,
        )
    templates = options.get("media_from_id")
    if templates is not None:
        _check(isinstance(templates, dict) and set(templates) <= {"image", "video", "audio"}, name,
               "options.media_from_id", known["media_from_id"], templates)  # fmt: skip
        for kind, template in templates.items():
            try:
                ok = isinstance(template, str) and template.format(id="x") != template
            except (KeyError, IndexError, ValueError, AttributeError):
                ok = False
            _check(
                ok,
                name,
                f"options.media_from_id.{kind}",
                "a path template using {id} and no other field",
                template,
            )


@dataclass
class DatasetSpec:
    """One dataset of a mixture. ``options`` go to its format's converter (see ``zoo.data.readers``)."""

    name: str
    path: Any
    format: str
    weight: float | None = None
    count: int | None = None
    system_prompt: str | None = None
    media_root: Path | None = None
    url_cache: Path | None = None
    field: str | None = None
    instruction_pool: InstructionPool | None = None
    task: str | None = None
    augment: dict = dataclasses.field(default_factory=dict)
    options: dict = dataclasses.field(default_factory=dict)
    shuffle_buffer: int | None = None

    @classmethod
    def from_dict(cls, entry: dict, base_dir: Path | None = None) -> DatasetSpec:
        """A dataset entry checked field by field (type and range, the dataset named) and its paths found."""
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise DataError(f"mixture dataset entry {str(entry)[:80]!r}: needs a 'name' (a non-empty string)")
        _check_entry(entry, name)
        spec = dict(entry, augment=entry.get("augment") or {}, options=entry.get("options") or {})
        for key in ("path", "media_root", "url_cache", "instruction_pool"):
            spec[key] = _resolve(spec.get(key), base_dir, as_path=key in ("media_root", "url_cache"))
        try:
            list_files(spec["path"])  # every file, folder or glob names something now, not mid-run
        except DataError as error:
            raise DataError(f"mixture dataset {name!r}: {error}") from None
        if spec["instruction_pool"] is not None:
            try:
                spec["instruction_pool"] = InstructionPool.from_spec(
                    spec["instruction_pool"], spec.get("task") or name
                )
            except DataError as error:
                raise DataError(f"mixture dataset {name!r}: {error}") from None
        return cls(**spec)

    def __post_init__(self) -> None:
        """A spec made in Python is checked like one read from a mapping."""
        if not isinstance(self.name, str) or not self.name:
            raise DataError(f"mixture dataset {self.name!r}: needs a 'name' (a non-empty string)")
        entry = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(entry["instruction_pool"], InstructionPool):
            entry["instruction_pool"] = None
        _check_entry(entry, self.name)


def _resolve(value: Any, base_dir: Path | None, as_path: bool = False) -> Any:
    if isinstance(value, list):
        return [_resolve(v, base_dir) for v in value]
    if not isinstance(value, str):
        return value
    path = Path(value).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return path if as_path else str(path)


class Mixture:
    """Datasets mixed by weights or counts; iterate for ``Sample``s and ``Skip``s (see module docstring)."""

    def __init__(
        self,
        datasets: list[DatasetSpec],
        *,
        seed: int = 0,
        num_samples: int | None = None,
        stopping_strategy: str | None = None,
    ) -> None:
        if not isinstance(datasets, list) or not datasets:
            raise DataError("a mixture needs at least one dataset")
        counted = [d.count is not None for d in datasets]
        if any(counted) and not all(counted):
            raise DataError("mixture: give every dataset a 'count', or give them 'weight's; not both kinds")
        if not _is_int(seed):
            raise DataError(f"mixture: 'seed' must be an integer, got {seed!r:.60}")
        if num_samples is not None and not (_is_int(num_samples) and num_samples >= 1):
            raise DataError(f"mixture: 'num_samples' must be an integer >= 1, got {num_samples!r:.60}")
        weighted = any(d.weight is not None for d in datasets)
        if stopping_strategy is None:  # without weights, every dataset is read whole: no record goes unread
            stopping_strategy = "first_exhausted" if weighted else WHOLE
        if stopping_strategy not in STOPPING:
            raise DataError(f"mixture: stopping_strategy must be one of {', '.join(STOPPING)}")
        if weighted and all(counted):
            raise DataError("mixture: give every dataset a 'count', or give them 'weight's; not both kinds")
        if not all(counted) and sum(1.0 if d.weight is None else d.weight for d in datasets) <= 0:
            raise DataError("mixture: the dataset weights sum to zero")
        self.datasets = datasets
        self.seed = seed
        self.num_samples = num_samples
        self.stopping_strategy = stopping_strategy
        self.by_count = all(counted)

    @classmethod
    def from_dict(cls, config: dict, base_dir: str | Path | None = None, seed: int | None = None) -> Mixture:
        """A mixture from its mapping form; relative paths are taken from ``base_dir``.

        ``seed`` (e.g. the run's seed plus the epoch) overrides the mapping's own ``seed``. Every field is
        checked here, before any record is read.
        """
        if not isinstance(config, dict) or not isinstance(config.get("datasets"), list):
            raise DataError("a mixture is a mapping with a 'datasets' list")
        unknown = set(config) - _MIXTURE_KEYS
        if unknown:
            raise DataError(
                f"mixture: unknown keys {sorted(map(str, unknown))} (known: {sorted(_MIXTURE_KEYS)})"
            )
        base = Path(base_dir) if base_dir is not None else None
        specs = [DatasetSpec.from_dict(entry, base) for entry in config["datasets"]]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise DataError(f"mixture: dataset names must be unique, got {names}")
        return cls(
            specs,
            seed=config.get("seed", 0) if seed is None else seed,
            num_samples=config.get("num_samples"),
            stopping_strategy=config.get("stopping_strategy"),
        )

    def reseeded(self, seed: int) -> Mixture:
        """The same datasets and settings with another seed (a new order for another epoch)."""
        return Mixture(
            self.datasets, seed=seed, num_samples=self.num_samples, stopping_strategy=self.stopping_strategy
        )

    @classmethod
    def from_yaml(cls, path: str | Path, seed: int | None = None) -> Mixture:
        """A mixture from a YAML file (aliases bounded, see ``zoo.safe_yaml``); paths relative to its folder."""
        import yaml

        from zoo.safe_yaml import safe_load

        path = Path(path)
        try:
            config = safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise DataError(f"mixture file {str(path)!r}: cannot be read ({error})") from None
        return cls.from_dict(config, base_dir=path.parent, seed=seed)

    def __iter__(self) -> Iterator[Sample | Skip]:
        rng = random.Random(f"{self.seed}:mixture")
        if self.by_count:
            remaining = [spec.count for spec in self.datasets]
            streams = [self._stream(spec, _budget(remaining, i)) for i, spec in enumerate(self.datasets)]
            yield from self._by_count(streams, rng, remaining)
        else:
            streams = [self._stream(spec) for spec in self.datasets]
            yield from self._by_weight(streams, rng)

    def dataset_pass(self, spec: DatasetSpec) -> Iterator[Sample | Skip]:
        """Every record of one dataset once, in file order, with its system prompt and augmentations: what
        evaluation and the data audit read (no counts, weights or repetition)."""
        return self._epoch(spec, 0, None)

    # -- interleaving --------------------------------------------------------------------------------
    def _by_count(self, streams: list[Iterator], rng: random.Random, remaining: list[int]) -> Iterator[Any]:
        """Exactly ``count`` records of each dataset (a concatenated dialog is never cut to fit: it is
        formed within what is left of its dataset's count)."""
        while sum(remaining) > 0:
            i = rng.choices(range(len(streams)), weights=remaining)[0]
            item = next(streams[i])
            if item is _EPOCH_END:
                logger.info(
                    "dataset %r is shorter than its count %d: repeating it",
                    self.datasets[i].name,
                    self.datasets[i].count,
                )
                continue
            remaining[i] -= _records(item)
            yield item

    def _by_weight(self, streams: list[Iterator], rng: random.Random) -> Iterator[Sample | Skip]:
        weights = [1.0 if spec.weight is None else float(spec.weight) for spec in self.datasets]
        exhausted: set[int] = set()
        produced = 0
        whole = self.stopping_strategy == WHOLE
        while self.num_samples is None or produced < self.num_samples:
            if sum(weights) <= 0:
                return
            i = rng.choices(range(len(streams)), weights=weights)[0]
            item = next(streams[i])
            if item is _EPOCH_END:
                exhausted.add(i)
                if whole:
                    weights[i] = 0.0  # read once: never chosen again
                    continue
                if self.num_samples is None and (
                    self.stopping_strategy == "first_exhausted"
                    or len(exhausted) == sum(w > 0 for w in weights)
                ):
                    return
                continue
            produced += 1
            yield item

    # -- one dataset ---------------------------------------------------------------------------------
    def _stream(self, spec: DatasetSpec, budget: Callable[[], int] | None = None) -> Iterator[Any]:
        """The dataset's samples and skips, repeated forever, with ``_EPOCH_END`` after each pass."""
        epoch = 0
        while True:
            count = 0
            for item in self._epoch(spec, epoch, budget):
                count += 1
                yield item
            if count == 0 and (budget is not None or epoch > 0):
                raise DataError(f"dataset {spec.name!r}: {spec.path!r} holds no records")
            yield _EPOCH_END
            epoch += 1

    def _epoch(self, spec: DatasetSpec, epoch: int, budget: Callable[[], int] | None) -> Iterator[Any]:
        items = (
            item if isinstance(item, Skip) else with_system_prompt(item, spec.system_prompt)
            for item in self._converted(spec, epoch)
        )
        concat = spec.augment.get("concat")
        if concat:
            rng = random.Random(f"{self.seed}:{spec.name}:concat:{epoch}")
            items = concat_dialogs(items, rng, budget=budget, **concat)
        yield from items

    def _converted(self, spec: DatasetSpec, epoch: int) -> Iterator[Sample | Skip]:
        records = iter_records(
            spec.path, field=spec.field, shuffle_buffer=spec.shuffle_buffer, seed=self.seed + epoch
        )
        for raw in records:
            if raw.error is not None:
                yield Skip(spec.name, raw.index, None, "read", raw.error, raw.source)
                continue
            try:
                yield self._sample(spec, raw, epoch)
            except DataError as error:
                yield Skip(spec.name, raw.index, _record_id(raw.data), "convert", str(error), raw.source)
            except Exception as error:  # a converter bug must not end the run: the record is listed
                logger.warning(
                    "converter %r failed on %s:%s", spec.format, raw.source, raw.index, exc_info=True
                )
                reason = f"{type(error).__name__} in the {spec.format} converter: {str(error)[:300]}"
                yield Skip(spec.name, raw.index, _record_id(raw.data), "convert", reason, raw.source)

    def _sample(self, spec: DatasetSpec, raw: Any, epoch: int) -> Sample:
        ctx = Context(
            dataset=spec.name,
            index=raw.index,
            source=raw.source,
            media_root=spec.media_root,
            url_cache=spec.url_cache,
            options=dict(spec.options, task=spec.task or spec.name),
            instruction_pool=spec.instruction_pool,
            seed=self.seed,
        )
        sample = convert(raw.data, spec.format, ctx)
        if epoch:
            sample.meta["epoch"] = epoch
        order = spec.augment.get("media_order", "keep")
        p = float(spec.augment.get("media_order_p", 0.5))
        sample.messages = reorder_media(sample.messages, order, ctx.rng("media_order"), p)
        return sample


def _budget(remaining: list[int], i: int) -> Callable[[], int]:
    return lambda: remaining[i]


def _record_id(record: dict) -> str | None:
    value = record.get("id")
    return None if value is None else show_id(value)


def _records(item: Sample | Skip) -> int:
    return 1 if isinstance(item, Skip) else len(item.parts)
