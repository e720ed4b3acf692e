"""The canonical sample every reader produces, the record of a skipped one, and message validation.

A ``Sample`` holds one conversation in the processor's S3-style form: a list of messages
``{"role": user|assistant|system, "type": text|image|video|audio, "content": ...}``. A ``Skip`` records a
sample that could not be used (which dataset, its position and id, the stage that failed and why), so
that every sample read is either trained on or listed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from zoo.errors import DataError

ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "bot": "assistant",
    "gpt": "assistant",
    "system": "system",
}
TYPES = ("text", "image", "video", "audio")
STAGES = ("read", "convert", "decode", "length")
# A lone UTF-16 surrogate: JSON can spell one ("\udce9") and Python keeps it, but it is not Unicode text,
# so no UTF-8 file or tokenizer takes it.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass
class Sample:
    """One conversation of a dataset, ready for ``ZooProcessor.encode(sample.messages)``."""

    id: str
    dataset: str
    index: int
    messages: list[dict]
    meta: dict = field(default_factory=dict)

    @property
    def parts(self) -> list[dict]:
        """The source samples this one is made of (several after dialog concatenation)."""
        return self.meta.get("parts") or [self.ref()]

    def ref(self) -> dict:
        return {
            "dataset": self.dataset,
            "index": self.index,
            "id": self.id,
            "source": self.meta.get("source"),
        }


@dataclass
class Skip:
    """A sample that was not used: where it came from, the stage that failed and the reason."""

    dataset: str
    index: int | None
    id: str | None
    stage: str
    reason: str
    source: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def where(dataset: str, index: int | None, sample_id: Any = None) -> str:
    """``dataset 'x', record 3 (id 'abc')``: the location used in every data error message."""
    text = f"dataset {dataset!r}, record {index}"
    return text + (f" (id {show_id(sample_id)!r})" if sample_id is not None else "")


def show_id(sample_id: Any) -> str:
    """A record's id as text: strings and integers as they are (long ones cut), anything else by its type."""
    if isinstance(sample_id, str):
        return sample_id if len(sample_id) <= 200 else sample_id[:200] + "…"
    if isinstance(sample_id, int) and not isinstance(sample_id, bool) and abs(sample_id) < 10**200:
        return str(sample_id)
    return f"<{type(sample_id).__name__} id>"


def unicode_problem(text: str) -> str | None:
    """What makes ``text`` invalid Unicode (its first lone surrogate), as the end of a sentence, or None."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return (
        f"is not valid Unicode: a lone surrogate U+{ord(found.group()):04X} at character {found.start()} "
        "(a byte that was not UTF-8, or half of a JSON \\ud83d\\ude00-style pair); fix the text's encoding"
    )


def validate_messages(
    messages: Any, *, dataset: str, index: int, sample_id: Any = None, require_response: bool = True
) -> list[dict]:
    """Check a message list and return it normalised (role aliases mapped, ``text`` → ``content``).

    Raises ``DataError`` naming the dataset, the record and the field that is wrong.
    """
    here = where(dataset, index, sample_id)
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{here}: 'messages' must be a non-empty list, got {_kind(messages)}")
    out = [_validate_message(m, i, here) for i, m in enumerate(messages)]
    if require_response and not any(m["role"] == "assistant" and m["type"] == "text" for m in out):
        raise DataError(f"{here}: no assistant text message, so the sample has no response to learn from")
    return out


def _validate_message(message: Any, i: int, here: str) -> dict:
    if not isinstance(message, dict):
        raise DataError(f"{here}: message {i} must be a mapping, got {_kind(message)}")
    role = ROLES.get(str(message.get("role", "")).lower())
    if role is None:
        raise DataError(
            f"{here}: message {i} field 'role' is {message.get('role')!r} (use user, assistant, system)"
        )
    kind = str(message.get("type") or "text").lower()
    if kind not in TYPES:
        raise DataError(f"{here}: message {i} field 'type' is {kind!r} (use one of {', '.join(TYPES)})")
    content = message.get("content", message.get("text"))
    if content is None or (isinstance(content, (str, list, dict, bytes)) and not content):
        raise DataError(f"{here}: message {i} ({kind}) has no 'content' (or S3-style 'text')")
    if kind == "text" and not isinstance(content, str):
        raise DataError(
            f"{here}: message {i} field 'content' must be a string for text, got {_kind(content)}"
        )
    if kind == "text" and (problem := unicode_problem(content)):
        raise DataError(f"{here}: message {i} field 'content' {problem}")
    if kind == "video" and isinstance(content, dict):
        _validate_shots(content, f"{here}: message {i}")
    return {"role": role, "type": kind, "content": content}


def _validate_shots(content: dict, here: str) -> None:
    shots = content.get("shots")
    if not isinstance(shots, list) or not shots:
        raise DataError(f"{here}: shot-structured video needs a non-empty 'shots' list, got {_kind(shots)}")
    for s, shot in enumerate(shots):
        if isinstance(shot, dict):
            start, end = shot.get("start"), shot.get("end")
            if not shot.get("video") or not _is_seconds(start) or not _is_seconds(end) or not start < end:
                raise DataError(
                    f"{here}: shot {s} must be {{'video': path, 'start': s, 'end': e}} with start < end, got {shot!r}"
                )
        elif not isinstance(shot, (str, list)) or not shot:
            raise DataError(
                f"{here}: shot {s} must be a list of frames, a folder or a time range, got {_kind(shot)}"
            )
    asr = content.get("asr")
    if asr is not None and not isinstance(asr, str):
        raise DataError(f"{here}: 'asr' must be a string or null, got {_kind(asr)}")
    if asr and (problem := unicode_problem(asr)):
        raise DataError(f"{here}: 'asr' {problem}")


def _is_seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and abs(value) < 1e15  # also keeps a huge int from overflowing a float later
        and math.isfinite(value)
        and value >= 0
    )


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, (list, dict, str)) and not value:
        return f"an empty {type(value).__name__}"
    return type(value).__name__
