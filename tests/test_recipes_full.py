"""The full-size seed recipes, built on the meta device, against the numbers their papers give.

Each recipe carries its architecture inline, so these builds read nothing from the Hub (the test session's
HF cache is an empty temporary folder and HF_HUB_OFFLINE=1). Parameter counts are exact where the
architecture fixes them; the papers' own rounded figures are checked within a stated tolerance.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import zoo
from zoo.components.projectors import MacawAligner, MLPProjector, QFormerProjector, TokenSplitMLPProjector

FULL_RECIPES = ("macaw-7b", "s3-7b", "ying-vlm-13b", "llava-1.5-7b")
_CACHE: dict[tuple[str, str], zoo.ZooModel] = {}


def meta_build(name: str, stage: str | int = 0) -> zoo.ZooModel:
    key = (name, str(stage))
    if key not in _CACHE:
        _CACHE[key] = zoo.build(name, device="meta", stage=stage)
    return _CACHE[key]


def trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hf_cache_files() -> list[Path]:
    root = Path(os.environ["HF_HOME"])
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.mark.parametrize("name", FULL_RECIPES)
def test_full_recipe_builds_on_meta_without_downloading(name: str) -> None:
    before = hf_cache_files()
    model = meta_build(name)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert all(p.device.type == "meta" for p in model.parameters())
    assert hf_cache_files() == before  # nothing fetched, not even a config
    vocab = model.config.text_vocab_size  # the backbone config's vocabulary before the recipe's tokens
    ids = sorted(model.config.token_ids.values())
    assert ids == list(range(vocab, vocab + len(ids)))  # no tokenizer offline: new ids follow the vocabulary
    assert model.get_input_embeddings().num_embeddings == vocab + len(ids)


def test_full_recipes_are_listed() -> None:
    from zoo.registry import get_registry

    names = {entry.name for entry in get_registry().list_components("recipe")}
    assert set(FULL_RECIPES) | {"macaw-smol", "s3-smol", "ying-vlm-smol", "llava-smol"} <= names


# --- Macaw-LLM ----------------------------------------------------------------------------------------------


def test_macaw_7b_matches_the_paper_and_reference() -> None:
    model = meta_build("macaw-7b")
    assert model.backbone.hidden_size == 4096 and len(model.backbone.model.model.layers) == 32
    assert {m: model.encoders[m].dim for m in model.encoders} == {"image": 512, "video": 512, "audio": 512}
    assert {m: model.encoders[m].num_tokens for m in model.encoders} == {
        "image": 196,
        "video": 6 * 196,
        "audio": 1500,
    }
    assert {m: model.tokens_per_item(m) for m in model.encoders} == {"image": 5, "video": 39, "audio": 6}
    kernels = {m: (p.kernel_size, p.stride) for m, p in model.projectors.items()}
    assert kernels == {"image": (48, 36), "video": (36, 30), "audio": (240, 220)}
    video = model.projectors["video"]
    assert isinstance(video, MacawAligner) and video.video_position == "sinusoidal"
    assert video.temporal_attention.num_heads == 8 and video.align_attention.num_heads == 16
    assert model.config.media_position == "after_bos"
    assert model.config.media_tokens["image"]["start"] == "<image>"
    assert model.config.media_tokens["video"]["end"] == "</video>"
    assert model.recipe.max_length == 512


def test_macaw_7b_trains_everything_but_the_encoders() -> None:
    model = meta_build("macaw-7b")
    assert all(trainable(e) == 0 for e in model.encoders.values())
    assert all(trainable(p) == count(p) for p in model.projectors.values())
    assert trainable(model.backbone) == count(model.backbone)
    assert 6.7e9 < count(model.backbone) < 6.8e9  # LLaMA-7B (+ 9 new token rows)
    stage = model.recipe.stages[0]
    assert stage["lr"]["default"] == pytest.approx(3e-5) and stage["epochs"] == 5
    assert stage["batch"]["size"] == 4 * 3 * 8 and stage["precision"] == "fp16"
    assert stage["schedule"]["name"] == "cosine" and stage["schedule"]["warmup_ratio"] == pytest.approx(0.03)


# --- S3 ---------------------------------------------------------------------------------------------------


def test_s3_7b_matches_the_paper() -> None:
    model = meta_build("s3-7b")
    config = model.backbone.model.config
    assert config.model_type == "mistral" and model.backbone.hidden_size == 4096
    assert (config.num_key_value_heads, config.intermediate_size) == (8, 14336)
    assert {m: model.tokens_per_item(m) for m in model.encoders} == {"image": 4, "audio": 4}
    assert model.encoders["image"].num_tokens == 256  # per-patch CLIP features, not one pooled vector
    for projector in model.projectors.values():
        assert isinstance(projector, TokenSplitMLPProjector)
        assert projector.linear_projection_2.out_features == 4 * 4096
    layout = model.config.media_tokens
    assert layout["image"] == {"placeholder": "[img]", "start": "[M]", "end": "[/M]"}
    assert layout["audio"] == {"placeholder": "[audio]", "start": "[M]", "end": "[/M]"}
    assert {"[RS]", "[/RS]", "[user]", "[bot]"} <= set(model.config.added_tokens())


def test_s3_7b_trains_lora_embeddings_lm_head_and_projectors() -> None:
    model = meta_build("s3-7b")
    backbone = model.backbone.model
    lora = sum(p.numel() for n, p in backbone.named_parameters() if "lora_" in n and p.requires_grad)
    rows = backbone.get_input_embeddings().num_embeddings
    # r=8 on the 7 linear layers of 32 Mistral blocks: (in + out) x 8 each
    per_block = 8 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336))
    assert lora == 32 * per_block
    assert trainable(backbone.get_input_embeddings()) == rows * 4096
    assert trainable(backbone.get_output_embeddings()) == rows * 4096
    frozen_base = [n for n, p in backbone.named_parameters() if ".layers." in n and "lora_" not in n]
    assert frozen_base and not any(backbone.get_parameter(n).requires_grad for n in frozen_base)
    projectors = sum(count(p) for p in model.projectors.values())
    assert trainable(model) == lora + 2 * rows * 4096 + projectors
    stage = model.recipe.stages[0]
    assert stage["lr"]["default"] == pytest.approx(1e-4) and stage["batch"]["size"] == 128
    assert stage["schedule"]["name"] == "cosine" and stage["optimizer"]["name"] == "adamw"


def test_s3_chat_layout_is_the_papers() -> None:
    from jinja2 import Template

    model = meta_build("s3-7b")
    messages = [
        {"role": "user", "content": "[M][img][img][img][img][/M]"},
        {"role": "user", "content": "What is it?"},
        {"role": "assistant", "content": "A red apple with red worm"},
    ]
    text = Template(model.config.chat_template).render(
        messages=messages, bos_token="<s>", add_generation_prompt=False
    )
    assert text == (
        "<s>[RS] [user] [M][img][img][img][img][/M] [/RS]\n"
        "[RS] [user] What is it? [/RS]\n"
        "[RS] [bot] A red apple with red worm [/RS]\n"
    )


# --- Ying-VLM ---------------------------------------------------------------------------------------------


def test_ying_vlm_13b_matches_the_paper() -> None:
    model = meta_build("ying-vlm-13b")
    config = model.backbone.model.config
    assert model.backbone.hidden_size == 5120 and config.num_hidden_layers == 40
    assert model.config.text_vocab_size == 39424  # Ziya-13B: LLaMA-13B with Chinese tokens added
    assert model.encoders["image"].dim == 1408 and model.encoders["image"].num_tokens == 257
    assert 0.98e9 < count(model.encoders["image"]) < 1.0e9  # EVA ViT-g as BLIP-2 ships it (39 layers)
    assert model.tokens_per_item("image") == 32
    assert model.encoders["video"].num_tokens == 8 * 257
    assert model.tokens_per_item("video") == 8 * 32  # one Q-Former pass per frame, outputs concatenated
    image, video = model.projectors["image"], model.projectors["video"]
    assert isinstance(image, QFormerProjector) and video.frames == 8
    assert video.qformer.encoder.layer[0].attention.attention.query.weight is (
        image.qformer.encoder.layer[0].attention.attention.query.weight
    )


def test_ying_vlm_align_stage_trains_the_qformer_and_projection() -> None:
    model = meta_build("ying-vlm-13b", "align")
    qformer = model.projectors["image"]
    assert trainable(model) == count(qformer)  # shared video Q-Former counted once
    # transformers' Q-Former (as BLIP-2's LLM stage uses it) + 32 queries + Linear(768, 5120)
    assert count(qformer.qformer) == 105_137_664
    assert count(qformer) == 105_137_664 + 32 * 768 + 768 * 5120 + 5120
    # The paper's "130M" also counts the Q-Former's BERT word and position embeddings, which BLIP-2 keeps
    # from its first stage but which never touch the query path: 30522 x 768 + 512 x 768.
    assert count(qformer) + (30522 + 512) * 768 == pytest.approx(130e6, rel=0.03)
    stage = model.recipe.stages[0]
    assert stage["lr"]["default"] == pytest.approx(5e-5) and stage["schedule"]["warmup_steps"] == 2000
    assert stage["optimizer"]["weight_decay"] == pytest.approx(0.05) and stage["batch"]["size"] == 256


def test_ying_vlm_instruct_stage_adds_the_llm_query_and_value_projections() -> None:
    model = meta_build("ying-vlm-13b", "instruct")
    names = {n.rsplit(".", 2)[-2] for n, p in model.backbone.named_parameters() if p.requires_grad}
    assert names == {"q_proj", "v_proj"}
    assert trainable(model.backbone) == 40 * 2 * 5120 * 5120
    assert trainable(model) == count(model.projectors["image"]) + 40 * 2 * 5120 * 5120
    stage = model.recipe.stages[1]
    assert stage["lr"]["default"] == pytest.approx(1e-5) and stage["schedule"]["warmup_steps"] == 1000
    assert stage["epochs"] == 3


# --- LLaVA-1.5 --------------------------------------------------------------------------------------------


def test_llava_1_5_7b_matches_the_paper() -> None:
    model = meta_build("llava-1.5-7b")
    encoder = model.encoders["image"]
    assert encoder.feature_layer == -2 and encoder.num_tokens == 576 and encoder.dim == 1024
    assert model.tokens_per_item("image") == 576
    assert model.config.added_tokens() == ["<image>"]  # no start/end tokens (mm_use_im_start_end: false)
    assert model.backbone.hidden_size == 4096
    projector = model.projectors["image"]
    assert isinstance(projector, MLPProjector) and len(projector.mlp) == 3  # mlp2x_gelu
    assert trainable(model) == count(projector) == 1024 * 4096 + 4096 + 4096 * 4096 + 4096  # ~21M
    assert model.recipe.stages[0]["lr"]["default"] == pytest.approx(1e-3)
    assert model.recipe.stages[0]["batch"]["size"] == 256


def test_llava_finetune_trains_projector_and_llm() -> None:
    model = meta_build("llava-1.5-7b", "finetune")
    assert trainable(model) == count(model.projectors["image"]) + count(model.backbone)
    assert trainable(model.encoders["image"]) == 0
    stage = model.recipe.stages[1]
    assert stage["lr"]["default"] == pytest.approx(2e-5) and stage["batch"]["size"] == 128
    assert stage["schedule"]["warmup_ratio"] == pytest.approx(0.03) and stage["epochs"] == 1
