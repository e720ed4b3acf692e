"""Components shared between modalities: video frames read by the image tower, one projector for two.

Macaw-LLM and Ying-VLM read video frames with their image encoder (and Ying with its image Q-Former): one
set of weights, built once, counted once, saved once, and still shared after a save / reload round trip.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import ComponentArgumentError, IncompatibleComponentsError

SHARED_FRAMES = {"video": {"name": "video-frames", "args": {"num_frames": 2, "frame_encoder": "image"}}}


def conversation() -> list[dict]:
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    return [
        {"role": "user", "type": "image", "content": Image.new("RGB", (32, 32), "white")},
        {"role": "user", "type": "video", "content": frames},
        {"role": "user", "type": "text", "content": "What happens?"},
        {"role": "assistant", "type": "text", "content": "Colours change."},
    ]


@pytest.fixture(scope="module")
def model() -> zoo.ZooModel:
    torch.manual_seed(0)
    return zoo.build("tiny", encoders=SHARED_FRAMES).eval()


def test_frames_are_read_by_the_image_encoder_itself(model) -> None:
    assert model.encoders["video"].frame_encoder is model.encoders["image"]
    separate = zoo.build("tiny", device="meta")
    image_params = sum(p.numel() for p in model.encoders["image"].parameters())
    assert sum(p.numel() for p in separate.parameters()) - sum(p.numel() for p in model.parameters()) == (
        image_params
    )


def test_shared_encoder_survives_save_and_reload(model, tmp_path) -> None:
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        stored = list(f.keys())
    assert not any(k.startswith("encoders.video.frame_encoder.") for k in stored)  # stored once
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.encoders["video"].frame_encoder is reloaded.encoders["image"]
    batch = zoo.ZooProcessor.from_model(model)(conversation())
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_shared_projector_survives_save_and_reload(tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = zoo.build(
        "tiny",
        encoders=SHARED_FRAMES,
        projectors={"image": {"name": "mlp"}, "video": {"name": "mlp", "shared_with": "image"}},
    ).eval()
    assert model.projectors["video"].mlp[0].weight is model.projectors["image"].mlp[0].weight
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.projectors["video"].mlp[0].weight is reloaded.projectors["image"].mlp[0].weight
    batch = zoo.ZooProcessor.from_model(model)(conversation())
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_frame_encoder_naming_a_missing_modality_is_an_error() -> None:
    bad = {"video": {"name": "video-frames", "args": {"num_frames": 2, "frame_encoder": "audio2"}}}
    with pytest.raises(IncompatibleComponentsError, match="frame_encoder='audio2'"):
        zoo.build("tiny", device="meta", encoders=bad)


def test_frame_encoder_by_name_outside_a_recipe_is_explained() -> None:
    from zoo.registry import build_component

    with pytest.raises(ComponentArgumentError, match="only a composed model"):
        build_component("encoder", "video-frames", {"frame_encoder": "image"})
