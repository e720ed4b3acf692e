"""zoo-siglip through zoo's conformance kit, and against the implementations it follows.

The SigLIP towers are compared with transformers' own models loaded from checkpoints the tests save
(nothing is downloaded); the C-Abstractor's layout is checked against Honeybee's release.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import Siglip2Config, Siglip2Model, SiglipConfig, SiglipImageProcessorPil, SiglipModel

import zoo
from zoo.errors import ComponentArgumentError, IncompatibleComponentsError
from zoo.registry import build_component
from zoo.testing import ConformanceSuite, check_recipe_trains_one_step

VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TEXT = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "vocab_size": 99,
}


class TestConformance(ConformanceSuite):
    """Both components and both recipes against zoo's contracts; honeybee-smol trains in the slow test."""

    distribution = "zoo-siglip"
    train_recipes = ("honeybee-tiny",)


@pytest.fixture(scope="module")
def siglip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SiglipModel]:
    torch.manual_seed(0)
    model = SiglipModel(
        SiglipConfig(vision_config={**VISION, "image_size": 32, "patch_size": 8}, text_config=TEXT)
    )
    folder = tmp_path_factory.mktemp("siglip")
    model.eval().save_pretrained(folder)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def siglip2_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Siglip2Model]:
    torch.manual_seed(0)
    model = Siglip2Model(
        Siglip2Config(vision_config={**VISION, "patch_size": 8, "num_patches": 16}, text_config=TEXT)
    )
    folder = tmp_path_factory.mktemp("siglip2")
    model.eval().save_pretrained(folder)
    return folder, model


def _picture() -> Image.Image:
    return Image.fromarray(torch.randint(0, 256, (40, 56, 3), dtype=torch.uint8).numpy())


def test_siglip_tower_loads_from_a_full_checkpoint_and_gives_its_patch_tokens(siglip_checkpoint) -> None:
    folder, siglip = siglip_checkpoint
    encoder = build_component("encoder", "siglip-vision", {}, source=str(folder)).eval()
    assert (encoder.num_tokens, encoder.dim, encoder.naflex) == (16, 32, False)
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not any(name.startswith("model.vision_model.head") for name, _ in encoder.named_parameters())
    pixels = encoder.preprocess(_picture()).unsqueeze(0)
    assert pixels.shape == (1, 3, 32, 32)
    with torch.no_grad():
        expected = siglip.vision_model(pixel_values=pixels, output_hidden_states=True)
        torch.testing.assert_close(encoder(pixels), expected.last_hidden_state, rtol=0, atol=0)
        penultimate = build_component("encoder", "siglip-vision", {"feature_layer": -2}, source=str(folder))
        torch.testing.assert_close(penultimate.eval()(pixels), expected.hidden_states[-2], rtol=0, atol=0)


def test_siglip2_naflex_fills_a_square_grid_and_computes_what_siglip2_computes(siglip2_checkpoint) -> None:
    folder, siglip2 = siglip2_checkpoint
    encoder = build_component("encoder", "siglip-vision", {}, source=str(folder)).eval()
    assert (encoder.num_tokens, encoder.grid, encoder.naflex) == (16, 4, True)
    patches = encoder.preprocess(_picture())  # 56 x 40: NaFlex alone would give a 4 x 3 grid plus padding
    assert patches.shape == (16, 3 * 8 * 8)
    batch = torch.stack([patches, encoder.preprocess(_picture())])
    with torch.no_grad():
        expected = siglip2.vision_model(
            pixel_values=batch,
            pixel_attention_mask=torch.ones(2, 16, dtype=torch.long),
            spatial_shapes=torch.tensor([[4, 4], [4, 4]]),
        ).last_hidden_state
        torch.testing.assert_close(encoder(batch), expected, rtol=0, atol=0)
    bigger = build_component("encoder", "siglip-vision", {"max_num_patches": 36}, source=str(folder))
    assert bigger.num_tokens == 36 and bigger.preprocess(_picture()).shape == (36, 192)


def test_encoder_arguments_that_cannot_work_say_why(siglip_checkpoint) -> None:
    with pytest.raises(ComponentArgumentError, match="max_num_patches=20 is not a square number"):
        build_component(
            "encoder",
            "siglip-vision",
            {"config": {"model_type": "siglip2_vision_model"}, "max_num_patches": 20},
        )
    with pytest.raises(ComponentArgumentError, match="model_type 'clip_vision_model' is not a SigLIP vision"):
        build_component("encoder", "siglip-vision", {"config": {"model_type": "clip_vision_model"}})
    with pytest.raises(
        ComponentArgumentError, match="give a weight `source` or an inline architecture `config`"
    ):
        build_component("encoder", "siglip-vision", {})


