"""`extends`: a recipe on top of another, with only what changes; merge rules, chains, and errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import zoo
from zoo.components.projectors import MLPProjector, TokenSplitMLPProjector
from zoo.errors import ComponentArgumentError, RecipeError
from zoo.recipes_api import load_recipe

TINY = Path(zoo.__file__).parent / "recipes" / "tiny.yaml"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_recipe_extends_a_named_one_and_gives_only_what_changes(tmp_path: Path) -> None:
    child = write(
        tmp_path,
        "tiny-mlp.yaml",
        "extends: tiny\n"
        "projectors:\n"
        "  image: {name: mlp, args: {depth: 3}}\n"  # another name: the spec is replaced, args and all
        "  audio: {args: {num_tokens: 2}}\n",  # the same component: its args merge
    )
    recipe = load_recipe(child)
    assert (recipe.name, recipe.path) == ("tiny-mlp", child)  # the name is the file's, never inherited
    assert recipe.description == load_recipe("tiny").description
    assert recipe.projectors["image"] == {"name": "mlp", "args": {"depth": 3}}
    assert recipe.projectors["audio"] == {"name": "s3", "args": {"num_tokens": 2}}
    assert recipe.projectors["video"] == load_recipe("tiny").projectors["video"]
    assert recipe.stages == load_recipe("tiny").stages
    model = zoo.build(child, device="meta")
    assert isinstance(model.projectors["image"], MLPProjector) and len(model.projectors["image"].mlp) == 5
    assert isinstance(model.projectors["audio"], TokenSplitMLPProjector)
    assert model.projectors["audio"].num_tokens == 2


def test_lists_replace_nulls_remove_modalities_and_chains_resolve_relative_paths(tmp_path: Path) -> None:
    write(
        tmp_path,
        "base.yaml",
        "extends: tiny\ndescription: image only\n"
        "encoders: {video: null, audio: null}\nprojectors: {video: null, audio: null}\n",
    )
    child = write(
        tmp_path,
        "child.yaml",
        "extends: base.yaml\nstages:\n  - name: align\n    train: {backbone: frozen}\n    lr: 1.0e-3\n",
    )
    recipe = load_recipe(child)
    assert sorted(recipe.encoders) == sorted(recipe.projectors) == ["image"]
    assert [(s["name"], s["lr"]) for s in recipe.stages] == [("align", {"default": 1e-3})]
    assert recipe.description == "image only"
    model = zoo.build(child, device="meta", stages=[{"name": "other", "train": {"projectors": "full"}}])
    assert list(model.encoders) == ["image"] and model.recipe.stages[0]["name"] == "other"


def test_an_error_in_an_inherited_field_names_the_file_it_is_written_in(tmp_path: Path) -> None:
    base = write(
        tmp_path,
        "base.yaml",
        TINY.read_text().replace("train: {encoders: frozen", "train: {encoders: half"),
    )
    child = write(
        tmp_path, "child.yaml", "extends: base.yaml\nprojectors:\n  image: {name: mlp, args: {dpth: 2}}\n"
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe(child)
    assert str(caught.value).startswith(f"{base}:{line_of(base, 'encoders: half')}: stages[0].train.encoders")
    write(tmp_path, "base.yaml", TINY.read_text())  # the base is fixed: now the child's own error shows
    with pytest.raises(ComponentArgumentError) as caught:
        zoo.build(child, device="meta")
    assert str(caught.value).startswith(f"{child}:{line_of(child, 'dpth')}: projectors.image")


def test_extends_naming_nothing_says_what_to_change(tmp_path: Path) -> None:
    child = write(tmp_path, "child.yaml", "description: x\nextends: tinyy\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(child)
    message = str(caught.value)
    assert message.startswith(f"{child}:2: extends: unknown recipe 'tinyy' (did you mean 'tiny'?)")
    assert "`extends` must name an installed recipe (`zoo list --kind recipe`" in message
    missing = write(tmp_path, "other.yaml", "extends: ./nowhere.yaml\n")
    with pytest.raises(
        RecipeError, match=re.escape(f"'./nowhere.yaml' names no file (looked for {tmp_path}")
    ):
        load_recipe(missing)
    empty = write(tmp_path, "empty.yaml", "extends: 3\n")
    with pytest.raises(RecipeError, match="extends: expected a recipe name or a YAML path, got 3"):
        load_recipe(empty)


def test_a_cycle_is_named_file_by_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "extends: b.yaml\n")
    b = write(tmp_path, "b.yaml", "description: b\nextends: a.yaml\n")
    with pytest.raises(RecipeError) as caught:
        load_recipe(a)
    assert str(caught.value) == (
        f"{b}:2: extends: {a} -> {b} -> {a} is a cycle: remove `extends` from one of these recipes"
    )
    itself = write(tmp_path, "self.yaml", "extends: self.yaml\n")
    with pytest.raises(RecipeError, match="is a cycle"):
        load_recipe(itself)


def test_extends_is_not_an_override() -> None:
    with pytest.raises(RecipeError, match="`extends` is read from recipe files, not from overrides"):
        load_recipe("tiny", extends="s3-smol")


def test_listing_describes_a_recipe_by_what_it_extends(tmp_path: Path) -> None:
    from zoo.registry import _recipe_description

    assert _recipe_description(write(tmp_path, "c.yaml", "extends: tiny\n")) == "(extends tiny)"
