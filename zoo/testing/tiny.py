"""Tiny instances of registered components and the inputs the conformance kit feeds them.

A component declares ``tiny_args`` (a class attribute: keyword arguments that build a small random-init
instance with nothing downloaded); projectors also get ``dim_in=DIM_IN`` and the tiny backbone's width as
``llm_dim``. The tiny backbone is the core's ``causal-lm`` with its own ``tiny_args`` (a 2-layer LLaMA of
width 64 and the tokenizer shipped in zoo); the tiny image encoder is the core's ``clip-vision`` with its
``tiny_args`` (16 patch tokens of width 32, a 4 x 4 grid).
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from PIL import Image

from zoo.errors import ContractError
from zoo.registry import ComponentEntry, canonical_distribution, get_registry, list_components

DIM_IN = 16  # the feature width the kit feeds a projector on its own
TINY_BACKBONE = "zoo:causal-lm"
TINY_IMAGE_ENCODER = "zoo:clip-vision"
TINY_PROJECTOR = "zoo:linear"


def registered(
    kinds: tuple[str, ...], distribution: str | None = None, names: tuple[str, ...] | None = None
) -> list[ComponentEntry]:
    """The registry's entries of ``kinds``, of ``distribution`` (all when ``None``), named ``names`` if given."""
    wanted = canonical_distribution(distribution) if distribution else None
    return [
        entry
        for entry in list_components()
        if entry.kind in kinds
        and (wanted is None or canonical_distribution(entry.distribution) == wanted)
        and (names is None or entry.name in names)
    ]


def label(entry: ComponentEntry) -> str:
    """``encoder 'name' (distribution version)`` for messages."""
    return f"{entry.kind} '{entry.name}' ({entry.distribution} {entry.version})".replace(" )", ")")


def load(entry: ComponentEntry) -> Any:
    """The class (or factory) behind ``entry``, through the registry."""
    return get_registry().load_entry(entry)


def tiny_args(entry: ComponentEntry) -> dict[str, Any]:
    """A copy of the component's ``tiny_args``; a clear error when it declares none."""
    args = getattr(load(entry), "tiny_args", None)
    if not isinstance(args, dict):
        raise ContractError(
            f"{label(entry)} declares no tiny_args: add a class attribute `tiny_args = {{...}}` holding "
            "keyword arguments that build a small random-initialised instance with nothing downloaded "
            "(e.g. an inline `config` with 2 layers of width 32); the conformance kit builds it with them"
        )
    return copy.deepcopy(args)


def spec(entry: ComponentEntry) -> dict[str, Any]:
    """The recipe spec ``{name, args}`` of the tiny instance (a qualified name: no conflict can hit it)."""
    return {"name": entry.qualified_name, "args": tiny_args(entry)}


def core_spec(kind: str, name: str) -> dict[str, Any]:
    """The tiny spec of one of the core's components (e.g. ``("backbone", TINY_BACKBONE)``)."""
    return spec(get_registry().resolve(kind, name))


@contextlib.contextmanager
def _on(device: str | None) -> Iterator[None]:
    if device is None:
        yield
    else:
        with torch.device(device):
            yield


def build(
    entry: ComponentEntry,
    *,
    device: str | None = None,
    seed: int = 0,
    backbone: Any = None,
    dtype: torch.dtype | None = None,
) -> Any:
    """The tiny instance of ``entry``; ``device="meta"`` builds the architecture only.

    A projector gets ``dim_in=DIM_IN`` and ``llm_dim`` of ``backbone`` (the tiny backbone by default); one
    that needs the backbone is attached to it.
    """
    registry = get_registry()
    cls = load(entry)
    args = tiny_args(entry)
    extra: dict[str, Any] = {}
    accepted = _parameters(cls)
    if "load_weights" in accepted and "load_weights" not in args:
        extra["load_weights"] = device != "meta"
    if entry.kind == "projector":
        backbone = backbone if backbone is not None else tiny_backbone(device=device)
        extra.update(dim_in=DIM_IN, llm_dim=backbone.hidden_size)
    torch.manual_seed(seed)
    with _on(device):
        component = registry.build(entry.kind, entry.qualified_name, args, **extra)
    if entry.kind == "projector" and getattr(component, "needs_backbone", False):
        component.attach_backbone(backbone)
    return component.to(dtype) if dtype is not None else component


def _parameters(cls: Any) -> set[str]:
    try:
        return set(inspect.signature(cls).parameters)
    except (TypeError, ValueError):
        return set()


def tiny_backbone(device: str | None = None, seed: int = 0) -> Any:
    """The core's tiny ``causal-lm`` (a 2-layer LLaMA of width 64), for projectors that need a backbone."""
    return build(get_registry().resolve("backbone", TINY_BACKBONE), device=device, seed=seed)


# --- inputs -------------------------------------------------------------------------------------------------


def raw_items(modality: str) -> list[Any]:
    """Two decoded media items of different sizes: PIL images, 16 kHz waveforms, or lists of frames."""
    rng = np.random.default_rng(0)

    def picture(width: int, height: int) -> Image.Image:
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))

    if modality == "image":
        return [picture(40, 48), picture(64, 64)]
    if modality == "audio":
        return [
            (np.sin(np.linspace(0, 2 * np.pi * 440 * s, int(16000 * s))) * 0.3).astype(np.float32)
            for s in (0.5, 1.5)
        ]
    if modality == "video":
        return [[picture(40, 48) for _ in range(3)], [picture(32, 32) for _ in range(5)]]
    raise ContractError(
        f"the conformance kit has no sample input for modality {modality!r}; encoders read image, video or "
        "audio (zoo.components.base.MODALITIES)"
    )


def encoder_inputs(encoder: Any) -> torch.Tensor:
    """A batch of the two raw items of the encoder's modality, through its own ``preprocess``."""
    return torch.stack([encoder.preprocess(item) for item in raw_items(encoder.modality)])


def conversation(modality: str) -> list[dict]:
    """A two-turn chat with one item of ``modality``, as the processor reads it."""
    item = raw_items(modality)[0]
    return [
        {"role": "user", "type": modality, "content": item},
        {"role": "user", "type": "text", "content": "What is this?"},
        {"role": "assistant", "type": "text", "content": "A test item."},
    ]


def tensors(module: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer of ``module`` with its name."""
    yield from module.named_parameters()
    yield from module.named_buffers()
