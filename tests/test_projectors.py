"""Projectors: output shapes and lengths, input checks, gradients, and the papers' specifics.

Small widths everywhere; the full-size shapes and parameter counts are checked on the meta device.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import zoo
from zoo.components.base import Backbone, Projector
from zoo.components.projectors import (
    LinearProjector,
    MacawAligner,
    MLPProjector,
    PerceiverResampler,
    QFormerProjector,
    TokenSplitMLPProjector,
)
from zoo.errors import ComponentArgumentError, IncompatibleComponentsError
from zoo.testing import tiny

DIM_IN, LLM_DIM, VOCAB = tiny.DIM_IN, 32, 40


class TinyLlamaBackbone(Backbone):
    """A real (tiny, random) LlamaForCausalLM behind the Backbone contract's ``model`` attribute."""

    def __init__(self, hidden_size: int = LLM_DIM, vocab_size: int = VOCAB) -> None:
        super().__init__()
        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=2 * hidden_size,
            num_hidden_layers=1,
            num_attention_heads=4,
        )
        self.model = LlamaForCausalLM(config)


def _macaw(**options: object) -> MacawAligner:
    aligner = MacawAligner(DIM_IN, LLM_DIM, kernel_size=4, stride=3, num_heads=4, **options)
    aligner.attach_backbone(TinyLlamaBackbone())
    return aligner


# The core's projectors as the registry lists them, each built with its tiny_args by the conformance kit
# (whose own checks, tests/test_conformance.py, cover output shapes, lengths and gradients for every one).
CORE_PROJECTORS = tiny.registered(("projector",), "zoo")


@pytest.fixture(params=CORE_PROJECTORS, ids=lambda entry: entry.name)
def projector(request: pytest.FixtureRequest) -> Projector:
    torch.manual_seed(0)
    return tiny.build(request.param)


def test_the_core_registers_its_projectors_through_entry_points() -> None:
    assert {e.name for e in CORE_PROJECTORS} >= {"linear", "mlp", "s3", "macaw", "qformer", "perceiver"}


def test_width_mismatch_names_projector_expected_and_got(projector: Projector) -> None:
    with pytest.raises(IncompatibleComponentsError) as error:
        projector(torch.randn(2, projector.tiny_input_lengths[-1], 24))
    message = str(error.value)
    assert type(projector).__name__ in message and f"dim_in={DIM_IN}" in message and "width 24" in message


def test_rejects_non_3d_features(projector: Projector) -> None:
    with pytest.raises(IncompatibleComponentsError, match=r"\[batch, length, 16\]"):
        projector(torch.randn(projector.tiny_input_lengths[-1], DIM_IN))


