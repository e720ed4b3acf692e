"""From a mixture to training batches, where every sample read is either used or listed with a reason.

``EncodedDataset`` (a torch ``IterableDataset``) encodes each sample with a ``ZooProcessor`` (decode media,
tokenize, truncate to ``max_length``) and collates batches in the DataLoader workers; a sample that fails
becomes a ``Skip`` instead of an exception. Batch ``k`` is made of the samples at positions
``[k × batch_size, (k + 1) × batch_size)`` of the stream, minus the skipped ones; in distributed training
process ``rank`` of ``world_size`` takes every ``world_size``-th batch, and each DataLoader worker every
``num_workers``-th batch of its process. So each sample is processed exactly once, by one process, and the
batches are the same whatever the number of workers; skips travel to the main process with the batches. ``ZooLoader``
(from ``make_loader``) collects them into a ``SkipLedger``, stops the run with ``FailureRateError`` when
the share of skipped samples passes ``max_failure_rate``, and at the end logs a summary and writes the
list as JSON Lines (``skipped_samples.jsonl`` by default).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch.utils.data

from zoo.data.schema import Sample, Skip
from zoo.errors import DataError, FailureRateError, MediaError, SampleTooLongError, ZooError

logger = logging.getLogger(__name__)

DEFAULT_LEDGER = "skipped_samples.jsonl"


class SkipLedger:
    """Every skipped sample: dataset, index, id, stage (read/convert/decode/length), reason, source file."""

    def __init__(self) -> None:
        self.entries: list[Skip] = []

    def add(self, skip: Skip) -> None:
        self.entries.append(skip)

    def extend(self, skips: Iterable[Skip]) -> None:
        self.entries.extend(skips)

    def __len__(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[tuple[str, str], int]:
        """Skips per ``(dataset, stage)``."""
        return dict(Counter((s.dataset, s.stage) for s in self.entries))

    def write(self, path: str | Path) -> Path:
        """The ledger as JSON Lines, one skipped sample per line (a lone surrogate in an id is written as its
        JSON escape, which reads back the same, instead of failing the write at the end of a run)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", errors="backslashreplace") as f:
            for skip in self.entries:
                f.write(json.dumps(skip.to_dict(), ensure_ascii=False) + "\n")
        return path

    def summary(self, used: int | None = None) -> str:
        """One paragraph: how many were skipped (of how many), per dataset and stage, the commonest reasons."""
        total = f" of {used + len(self)} read" if used is not None else ""
        if not self.entries:
            return f"0 samples skipped{total}"
        per_dataset = Counter(s.dataset for s in self.entries)
        lines = [f"{len(self)} samples skipped{total}:"]
        for dataset, n in sorted(per_dataset.items()):
            stages = Counter(s.stage for s in self.entries if s.dataset == dataset)
            lines.append(f"  {dataset}: {n} ({', '.join(f'{k}: {v}' for k, v in sorted(stages.items()))})")
        reasons = Counter(_reason_kind(s.reason) for s in self.entries).most_common(3)
        lines.append("  commonest reasons: " + "; ".join(f"{r} ×{n}" for r, n in reasons))
        return "\n".join(lines)


def _reason_kind(reason: str) -> str:
    """The reason without the record location, so equal causes group together."""
    text = reason.rsplit("): ", 1)[-1] if reason.startswith("dataset ") else reason
    return text if len(text) <= 100 else text[:97] + "..."


def _stage(error: Exception) -> str:
    if isinstance(error, SampleTooLongError):
        return "length"
    if isinstance(error, MediaError):
        return "decode"
    return "convert" if isinstance(error, DataError) else "decode"


