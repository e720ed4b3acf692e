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
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.data.augment import InstructionPool, concat_dialogs, reorder_media, with_system_prompt
from zoo.data.readers import Context, convert, iter_records, reader_for
from zoo.data.schema import Sample, Skip
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
STOPPING = ("first_exhausted", "all_exhausted")
_SPEC_KEYS = {
    "name", "path", "format", "weight", "count", "system_prompt", "media_root", "url_cache", "field",
    "instruction_pool", "task", "augment", "options", "shuffle_buffer",
}  # fmt: skip
_AUGMENT_KEYS = {"media_order", "media_order_p", "concat"}
_EPOCH_END = object()


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
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise DataError(f"mixture dataset entry {entry!r}: needs a 'name'")
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
        if entry.get("path") is None:
            raise DataError(f"mixture dataset {name!r}: needs a 'path' (file, folder, glob or list)")
        augment = entry.get("augment") or {}
        if set(augment) - _AUGMENT_KEYS:
            raise DataError(
                f"mixture dataset {name!r}: unknown augment keys {sorted(set(augment) - _AUGMENT_KEYS)}"
            )
        spec = dict(entry, augment=augment, options=entry.get("options") or {})
        for key in ("path", "media_root", "url_cache", "instruction_pool"):
            spec[key] = _resolve(spec.get(key), base_dir, as_path=key in ("media_root", "url_cache"))
        if spec["instruction_pool"] is not None:
            spec["instruction_pool"] = InstructionPool.from_spec(
                spec["instruction_pool"], spec.get("task") or name
            )
        return cls(**spec)


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
        stopping_strategy: str = "first_exhausted",
    ) -> None:
        if not datasets:
            raise DataError("a mixture needs at least one dataset")
        counted = [d.count is not None for d in datasets]
        if any(counted) and not all(counted):
            raise DataError("mixture: give every dataset a 'count', or give them 'weight's; not both kinds")
        for d in datasets:
            if d.count is not None and (not isinstance(d.count, int) or d.count < 0):
                raise DataError(f"mixture dataset {d.name!r}: 'count' must be a non-negative integer")
            if d.weight is not None and not (isinstance(d.weight, (int, float)) and d.weight >= 0):
                raise DataError(f"mixture dataset {d.name!r}: 'weight' must be a non-negative number")
        if stopping_strategy not in STOPPING:
            raise DataError(f"mixture: stopping_strategy must be one of {', '.join(STOPPING)}")
        self.datasets = datasets
        self.seed = int(seed)
        self.num_samples = num_samples
        self.stopping_strategy = stopping_strategy
        self.by_count = all(counted)

    @classmethod
    def from_dict(cls, config: dict, base_dir: str | Path | None = None, seed: int | None = None) -> Mixture:
        """A mixture from its mapping form; relative paths are taken from ``base_dir``.

        ``seed`` (e.g. the run's seed plus the epoch) overrides the mapping's own ``seed``.
        """
        if not isinstance(config, dict) or not isinstance(config.get("datasets"), list):
            raise DataError("a mixture is a mapping with a 'datasets' list")
        base = Path(base_dir) if base_dir is not None else None
        specs = [DatasetSpec.from_dict(entry, base) for entry in config["datasets"]]
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise DataError(f"mixture: dataset names must be unique, got {names}")
        return cls(
            specs,
            seed=config.get("seed", 0) if seed is None else seed,
            num_samples=config.get("num_samples"),
            stopping_strategy=config.get("stopping_strategy", "first_exhausted"),
        )

    def reseeded(self, seed: int) -> Mixture:
        """The same datasets and settings with another seed (a new order for another epoch)."""
        return Mixture(
            self.datasets, seed=seed, num_samples=self.num_samples, stopping_strategy=self.stopping_strategy
        )

    @classmethod
    def from_yaml(cls, path: str | Path, seed: int | None = None) -> Mixture:
        import yaml

        path = Path(path)
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise DataError(f"mixture file {str(path)!r}: cannot be read ({error})") from None
        return cls.from_dict(config, base_dir=path.parent, seed=seed)

    def __iter__(self) -> Iterator[Sample | Skip]:
        streams = [self._stream(spec) for spec in self.datasets]
        rng = random.Random(f"{self.seed}:mixture")
        yield from self._by_count(streams, rng) if self.by_count else self._by_weight(streams, rng)

    def dataset_pass(self, spec: DatasetSpec) -> Iterator[Sample | Skip]:
        """Every record of one dataset once, in file order, with its system prompt and augmentations: what
        evaluation and the data audit read (no counts, weights or repetition)."""
        return self._epoch(spec, 0)

    # -- interleaving --------------------------------------------------------------------------------
    def _by_count(self, streams: list[Iterator], rng: random.Random) -> Iterator[Sample | Skip]:
        remaining = [spec.count for spec in self.datasets]
        while sum(remaining) > 0:
            i = rng.choices(range(len(streams)), weights=remaining)[0]
            item = next(streams[i])
            if item is _EPOCH_END:
                logger.info(
                    "dataset %r is shorter than its count %d: repeating it",
                    self.datasets[i].name,
                    self.datasets[i].count,
                )
                item = next(streams[i])
            remaining[i] = max(0, remaining[i] - _records(item))
            yield item

    def _by_weight(self, streams: list[Iterator], rng: random.Random) -> Iterator[Sample | Skip]:
        weights = [1.0 if spec.weight is None else float(spec.weight) for spec in self.datasets]
        if sum(weights) <= 0:
            raise DataError("mixture: the dataset weights sum to zero")
        exhausted: set[int] = set()
        produced = 0
        while self.num_samples is None or produced < self.num_samples:
            i = rng.choices(range(len(streams)), weights=weights)[0]
            item = next(streams[i])
            if item is _EPOCH_END:
                exhausted.add(i)
                if self.num_samples is None and (
                    self.stopping_strategy == "first_exhausted"
                    or len(exhausted) == sum(w > 0 for w in weights)
                ):
                    return
                item = next(streams[i])
            produced += 1
            yield item

    # -- one dataset ---------------------------------------------------------------------------------
    def _stream(self, spec: DatasetSpec) -> Iterator[Any]:
        """The dataset's samples and skips, repeated forever, with ``_EPOCH_END`` after each pass."""
        epoch = 0
        while True:
            count = 0
            for item in self._epoch(spec, epoch):
                count += 1
                yield item
            if count == 0:
                raise DataError(f"dataset {spec.name!r}: {spec.path!r} holds no records")
            yield _EPOCH_END
            epoch += 1

    def _epoch(self, spec: DatasetSpec, epoch: int) -> Iterator[Sample | Skip]:
        items = self._converted(spec, epoch)
        concat = spec.augment.get("concat")
        if concat:
            rng = random.Random(f"{self.seed}:{spec.name}:concat:{epoch}")
            items = concat_dialogs(items, rng, **concat)
        for item in items:
            yield item if isinstance(item, Skip) else with_system_prompt(item, spec.system_prompt)

    def _converted(self, spec: DatasetSpec, epoch: int) -> Iterator[Sample | Skip]:
        records = iter_records(
            spec.path, field=spec.field, shuffle_buffer=spec.shuffle_buffer, seed=self.seed + epoch
        )
        order = spec.augment.get("media_order", "keep")
        p = float(spec.augment.get("media_order_p", 0.5))
        for raw in records:
            if raw.error is not None:
                yield Skip(spec.name, raw.index, None, "read", raw.error, raw.source)
                continue
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
            try:
                sample = convert(raw.data, spec.format, ctx)
            except DataError as error:
                yield Skip(spec.name, raw.index, _record_id(raw.data), "convert", str(error), raw.source)
                continue
            if epoch:
                sample.meta["epoch"] = epoch
            sample.messages = reorder_media(sample.messages, order, ctx.rng("media_order"), p)
            yield sample


def _record_id(record: dict) -> str | None:
    value = record.get("id")
    return None if value is None else str(value)


def _records(item: Sample | Skip) -> int:
    return 1 if isinstance(item, Skip) else len(item.parts)
