"""Honeybee's C-Abstractor (Cha et al., CVPR 2024) as a zoo projector.

What the paper says (sec. 3.2, "C-Abstractor"): L ResNet blocks, adaptive average pooling to M visual
tokens, and another L ResNet blocks abstract the visual features into any squared number of tokens while
keeping their local context; the released code (kakaobrain/honeybee, ``honeybee/projectors.py``) builds
the blocks with timm's ``RegStage`` (RegNet bottlenecks with squeeze-excitation, ``LayerNorm2d``, SiLU,
stride 1), pools with ``nn.AdaptiveAvgPool2d((sqrt(M), sqrt(M)))``, and reads out with an MLP
(``Linear``, then ``mlp_depth - 1`` x [SiLU, Linear]) to the LLM width. A learned position embedding
(``pos_emb``, truncated normal, std 0.02) is added to the features first, an optional LayerNorm
(``prenorm``) before that, and optional learned ``eos_tokens`` are appended after the visual tokens.
Weights start as Honeybee's ``_init_weights`` sets them: normal(0, ``initializer_range``) for convolutions
and linear layers, zero biases, unit LayerNorms. Module names follow the release (``pos_emb``, ``net.0``,
``net.1``, ``net.2``, ``readout``, ``eos_tokens``), so its ``abstractor.*`` weights map by prefix.

Differences, stated: Honeybee feeds CLIP tokens with CLS and drops CLS inside the projector; zoo's
encoders give patch tokens only (SigLIP has none, ``clip-vision`` drops it), so the input is the patch
grid itself. Honeybee's position embedding fits one input length; here a grid of another size reads it
bicubically resized to that grid (as Qwen-VL's and later Honeybee derivatives' ``get_abs_pos`` do).
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import nn

from zoo.components.base import Projector
from zoo.errors import ComponentArgumentError, IncompatibleComponentsError

NAME = "c-abstractor"


def _square_side(name: str, value: int, what: str) -> int:
    side = math.isqrt(value) if isinstance(value, int) and value > 0 else 0
    if side * side != value or side == 0:
        raise ComponentArgumentError(
            f"{NAME}: {name}={value!r} must be a square number ({what}), e.g. 144 = 12 x 12"
        )
    return side


def _readout(depth: int, width: int, out: int) -> nn.Sequential:
    """Honeybee's ``build_mlp``: Linear, then ``depth - 1`` x [SiLU, Linear]."""
    layers: list[nn.Module] = [nn.Linear(width, out)]
    for _ in range(1, depth):
        layers += [nn.SiLU(), nn.Linear(out, out)]
    return nn.Sequential(*layers)