def _worker_share() -> tuple[int, int]:
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class EncodedDataset(torch.utils.data.IterableDataset):
    """Batches of encoded samples, built in whichever process iterates it.

    Yields ``{"batch": collated dict or None, "used": [sample refs], "skipped": [Skip], "index": k}`` for
    each batch ``k`` this process and worker own (see the module docstring): ``batch`` holds the usable
    samples of its ``batch_size`` stream positions, None when none was usable. ``rank``/``world_size``
    share the batches among distributed processes; batches before ``start_batch`` (counted per process)
    are passed over without encoding anything, which is how a resumed run gets back to its position.
    """

    def __init__(
        self,
        processor: Any,
        source: Iterable[Sample | Skip],
        *,
        batch_size: int,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = 8,
        packing: bool = False,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if packing and not max_length:
            raise ValueError("packing needs max_length (the length of a packed row)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.processor = processor
        self.source = source
        self.batch_size = batch_size
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of
        self.packing = packing
        self.rank = rank
        self.world_size = world_size
        self.start_batch = start_batch

    def owns(self, position: int, worker: int, workers: int) -> int | None:
        """This process's batch index of stream ``position`` when this worker builds it, else None."""
        chunk = position // self.batch_size
        if chunk % self.world_size != self.rank:
            return None
        index = chunk // self.world_size
        if index < self.start_batch or (index - self.start_batch) % workers != worker:
            return None
        return index

    def __iter__(self) -> Iterator[dict]:
        worker, workers = _worker_share()
        pending: list[tuple[Any, Sample]] = []
        skipped: list[Skip] = []
        index = None
        for position, item in enumerate(self.source):
            owner = self.owns(position, worker, workers)
            if owner is None:
                continue
            index = owner
            result = item if isinstance(item, Skip) else self.encode(item)
            if isinstance(result, Skip):
                skipped.append(result)
            elif isinstance(result, list):
                skipped += result
            else:
                pending.append((result, item))
            if position % self.batch_size == self.batch_size - 1:
                yield self._emit(pending, skipped, index)
                pending, skipped, index = [], [], None
        if pending or skipped:
            yield self._emit(pending, skipped, index)

    def encode(self, sample: Sample) -> Any:
        """The sample encoded and fit to ``max_length``, or one ``Skip`` per source sample it is made of."""
        try:
            encoded = self.processor.encode(sample.messages)
            return self.processor.truncate(encoded, self.max_length) if self.max_length else encoded
        except Exception as error:  # a bad sample must never end the run; the ledger keeps the reason
            return _skips(sample, error)

    def _emit(self, pending: list[tuple[Any, Sample]], skipped: list[Skip], index: int | None) -> dict:
        batch = None
        if pending:
            try:
                batch = self._collate([encoded for encoded, _ in pending])
            except Exception:  # one sample that cannot join a batch (e.g. media of another shape)
                pending, skipped = self._without_uncollatable(pending, skipped)
                batch = self._collate([encoded for encoded, _ in pending]) if pending else None
        used = [part for _, sample in pending for part in sample.parts]
        return {"batch": batch, "used": used, "skipped": skipped, "index": index}

    def _collate(self, encoded: list) -> dict:
        extra = {"packing": True, "max_length": self.max_length} if self.packing else {}
        return self.processor.collate(
            encoded, padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of, **extra
        )

    def _without_uncollatable(
        self, pending: list[tuple[Any, Sample]], skipped: list[Skip]
    ) -> tuple[list[tuple[Any, Sample]], list[Skip]]:
        """The batch's samples that collate with the first one that collates alone; the others skipped."""
        kept: list[tuple[Any, Sample]] = []
        for encoded, sample in pending:
            try:
                self._collate([e for e, _ in kept] + [encoded])
            except Exception as error:
                skipped = skipped + _skips(sample, error, "cannot be batched with the others: ")
                continue
            kept.append((encoded, sample))
        return kept, skipped


def _skips(sample: Sample, error: Exception, prefix: str = "") -> list[Skip]:
    """One ``Skip`` per source sample of ``sample`` (several for a concatenated dialog)."""
    reason = str(error) if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"
    joined = f" (in concatenated dialog {sample.id!r})" if len(sample.parts) > 1 else ""
    return [
        Skip(p["dataset"], p["index"], p["id"], _stage(error), prefix + reason + joined, p.get("source"))
        for p in sample.parts
    ]


def _identity(item: Any) -> Any:
    return item


class ZooLoader:
    """Iterate for training batches; ``.ledger`` lists what was skipped, ``.used_samples`` what was used.

    Each iteration (epoch) starts a fresh ledger."""

    def __init__(
        self,
        dataset: EncodedDataset,
        *,
        num_workers: int = 2,
        ledger_path: str | Path = DEFAULT_LEDGER,
        max_failure_rate: float = 0.05,
        min_samples: int = 50,
        prefetch_factor: int | None = 2,
    ) -> None:
        self.dataset = dataset
        self.num_workers = num_workers
        self.ledger_path = Path(ledger_path)
        self.max_failure_rate = max_failure_rate
        self.min_samples = min_samples
        self.prefetch_factor = prefetch_factor
        self.ledger = SkipLedger()
        self.used_samples: list[dict] = []

    @property
    def used(self) -> int:
        """Samples used so far (a concatenated dialog counts each of its parts)."""
        return len(self.used_samples)

    @property
    def read(self) -> int:
        """Samples read so far: every one is either used or in the ledger."""
        return self.used + len(self.ledger)

    def __iter__(self) -> Iterator[dict]:
        """Batches of one pass. The ledger is written however the pass ends: at its end, when the loop
        breaks early (the generator is closed), or on an exception or KeyboardInterrupt."""
        self.ledger, self.used_samples = SkipLedger(), []
        options = {"prefetch_factor": self.prefetch_factor} if self.num_workers else {}
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=None, num_workers=self.num_workers, collate_fn=_identity, **options
        )
        completed = False
        try:
            for item in loader:
                self.ledger.extend(item["skipped"])
                self.used_samples += item["used"]
                if self.read >= self.min_samples:
                    self._check_rate()
                if item["batch"] is not None:
                    yield item["batch"]
            completed = True
        finally:
            self._finish(completed)

    def _finish(self, completed: bool) -> None:
        """Log the summary and write the ledger (also an empty one over a previous run's list); the
        failure-rate rule is checked at the end of a completed pass."""
        summary = self.ledger.summary(self.used)
        ending = "" if completed else " (the pass ended early)"
        if len(self.ledger) or self.ledger_path.exists():
            try:
                path = self.ledger.write(self.ledger_path)
            except OSError as error:
                logger.error(
                    "%s%s\nthe list could not be written to %s: %s", summary, ending, self.ledger_path, error
                )
            else:
                log = logger.warning if len(self.ledger) else logger.info
                log("%s%s\nthe list is in %s", summary, ending, path)
        else:
            logger.info("%s%s", summary, ending)
        if completed:
            self._check_rate()

    def _check_rate(self) -> None:
        if not self.read or len(self.ledger) / self.read <= self.max_failure_rate:
            return
        path = self.ledger.write(self.ledger_path)
        rate = len(self.ledger) / self.read
        raise FailureRateError(
            f"{len(self.ledger)} of {self.read} samples ({rate:.1%}) could not be used, above "
            f"max_failure_rate {self.max_failure_rate:.1%}; the skipped samples are listed in {path}\n"
            + self.ledger.summary(self.used)
        )


def as_source(data: Any, seed: int | None = None) -> Iterable[Sample | Skip]:
    """A mixture from a ``Mixture``, a mapping, a YAML path or a list of dataset entries; samples as given.

    ``seed`` overrides the mixture's own seed; None keeps it.
    """
    from zoo.data.mixture import Mixture

    if isinstance(data, Mixture):
        return data if seed is None else data.reseeded(seed)
    if isinstance(data, (str, Path)):
        return Mixture.from_yaml(data, seed=seed)
    if isinstance(data, dict):
        return Mixture.from_dict(data, seed=seed)
    if isinstance(data, list) and data and all(isinstance(x, dict) and "format" in x for x in data):
        return Mixture.from_dict({"datasets": data}, seed=seed)
    if isinstance(data, Iterable):
        return data
    raise DataError(
        f"cannot make samples from {type(data).__name__}: give a Mixture, a mapping, a YAML path or samples"
    )


def make_loader(
    processor: Any,
    mixture_or_datasets: Any,
    batch_size: int,
    num_workers: int = 2,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = 8,
    packing: bool = False,
    seed: int | None = None,
    *,
    output_dir: str | Path | None = None,
    ledger_path: str | Path | None = None,
    max_failure_rate: float = 0.05,
    min_samples: int = 50,
    rank: int = 0,
    world_size: int = 1,
) -> ZooLoader:
    """A loader of training batches (``processor.collate`` output) over a mixture, with a skip ledger.

    ``seed`` overrides the mixture's own seed (pass ``base_seed + epoch`` for a new order each epoch).
    ``max_length`` defaults to the recipe's ``max_length`` (carried by a processor made with
    ``ZooProcessor.from_model``); samples longer than it are truncated without cutting media blocks.

    The ledger is written to ``ledger_path`` (default ``<output_dir or .>/skipped_samples.jsonl``) when a
    sample was skipped; ``FailureRateError`` stops the run once at least ``min_samples`` were read and
    more than ``max_failure_rate`` of them were skipped, and again at the end.

    In distributed data-parallel training give each process its ``rank`` and the ``world_size``: each
    reads a disjoint share of the batches (no sample twice, none lost).
    """
    if max_length is None:  # the recipe's sequence budget, when the processor came from a recipe's model
        max_length = getattr(processor, "max_length", None)
    dataset = EncodedDataset(
        processor,
        as_source(mixture_or_datasets, seed=seed),
        batch_size=batch_size,
        max_length=max_length,
        pad_to_multiple_of=pad_to_multiple_of,
        packing=packing,
        rank=rank,
        world_size=world_size,
    )
    path = Path(ledger_path) if ledger_path is not None else Path(output_dir or ".") / DEFAULT_LEDGER
    return ZooLoader(
        dataset,
        num_workers=num_workers,
        ledger_path=path,
        max_failure_rate=max_failure_rate,
        min_samples=min_samples,
    )