def test_items_in_a_batch_are_independent(projector: Projector) -> None:
    projector.eval()
    features = torch.randn(3, projector.tiny_input_lengths[-1], DIM_IN)
    together = projector(features)
    alone = torch.cat([projector(features[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MLPProjector(16, 32, depth=0), "depth must be a positive integer"),
        (lambda: LinearProjector(0, 32), "dim_in must be a positive integer"),
        (lambda: TokenSplitMLPProjector(16, 32, num_tokens=0), "num_tokens"),
        (lambda: TokenSplitMLPProjector(16, 32, pool="max"), "pool must be one of"),
        (lambda: TokenSplitMLPProjector(16, 32, pool="flatten"), "needs num_patches"),
        (
            lambda: QFormerProjector(16, 32, hidden_size=30, num_heads=4),
            "num_heads=4 must divide hidden_size=30",
        ),
        (lambda: PerceiverResampler(16, 32, num_heads=6, num_key_value_heads=4), "num_key_value_heads=4"),
        (lambda: MacawAligner(16, 32, video_frames=6), "needs both video_frames and patches_per_frame"),
    ],
)
def test_bad_options_raise_component_argument_error(build: Callable[[], Projector], message: str) -> None:
    with pytest.raises(ComponentArgumentError, match=message):
        build()


def test_mlp_is_llava_mlp_gelu_layout() -> None:
    layers = MLPProjector(16, 32, depth=3).mlp
    assert [type(layer) for layer in layers] == [torch.nn.Linear, torch.nn.GELU] * 2 + [torch.nn.Linear]
    assert (layers[0].in_features, layers[0].out_features, layers[4].in_features) == (16, 32, 32)


# --- S3 ---------------------------------------------------------------------------------------------------


def test_s3_splits_the_last_layer_into_four_tokens_per_item() -> None:
    projector = TokenSplitMLPProjector(DIM_IN, LLM_DIM).eval()
    assert projector.linear_projection_2.out_features == 4 * LLM_DIM
    features = torch.randn(2, 196, DIM_IN)
    out = projector(features)
    assert out.shape == (2, 4, LLM_DIM)
    wide = projector.linear_projection_2(projector.linear_projection_1(features.mean(dim=1)))
    for k in range(4):  # token k is the k-th llm_dim slice of the last layer's output
        torch.testing.assert_close(out[:, k], wide[:, k * LLM_DIM : (k + 1) * LLM_DIM])


def test_s3_pool_options() -> None:
    pooled = TokenSplitMLPProjector(DIM_IN, LLM_DIM, pool="none")
    assert pooled(torch.randn(2, 1, DIM_IN)).shape == (2, 4, LLM_DIM)
    with pytest.raises(IncompatibleComponentsError, match="exactly 1 token"):
        pooled(torch.randn(2, 196, DIM_IN))
    flat = TokenSplitMLPProjector(DIM_IN, LLM_DIM, pool="flatten", num_patches=9, num_tokens=2)
    assert flat.linear_projection_1.in_features == 9 * DIM_IN
    assert flat(torch.randn(2, 9, DIM_IN)).shape == (2, 2, LLM_DIM)
    with pytest.raises(IncompatibleComponentsError, match="exactly 9 token"):
        flat.output_length(10)


def test_s3_segments_keep_content_confined_to_part_of_the_sequence() -> None:
    """Two clips that differ only in their first tenth: mean pooling divides the difference by ten, the
    first segment keeps it whole."""
    torch.manual_seed(0)
    quiet = torch.randn(1, 1, DIM_IN).expand(1, 100, DIM_IN).clone()
    loud = quiet.clone()
    loud[:, :10] += 5.0
    segmented = TokenSplitMLPProjector(DIM_IN, LLM_DIM, pool="segments", segments=10, input_norm="layer")
    assert segmented.linear_projection_1.in_features == 10 * DIM_IN
    pooled = segmented._pooled(torch.cat([quiet, loud]))
    assert torch.equal(pooled[0, DIM_IN:], pooled[1, DIM_IN:])  # later segments are equal
    assert torch.allclose(pooled[1, :DIM_IN] - pooled[0, :DIM_IN], torch.full((DIM_IN,), 5.0))
    assert torch.allclose(loud.mean(1) - quiet.mean(1), torch.full((1, DIM_IN), 0.5))
    assert segmented(torch.cat([quiet, loud])).shape == (2, 4, LLM_DIM)
    with pytest.raises(IncompatibleComponentsError, match="at least segments=10 tokens"):
        segmented.output_length(7)
    with pytest.raises(ComponentArgumentError, match="needs segments"):
        TokenSplitMLPProjector(DIM_IN, LLM_DIM, pool="segments")


def test_s3_output_norm_starts_at_the_llm_embedding_scale() -> None:
    """output_norm='rms': every projected token has the RMS of the LLM's embedding matrix, however large
    the features, and keeps it after training moves the layers (the gain is what may change)."""
    torch.manual_seed(0)
    backbone = TinyLlamaBackbone()
    embedding_rms = backbone.model.get_input_embeddings().weight.pow(2).mean().sqrt()
    projector = TokenSplitMLPProjector(DIM_IN, LLM_DIM, output_norm="rms", input_norm="layer").eval()
    assert projector.needs_backbone and not TokenSplitMLPProjector(DIM_IN, LLM_DIM).needs_backbone
    projector.attach_backbone(backbone)
    for scale in (0.01, 1.0, 300.0):
        tokens = projector(scale * torch.randn(3, 7, DIM_IN))
        torch.testing.assert_close(
            tokens.pow(2).mean(-1).sqrt(), embedding_rms.expand(3, 4), rtol=1e-3, atol=0
        )
    with torch.no_grad():
        projector.linear_projection_2.weight.mul_(50.0)
    tokens = projector(torch.randn(3, 7, DIM_IN))
    torch.testing.assert_close(tokens.pow(2).mean(-1).sqrt(), embedding_rms.expand(3, 4), rtol=1e-3, atol=0)


# --- Macaw ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel", "stride", "length", "expected", "video"),
    [
        (48, 36, 196, 5, {}),
        (36, 30, 6 * 196, 39, {"video_frames": 6, "patches_per_frame": 196}),
        (240, 220, 1500, 6, {}),
    ],
)
def test_macaw_reference_lengths_at_full_size(
    kernel: int, stride: int, length: int, expected: int, video: dict
) -> None:
    with torch.device("meta"):
        backbone = TinyLlamaBackbone(hidden_size=4096, vocab_size=32000)
        aligner = MacawAligner(512, 4096, kernel_size=kernel, stride=stride, **video)
        aligner.attach_backbone(backbone)
        assert aligner.output_length(length) == expected
        assert aligner(torch.empty(2, length, 512)).shape == (2, expected, 4096)


