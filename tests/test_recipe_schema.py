"""Recipe schema: every field is checked, and each error names the file, the line and the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import zoo
from zoo.errors import ComponentArgumentError, RecipeError, UnknownComponentError
from zoo.recipes_api import load_recipe

TINY = (Path(zoo.__file__).parent / "recipes" / "tiny.yaml").read_text()
TINY_COMPONENTS = TINY[: TINY.index("stages:")]  # name ... projectors, without the stages


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def with_stages(stages: str) -> str:
    return TINY_COMPONENTS + "stages:\n" + stages


def expect(path: Path, text: str, needle: str, message: str, error: type = RecipeError) -> None:
    """Loading ``path`` fails at the line holding ``needle`` with ``message`` (a regex)."""
    with pytest.raises(error) as caught:
        zoo.build(path, device="meta")
    prefix = f"{path}:{line_of(text, needle)}: "
    assert str(caught.value).startswith(prefix), str(caught.value)
    assert re.search(message, str(caught.value)), str(caught.value)


def test_unknown_top_level_field_names_file_line_and_field(tmp_path) -> None:
    text = TINY.replace("description:", "descripton:")
    expect(
        write(tmp_path, text),
        text,
        "descripton:",
        r"descripton: unknown field \(did you mean 'description'\?\)",
    )


def test_unknown_spec_field(tmp_path) -> None:
    text = TINY.replace(
        "  audio:\n    name: whisper-encoder", "  audio:\n    name: whisper-encoder\n    sorce: x"
    )
    expect(write(tmp_path, text), text, "sorce:", r"encoders\.audio\.sorce: unknown field .*'source'")


def test_bad_train_mode(tmp_path) -> None:
    text = with_stages("  - name: s\n    train:\n      projectors: half\n")
    expect(
        write(tmp_path, text),
        text,
        "projectors: half",
        r"stages\[0\]\.train\.projectors: is 'half'; use one of frozen, full, lora",
    )


def test_bad_part_suggests_the_close_one(tmp_path) -> None:
    text = with_stages("  - name: s\n    train: {backbon: full}\n")
    expect(
        write(tmp_path, text),
        text,
        "backbon: full",
        r"stages\[0\]\.train\.backbon: unknown part \(did you mean 'backbone'\?\)",
    )


def test_part_for_a_modality_the_recipe_lacks(tmp_path) -> None:
    text = with_stages("  - name: s\n    train: {projectors.depth: full}\n")
    expect(write(tmp_path, text), text, "projectors.depth", r"unknown part.*projectors\.image")


@pytest.mark.parametrize(
    ("lr", "message"),
    [
        ("-1e-4", r"lr: must be a positive number, got -0\.0001"),
        ("{projectors: fast}", r"lr\.projectors: expected a number, got str 'fast'"),
        ("{encoder: 1e-4}", r"lr\.encoder: unknown part.*'encoders'"),
    ],
)
def test_bad_learning_rates(tmp_path, lr: str, message: str) -> None:
    text = with_stages(f"  - name: s\n    train: {{backbone: full}}\n    lr: {lr}\n")
    expect(write(tmp_path, text), text, "    lr:", message)


def test_scientific_notation_is_a_number_and_a_bare_lr_is_the_default(tmp_path) -> None:
    text = with_stages("  - name: s\n    lr: 5e-5\n    optimizer: {eps: 1e-8}\n")
    stage = load_recipe(write(tmp_path, text)).stages[0]
    assert stage["lr"] == {"default": 5e-5}
    assert stage["optimizer"] == {"name": "adamw", "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-8}


def test_invalid_yaml_names_file_line_and_column(tmp_path) -> None:
    text = TINY.replace("  video: {name: mlp, args: {depth: 2}}", "  video: {name: mlp, args: {depth: 2}")
    path = write(tmp_path, text)
    with pytest.raises(RecipeError, match=rf"^{re.escape(str(path))}:\d+:\d+: invalid YAML: ") as caught:
        load_recipe(path)
    line = int(str(caught.value).split(":")[1])
    assert abs(line - line_of(text, "video: {name: mlp")) <= 1


def test_overrides_are_reported_as_override() -> None:
    with pytest.raises(RecipeError, match=r"^override: stages\[0\]\.train\.backbon: unknown part"):
        zoo.build("tiny", device="meta", stages=[{"train": {"backbon": "full"}}])


def test_batch_size_is_the_product_and_must_agree(tmp_path) -> None:
    good = with_stages("  - name: s\n    batch: {per_device: 4, accumulation: 3, devices: 8}\n")
    assert load_recipe(write(tmp_path, good)).stages[0]["batch"]["size"] == 96
    bad = with_stages("  - name: s\n    batch: {size: 100, per_device: 4, accumulation: 3, devices: 8}\n")
    with pytest.raises(RecipeError, match=r"batch: size 100 is not .* = 96"):
        load_recipe(write(tmp_path, bad, "bad.yaml"))


def test_schedule_warmup_steps_or_ratio_not_both(tmp_path) -> None:
    text = with_stages("  - name: s\n    schedule: {name: cosine, warmup_steps: 10, warmup_ratio: 0.03}\n")
    with pytest.raises(RecipeError, match=r"schedule: give warmup_steps or warmup_ratio, not both"):
        load_recipe(write(tmp_path, text))


@pytest.mark.parametrize(
    ("stage", "needle", "message"),
    [
        ("precision: fp8", "precision", r"precision: is 'fp8'; use one of bf16, fp16, fp32"),
        ("epochs: 0", "epochs", r"epochs: must be a positive number"),
        ("optimizer: {name: sgd}", "optimizer", r"optimizer\.name: is 'sgd'; use one of adamw"),
        ("schedule: {name: cosine, warmup_ratio: 1.5}", "schedule", r"warmup_ratio: must be in \[0, 1\)"),
        ("lora: {r: 8}", "lora", r"lora: LoRA options given but `train.backbone` is not `lora`"),
        ("train: {encoders.image: lora}", "train", r"LoRA applies to the whole backbone only"),
    ],
)
def test_bad_stage_values(tmp_path, stage: str, needle: str, message: str) -> None:
    text = with_stages(f"  - name: s\n    {stage}\n")
    expect(write(tmp_path, text), text, needle, message)


def test_stage_that_trains_nothing_fails_at_its_line(tmp_path) -> None:
    text = with_stages("  - name: a\n  - name: idle\n    train: {projectors: frozen, backbone: frozen}\n")
    expect(
        write(tmp_path, text), text, "projectors: frozen", r"stages\[1\]\.train: this stage trains nothing"
    )


def test_every_stage_is_checked_against_the_model_before_training(tmp_path) -> None:
    lora = "  - name: a\n  - name: b\n    train: {backbone: lora}\n    lora: {targets: [q_proj, qkv_fused]}\n"
    text = with_stages(lora)
    expect(
        write(tmp_path, text),
        text,
        "lora: {targets",
        r"stages\[1\]\.lora\.targets\[1\]: LoRA target 'qkv_fused' would match no module.*q_proj",
    )
    leaf = with_stages("  - name: a\n  - name: b\n    train: {backbone: frozen, backbone.qq_proj: full}\n")
    expect(
        write(tmp_path, leaf, "leaf.yaml"),
        leaf,
        "qq_proj",
        r"backbone has no module named 'qq_proj'; its linear layers are down_proj, gate_proj",
    )


def test_media_position_and_chat_template_reach_the_model_config(tmp_path) -> None:
    text = TINY_COMPONENTS + 'media_position: after_bos\nmax_length: 256\nchat_template: "{{ messages }}"\n'
    recipe = load_recipe(write(tmp_path, text))
    assert (recipe.media_position, recipe.max_length) == ("after_bos", 256)
    model = zoo.build(recipe.path, device="meta")
    assert model.config.media_position == "after_bos"
    assert model.config.chat_template == "{{ messages }}"
    bad = TINY_COMPONENTS + "media_position: before_eos\n"
    expect(
        write(tmp_path, bad, "bad.yaml"),
        bad,
        "media_position",
        r"media_position: is 'before_eos'; use one of inline, after_bos",
    )


def test_missing_plugin_names_the_distribution_to_install(tmp_path, monkeypatch) -> None:
    text = TINY.replace(
        "    name: clip-vision\n    args:\n      config: {hidden_size: 32",
        "    name: openclip-vit\n    plugin: zoo-openclip-extra\n    args:\n      config: {hidden_size: 32",
        1,
    )
    path = write(tmp_path, text)
    monkeypatch.setattr(
        "zoo.modeling.ZooModel.__init__", lambda *a, **k: pytest.fail("built before the check")
    )
    with pytest.raises(UnknownComponentError) as caught:
        zoo.build(path, device="meta")
    assert str(caught.value) == (
        f"{path}:{line_of(text, 'openclip-vit')}: encoders.image: `openclip-vit` is provided by the "
        "`zoo-openclip-extra` distribution, which is not installed: pip install zoo-openclip-extra"
    )


def test_unknown_component_without_plugin_gets_the_registry_suggestion_and_line(tmp_path) -> None:
    text = TINY.replace("name: whisper-encoder", "name: whisper-encodr")
    expect(
        write(tmp_path, text),
        text,
        "whisper-encodr",
        r"encoders\.audio: unknown encoder 'whisper-encodr' \(did you mean 'whisper-encoder'",
        UnknownComponentError,
    )
    installed = TINY.replace("name: whisper-encoder", "name: whisper-encodr\n    plugin: zoo")
    expect(
        write(tmp_path, installed, "b.yaml"),
        installed,
        "whisper-encodr",
        r"the `zoo` distribution is installed but provides no encoder",
        UnknownComponentError,
    )


def test_bad_component_argument_names_the_line(tmp_path) -> None:
    text = TINY.replace("video: {name: mlp, args: {depth: 2}}", "video: {name: mlp, args: {depht: 2}}")
    expect(
        write(tmp_path, text),
        text,
        "depht",
        r"projectors\.video: .*'depht' \(did you mean 'depth'\?\)",
        ComponentArgumentError,
    )


def test_stage_selected_by_name_and_unknown_stage(tmp_path) -> None:
    text = with_stages("  - name: align\n    train: {backbone: frozen}\n  - name: finetune\n")
    path = write(tmp_path, text)
    model = zoo.build(path, device="meta", stage="align")
    assert not any(p.requires_grad for p in model.backbone.parameters())
    with pytest.raises(RecipeError, match=r"has no stage 'pretrain'; its stages are \['align', 'finetune'\]"):
        zoo.build(path, device="meta", stage="pretrain")


def test_merge_messages_and_stop_tokens_reach_the_model(tmp_path) -> None:
    import zoo

    model = zoo.build(
        "tiny", device="meta", merge_messages=False, tokens={"extra": ["<end>"]}, stop_tokens=["<end>"]
    )
    assert model.config.merge_messages is False
    assert model.config.token_ids["<end>"] in model.generation_config.eos_token_id
    assert model.generation_config is not model.backbone.model.generation_config


def test_stop_token_must_be_a_recipe_token() -> None:
    import zoo
    from zoo.errors import IncompatibleComponentsError

    with pytest.raises(IncompatibleComponentsError, match="stop token '<nope>'"):
        zoo.build("tiny", device="meta", stop_tokens=["<nope>"])


def test_merge_messages_must_be_a_boolean(tmp_path) -> None:
    with pytest.raises(RecipeError, match="merge_messages: expected true or false"):
        load_recipe("tiny", merge_messages="no")


def test_recipe_chat_template_leaves_the_backbones_own_tokenizer_alone() -> None:
    import zoo

    model = zoo.build("tiny")
    own = model.backbone.tokenizer.chat_template
    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    model.config.chat_template = template
    assert model.tokenizer.chat_template == template and model.tokenizer is model.tokenizer
    assert model.backbone.tokenizer.chat_template == own
    assert model.tokenizer.convert_tokens_to_ids("<image>") == model.config.token_ids["<image>"]
