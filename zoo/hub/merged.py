"""The standalone export (``zoo push --merged``): LoRA merged, every weight in one self-contained checkpoint.

The checkpoint is rebuilt (base parts from their sources, stages replayed, delta loaded), its LoRA adapter
folded into the base weights (``training_plan.merge_lora``), and saved with every parameter and persistent
buffer (manifest ``weights: full``). Its config names no weight source: each component that had one gets
its architecture inline instead (``args.config`` from its transformers config, or what the component's own
``standalone_args()`` returns), the source it was exported from kept under ``exported_from``; the stages
it went through are kept as ``training_stages`` and none is replayed on load. So it loads anywhere the
plugins are installed, without the base weights. Preprocessing rebuilt from the inline architecture is
checked against the original on probe inputs before anything is written.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.errors import HubError

log = logging.getLogger("zoo.hub")
_SOURCE_FIELDS = ("source", "revision", "pinned")
_CONFIG_NOISE = ("_name_or_path", "transformers_version", "architectures", "quantization_config")


def export_merged(folder: Path, staging: Path) -> None:
    """Write the standalone export of the checkpoint in ``folder`` into ``staging``."""
    from zoo.modeling import ZooModel
    from zoo.training_plan import active_adapter, merge_lora

    model = ZooModel.from_pretrained(folder)
    if active_adapter(model.config.applied_stages) is not None:
        merge_lora(model)
    config = standalone_config(model)
    _check_preprocessing(model, config)
    save_full(model, config, staging)


def standalone_config(model: Any) -> Any:
    """``model``'s config with every sourced component's architecture inline and no stage to replay."""
    from zoo.modeling import ZooConfig

    fields = model.config.to_dict()
    fields["backbone"] = _standalone_spec(model.config.backbone, model.backbone, "backbone")
    fields["encoders"] = {
        m: _standalone_spec(spec, model.encoders[m], f"encoders.{m}")
        for m, spec in model.config.encoders.items()
    }
    fields["projectors"] = {
        m: _standalone_spec(spec, model.projectors[m], f"projectors.{m}")
        for m, spec in model.config.projectors.items()
    }
    fields["training_stages"] = list(model.config.applied_stages)
    fields["applied_stages"] = []
    fields["standalone"] = True
    for key in ("model_type", "transformers_version", "architectures"):
        fields.pop(key, None)
    return ZooConfig(**fields)


def _standalone_spec(spec: dict, component: Any, where: str) -> dict:
    args = dict(spec.get("args") or {})
    nested = args.get("frame_encoder")
    if isinstance(nested, dict) and nested.get("source"):
        args["frame_encoder"] = _standalone_spec(nested, component.frame_encoder, f"{where}.frame_encoder")
    if not spec.get("source"):
        return {**spec, "args": args}
    args.update(architecture_args(component, spec, where))
    if where == "backbone":
        args.pop("tokenizer", None)  # the export's own tokenizer is loaded from the checkpoint folder
    exported_from = {key: spec[key] for key in _SOURCE_FIELDS if spec.get(key) is not None}
    kept = {key: value for key, value in spec.items() if key not in _SOURCE_FIELDS}
    return {**kept, "args": args, "exported_from": exported_from}


def architecture_args(component: Any, spec: dict, where: str) -> dict:
    """Arguments that rebuild ``component``'s architecture without its weight source."""
    from transformers import PretrainedConfig

    hook = getattr(component, "standalone_args", None)
    if callable(hook):
        return dict(hook())
    config = getattr(getattr(component, "model", None), "config", None)
    if (
        isinstance(config, PretrainedConfig)
        and "config" in inspect.signature(type(component).__init__).parameters
    ):
        fields = config.to_dict()
        for key in _CONFIG_NOISE:
            fields.pop(key, None)
        return {"config": fields}
    raise HubError(
        f"{where} `{spec.get('name')}` cannot be exported standalone: it takes its architecture only from its "
        f"weight source {spec.get('source')!r} (a component can define standalone_args() returning the "
        "arguments that rebuild it without weights); push the delta instead"
    )


def _check_preprocessing(model: Any, config: Any) -> None:
    """Each modality's preprocessing, rebuilt from the standalone spec, equals the model's on a probe input."""
    from zoo.processor import _preparer, encoder_for_preprocessing, standalone_encoder_spec

    for modality, encoder in model.encoders.items():
        probe = _PROBES.get(modality)
        if probe is None:
            log.info("no probe input for modality %s: its standalone preprocessing is not compared", modality)
            continue
        rebuilt = encoder_for_preprocessing(standalone_encoder_spec(config.encoders, modality))
        before, after = _preparer(modality, encoder)(probe()), _preparer(modality, rebuilt)(probe())
        if len(before) != len(after) or any(
            not torch.equal(a, b) for a, b in zip(before, after, strict=False)
        ):
            raise HubError(
                f"encoders.{modality}: the preprocessing rebuilt from the inline architecture differs from the "
                "one its weight source ships, so a standalone export would not compute the same outputs; push "
                "the delta instead"
            )


def _probe_image() -> Any:
    from PIL import Image

    grid = np.add.outer(np.arange(47), np.arange(61)) * 2
    return Image.fromarray(np.stack([grid % 256, (grid * 3) % 256, (255 - grid) % 256], -1).astype(np.uint8))


def _probe_audio() -> np.ndarray:
    return (0.3 * np.sin(np.linspace(0, 2 * np.pi * 440 * 1.5, 24000))).astype(np.float32)


_PROBES = {"image": _probe_image, "audio": _probe_audio, "video": lambda: [_probe_image()] * 3}


def full_state_dict(model: Any) -> dict[str, torch.Tensor]:
    """Every parameter (shared ones once) and persistent buffer, as a ``full`` checkpoint holds them."""
    state = model.state_dict()
    names = [*dict(model.named_parameters()), *(name for name, _ in model.named_buffers())]
    return {name: state[name].detach().cpu().contiguous() for name in names if name in state}


def save_full(model: Any, config: Any, staging: Path) -> None:
    """Write the standalone checkpoint: config, every weight, generation config, tokenizer and processor,
    then the manifest (``weights: full``)."""
    from safetensors.torch import save_file

    from zoo.checkpoint import WEIGHTS, begin_save, write_manifest
    from zoo.processor import ZooProcessor

    begin_save(staging)
    save_file(full_state_dict(model), str(staging / WEIGHTS), metadata={"format": "pt"})
    model.config = config
    config.save_pretrained(staging)
    model.generation_config.save_pretrained(staging)
    ZooProcessor.from_model(model).save_pretrained(staging)
    write_manifest(staging, "full")