def test_macaw_layers_follow_the_reference() -> None:
    aligner = MacawAligner(512, 4096, kernel_size=48, stride=36, num_heads=8)
    conv, attention = aligner.compress, aligner.align_attention
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (512, 512, (48,), (36,))
    assert (aligner.to_llm.in_features, aligner.to_llm.out_features) == (512, 4096)
    assert attention.bias_k is not None and attention.add_zero_attn and attention.dropout == 0.1
    assert (attention.embed_dim, attention.num_heads) == (4096, 8)


def test_macaw_attends_over_the_live_embedding_matrix() -> None:
    torch.manual_seed(0)
    backbone = TinyLlamaBackbone()
    aligner = MacawAligner(DIM_IN, LLM_DIM, kernel_size=4, stride=3, num_heads=4).eval()
    aligner.attach_backbone(backbone)
    features = torch.randn(2, 10, DIM_IN)
    before = aligner(features)
    embedding = backbone.model.get_input_embeddings().weight
    with torch.no_grad():
        embedding.mul_(3.0)
    changed = aligner(features)
    with torch.no_grad():
        embedding.div_(3.0)
    assert not torch.allclose(before, changed)
    torch.testing.assert_close(aligner(features), before)


def test_macaw_holds_no_copy_of_the_backbone() -> None:
    backbone = TinyLlamaBackbone()
    aligner = _macaw()
    aligner.attach_backbone(backbone)
    embedding = backbone.model.get_input_embeddings().weight
    assert all(p.data_ptr() != embedding.data_ptr() for p in aligner.parameters())
    assert all(tensor.shape[0] != VOCAB for tensor in aligner.state_dict().values())
    assert not any(name.startswith("_backbone") or "embed" in name for name in aligner.state_dict())
    out = aligner(torch.randn(2, 10, DIM_IN))
    out.sum().backward()
    assert embedding.grad is not None and embedding.grad.abs().sum() > 0  # the matrix itself is in the graph


def test_macaw_follows_resized_embeddings() -> None:
    backbone = TinyLlamaBackbone()
    aligner = _macaw().eval()
    aligner.attach_backbone(backbone)
    features = torch.randn(1, 10, DIM_IN)
    before = aligner(features)
    backbone.model.resize_token_embeddings(VOCAB + 8)  # new special tokens replace the embedding module
    assert not torch.allclose(aligner(features), before)


def test_macaw_num_heads_must_divide_llm_width() -> None:
    with pytest.raises(ComponentArgumentError, match=r"num_heads=220 must divide llm_dim=4096.*\[1, 2, 4, 8"):
        MacawAligner(512, 4096, num_heads=220)


def test_macaw_forward_before_attach_backbone_is_a_clear_error() -> None:
    aligner = MacawAligner(DIM_IN, LLM_DIM, kernel_size=4, stride=3, num_heads=4)
    with pytest.raises(IncompatibleComponentsError, match="attach_backbone"):
        aligner(torch.randn(1, 10, DIM_IN))


def test_macaw_rejects_backbone_of_another_width() -> None:
    aligner = MacawAligner(DIM_IN, LLM_DIM, kernel_size=4, stride=3, num_heads=4)
    with pytest.raises(IncompatibleComponentsError, match=r"llm_dim=32.*shape \(40, 64\)"):
        aligner.attach_backbone(TinyLlamaBackbone(hidden_size=64))


def test_macaw_length_errors() -> None:
    aligner = _macaw()
    with pytest.raises(IncompatibleComponentsError, match="shorter than its Conv1D kernel_size=4"):
        aligner(torch.randn(1, 3, DIM_IN))
    video = _macaw(video_frames=3, patches_per_frame=4)
    with pytest.raises(IncompatibleComponentsError, match="3 x 4 = 12 tokens, got 10"):
        video.output_length(10)


def test_macaw_video_encodes_frame_positions_before_compression() -> None:
    torch.manual_seed(0)
    video = _macaw(video_frames=3, patches_per_frame=4, video_position="frame").eval()
    assert video.output_length(12) == 3
    features = torch.randn(2, 12, DIM_IN)
    before = video(features)
    with torch.no_grad():
        video.frame_position.weight[1].add_(1.0)  # the second frame's position only
    assert not torch.allclose(video(features), before)


# --- Q-Former ---------------------------------------------------------------------------------------------


def test_qformer_default_size_is_blip2s() -> None:
    with torch.device("meta"):
        projector = QFormerProjector(1408, 5120)  # EVA ViT-g features into Ziya-13B, as Ying-VLM
    qformer = sum(p.numel() for p in projector.qformer.parameters())
    total = sum(p.numel() for p in projector.parameters())
    assert 100e6 < qformer < 110e6  # BLIP-2's Q-Former without BERT's word embeddings
    assert total == qformer + 32 * 768 + 768 * 5120 + 5120
    assert projector.output_length(257) == 32


