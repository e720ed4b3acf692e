"""SigLIP and SigLIP 2 vision towers (transformers) as a zoo image encoder: every patch token, in a square grid.

Two kinds of checkpoints exist, and the architecture's ``model_type`` picks the transformers class:

* fixed resolution (``siglip``: SigLIP, and SigLIP 2's ``google/siglip2-*-patch16-224``-style checkpoints):
  ``SiglipVisionModel``, images resized to ``image_size`` by ``SiglipImageProcessorPil``;
* NaFlex (``siglip2``: ``google/siglip2-*-naflex``): ``Siglip2VisionModel`` reading patches with their
  attention mask and spatial shape. NaFlex keeps an image's aspect ratio, which changes the number of
  patches per image; zoo needs one token count per item (the processor inserts that many placeholders) and
  a C-Abstractor needs the grid, so images are first resized to a square of ``sqrt(max_num_patches)``
  patches a side, which fills the patch budget exactly.

SigLIP has no CLS token: the tokens are the patches in row-major order, ``[batch, grid * grid, hidden]``,
from the last layer after its layer norm (``feature_layer=-1``) or from ``hidden_states[feature_layer]``.
The attention-pooling head is not built (``vision_use_head=False``): zoo reads tokens, not a pooled vector.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from zoo.components.base import Encoder
from zoo.errors import ComponentArgumentError, MediaError

NAME = "siglip-vision"
# model_type of a vision config (or of a full SigLIP model) -> (config class, model class, NaFlex?)
VARIANTS = {
    "siglip_vision_model": ("SiglipVisionConfig", "SiglipVisionModel", False),
    "siglip": ("SiglipVisionConfig", "SiglipVisionModel", False),
    "siglip2_vision_model": ("Siglip2VisionConfig", "Siglip2VisionModel", True),
    "siglip2": ("Siglip2VisionConfig", "Siglip2VisionModel", True),
}


def _variant(model_type: str | None) -> tuple[Any, Any, bool]:
    import transformers

    if model_type not in VARIANTS:
        raise ComponentArgumentError(
            f"{NAME}: model_type {model_type!r} is not a SigLIP vision architecture; use one of "
            f"{', '.join(VARIANTS)}"
        )
    config_name, model_name, naflex = VARIANTS[model_type]
    return getattr(transformers, config_name), getattr(transformers, model_name), naflex


def _vision_config(config: dict | None, folder: Path | None) -> Any:
    """The vision config: inline (``model_type`` chooses SigLIP or SigLIP 2) or the source's own."""
    if config is not None:
        fields = dict(config)
        config_cls, _, _ = _variant(fields.pop("model_type", None))
        return config_cls(**{"vision_use_head": False, **fields})
    from transformers import AutoConfig

    found = AutoConfig.from_pretrained(folder)
    vision = getattr(found, "vision_config", found)  # a full SigLIP model holds its tower's config
    _variant(vision.model_type)
    vision.vision_use_head = False
    return vision


