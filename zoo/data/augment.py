"""S3's data augmentations and M3IT's instruction pools, as options of a dataset in a mixture.

- ``reorder_media``: within each user turn, put the media before or after the question (S3 "randomised
  the order of questions and corresponding images"), always, never, or at random with probability ``p``.
- ``concat_dialogs``: join several short dialogs of one dataset into one longer dialog (S3 "randomly
  combined several short dialogs into extended sequences"), up to ``max_dialogs`` and ``max_messages``.
- ``InstructionPool``: M3IT's "we randomly select an instruction from the task instruction pool for each
  instance"; the pool is a list or a JSON file mapping task → list of instructions.

Every random choice comes from a generator seeded by the mixture's seed and the sample's identity (or, for
concatenation, by the seed and the dataset), so the same seed gives the same data in any worker layout.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from zoo.data.schema import Sample, Skip
from zoo.errors import DataError

MEDIA_ORDERS = ("keep", "before", "after", "random")


class InstructionPool:
    """Instructions per task; ``choose(task, rng)`` picks one at random."""

    def __init__(self, pools: dict[str, list[str]]) -> None:
        for task, pool in pools.items():
            if (
                not isinstance(pool, list)
                or not pool
                or not all(isinstance(x, str) and x.strip() for x in pool)
            ):
                raise DataError(f"instruction pool for task {task!r} must be a non-empty list of strings")
        self.pools = pools

    @classmethod
    def from_spec(cls, spec: Any, task: str) -> InstructionPool:
        """A pool from a list (for ``task``), a mapping task → list, or a JSON file holding either."""
        if isinstance(spec, (str, Path)):
            path = Path(spec)
            try:
                spec = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as error:
                raise DataError(f"instruction pool file {str(path)!r}: cannot be read ({error})") from None
        if isinstance(spec, list):
            spec = {task: spec}
        if not isinstance(spec, dict):
            raise DataError(
                f"instruction pool must be a list, a mapping or a JSON file, got {type(spec).__name__}"
            )
        return cls(spec)

    def choose(self, task: str, rng: random.Random) -> str:
        pool = self.pools.get(task)
        if pool is None:
            raise DataError(
                f"instruction pool has no task {task!r} (it has: {', '.join(sorted(self.pools))})"
            )
        return rng.choice(pool)


def reorder_media(messages: list[dict], order: str, rng: random.Random, p: float = 0.5) -> list[dict]:
    """Messages with the media of each user turn moved before or after its text, keeping relative order."""
    if order not in MEDIA_ORDERS:
        raise DataError(f"media_order {order!r}: use one of {', '.join(MEDIA_ORDERS)}")
    if order == "keep":
        return messages
    out: list[dict] = []
    for turn in _turns(messages):
        if turn[0]["role"] != "user":
            out += turn
            continue
        after = order == "after" or (order == "random" and rng.random() < p)
        media = [m for m in turn if m["type"] != "text"]
        text = [m for m in turn if m["type"] == "text"]
        out += text + media if after else media + text
    return out


def _turns(messages: list[dict]) -> list[list[dict]]:
    turns: list[list[dict]] = []
    for message in messages:
        if turns and turns[-1][0]["role"] == message["role"]:
            turns[-1].append(message)
        else:
            turns.append([message])
    return turns


def concat_dialogs(
    items: Iterable[Sample | Skip],
    rng: random.Random,
    *,
    max_dialogs: int = 3,
    p: float = 0.5,
    max_messages: int | None = None,
    budget: Callable[[], int] | None = None,
) -> Iterator[Sample | Skip]:
    """Samples with, at probability ``p``, the next 2..``max_dialogs`` dialogs joined into one; skips pass.

    Only dialogs with the same system prompt are joined (the joined dialog keeps it, once, first), so no
    record loses its own prompt. ``budget`` (records its dataset may still give, read before each group)
    keeps a group within a mixture's count: a skip that passes while a group forms uses one record of it.
    """
    if max_dialogs < 2:
        yield from items
        return
    group: list[Sample] = []
    target = allowed = 1
    for item in items:
        if isinstance(item, Skip):
            yield item
            allowed -= 1
            if group and len(group) >= allowed:
                yield join_dialogs(group)
                group = []
            continue
        fits = (
            max_messages is None or sum(len(s.messages) for s in group) + len(item.messages) <= max_messages
        )
        if group and (not fits or _system(item) != _system(group[0])):
            yield join_dialogs(group)
            group = []
        if not group:
            target = rng.randint(2, max_dialogs) if rng.random() < p else 1
            allowed = budget() if budget is not None else target
        group.append(item)
        if len(group) >= min(target, allowed):
            yield join_dialogs(group)
            group = []
    if group:
        yield join_dialogs(group)


def _system(sample: Sample) -> list[Any]:
    return [m["content"] for m in sample.messages if m["role"] == "system"]


def join_dialogs(samples: list[Sample]) -> Sample:
    """One sample whose messages are the dialogs in order, under their (common) system prompt, once;
    ``meta["parts"]`` lists the originals."""
    if len(samples) == 1:
        return samples[0]
    first = samples[0]
    system = [m for m in first.messages if m["role"] == "system"]
    messages = system + [m for s in samples for m in s.messages if m["role"] != "system"]
    parts = [part for s in samples for part in s.parts]
    meta = {"source": first.meta.get("source"), "parts": parts}
    return Sample(
        id="+".join(s.id for s in samples),
        dataset=first.dataset,
        index=first.index,
        messages=messages,
        meta=meta,
    )


def with_system_prompt(sample: Sample, prompt: str | None) -> Sample:
    """The sample with one system message first (replacing any it had), as S3 does per dataset."""
    if not prompt:
        return sample
    messages = [m for m in sample.messages if m["role"] != "system"]
    sample.messages = [{"role": "system", "type": "text", "content": prompt}] + messages
    return sample
