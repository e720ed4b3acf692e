"""`zoo info`: component table, sequence budget, per-stage plan and memory, built on the meta device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import zoo
from zoo.cli import main
from zoo.summary import recipe_info

TINY = (Path(zoo.__file__).parent / "recipes" / "tiny.yaml").read_text()
TWO_STAGES = TINY[: TINY.index("stages:")] + (
    "max_length: 100\n"
    "stages:\n"
    "  - name: align\n"
    "    train: {backbone: frozen}\n"
    "    lr: {default: 1e-3, projectors.image: 2e-3}\n"
    "    schedule: {name: cosine, warmup_ratio: 0.03}\n"
    "    batch: {per_device: 4, accumulation: 2}\n"
    "  - name: lora\n"
    "    train: {backbone: lora, embeddings: full}\n"
    "    lora: {r: 2, targets: [q_proj, v_proj]}\n"
    "    lr: 1e-4\n"
)


@pytest.fixture
def two_stages(tmp_path) -> Path:
    path = tmp_path / "two.yaml"
    path.write_text(TWO_STAGES)
    return path


def test_memory_is_the_stated_bytes_per_parameter(two_stages) -> None:
    info = recipe_info(two_stages)
    for index, stage in enumerate(info.stages):
        model = zoo.build(two_stages, device="meta", stage=index)
        total = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert (stage.parameters, stage.trainable) == (total, trainable)
        memory = stage.memory
        assert (memory.weights, memory.gradients, memory.master, memory.adamw) == (
            2 * total,
            2 * trainable,
            4 * trainable,
            8 * trainable,
        )
        assert memory.total == 2 * total + 14 * trainable


def test_each_stage_is_planned_on_a_fresh_build(two_stages) -> None:
    align, lora = recipe_info(two_stages).stages
    model = zoo.build(two_stages, device="meta", stage="align")
    projectors = sum(p.numel() for p in model.projectors.parameters())
    assert align.trainable == projectors  # not cumulative: no LoRA adapters from the later stage
    assert align.trainable_per_part == {"encoders": 0, "projectors": projectors, "backbone": 0}
    assert align.learning_rates["projectors.image"][0] == 2e-3
    assert align.learning_rates["default"][0] == 1e-3
    assert sum(n for _, n in align.learning_rates.values()) == projectors
    assert align.settings["batch"]["size"] == 8
    assert lora.component_modes["backbone"].startswith("lora + ")
    assert lora.component_modes["encoder.image"] == "frozen"
    assert lora.trainable > projectors


def test_sequence_budget_counts_boundary_tokens(two_stages) -> None:
    budget = recipe_info(two_stages, stage="align").budget
    assert budget.per_item == {"image": 4 + 2, "video": 32 + 2, "audio": 4 + 2}
    assert budget.text_left == 100 - 46


def test_zoo_info_tiny_prints_every_section(capsys) -> None:
    assert main(["info", "tiny"]) == 0
    out = capsys.readouterr().out
    for text in (
        "recipe tiny:",
        "encoder.image",
        "projector.audio",
        "random init",
        "tokens/item",
        "sequence budget: max_length not set",
        "one video item: 34 tokens",
        "stage 1 of 1: finetune",
        "AdamW moments (fp32)",
        "memory assumptions:",
    ):
        assert text in out, text


def test_zoo_info_one_stage_as_json(two_stages, capsys) -> None:
    assert main(["info", str(two_stages), "--stage", "lora", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in data["stages"]] == ["lora"]
    stage = data["stages"][0]
    assert stage["memory"]["total"] == 2 * stage["parameters"] + 14 * stage["trainable"]
    assert stage["plan"] == {
        "encoders": "frozen",
        "projectors": "full",
        "backbone": "lora",
        "embeddings": "full",
    }
    assert data["budget"]["text_left"] == 54


def test_zoo_info_unknown_stage_is_a_cli_error(two_stages, capsys) -> None:
    assert main(["info", str(two_stages), "--stage", "pretrain"]) == 2
    assert "no stage 'pretrain'; its stages are ['align', 'lora']" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["macaw-7b", "s3-7b", "ying-vlm-13b", "llava-1.5-7b"])
def test_zoo_info_of_each_full_recipe_works_offline_with_an_empty_hub_cache(name: str, capsys) -> None:
    if name not in {e.name for e in zoo.list_components("recipe")}:
        pytest.skip(f"recipe {name} is not installed")
    assert main(["info", name, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameters"] > 6e9 and data["stages"]
    for stage in data["stages"]:
        assert 0 < stage["trainable"] <= stage["parameters"]
        assert stage["memory"]["total"] == 2 * stage["parameters"] + 14 * stage["trainable"]
