"""The small contracts every component honours: Encoder, Projector, Backbone.

An encoder maps one preprocessed media batch to tokens ``[batch, length, dim]``; a projector maps
``[batch, length, dim_in]`` to ``[batch, length_out, llm_dim]``; a backbone wraps a causal LM. Components
are built from plain keyword arguments (the spec's ``args``) plus the weight-source fields ``source`` and
``revision``; ``load_weights=False`` builds the architecture only (random init, or on the meta device).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

MODALITIES = ("image", "video", "audio")


class Component(nn.Module):
    """Common base: remembers the spec it was built from so configs can rebuild it.

    ``tiny_args`` are keyword arguments that build a small, random-initialised instance with nothing
    downloaded, in well under a second: the conformance kit (``zoo.testing``) builds every registered
    component with them (projectors also get ``dim_in`` and ``llm_dim``). ``None``: not declared, and the
    kit reports it.
    """

    kind: ClassVar[str] = ""
    tiny_args: ClassVar[dict[str, Any] | None] = None

    @property
    def all_tied_weights_keys(self) -> dict[str, str]:
        """Tied parameters of wrapped transformers models, so the composed model saves and reloads them."""
        keys = {}
        for name, child in self.named_children():
            for target, source in (getattr(child, "all_tied_weights_keys", None) or {}).items():
                keys[f"{name}.{target}"] = f"{name}.{source}"
        return keys


class Encoder(Component):
    """Maps preprocessed media to per-token features ``[batch, num_tokens, dim]``.

    Subclasses set ``modality`` and ``dim``, implement ``preprocess`` (one raw item to one tensor, the
    encoder's own preprocessing) and ``forward`` (a stacked batch of those tensors to tokens), and report
    ``num_tokens`` (tokens per item). Encoders are frozen by default: every parameter has
    ``requires_grad=False`` when built (a recipe stage may unfreeze them).
    """

    kind: ClassVar[str] = "encoder"
    modality: ClassVar[str] = ""
    frozen_by_default: ClassVar[bool] = True
    dim: int

    @property
    def num_tokens(self) -> int:
        """Tokens per media item that ``forward`` returns."""
        raise NotImplementedError

    def preprocess(self, item: Any) -> torch.Tensor:
        """One decoded item (PIL image, 16 kHz mono float waveform, list of frames) to a tensor."""
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # [batch, ...] -> [batch, tokens, dim]
        raise NotImplementedError


class Projector(Component):
    """Maps encoder tokens ``[batch, length, dim_in]`` to LLM embeddings ``[batch, length_out, llm_dim]``.

    Constructed as ``Projector(dim_in=..., llm_dim=..., **args)``. A projector that needs the backbone
    (Macaw attends over the LLM's input-embedding matrix) sets ``needs_backbone = True`` and receives it
    through ``attach_backbone`` at composition time.
    """

    kind: ClassVar[str] = "projector"
    needs_backbone: ClassVar[bool] = False
    # Input lengths (encoder tokens per item) the conformance kit tries; ``output_length`` must accept each.
    tiny_input_lengths: ClassVar[tuple[int, ...]] = (1, 7, 20)

    def __init__(self, dim_in: int, llm_dim: int) -> None:
        super().__init__()
        self.dim_in = dim_in
        self.llm_dim = llm_dim

    def output_length(self, input_length: int) -> int:
        """Number of tokens emitted for ``input_length`` input tokens."""
        raise NotImplementedError

    def attach_backbone(self, backbone: Backbone) -> None:
        """Receive the backbone (only called when ``needs_backbone`` is true)."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Backbone(Component):
    """Wraps a transformers causal LM: embeddings, forward with ``inputs_embeds``, tokenizer, LoRA targets."""

    kind: ClassVar[str] = "backbone"
    frozen_by_default: ClassVar[bool] = False
    model: nn.Module
    tokenizer: Any

    @property
    def hidden_size(self) -> int:
        raise NotImplementedError

    @property
    def lora_targets(self) -> list[str]:
        """Names (suffixes) of the linear modules LoRA may target in this architecture."""
        raise NotImplementedError

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)

    def forward(self, **kwargs: Any) -> Any:
        return self.model(**kwargs)
