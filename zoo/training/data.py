"""The training data: ``--data`` into a mixture, a check before the first step, and the batches Trainer reads.

``DATA`` is a mixture YAML, a mixture mapping or ``Mixture``, or a dataset file / folder / glob in one of
the landed formats (told by ``data_format`` or guessed from the first record). A bare dataset is shuffled
with a buffer of ``SHUFFLE_BUFFER`` records, seeded by the run's seed and the epoch.

The run reads one stream: epoch 0 of the mixture (seed ``seed``), then epoch 1 (seed ``seed + 1``), and
so on; ``epochs`` counts passes of epoch 0's length, so a step may hold the last samples of one epoch and
the first of the next. Global batch ``s`` is stream positions ``[s × B, (s + 1) × B)``, split into
per-device batches over accumulation steps and processes (``zoo.data.pipeline.EncodedDataset``), so the
data position of a checkpoint is its step number: a resumed run passes over the earlier positions
without encoding them.
"""

from __future__ import annotations

import itertools
import logging
import signal
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.pipeline import EncodedDataset, ZooLoader, _identity
from zoo.data.schema import Sample, Skip
from zoo.errors import DataError, TrainingError

log = logging.getLogger("zoo.training")

SHUFFLE_BUFFER = 10_000
MEDIA_TYPES = ("image", "video", "audio")
PROBE_SAMPLES = 32  # samples tried before the first step to find one the processor can encode


# --- what DATA names ---------------------------------------------------------------------------------------


def guess_format(path: str | Path) -> str:
    """The reader format of a dataset file or folder, from the keys of its first readable record."""
    from zoo.data.readers import iter_records

    for record in itertools.islice(iter_records(path), 50):
        if record.data is None:
            continue
        keys = set(record.data)
        found = _format_of(keys)
        if found is None:
            raise DataError(
                f"data {str(path)!r}: cannot tell its format from the first record's keys {sorted(keys)}; "
                "give it with --data-format (s3, m3it, macaw, llava, shots) or write a mixture YAML"
            )
        return found
    raise DataError(f"data {str(path)!r}: holds no readable record")


def _format_of(keys: set[str]) -> str | None:
    if "messages" in keys:
        return "s3"
    if "conversations" in keys:
        return "llava"
    if "shots" in keys:
        return "shots"
    if "instruction" in keys and "outputs" in keys:
        return "m3it"
    if "instruction" in keys and "response" in keys:
        return "macaw"
    return None


def as_mixture(data: Any, data_format: str | None = None) -> Any:
    """A ``Mixture`` from a mixture YAML / mapping / ``Mixture``, or from one dataset file or folder."""
    from zoo.data.mixture import Mixture

    if isinstance(data, Mixture):
        return data
    if isinstance(data, dict):
        return Mixture.from_dict(data)
    if not isinstance(data, (str, Path)):
        raise TrainingError(
            f"data {data!r}: give a mixture YAML, a dataset file or folder, a mixture mapping or a Mixture"
        )
    path = Path(data)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise DataError(f"mixture file {str(path)!r} does not exist")
        return Mixture.from_yaml(path)
    fmt = data_format or guess_format(path)
    name = path.stem if path.is_file() else path.name or "data"
    entry = {"name": name, "path": str(path), "format": fmt, "shuffle_buffer": SHUFFLE_BUFFER}
    return Mixture.from_dict({"datasets": [entry]})


def describe(data: Any) -> str:
    """How a data argument is named in messages and in the report."""
    if isinstance(data, (str, Path)):
        return str(data)
    names = [d.name for d in getattr(data, "datasets", [])]
    return f"mixture of {', '.join(names)}" if names else type(data).__name__


# --- the stream of samples ------------------------------------------------------------------------------


class EpochStream:
    """Epoch 0, 1, 2, ... of a mixture, each reseeded with ``seed + epoch``; endless."""

    def __init__(self, mixture: Any, seed: int) -> None:
        self.mixture = mixture
        self.seed = seed

    def epoch(self, number: int) -> Iterable[Sample | Skip]:
        return self.mixture.reseeded(self.seed + number)

    def __iter__(self) -> Iterator[Sample | Skip]:
        for number in itertools.count():
            yield from self.epoch(number)


@dataclass
class DataCheck:
    """What the check before the first step found in epoch 0 of the data."""

    positions: int  # samples and skips: the stream positions of one epoch
    samples: int
    skipped: int
    modalities: Counter = field(default_factory=Counter)
    first: list = field(default_factory=list)  # the first samples, to find one the processor can encode


