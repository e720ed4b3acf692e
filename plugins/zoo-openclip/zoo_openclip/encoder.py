"""open_clip vision encoder for zoo: per-patch CLIP tokens (no CLS) from an open_clip ViT image tower.

The architecture is an open_clip model config (a built-in name such as ``ViT-B-16``, or the
``open_clip_config.json`` of a weight folder); weights load through open_clip's own ``local-dir:`` loader.
Only the image tower is kept. Tokens are the tower's ``ln_post`` outputs for every patch, optionally through
the CLIP visual projection (``project_tokens``: width = the CLIP embedding dim, 512 for ViT-B/16, as
Macaw-LLM feeds its aligner).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch

from zoo.components.base import Encoder
from zoo.errors import ComponentArgumentError, MediaError, WeightSourceError

NAME = "openclip-vision"


def resolve_source(source: str, revision: str | None) -> Path:
    """The local folder holding ``open_clip_config.json`` and the weights for ``source``."""
    from zoo.weights import materialize

    return Path(materialize(source, revision))


def _check_model_name(model_name: str) -> None:
    import open_clip

    known = open_clip.list_models()
    if model_name not in known:
        close = difflib.get_close_matches(model_name, known, n=5)
        raise ComponentArgumentError(
            f"{NAME}: unknown open_clip model_name {model_name!r}"
            + (f"; close matches: {close}" if close else "; see open_clip.list_models()")
        )


def _create_clip(model_name: str, source: str | None, revision: str | None, **options: Any) -> Any:
    import open_clip

    if source is None:
        if revision is not None:
            raise ComponentArgumentError(f"{NAME}: revision={revision!r} given without a weight source")
        _check_model_name(model_name)
        return open_clip.create_model(model_name, **options)
    folder = resolve_source(source, revision)
    if not (folder / "open_clip_config.json").is_file():
        raise WeightSourceError(f"{NAME}: {folder} has no open_clip_config.json (source {source!r})")
    return open_clip.create_model(f"local-dir:{folder}", **options)


def _check_tower(visual: torch.nn.Module, label: str) -> None:
    from open_clip.transformer import VisionTransformer

    if not isinstance(visual, VisionTransformer) or visual.attn_pool is not None:
        raise ComponentArgumentError(
            f"{NAME}: {label} has a {type(visual).__name__} image tower; per-patch tokens are supported for "
            "open_clip VisionTransformer towers without attentional pooling"
        )
    if visual.pool_type not in ("tok", "avg"):
        raise ComponentArgumentError(
            f"{NAME}: {label} uses pool_type={visual.pool_type!r}; patch tokens need 'tok' or 'avg'"
        )


class OpenCLIPVisionEncoder(Encoder):
    """An open_clip ViT image tower returning per-patch tokens ``[batch, num_tokens, dim]`` without CLS.

    ``model_name`` picks a built-in (or ``open_clip.add_model_config``-registered) architecture for random
    initialisation; with ``source`` the architecture and weights come from that folder's
    ``open_clip_config.json`` and safetensors file (``load_weights=False`` keeps its architecture only).
    ``image_size`` overrides the input resolution (open_clip resizes the position embeddings).
    ``model_cfg`` overrides fields of the architecture's open_clip config (``embed_dim``, ``vision_cfg``,
    ``text_cfg``): open_clip's ``create_model(**model_kwargs)``, its highest-priority override.
    """

    modality = "image"
    tiny_args = {
        "model_name": "ViT-B-16",
        "model_cfg": {
            "embed_dim": 24,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
        },
    }

    def __init__(
        self,
        model_name: str = "ViT-B-16",
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        project_tokens: bool = False,
        image_size: int | None = None,
        model_cfg: dict | None = None,
    ) -> None:
        super().__init__()
        from open_clip.transform import PreprocessCfg, image_transform_v2

        # open_clip moves the model to `device` (default cpu): under torch.device("meta") keep it there.
        device = torch.empty(0).device
        options = {"load_weights": load_weights, "force_image_size": image_size, "device": device}
        options.update(model_cfg or {})
        clip = _create_clip(model_name, source, revision, **options)
        self.model_name, self.source = model_name, source
        _check_tower(clip.visual, model_name if source is None else repr(source))
        self.visual = clip.visual  # the text tower goes with `clip`
        self.visual.output_tokens = True
        self.project_tokens = project_tokens
        self.dim = int(self.visual.proj.shape[1 if project_tokens else 0])
        self.image_size = tuple(self.visual.image_size)
        self.transform = image_transform_v2(PreprocessCfg(**self.visual.preprocess_cfg), is_train=False)
        self.visual.lock()  # open_clip's own freezing: requires_grad False on every parameter

    @property
    def num_tokens(self) -> int:
        rows, cols = self.visual.grid_size
        return rows * cols

    def preprocess(self, item: Any) -> torch.Tensor:
        """One PIL image to ``[3, H, W]`` with open_clip's eval transform (resize, crop, RGB, normalise)."""
        from PIL import Image

        if not isinstance(item, Image.Image):
            raise MediaError(f"{NAME}: preprocess takes a PIL image, got {type(item).__name__}")
        return self.transform(item)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pixel values ``[batch, 3, H, W]`` from ``preprocess`` to tokens ``[batch, num_tokens, dim]``."""
        if inputs.ndim != 4 or inputs.shape[1] != 3 or tuple(inputs.shape[2:]) != self.image_size:
            raise MediaError(
                f"{NAME}: expects pixel values [batch, 3, {self.image_size[0]}, {self.image_size[1]}] "
                f"(from preprocess), got {tuple(inputs.shape)}"
            )
        weight = self.visual.conv1.weight
        _, tokens = self.visual(inputs.to(device=weight.device, dtype=weight.dtype))
        return tokens @ self.visual.proj if self.project_tokens else tokens

    def extra_repr(self) -> str:
        origin = f"source={self.source!r}" if self.source else f"model_name={self.model_name!r}"
        return f"{origin}, dim={self.dim}, num_tokens={self.num_tokens}"