class SiglipVisionEncoder(Encoder):
    """SigLIP / SigLIP 2 vision tower via transformers: all patch tokens (no CLS), a square grid, row-major.

    ``source`` is a SigLIP or SigLIP 2 checkpoint (a full model or a vision tower: Hub id, folder,
    ``package:`` path); ``config`` an inline vision config whose ``model_type`` is ``siglip_vision_model``
    or ``siglip2_vision_model`` (random init, or the meta device). ``max_num_patches`` (NaFlex only, a
    square number) sets the grid; by default the architecture's ``num_patches``.
    """

    modality = "image"
    tiny_args = {
        "config": {"model_type": "siglip2_vision_model", "hidden_size": 32, "intermediate_size": 64,
                   "num_hidden_layers": 2, "num_attention_heads": 2, "patch_size": 8, "num_patches": 16},
    }  # fmt: skip

    def __init__(
        self,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        config: dict | None = None,
        feature_layer: int = -1,
        max_num_patches: int | None = None,
    ) -> None:
        super().__init__()
        from zoo.weights import materialize

        if source is None and config is None:
            raise ComponentArgumentError(f"{NAME}: give a weight `source` or an inline architecture `config`")
        need_folder = source is not None and (load_weights or config is None)
        folder = Path(materialize(source, revision, metadata_only=not load_weights)) if need_folder else None
        vision = _vision_config(config, folder)
        _, model_cls, self.naflex = _variant(vision.model_type)
        if folder is not None and load_weights:
            self.model = model_cls.from_pretrained(folder, config=vision)
        else:
            self.model = model_cls(vision)
        self.feature_layer = feature_layer
        self.dim = vision.hidden_size
        self.patch_size = vision.patch_size
        self.grid = self._grid(vision, max_num_patches)
        self.image_processor = self._processor(folder)
        self.requires_grad_(False)  # frozen when built; a recipe stage may unfreeze it

    def _grid(self, vision: Any, max_num_patches: int | None) -> int:
        if not self.naflex:
            if max_num_patches is not None:
                raise ComponentArgumentError(
                    f"{NAME}: max_num_patches applies to SigLIP 2 NaFlex towers only"
                )
            return vision.image_size // vision.patch_size
        patches = vision.num_patches if max_num_patches is None else max_num_patches
        side = math.isqrt(patches)
        if patches < 1 or side * side != patches:
            raise ComponentArgumentError(
                f"{NAME}: max_num_patches={patches} is not a square number; give one (e.g. 256 = 16 x 16) so "
                "every image fills a square grid"
            )
        return side

    def _processor(self, folder: Path | None) -> Any:
        from transformers import Siglip2ImageProcessorPil, SiglipImageProcessorPil

        side = self.grid * self.patch_size
        has_config = folder is not None and (folder / "preprocessor_config.json").is_file()
        if self.naflex:
            processor = (
                Siglip2ImageProcessorPil.from_pretrained(folder) if has_config else Siglip2ImageProcessorPil()
            )
            processor.max_num_patches, processor.patch_size = self.grid * self.grid, self.patch_size
            return processor
        if has_config:
            return SiglipImageProcessorPil.from_pretrained(folder)
        return SiglipImageProcessorPil(size={"height": side, "width": side})

    @property
    def num_tokens(self) -> int:
        return self.grid * self.grid

    def preprocess(self, item: Any) -> torch.Tensor:
        """One PIL image to pixel values ``[3, H, W]`` (SigLIP) or ``[grid * grid, 3 * patch * patch]``
        patches (SigLIP 2 NaFlex, after a resize to the square grid)."""
        from PIL import Image

        if not isinstance(item, Image.Image):
            raise MediaError(f"{NAME}: preprocess takes a PIL image, got {type(item).__name__}")
        if not self.naflex:
            return self.image_processor(images=item, return_tensors="pt")["pixel_values"][0]
        side = self.grid * self.patch_size
        square = item.convert("RGB").resize((side, side), resample=self.image_processor.resample)
        out = self.image_processor(images=square, return_tensors="pt")
        if out["spatial_shapes"][0].tolist() != [self.grid, self.grid]:  # the processor must fill the grid
            raise MediaError(
                f"{NAME}: expected a {self.grid} x {self.grid} patch grid, got {out['spatial_shapes']}"
            )
        return out["pixel_values"][0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pixel values (or NaFlex patches) from ``preprocess`` to tokens ``[batch, grid * grid, dim]``."""
        weight = self.model.embeddings.patch_embedding.weight
        pixels = inputs.to(device=weight.device, dtype=weight.dtype)
        extra: dict[str, Any] = {"output_hidden_states": self.feature_layer != -1}
        if self.naflex:
            batch = pixels.shape[0]
            extra["pixel_attention_mask"] = torch.ones(
                batch, self.num_tokens, dtype=torch.long, device=pixels.device
            )
            extra["spatial_shapes"] = torch.tensor([[self.grid, self.grid]] * batch, device=pixels.device)
        out = self.model(pixel_values=pixels, **extra)
        return out.last_hidden_state if self.feature_layer == -1 else out.hidden_states[self.feature_layer]

    def extra_repr(self) -> str:
        kind = "siglip2-naflex" if self.naflex else "siglip"
        return f"{kind}, dim={self.dim}, grid={self.grid}x{self.grid}, feature_layer={self.feature_layer}"