class CAbstractor(Projector):
    """Honeybee's C-Abstractor: ResNet blocks, adaptive pooling to a square of queries, more blocks, an MLP.

    ``num_queries`` (+ ``num_eos_tokens``) tokens per item, each pooled from its own region of the grid.

    The input is a square grid of patch tokens in row-major order (``L = side x side``, no CLS).
    Defaults are Honeybee's C-Abstractor with M = 144 (hidden 1024, depth 3, MLP depth 2, position
    embedding for CLIP ViT-L/14 at 336 px: 576 patches).
    """

    tiny_args = {"num_queries": 4, "hidden_size": 32, "depth": 1, "num_input_tokens": 16}
    tiny_input_lengths = (4, 16, 36)

    def __init__(
        self,
        dim_in: int,
        llm_dim: int,
        *,
        num_queries: int = 144,
        hidden_size: int = 1024,
        depth: int = 3,
        mlp_depth: int = 2,
        pos_emb: bool = True,
        num_input_tokens: int = 576,
        num_eos_tokens: int = 0,
        prenorm: bool = False,
        initializer_range: float = 0.02,
    ) -> None:
        super().__init__(dim_in, llm_dim)
        from timm.layers import LayerNorm, LayerNorm2d
        from timm.models.regnet import RegStage

        side = _square_side("num_queries", num_queries, "the output tokens form a square grid")
        for name, value in (("hidden_size", hidden_size), ("depth", depth), ("mlp_depth", mlp_depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ComponentArgumentError(f"{NAME}: {name} must be a positive integer, got {value!r}")
        if isinstance(num_eos_tokens, bool) or not isinstance(num_eos_tokens, int) or num_eos_tokens < 0:
            raise ComponentArgumentError(f"{NAME}: num_eos_tokens must be 0 or more, got {num_eos_tokens!r}")
        self.num_queries, self.num_eos_tokens = num_queries, num_eos_tokens
        self.prenorm = LayerNorm(dim_in) if prenorm else None
        self.pos_emb = None
        if pos_emb:
            _square_side("num_input_tokens", num_input_tokens, "the encoder's patch grid")
            self.pos_emb = nn.Parameter(torch.zeros(1, num_input_tokens, dim_in))
            nn.init.trunc_normal_(self.pos_emb, mean=0.0, std=0.02)
        block = partial(RegStage, stride=1, dilation=1, act_layer=nn.SiLU, norm_layer=LayerNorm2d)
        self.net = nn.Sequential(
            block(depth, dim_in, hidden_size),
            nn.AdaptiveAvgPool2d((side, side)),
            block(depth, hidden_size, hidden_size),
        )
        self.readout = _readout(mlp_depth, hidden_size, llm_dim)
        self.eos_tokens = None
        if num_eos_tokens:
            self.eos_tokens = nn.Parameter(torch.zeros(1, num_eos_tokens, llm_dim))
            nn.init.trunc_normal_(self.eos_tokens, mean=0.0, std=initializer_range)
        self._init_weights(initializer_range)

    def _init_weights(self, std: float) -> None:
        """Honeybee's ``HoneybeePreTrainedModel._init_weights`` over the abstractor's layers."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _grid(self, length: int) -> int:
        side = math.isqrt(length) if isinstance(length, int) and length > 0 else 0
        if side == 0 or side * side != length:
            raise IncompatibleComponentsError(
                f"{NAME} reads the encoder's tokens as a square patch grid, but got {length} tokens: use an encoder "
                "that returns patch tokens only (a CLS token makes it side x side + 1; clip-vision and siglip-vision "
                "drop or have none)"
            )
        return side

    def output_length(self, input_length: int) -> int:
        self._grid(input_length)
        return self.num_queries + self.num_eos_tokens

    def _position(self, side: int, like: torch.Tensor) -> torch.Tensor:
        """The position embedding on a ``side x side`` grid (bicubically resized from its own grid)."""
        pos = self.pos_emb
        trained = math.isqrt(pos.shape[1])
        if trained != side:
            grid = pos.reshape(1, trained, trained, -1).permute(0, 3, 1, 2).float()
            grid = nn.functional.interpolate(grid, size=(side, side), mode="bicubic", align_corners=False)
            pos = grid.permute(0, 2, 3, 1).reshape(1, side * side, -1)
        return pos.to(like.dtype)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.ndim != 3 or features.shape[-1] != self.dim_in:
            raise IncompatibleComponentsError(
                f"{NAME} expects features [batch, length, {self.dim_in}], got {tuple(features.shape)}"
            )
        side = self._grid(features.shape[1])
        x = features if self.prenorm is None else self.prenorm(features)
        if self.pos_emb is not None:
            x = x + self._position(side, x)
        batch, _, width = x.shape
        x = x.transpose(1, 2).reshape(batch, width, side, side)  # "b (h w) d -> b d h w"
        x = self.net(x).flatten(2).transpose(1, 2)  # "b d h w -> b (h w) d"
        x = self.readout(x)
        if self.eos_tokens is not None:
            x = torch.cat([x, self.eos_tokens.expand(batch, -1, -1).to(x.dtype)], dim=1)
        return x

    def extra_repr(self) -> str:
        return (
            f"dim_in={self.dim_in}, llm_dim={self.llm_dim}, num_queries={self.num_queries}, "
            f"num_eos_tokens={self.num_eos_tokens}"
        )
