"""The BLIP-2 vision encoder and Q-Former projector load their parts of a real BLIP-2 checkpoint folder.

The test saves a tiny random ``Blip2ForConditionalGeneration`` with ``save_pretrained`` (sharded, so the
index file is exercised) and checks that zoo's components compute exactly what BLIP-2 computes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Blip2Config, Blip2ForConditionalGeneration

from zoo.components.blip2_vision import BLIP2VisionEncoder
from zoo.components.projectors import QFormerProjector
from zoo.data.synthetic import shape_image
from zoo.errors import ComponentArgumentError, IncompatibleComponentsError

QFORMER = {"num_queries": 4, "hidden_size": 32, "num_layers": 2, "num_heads": 4, "intermediate_size": 64}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Blip2ForConditionalGeneration]:
    torch.manual_seed(0)
    config = Blip2Config(
        vision_config={"hidden_size": 24, "intermediate_size": 48, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": 28, "patch_size": 14},
        qformer_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "intermediate_size": 64},
        text_config={"model_type": "opt", "hidden_size": 48, "ffn_dim": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 4, "vocab_size": 100, "word_embed_proj_dim": 48},
        num_query_tokens=4,
    )  # fmt: skip
    model = Blip2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.query_tokens.normal_()  # transformers starts them at zero; make loading them observable
    folder = tmp_path_factory.mktemp("blip2")
    model.save_pretrained(folder, max_shard_size="100KB")
    assert (folder / "model.safetensors.index.json").is_file()
    return folder, model


def test_vision_encoder_loads_only_the_vision_tower_and_matches_blip2(checkpoint) -> None:
    folder, blip2 = checkpoint
    encoder = BLIP2VisionEncoder(source=str(folder)).eval()
    assert encoder.num_tokens == 5 and encoder.dim == 24  # (28 / 14)^2 patches + CLS
    assert all(not p.requires_grad for p in encoder.parameters())
    pixels = encoder.preprocess(shape_image()).unsqueeze(0)
    assert pixels.shape == (1, 3, 28, 28)
    with torch.no_grad():
        expected = blip2.vision_model(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(encoder(pixels), expected)


def test_qformer_projector_loads_blip2s_qformer_and_reads_frames_one_by_one(checkpoint) -> None:
    folder, blip2 = checkpoint
    projector = QFormerProjector(24, 48, source=str(folder), **QFORMER).eval()
    torch.testing.assert_close(projector.query_tokens, blip2.query_tokens)
    video = QFormerProjector(24, 48, source=str(folder), frames=3, **QFORMER).eval()
    pixels = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        per_frame = blip2.get_image_features(pixels).pooler_output  # [3 frames, 4 queries, 48]
        features = blip2.vision_model(pixel_values=pixels).last_hidden_state  # [3, 5, 24]
        torch.testing.assert_close(projector(features), per_frame)
        together = video(features.reshape(1, 15, 24))
    assert video.output_length(15) == 12
    torch.testing.assert_close(together[0], per_frame.reshape(12, 48))


def test_qformer_keeps_a_fresh_projection_for_another_llm_width(checkpoint) -> None:
    folder, blip2 = checkpoint
    projector = QFormerProjector(24, 64, source=str(folder), **QFORMER)
    torch.testing.assert_close(projector.query_tokens, blip2.query_tokens)
    assert projector.language_projection.out_features == 64


def test_qformer_of_another_size_is_a_clear_error(checkpoint) -> None:
    folder, _ = checkpoint
    with pytest.raises(IncompatibleComponentsError, match="Q-Former size differs"):
        QFormerProjector(24, 48, source=str(folder), **{**QFORMER, "hidden_size": 16})


def test_frames_must_split_the_input_evenly() -> None:
    projector = QFormerProjector(24, 48, frames=3, **QFORMER)
    with pytest.raises(IncompatibleComponentsError, match="divisible by 3"):
        projector.output_length(16)


def test_encoder_needs_a_source_or_a_config() -> None:
    with pytest.raises(ComponentArgumentError, match="blip2-vision"):
        BLIP2VisionEncoder()