def test_qformer_computes_what_blip2_computes() -> None:
    from transformers import Blip2Config, Blip2ForConditionalGeneration

    torch.manual_seed(0)
    config = Blip2Config(
        vision_config={
            "hidden_size": 24,
            "intermediate_size": 48,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 16,
        },
        qformer_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "intermediate_size": 64,
        },
        text_config={
            "model_type": "opt",
            "hidden_size": 48,
            "ffn_dim": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "vocab_size": 100,
            "word_embed_proj_dim": 48,
        },
        num_query_tokens=5,
    )
    blip2 = Blip2ForConditionalGeneration(config).eval()
    projector = QFormerProjector(
        24, 48, num_queries=5, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64
    ).eval()
    wanted = ("query_tokens", "qformer.", "language_projection.")
    projector.load_state_dict({k: v for k, v in blip2.state_dict().items() if k.startswith(wanted)})
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = blip2.get_image_features(pixels).pooler_output
        features = blip2.vision_model(pixel_values=pixels).last_hidden_state
        torch.testing.assert_close(projector(features), expected)


def test_learned_queries_start_distinct() -> None:
    torch.manual_seed(0)
    registry = zoo.get_registry()
    for name in ("qformer", "perceiver"):
        projector = tiny.build(registry.resolve("projector", name)).eval()
        out = projector(torch.randn(1, 7, DIM_IN))[0]
        assert not torch.allclose(out[0], out[1]), name


# --- Perceiver --------------------------------------------------------------------------------------------


def test_perceiver_computes_what_idefics2s_connector_computes() -> None:
    from transformers import Idefics2Config
    from transformers.models.idefics2.modeling_idefics2 import Idefics2Connector

    torch.manual_seed(0)
    config = Idefics2Config(
        vision_config={
            "hidden_size": DIM_IN,
            "intermediate_size": 48,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
        },
        text_config={
            "model_type": "mistral",
            "hidden_size": LLM_DIM,
            "intermediate_size": 40,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 100,
            "rms_norm_eps": 1e-6,
        },
        perceiver_config={
            "resampler_n_latents": 6,
            "resampler_depth": 2,
            "resampler_n_heads": 4,
            "resampler_head_dim": 8,
            "num_key_value_heads": 2,
        },
    )
    connector = Idefics2Connector(config).eval()
    projector = PerceiverResampler(
        DIM_IN,
        LLM_DIM,
        num_latents=6,
        depth=2,
        num_heads=4,
        head_dim=8,
        num_key_value_heads=2,
        intermediate_size=40,
    ).eval()
    projector.load_state_dict(connector.state_dict())
    features = torch.randn(2, 10, DIM_IN)
    with torch.no_grad():
        expected = connector(features, attention_mask=torch.ones(2, 10, dtype=torch.long))
        torch.testing.assert_close(projector(features), expected)


def test_macaw_sinusoidal_video_position_is_the_released_encoding() -> None:
    import math

    from zoo.components.projectors import _macaw_sinusoid

    table = _macaw_sinusoid(5, 8)
    for pos in range(5):  # the reference's loop: sin at even i, cos at i + 1, frequency exp(-log(1e4)/h * 2i)
        for i in range(0, 8, 2):
            div = math.exp(-(math.log(10000.0) / 8 * (2 * i)))
            assert table[pos, i].item() == pytest.approx(math.sin(pos * div), abs=1e-6)
            assert table[pos, i + 1].item() == pytest.approx(math.cos(pos * div), abs=1e-6)
    torch.manual_seed(0)
    video = _macaw(video_frames=3, patches_per_frame=4).eval()
    assert video.video_position == "sinusoidal" and not hasattr(video, "frame_position")
    features = torch.randn(1, 12, DIM_IN)
    shifted = torch.cat([features[:, 4:], features[:, :4]], dim=1)  # the same frames in another order
    assert not torch.allclose(video(features), video(shifted))


def test_macaw_temporal_heads_are_separate_from_the_alignment_heads() -> None:
    video = MacawAligner(512, 4096, kernel_size=36, stride=30, num_heads=16, video_frames=6,
                         patches_per_frame=196, temporal_heads=8)  # fmt: skip
    assert (video.temporal_attention.num_heads, video.align_attention.num_heads) == (8, 16)
    with pytest.raises(ComponentArgumentError, match="video_position must be one of"):
        MacawAligner(16, 32, video_frames=2, patches_per_frame=2, video_position="learned")
