"""BLIP-2's vision tower (EVA ViT-g in the released checkpoints) as an image encoder, loadable from a BLIP-2 checkpoint.

Ying-VLM takes the vision encoder and Q-Former of ``Salesforce/blip2-opt-2.7b``. A BLIP-2 checkpoint holds
the vision tower, the Q-Former and the language model in one set of safetensors files; this module reads
only the tensors under one prefix (``vision_model.`` here, ``query_tokens`` / ``qformer.`` for the
Q-Former projector), so the OPT weights are never loaded. The encoder returns every token of the last
layer, CLS included (257 for a 224-pixel image at patch 14), since that is what BLIP-2's Q-Former reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from zoo.components.base import Encoder
from zoo.errors import WeightSourceError


def checkpoint_tensors(folder: Path, prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors checkpoint folder whose names start with one of ``prefixes``.

    Reads ``model.safetensors`` or every shard named in ``model.safetensors.index.json``, opening each
    file lazily so only the selected tensors are read.
    """
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted({f for name, f in weight_map.items() if name.startswith(prefixes)})
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise WeightSourceError(
            f"{folder}: no model.safetensors or model.safetensors.index.json (a BLIP-2 checkpoint saved "
            "with save_pretrained is expected)"
        )
    tensors: dict[str, torch.Tensor] = {}
    for name in files:
        with safe_open(str(folder / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                if key.startswith(prefixes):
                    tensors[key] = handle.get_tensor(key)
    if not tensors:
        raise WeightSourceError(f"{folder}: the checkpoint has no tensors under {list(prefixes)}")
    return tensors


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """``tensors`` under ``prefix``, renamed without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def blip2_config(folder: Path) -> Any:
    """The ``Blip2Config`` of a checkpoint folder (raises a clear error when it is no BLIP-2 checkpoint)."""
    from transformers import AutoConfig, Blip2Config

    config = AutoConfig.from_pretrained(folder)
    if not isinstance(config, Blip2Config):
        raise WeightSourceError(
            f"{folder}: expected a BLIP-2 checkpoint (model_type blip-2), got model_type {config.model_type!r}"
        )
    return config


class BLIP2VisionEncoder(Encoder):
    """BLIP-2's vision tower (transformers ``Blip2VisionModel``): all last-layer tokens, CLS first.

    ``source`` is a BLIP-2 checkpoint (Hub id such as ``Salesforce/blip2-opt-2.7b`` or a local folder);
    only its ``vision_model.*`` tensors are loaded. ``config`` is an inline ``Blip2VisionConfig`` mapping
    (random init, or the meta device, with nothing fetched).
    """

    modality = "image"
    tiny_args = {
        "config": {"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "image_size": 28, "patch_size": 14},
    }  # fmt: skip

    def __init__(
        self,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        config: dict | None = None,
    ) -> None:
        super().__init__()
        from transformers import Blip2VisionConfig, Blip2VisionModel, BlipImageProcessorPil

        from zoo.components.encoders import freeze, pretrained_or_config, source_preprocessor

        self.model, folder = pretrained_or_config(
            "blip2-vision",
            _load_vision_tower,
            Blip2VisionModel,
            Blip2VisionConfig,
            {"source": source, "revision": revision, "load_weights": load_weights, "config": config},
            config_from_folder=lambda folder: blip2_config(folder).vision_config,
        )
        cfg = self.model.config
        self.dim = cfg.hidden_size
        self._tokens = (cfg.image_size // cfg.patch_size) ** 2 + 1
        self.image_processor = source_preprocessor(
            folder, BlipImageProcessorPil, size={"height": cfg.image_size, "width": cfg.image_size}
        )
        freeze(self)

    @property
    def num_tokens(self) -> int:
        return self._tokens

    def preprocess(self, item: Any) -> torch.Tensor:
        return self.image_processor(images=item, return_tensors="pt")["pixel_values"][0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        dtype = self.model.embeddings.patch_embedding.weight.dtype
        return self.model(pixel_values=inputs.to(dtype)).last_hidden_state


def _load_vision_tower(folder: Path) -> Any:
    """BLIP-2's vision tower built from the checkpoint's config, with only its ``vision_model.*`` tensors."""
    from transformers import Blip2VisionModel

    model = Blip2VisionModel(blip2_config(folder).vision_config)
    state = strip_prefix(checkpoint_tensors(folder, ("vision_model.",)), "vision_model.")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightSourceError(
            f"blip2-vision: the checkpoint's vision_model tensors do not fit the architecture "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return model
