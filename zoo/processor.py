"""Turn conversations with media into model inputs: token ids, attention mask, labels and media tensors.

A conversation is an S3-style list of messages ``{"role", "type", "content"}`` (``text`` is accepted for
``content``, as in S3's JSON). ``type`` is ``text`` or a modality the model has an encoder for; media
content is a path, URL cached locally, base64 string, bytes or an in-memory object. A video may also be
shot-structured (Shot2Story): ``{"shots": [shot, ...], "asr": text}``, each shot one video item whose
block is preceded by its index ("Shot 1: "), the ASR text added to the prompt ("The audio transcripts
are: {asr}."). Consecutive messages of one role form one turn. The backbone's chat template lays out the
turns; each media item is expanded into exactly as many placeholder tokens as its projector emits,
wrapped in the recipe's boundary tokens, where the message put it (``media_position: inline``) or right
after BOS (``after_bos``, Macaw-LLM). Labels keep only the assistant's response tokens (others -100).

``truncate`` cuts text, never a media block; ``collate`` pads (optionally to a multiple of 8) or packs
several samples per row with ``position_ids`` restarting at 0, which transformers' mask creation turns
into attention that never crosses samples.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import ProcessorMixin

from zoo.data.schema import unicode_problem
from zoo.errors import DataError, IncompatibleComponentsError, MediaError, RecipeError, SampleTooLongError
from zoo.media import describe, load_audio, load_image, load_video

IGNORE_INDEX = -100
MEDIA_POSITIONS = ("inline", "after_bos")
SHOT_LABEL = "Shot {index}: "
ASR_TEMPLATE = "The audio transcripts are: {asr}."
ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class MediaLayout:
    """How one modality appears in the token stream and how a raw item becomes tensors.

    ``prepare`` maps one media item to a list of tensors, one per media block: usually one, several for
    an audio clip that the encoder splits into 30 s windows.
    """

    placeholder: str
    placeholder_id: int
    start_id: int | None  # None: the recipe puts no boundary token there (LLaVA-1.5)
    end_id: int | None
    tokens_per_item: int
    prepare: Callable[[Any], list[torch.Tensor]]


@dataclass
class EncodedConversation:
    """One tokenised conversation; ``blocks`` are the ``[start, stop)`` spans of its media blocks (with any
    shot label in front), which truncation never cuts."""

    input_ids: list[int]
    labels: list[int]
    media: list[tuple[str, torch.Tensor]]
    blocks: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def media_tokens(self) -> int:
        return sum(stop - start for start, stop in self.blocks)


@dataclass
class _Item:
    modality: str
    tensor: torch.Tensor
    label: str | None = None  # text put in front of the block (a shot's index)


class ZooProcessor(ProcessorMixin):
    """Conversation → ``input_ids``, ``attention_mask``, ``labels`` and ``media`` for a ``ZooModel``.

    A transformers processor: ``save_pretrained`` writes the tokenizer (with the recipe tokens), the chat
    template and ``processor_config.json``; ``from_pretrained`` / ``AutoProcessor.from_pretrained`` (after
    ``import zoo``) read them back. ``media`` is the JSON-able layout of each modality: its tokens and their
    ids, the placeholders per item, and the encoder's component spec. A processor made by ``from_model``
    uses the model's own encoders for preprocessing; one loaded from a folder builds each encoder from its
    spec on the meta device (its preprocessing, no weights), on first use.
    """

    def __init__(
        self,
        tokenizer: Any,
        media: dict[str, dict] | None = None,
        chat_template: str | None = None,
        media_position: str = "inline",
        shot_label: str = SHOT_LABEL,
        asr_template: str = ASR_TEMPLATE,
        packing_error: str | None = None,
        merge_messages: bool = True,
        max_length: int | None = None,
        reserved_tokens: Sequence[str] | None = None,
    ) -> None:
        if media_position not in MEDIA_POSITIONS:
            raise RecipeError(f"media_position must be one of {MEDIA_POSITIONS}, got {media_position!r}")
        super().__init__(tokenizer, chat_template=chat_template or getattr(tokenizer, "chat_template", None))
        self.media = {m: dict(layout) for m, layout in (media or {}).items()}
        for modality, layout in self.media.items():
            _check_media_layout(tokenizer, modality, layout)
        self.media_position = media_position
        self.shot_label = shot_label
        self.asr_template = asr_template
        self.packing_error = packing_error
        self.merge_messages = merge_messages
        self.max_length = max_length  # the recipe's sequence budget: the loader's default length limit
        self._preparers = _Preparers()
        if reserved_tokens is None:  # the tokens of the media layouts: placeholders and boundaries
            keys = ("placeholder_id", "start_id", "end_id")
            ids = [layout.get(key) for layout in self.media.values() for key in keys]
            reserved_tokens = tokenizer.convert_ids_to_tokens([i for i in ids if i is not None])
        # Text may not contain a recipe token: the tokenizer would read it as that token (a boundary with no
        # media, a placeholder with no item, a role marker), so such a message is refused, naming the token.
        self.reserved_tokens = sorted({t for t in reserved_tokens if t}, key=len, reverse=True)

    @classmethod
    def from_model(cls, model: Any, **options: Any) -> ZooProcessor:
        """The processor matching ``model``'s tokenizer, encoders, projectors and ``media_position``."""
        tokenizer = model.tokenizer
        ids = model.config.token_ids
        media = {}
        for modality in model.encoders:
            tokens = model.config.media_tokens[modality]
            media[modality] = {
                **tokens,
                "placeholder_id": ids[tokens["placeholder"]],
                "start_id": ids[tokens["start"]] if tokens["start"] else None,
                "end_id": ids[tokens["end"]] if tokens["end"] else None,
                "tokens_per_item": model.tokens_per_item(modality),
                "encoder": standalone_encoder_spec(model.config.encoders, modality),
            }
        options.setdefault("media_position", getattr(model.config, "media_position", None) or "inline")
        options.setdefault("packing_error", packing_unsupported(model))
        options.setdefault("merge_messages", getattr(model.config, "merge_messages", True))
        options.setdefault("max_length", default_max_length(model))
        options.setdefault("reserved_tokens", model.config.added_tokens())
        processor = cls(tokenizer, media, **options)
        processor._preparers.update({m: _preparer(m, e) for m, e in model.encoders.items()})
        return processor

    @property
    def layouts(self) -> dict[str, MediaLayout]:
        """Each modality's token layout and preparation (preprocessing built from the spec on first use)."""
        cached = self._preparers.layouts
        if cached is None:
            cached = {m: self._layout(m, layout) for m, layout in self.media.items()}
            self._preparers.layouts = cached
        return cached

    def _layout(self, modality: str, layout: dict) -> MediaLayout:
        prepare = self._preparers.get(modality)
        if prepare is None:
            prepare = _lazy_preparer(modality, layout["encoder"], self._preparers)
        return MediaLayout(
            placeholder=layout["placeholder"],
            placeholder_id=layout["placeholder_id"],
            start_id=layout.get("start_id"),
            end_id=layout.get("end_id"),
            tokens_per_item=layout["tokens_per_item"],
            prepare=prepare,
        )

    # -- public ---------------------------------------------------------------------------------------
    def __call__(
        self,
        conversations: Sequence[dict] | Sequence[Sequence[dict]],
        *,
        add_generation_prompt: bool = False,
        padding_side: str | None = None,
        pad_to_multiple_of: int | None = None,
        max_length: int | None = None,
    ) -> dict[str, Any]:
        """Encode one conversation or a batch of them into padded tensors."""
        batch = [conversations] if conversations and isinstance(conversations[0], dict) else conversations
        encoded = [self.encode(conv, add_generation_prompt=add_generation_prompt) for conv in batch]
        side = padding_side or ("left" if add_generation_prompt else "right")
        return self.collate(
            encoded, padding_side=side, pad_to_multiple_of=pad_to_multiple_of, max_length=max_length
        )

    def encode(
        self, conversation: Sequence[dict], add_generation_prompt: bool = False
    ) -> EncodedConversation:
        """Token ids, labels (responses only) and prepared media items of one conversation."""
        if isinstance(conversation, (str, bytes, dict)) or not isinstance(conversation, Sequence):
            raise DataError(f"a conversation is a list of messages, got {type(conversation).__name__}")
        if not conversation:
            raise DataError("the conversation has no messages")
        turns, items = self._turns(conversation)
        _check_turn_order(turns)
        ids, labels = self._tokenize_turns(turns, add_generation_prompt)
        encoded = self._expand_media(ids, labels, items)
        return self._media_after_bos(encoded) if self.media_position == "after_bos" else encoded

    def truncate(
        self, encoded: EncodedConversation, max_length: int, min_response_tokens: int = 1
    ) -> EncodedConversation:
        """Cut text tokens from the end until the sample fits ``max_length``, skipping over media blocks.

        Media blocks (and a leading BOS) are never cut and no media item is dropped. Raises
        ``SampleTooLongError`` when those alone exceed ``max_length``, or when a sample that had response
        tokens would keep fewer than ``min_response_tokens`` of them (it would train on nothing).
        """
        length = len(encoded.input_ids)
        if length <= max_length:
            return encoded
        required = self._required_positions(encoded)
        if len(required) > max_length:
            raise SampleTooLongError(
                f"sample of {length} tokens does not fit max_length={max_length} even without text: its "
                f"{len(encoded.blocks)} media blocks take {encoded.media_tokens} tokens (+"
                f"{len(required) - encoded.media_tokens} required)"
            )
        keep = _keep_positions(length, required, length - max_length)
        labels = [encoded.labels[i] for i in keep]
        had = sum(label != IGNORE_INDEX for label in encoded.labels)
        kept = sum(label != IGNORE_INDEX for label in labels)
        if had and kept < min_response_tokens:
            raise SampleTooLongError(
                f"sample of {length} tokens cut to max_length={max_length} would keep {kept} of its {had} "
                f"response tokens (media blocks take {encoded.media_tokens} tokens)"
            )
        new_index = {old: new for new, old in enumerate(keep)}
        blocks = [(new_index[start], new_index[stop - 1] + 1) for start, stop in encoded.blocks]
        return EncodedConversation([encoded.input_ids[i] for i in keep], labels, list(encoded.media), blocks)

    def collate(
        self,
        encoded: list[EncodedConversation],
        padding_side: str = "right",
        pad_to_multiple_of: int | None = None,
        packing: bool = False,
        max_length: int | None = None,
    ) -> dict[str, Any]:
        """Pad encoded conversations into one batch; media stacked per modality in reading order.

        With ``max_length`` every sample is first truncated to it. With ``packing`` samples are placed
        first-fit into rows of at most ``max_length`` tokens, ``position_ids`` restart at 0 for each
        sample and there is no ``attention_mask``: transformers then builds attention that never crosses
        samples (sdpa, eager and flash attention alike); ``ZooModel`` runs packed rows without a KV cache.
        """
        if not encoded:
            raise DataError("collate: the batch holds no samples")
        if padding_side not in ("left", "right"):
            raise DataError(f"collate: padding_side must be 'left' or 'right', got {padding_side!r}")
        if max_length is not None:
            encoded = [self.truncate(e, max_length) for e in encoded]
        if packing:
            return self._pack(encoded, max_length, pad_to_multiple_of)
        length = _round_up(max(len(e.input_ids) for e in encoded), pad_to_multiple_of)
        rows = [_pad(e, length, self.pad_id, padding_side) for e in encoded]
        return {
            "input_ids": torch.tensor([r[0] for r in rows]),
            "attention_mask": torch.tensor([r[1] for r in rows]),
            "labels": torch.tensor([r[2] for r in rows]),
            "media": _stack_media(encoded),
        }

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    @property
    def pad_id(self) -> int:
        pad_id = self.tokenizer.pad_token_id
        return self.tokenizer.eos_token_id if pad_id is None else pad_id

    # -- packing --------------------------------------------------------------------------------------
    def _pack(
        self, encoded: list[EncodedConversation], max_length: int | None, pad_to_multiple_of: int | None
    ) -> dict[str, Any]:
        if self.packing_error:
            raise IncompatibleComponentsError(f"packing is not supported: {self.packing_error}")
        if max_length is None:
            raise DataError("collate: packing needs max_length (the length of a packed row)")
        rows = _first_fit(encoded, max_length)
        length = _round_up(max(sum(len(e.input_ids) for e in row) for row in rows), pad_to_multiple_of)
        ids, labels, positions = zip(*(self._packed_row(row, length) for row in rows), strict=True)
        ordered = [e for row in rows for e in row]  # reading order of the packed rows
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "position_ids": torch.tensor(positions),
            "media": _stack_media(ordered),
        }

    def _packed_row(self, row: list[EncodedConversation], length: int) -> tuple[list, list, list]:
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for e in row:
            ids += e.input_ids
            labels += [IGNORE_INDEX] + e.labels[1:]  # nothing predicts a sample's first token
            positions += list(range(len(e.input_ids)))
        extra = length - len(ids)  # padding is one more "sample" that attends only to itself
        return ids + [self.pad_id] * extra, labels + [IGNORE_INDEX] * extra, positions + list(range(extra))

    # -- steps ----------------------------------------------------------------------------------------
    def _turns(self, conversation: Sequence[dict]) -> tuple[list[dict], list[_Item]]:
        """Merge consecutive messages of one role (unless ``merge_messages`` is off, as in S3, where every
        message is its own ``[RS] … [/RS]`` block); media items become one placeholder token each."""
        turns: list[dict] = []
        items: list[_Item] = []
        for index, message in enumerate(conversation):
            role, kind, content = _parse_message(message, index)
            if kind == "text":
                self._check_text(content, index)
                piece = content
            else:
                new = self._prepare(kind, content, index)
                items += new
                piece = "\n".join(self.layouts[kind].placeholder for _ in new)
                piece += self._asr_text(content, index)
            if self.merge_messages and turns and turns[-1]["role"] == role:
                turns[-1]["content"] += "\n" + piece
            else:
                turns.append({"role": role, "content": piece})
        return turns, items

    def _prepare(self, modality: str, content: Any, index: int) -> list[_Item]:
        if modality not in self.layouts:
            raise MediaError(
                f"message {index}: type {modality!r} has no encoder in this model "
                f"(it reads: text, {', '.join(self.layouts) or 'no media'})"
            )
        prepare = self.layouts[modality].prepare
        try:
            if modality == "video" and isinstance(content, dict) and "shots" in content:
                shots = _shots(content, index)
                return [
                    _Item(modality, tensor, self.shot_label.format(index=number))
                    for number, shot in enumerate(shots, start=1)
                    for tensor in prepare(shot)
                ]
            return [_Item(modality, tensor) for tensor in prepare(content)]
        except MediaError as error:
            raise MediaError(f"message {index}: {error}") from None

    def _asr_text(self, content: Any, index: int) -> str:
        asr = content.get("asr") if isinstance(content, dict) and "shots" in content else None
        if asr is None or not str(asr).strip():
            return ""
        if not isinstance(asr, str):
            raise MediaError(
                f"message {index}: shot-structured video `asr` must be text, got {type(asr).__name__}"
            )
        self._check_text(asr, index)
        return "\n" + self.asr_template.format(asr=asr.strip())

    def _check_text(self, text: str, index: int) -> None:
        """Text the tokenizer can take as text: valid Unicode, without placeholders or recipe tokens."""
        if problem := unicode_problem(text):
            raise DataError(f"message {index}: text {problem}")
        for modality, layout in self.layouts.items():
            if layout.placeholder in text:
                raise MediaError(
                    f"message {index}: text contains the reserved {modality} placeholder {layout.placeholder!r}; "
                    f"send media as a message of type {modality!r} instead"
                )
        for token in self.reserved_tokens:
            if token in text:
                raise DataError(
                    f"message {index}: text contains the recipe token {token!r}, which the tokenizer would read "
                    "as that token (a media boundary or layout marker, not text); remove it from the text, or "
                    "send media as a message of its type"
                )

    def _render(self, turns: list[dict], add_generation_prompt: bool) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _tokenize_turns(self, turns: list[dict], add_generation_prompt: bool) -> tuple[list[int], list[int]]:
        ids = self._render(turns, add_generation_prompt)
        labels = [IGNORE_INDEX] * len(ids)
        for i, turn in enumerate(turns):
            if turn["role"] != "assistant":
                continue
            before = self._render(turns[:i], add_generation_prompt=True)
            through = self._render(turns[: i + 1], add_generation_prompt=False)
            if ids[: len(through)] != through or through[: len(before)] != before:
                raise DataError(
                    "the chat template does not render this conversation as growing prefixes, so response "
                    f"tokens cannot be located for turn {i} (does a message contain the backbone's own "
                    "control tokens, such as its end-of-turn marker?)"
                )
            labels[len(before) : len(through)] = through[len(before) :]
        return ids, labels

    def _expand_media(self, ids: list[int], labels: list[int], items: list[_Item]) -> EncodedConversation:
        by_id = {layout.placeholder_id: (m, layout) for m, layout in self.layouts.items()}
        out_ids: list[int] = []
        out_labels: list[int] = []
        media: list[tuple[str, torch.Tensor]] = []
        blocks: list[tuple[int, int]] = []
        pending = iter(items)
        for token, label in zip(ids, labels, strict=True):
            if token not in by_id:
                out_ids.append(token)
                out_labels.append(label)
                continue
            modality, layout = by_id[token]
            item = _next_item(pending, modality)
            media.append((modality, item.tensor))
            prefix = self.tokenizer(item.label, add_special_tokens=False)["input_ids"] if item.label else []
            block = [
                *prefix,
                layout.start_id,
                *[layout.placeholder_id] * layout.tokens_per_item,
                layout.end_id,
            ]
            block = [token for token in block if token is not None]
            blocks.append((len(out_ids), len(out_ids) + len(block)))
            out_ids += block
            out_labels += [IGNORE_INDEX] * len(block)
        if next(pending, None) is not None:
            raise MediaError(
                "the chat template dropped a media placeholder; media and placeholders do not pair up"
            )
        return EncodedConversation(out_ids, out_labels, media, blocks)

    def _media_after_bos(self, encoded: EncodedConversation) -> EncodedConversation:
        """Move every media block (in reading order) to right after BOS, before the text (Macaw-LLM)."""
        ids, labels = encoded.input_ids, encoded.labels
        inside = {i for start, stop in encoded.blocks for i in range(start, stop)}
        text = [i for i in range(len(ids)) if i not in inside]
        head = 1 if text and ids[text[0]] == self.tokenizer.bos_token_id else 0
        order = text[:head] + sorted(inside) + text[head:]
        blocks, cursor = [], head
        for start, stop in encoded.blocks:
            blocks.append((cursor, cursor + stop - start))
            cursor += stop - start
        return EncodedConversation([ids[i] for i in order], [labels[i] for i in order], encoded.media, blocks)

    def _required_positions(self, encoded: EncodedConversation) -> set[int]:
        required = {i for start, stop in encoded.blocks for i in range(start, stop)}
        bos = self.tokenizer.bos_token_id
        if encoded.input_ids and bos is not None and encoded.input_ids[0] == bos:
            required.add(0)
        return required