def scan_data(stream: EpochStream, modalities: Iterable[str], label: str) -> DataCheck:
    """Read epoch 0 (records only, no media decoded): count it and check its media types against the
    recipe's encoders. Errors name the data (``label``)."""
    check = DataCheck(0, 0, 0)
    examples: dict[str, str] = {}
    reasons: list[str] = []
    for item in stream.epoch(0):
        check.positions += 1
        if isinstance(item, Skip):
            check.skipped += 1
            if len(reasons) < 3:
                reasons.append(f"{item.dataset} record {item.index}: {item.reason}")
            continue
        check.samples += 1
        if len(check.first) < PROBE_SAMPLES:
            check.first.append(item)
        for kind in {m.get("type") for m in item.messages} & set(MEDIA_TYPES):
            check.modalities[kind] += 1
            examples.setdefault(kind, f"dataset {item.dataset!r} record {item.index} (id {item.id!r})")
    if check.samples == 0:
        detail = f": {'; '.join(reasons)}" if reasons else ""
        raise DataError(
            f"data {label}: no usable sample ({check.positions} records read, all skipped){detail}"
        )
    _check_modalities(check.modalities, examples, set(modalities), label)
    return check


def _check_modalities(found: Counter, examples: dict, modalities: set[str], label: str) -> None:
    missing = sorted(set(found) - modalities)
    if missing:
        kinds = ", ".join(f"{found[k]} {k} samples (e.g. {examples[k]})" for k in missing)
        have = ", ".join(sorted(modalities)) or "no media"
        raise TrainingError(
            f"data {label} has {kinds}, but the recipe has encoders only for {have}; "
            "choose a recipe with an encoder for them or leave those samples out of the data"
        )


def probe_sample(samples: list[Sample], processor: Any, label: str) -> Any:
    """The first of ``samples`` the processor can encode (and fit to its length); an error naming the
    data and the reasons when none can be used."""
    reasons = []
    max_length = getattr(processor, "max_length", None)
    for sample in samples:
        try:
            encoded = processor.encode(sample.messages)
            return processor.truncate(encoded, max_length) if max_length else encoded
        except Exception as error:  # the same failures the loader lists in its ledger
            reasons.append(f"{sample.dataset} record {sample.index} (id {sample.id!r}): {error}")
    shown = "; ".join(reasons[:3])
    raise DataError(f"data {label}: none of the first {len(samples)} samples can be used: {shown}")


# --- the batches Trainer reads --------------------------------------------------------------------------


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which saves a checkpoint and stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class TrainBatches(ZooLoader):
    """The per-device batches of one process, from ``start_batch`` on, each with its ``sample_ids``.

    A batch position whose samples were all skipped yields the probe sample with every label ignored, so
    every process still runs each step (the loss counts no token of it). ``.ledger`` and ``.used_samples``
    accumulate over the whole stage.
    """

    def __init__(self, dataset: EncodedDataset, probe: Any, seed: int, **options: Any) -> None:
        super().__init__(dataset, **options)
        self.probe = probe
        self.seed = seed

    def __iter__(self) -> Iterator[dict]:
        import torch

        options = (
            {"prefetch_factor": self.prefetch_factor, "worker_init_fn": _ignore_sigint}
            if self.num_workers
            else {}
        )
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_identity,
            generator=torch.Generator().manual_seed(self.seed),  # leaves the global RNG alone
            **options,
        )
        for item in loader:
            self.ledger.extend(item["skipped"])
            self.used_samples += item["used"]
            if self.read >= self.min_samples:
                self._check_rate()
            batch = item["batch"] if item["batch"] is not None else self.empty_batch()
            ids = [_sample_name(ref) for ref in item["used"]]
            yield {**batch, "sample_ids": ids}

    def empty_batch(self) -> dict:
        """A batch of the probe sample that trains on nothing (every label ignored)."""
        batch = self.dataset.processor.collate(
            [self.probe], padding_side="right", pad_to_multiple_of=self.dataset.pad_to_multiple_of
        )
        batch["labels"].fill_(-100)
        return batch


def _sample_name(ref: dict) -> str:
    key = ref.get("id") if ref.get("id") is not None else f"#{ref.get('index')}"
    return f"{ref.get('dataset')}:{key}"