def test_c_abstractor_has_honeybees_layout_and_names() -> None:
    from timm.models.regnet import RegStage

    projector = build_component(
        "projector", "c-abstractor", {"hidden_size": 64, "num_eos_tokens": 1}, dim_in=48, llm_dim=80
    )
    stage1, pool, stage2 = projector.net
    assert isinstance(stage1, RegStage) and isinstance(stage2, RegStage)
    assert len(list(stage1.children())) == 3 == len(list(stage2.children()))  # depth 3
    assert pool.output_size == (12, 12) and projector.output_length(576) == 145
    assert [type(m).__name__ for m in projector.readout] == ["Linear", "SiLU", "Linear"]
    assert projector.pos_emb.shape == (1, 576, 48) and projector.eos_tokens.shape == (1, 1, 80)
    block = stage1.b1
    assert type(block.conv1.bn).__name__ == "LayerNormAct2d"  # timm's LayerNorm2d fused with the activation
    assert isinstance(block.conv1.bn, torch.nn.LayerNorm) and type(block.conv1.bn.act).__name__ == "SiLU"
    assert block.se is not None and block.downsample is not None  # squeeze-excitation; 48 -> 64 channels
    keys = projector.state_dict()
    assert {"pos_emb", "eos_tokens", "readout.0.weight", "readout.2.weight"} <= set(keys)
    assert any(k.startswith("net.0.b1.") for k in keys) and any(k.startswith("net.2.b3.") for k in keys)
    assert abs(projector.readout[0].weight.std().item() - 0.02) < 0.002  # Honeybee's init
    with torch.no_grad():
        out = projector(torch.randn(2, 576, 48))
    assert out.shape == (2, 145, 80)
    torch.testing.assert_close(out[:, -1], projector.eos_tokens[0].expand(2, -1))


def test_c_abstractor_keeps_locality_and_reads_other_grids() -> None:
    torch.manual_seed(0)
    projector = build_component(
        "projector", "c-abstractor", {"num_queries": 4, "hidden_size": 16, "depth": 1, "num_input_tokens": 64},
        dim_in=8, llm_dim=12,
    ).eval()  # fmt: skip
    features = torch.randn(1, 64, 8)
    changed = features.clone().reshape(1, 8, 8, 8)
    changed[0, :4, :4] += 5.0  # the top-left quadrant of the 8 x 8 grid: what query 0 pools
    with torch.no_grad():
        delta = (projector(changed.reshape(1, 64, 8)) - projector(features)).abs().sum(-1)[0]
    # Query 0 moves most; the others move too, less (3 x 3 convolutions reach across the border, and the
    # squeeze-excitation gates are global).
    assert delta[0] > 1.2 * delta[1:].max()
    assert projector(torch.randn(2, 100, 8)).shape == (2, 4, 12)  # a 10 x 10 grid: position embedding resized
    with pytest.raises(
        IncompatibleComponentsError, match="got 65 tokens: use an encoder that returns patch tokens"
    ):
        projector.output_length(65)
    with pytest.raises(ComponentArgumentError, match="num_queries=10 must be a square number"):
        build_component("projector", "c-abstractor", {"num_queries": 10}, dim_in=8, llm_dim=12)


def test_honeybee_tiny_uses_both_components_and_builds_on_meta() -> None:
    model = zoo.build("honeybee-tiny", device="meta")
    assert type(model.encoders["image"]).__name__ == "SiglipVisionEncoder"
    assert type(model.projectors["image"]).__name__ == "CAbstractor"
    assert model.tokens_per_item("image") == 4
    assert model.config.encoders["image"]["distribution"] == "zoo-siglip"


RELOAD = """
import sys, zoo
from PIL import Image
from safetensors.torch import save_file
model = zoo.load(sys.argv[1])
conversation = [{"role": "user", "type": "image", "content": Image.new("RGB", (40, 40), "red")},
                {"role": "user", "type": "text", "content": "Colour?"}]
save_file({"logits": model(**zoo.ZooProcessor.from_model(model)(conversation)).logits}, sys.argv[2])
"""


@pytest.mark.slow  # a fresh interpreter imports torch and transformers: ~10 s
def test_a_saved_honeybee_tiny_comes_back_in_a_fresh_interpreter(tmp_path: Path) -> None:
    import subprocess
    import sys

    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = zoo.build("honeybee-tiny").eval()
    with torch.no_grad():
        model.projectors["image"].readout[0].weight.add_(0.5)  # as if trained
    model.save_pretrained(tmp_path / "saved")
    conversation = [
        {"role": "user", "type": "image", "content": Image.new("RGB", (40, 40), "red")},
        {"role": "user", "type": "text", "content": "Colour?"},
    ]
    with torch.no_grad():
        expected = model(**zoo.ZooProcessor.from_model(model)(conversation)).logits
    logits = tmp_path / "logits.safetensors"
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, str(tmp_path / "saved"), str(logits)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    torch.testing.assert_close(load_file(logits)["logits"], expected, rtol=0, atol=0)
    config = (tmp_path / "saved" / "config.json").read_text()
    assert '"distribution": "zoo-siglip"' in config  # the checkpoint records which plugin built it


@pytest.mark.slow
def test_honeybee_smol_trains_one_step() -> None:
    check_recipe_trains_one_step(zoo.get_registry().resolve("recipe", "zoo-siglip:honeybee-smol"))