def default_max_length(model: Any) -> int | None:
    """The recipe's ``max_length``, or else the backbone's maximum positions: no row longer than the
    backbone can attend over."""
    recipe = getattr(model.config, "max_sequence_length", None)
    if recipe:
        return recipe
    text_config = getattr(model.config, "text_config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(text_config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _check_turn_order(turns: list[dict]) -> None:
    """A conversation opens (after any system turn) with the user, and a response has a turn before it."""
    roles = [turn["role"] for turn in turns if turn["role"] != "system"]
    if not roles:
        raise DataError("the conversation has only system messages")
    if roles[0] == "assistant":
        raise DataError(
            "the conversation starts with an assistant message; it must open with a user message "
            "(the response has nothing to answer)"
        )


def packing_unsupported(model: Any) -> str | None:
    """Why ``model``'s backbone cannot keep packed samples apart, or ``None`` when it can.

    transformers detects packed rows from ``position_ids`` (with no attention mask) in
    ``masking_utils.create_causal_mask``; a backbone whose modelling code does not build its mask there
    would let packed samples attend to each other.
    """
    backbone = getattr(getattr(model, "backbone", None), "model", None)
    base = getattr(backbone, "base_model", backbone)
    module = sys.modules.get(type(base).__module__)
    if module is None or not hasattr(module, "create_causal_mask"):
        return (
            f"the backbone {type(base).__name__} does not build its attention mask with transformers' "
            "masking_utils, which is what keeps packed samples from attending to each other"
        )
    return None


def _parse_message(message: dict, index: int) -> tuple[str, str, Any]:
    if not isinstance(message, dict):
        raise MediaError(
            f"message {index}: expected a dict with role/type/content, got {type(message).__name__}"
        )
    role = ROLE_ALIASES.get(str(message.get("role", "")).lower())
    if role is None:
        raise MediaError(
            f"message {index}: unknown role {message.get('role')!r} (use user, assistant or system)"
        )
    kind = str(message.get("type", "text")).lower()
    content = message.get("content", message.get("text"))
    if content is None:
        raise MediaError(f"message {index}: no `content` (or S3-style `text`) field")
    if kind == "text" and not isinstance(content, str):
        raise MediaError(f"message {index}: text content must be a string, got {type(content).__name__}")
    return role, kind, content


def _shots(content: dict, index: int) -> list[Any]:
    shots = content["shots"]
    if not isinstance(shots, (list, tuple)) or not shots:
        raise MediaError(f"message {index}: shot-structured video needs a non-empty `shots` list")
    return list(shots)


def _preparer(modality: str, encoder: Any) -> Callable[[Any], list[torch.Tensor]]:
    """Decode one item the way ``encoder`` needs it, then its own preprocessing; one tensor per block."""
    if modality == "image":
        return lambda item: [encoder.preprocess(load_image(item))]
    if modality == "audio":
        rate = getattr(encoder, "sampling_rate", 16000)
        limit = getattr(encoder, "max_audio_seconds", None)  # checked from the header, before decoding
        truncate = getattr(encoder, "long_audio", None) == "truncate"
        split = getattr(encoder, "preprocess_items", None)

        def decode(item: Any) -> Any:
            return load_audio(item, rate, max_seconds=limit, truncate=truncate)

        if split is not None:
            return lambda item: split(decode(item))
        return lambda item: [encoder.preprocess(decode(item))]
    if modality == "video":
        frames = getattr(encoder, "num_frames", None)
        return lambda item: [encoder.preprocess(load_video(item, frames))]
    return lambda item: [encoder.preprocess(item)]


class _Preparers(dict):
    """Each modality's ``prepare`` function (live objects, not part of the saved processor config).

    ``to_dict``/``save_pretrained`` deep-copy the processor's attributes: this holder is shared, not copied.
    """

    layouts: dict[str, MediaLayout] | None = None

    def __deepcopy__(self, memo: dict) -> _Preparers:
        return self


_LAYOUT_KEYS = ("placeholder", "placeholder_id", "tokens_per_item", "encoder")


def _check_media_layout(tokenizer: Any, modality: str, layout: dict) -> None:
    """The saved layout names every field, and the tokenizer gives its tokens the ids it records."""
    missing = [key for key in _LAYOUT_KEYS if key not in layout]
    if missing:
        raise IncompatibleComponentsError(f"processor media[{modality!r}] lacks {', '.join(missing)}")
    for role in ("placeholder", "start", "end"):
        token, expected = layout.get(role), layout.get(f"{role}_id")
        if token is None and expected is None:
            continue
        found = tokenizer.convert_tokens_to_ids(token) if token is not None else None
        if found != expected:
            raise IncompatibleComponentsError(
                f"processor media[{modality!r}]: the tokenizer gives {role} token {token!r} id {found}, but the "
                f"processor was saved with id {expected}; load the tokenizer saved with this processor"
            )


def standalone_encoder_spec(specs: dict[str, dict], modality: str) -> dict:
    """``specs[modality]`` with a ``frame_encoder`` that names another modality replaced by that spec, so the
    encoder can be built on its own (the processor builds each modality's preprocessing separately)."""
    spec = dict(specs[modality])
    args = dict(spec.get("args") or {})
    target = args.get("frame_encoder")
    if isinstance(target, str) and target in specs:
        args["frame_encoder"] = {
            k: v for k, v in specs[target].items() if k in ("name", "args", "source", "revision")
        }
    spec["args"] = args
    return spec


def encoder_for_preprocessing(spec: dict) -> Any:
    """The encoder of a component spec built on the meta device: its preprocessing, without weights."""
    import inspect

    from zoo.registry import build_component, get_registry

    extra = {key: spec[key] for key in ("source", "revision") if spec.get(key) is not None}
    if "load_weights" in inspect.signature(get_registry().load("encoder", spec["name"]).__init__).parameters:
        extra["load_weights"] = False
    with torch.device("meta"):
        return build_component("encoder", spec["name"], dict(spec.get("args") or {}), **extra)


def _lazy_preparer(modality: str, spec: dict, cache: _Preparers) -> Callable[[Any], list[torch.Tensor]]:
    """A ``prepare`` that builds the encoder's preprocessing from ``spec`` the first time it runs."""

    def prepare(item: Any) -> list[torch.Tensor]:
        if modality not in cache:
            cache[modality] = _preparer(modality, encoder_for_preprocessing(spec))
        return cache[modality](item)

    return prepare


def _next_item(pending: Any, modality: str) -> _Item:
    item = next(pending, None)
    if item is None or item.modality != modality:
        raise MediaError(f"media order mismatch at a {modality} placeholder: {describe(item)}")
    return item


def _keep_positions(length: int, required: set[int], excess: int) -> list[int]:
    """Positions left after dropping ``excess`` non-required tokens, last ones first."""
    dropped: set[int] = set()
    for position in range(length - 1, -1, -1):
        if len(dropped) == excess:
            break
        if position not in required:
            dropped.add(position)
    return [i for i in range(length) if i not in dropped]


def _first_fit(encoded: list[EncodedConversation], capacity: int) -> list[list[EncodedConversation]]:
    rows: list[list[EncodedConversation]] = []
    used: list[int] = []
    for sample in encoded:
        size = len(sample.input_ids)
        for row, taken in enumerate(used):
            if taken + size <= capacity:
                rows[row].append(sample)
                used[row] += size
                break
        else:
            rows.append([sample])
            used.append(size)
    return rows


def _round_up(length: int, multiple: int | None) -> int:
    return -(-length // multiple) * multiple if multiple else length


def _stack_media(encoded: list[EncodedConversation]) -> dict[str, torch.Tensor]:
    media: dict[str, list[torch.Tensor]] = {}
    for e in encoded:
        for modality, tensor in e.media:
            media.setdefault(modality, []).append(tensor)
    return {m: torch.stack(t) for m, t in media.items()}


def _pad(
    e: EncodedConversation, length: int, pad_id: int, side: str
) -> tuple[list[int], list[int], list[int]]:
    extra = length - len(e.input_ids)
    ids, mask, labels = e.input_ids, [1] * len(e.input_ids), e.labels
    if side == "left":
        return [pad_id] * extra + ids, [0] * extra + mask, [IGNORE_INDEX] * extra + labels
    return ids + [pad_id] * extra, mask + [0] * extra, labels + [IGNORE_INDEX] * extra


def register_with_auto_processor() -> None:
    """Make ``AutoProcessor`` resolve ``model_type = "zoo"`` once ``zoo.modeling`` has registered its config
    (importing ``zoo`` then transformers imports both modules, in either order)."""
    from transformers import AutoProcessor
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if "zoo" in CONFIG_MAPPING:
        AutoProcessor.register(CONFIG_MAPPING["zoo"], ZooProcessor, exist_ok=True)


register_with_auto_processor()
