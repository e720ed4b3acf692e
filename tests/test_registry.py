"""The registry against real throwaway distributions: discovery, broken plugins, conflicts, validation."""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_dists import EditableFinder, Site

import zoo.registry
from zoo.components.base import Encoder, Projector
from zoo.errors import (
    ComponentAPIError,
    ComponentArgumentError,
    ComponentConflictError,
    ContractError,
    PluginLoadError,
    RecipeError,
    UnknownComponentError,
)
from zoo.hookspecs import hookimpl
from zoo.registry import RUNTIME, ComponentEntry, Registry


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    site = Site.on_sys_path(tmp_path / "site", monkeypatch)
    yield site
    site.forget_modules()


TINY_PROJECTOR = '''
"""A projector shipped by an outside distribution."""
from __future__ import annotations

import torch
from torch import nn

from zoo.components.base import Projector


class TinyProjector(Projector):
    """Repeats every token ``repeat`` times after one Linear to the LLM width.

    More text that is not the one-line description.
    """

    def __init__(self, dim_in: int, llm_dim: int, repeat: int = 2) -> None:
        super().__init__(dim_in, llm_dim)
        self.repeat = repeat
        self.proj = nn.Linear(dim_in, llm_dim)

    def output_length(self, input_length: int) -> int:
        return input_length * self.repeat

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features).repeat_interleave(self.repeat, dim=1)
'''


def test_outside_projector_is_listed_lazily_and_builds(site: Site) -> None:
    site.install(
        "zoo-tinyproj", "0.3.0", {"zoo.projectors": {"tiny": "tinyproj:TinyProjector"}},
        {"tinyproj.py": TINY_PROJECTOR},
    )  # fmt: skip
    registry = Registry()
    [entry] = [e for e in registry.list_components("projector") if e.name == "tiny"]
    assert (entry.distribution, entry.version) == ("zoo-tinyproj", "0.3.0")
    assert entry.description == "Repeats every token ``repeat`` times after one Linear to the LLM width."
    assert "tinyproj" not in sys.modules  # listing read the docstring without importing

    import torch

    model = registry.build("projector", "tiny", {"repeat": 3}, dim_in=4, llm_dim=8)
    assert model(torch.zeros(2, 5, 4)).shape == (2, model.output_length(5), 8) == (2, 15, 8)
    assert registry.entry_of(model) == registry.entry_for("projector", "tiny") == entry


BROKEN_DIST = {
    "halfbroken/__init__.py": "",
    "halfbroken/broken.py": '''
        raise ImportError("needs libfoo, which is not installed")


        class Broken:
            """Never importable."""
        ''',
    "halfbroken/good.py": '''
        from zoo.components.base import Projector


        class Good(Projector):
            """Works although its sibling module does not import."""

            def __init__(self, width: int = 2) -> None:
                super().__init__(1, 1)
                self.width = width
        ''',
}


def test_broken_plugin_is_reported_while_the_rest_keeps_working(site: Site) -> None:
    projectors = {"broken": "halfbroken.broken:Broken", "good": "halfbroken.good:Good"}
    site.install("zoo-halfbroken", "1.2.0", {"zoo.projectors": projectors}, BROKEN_DIST)
    site.install(
        "zoo-healthy", "0.1.0", {"zoo.encoders": {"fine": "healthy:Fine"}},
        {"healthy.py": "from zoo.components.base import Encoder\nclass Fine(Encoder): ..."},
    )  # fmt: skip
    registry = Registry()
    assert {"broken", "good"} <= {e.name for e in registry.list_components("projector")}

    half, healthy = registry.plugins(["zoo-halfbroken", "zoo_healthy"])
    assert (half.distribution, half.version, half.ok) == ("zoo-halfbroken", "1.2.0", False)
    assert half.errors == {"projector broken": "ImportError: needs libfoo, which is not installed"}
    assert [e.name for e in half.components] == ["broken", "good"]
    assert (healthy.distribution, healthy.ok, healthy.errors) == ("zoo-healthy", True, {})

    assert registry.build("projector", "good", {"width": 5}).width == 5
    assert type(registry.build("encoder", "fine")).__name__ == "Fine"
    with pytest.raises(PluginLoadError) as caught:
        registry.load("projector", "broken")
    message = str(caught.value)
    for part in (
        "zoo-halfbroken",
        "1.2.0",
        "broken = halfbroken.broken:Broken",
        "zoo.projectors",
        "ImportError",
    ):
        assert part in message
    assert "needs libfoo" in message
    assert isinstance(caught.value.__cause__, ImportError)


def test_malformed_entry_point_is_listed_and_fails_clearly_on_load(site: Site) -> None:
    site.install("zoo-typo", "0.0.1", {"zoo.backbones": {"typo": "typo_pkg.module"}})
    registry = Registry()
    [entry] = [e for e in registry.list_components("backbone") if e.name == "typo"]
    assert "malformed" in entry.error
    with pytest.raises(PluginLoadError, match=r"zoo-typo 0\.0\.1 .*typo = typo_pkg\.module.*'module:Class'"):
        registry.load("backbone", "typo")
    [info] = registry.plugins(["zoo-typo"])
    assert "malformed entry point value 'typo_pkg.module'" in info.errors["backbone typo"]


@pytest.fixture
def two_clips(site: Site) -> Site:
    for dist, module in (("zoo-alpha", "alpha_enc"), ("zoo-beta", "beta_enc")):
        source = (
            "from zoo.components.base import Encoder\n"
            f'class Clip(Encoder):\n    """CLIP from {dist}."""\n    origin = "{dist}"\n'
        )
        site.install(dist, "1.0", {"zoo.encoders": {"clip-x": f"{module}:Clip"}}, {f"{module}.py": source})
    return site


def test_collision_names_both_distributions_and_says_how_to_pick(two_clips: Site) -> None:
    registry = Registry()
    assert [e.distribution for e in registry.list_components("encoder") if e.name == "clip-x"] == [
        "zoo-alpha",
        "zoo-beta",
    ]
    with pytest.raises(ComponentConflictError) as caught:
        registry.load("encoder", "clip-x")
    message = str(caught.value)
    for part in (
        "zoo-alpha",
        "zoo-beta",
        "'zoo-alpha:clip-x'",
        "Registry.prefer(",
        "ZOO_PREFER='clip-x=zoo-alpha'",
    ):
        assert part in message


def test_qualified_name_and_prefer_pick_one(two_clips: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    assert registry.load("encoder", "zoo-beta:clip-x").origin == "zoo-beta"
    assert registry.build("encoder", "zoo_Beta:clip-x").origin == "zoo-beta"  # PEP 503 spelling
    with pytest.raises(UnknownComponentError, match="distribution 'zoo-gamma' provides no encoder 'clip-x'"):
        registry.resolve("encoder", "zoo-gamma:clip-x")

    registry.prefer("encoder", "clip-x", "zoo-alpha")
    assert registry.load("encoder", "clip-x").origin == "zoo-alpha"
    with pytest.raises(UnknownComponentError, match="provided by zoo-alpha 1.0"):
        registry.prefer("encoder", "clip-x", "zoo-gamma")

    monkeypatch.setenv("ZOO_PREFER", "other=zoo, clip-x=zoo-beta")
    assert Registry().resolve("encoder", "clip-x").distribution == "zoo-beta"
    monkeypatch.setenv("ZOO_PREFER", "clip-x=zoo-gamma")
    with pytest.raises(ComponentConflictError, match="preference for 'zoo-gamma' matches none"):
        Registry().resolve("encoder", "clip-x")


def test_unknown_name_suggests_close_matches(site: Site) -> None:
    site.install(
        "zoo-extra", "2.0", {"zoo.projectors": {"tiny-projector": "m:P", "tiny-resampler": "m:R"}}
    )  # fmt: skip
    registry = Registry()
    with pytest.raises(UnknownComponentError) as caught:
        registry.resolve("projector", "tiny-projektor")
    message = str(caught.value)
    assert "unknown projector 'tiny-projektor' (did you mean 'tiny-projector'" in message
    assert "zoo.projectors" in message and "`zoo list --kind projector`" in message
    with pytest.raises(UnknownComponentError, match="'tiny-projector' is a projector, not an encoder"):
        registry.resolve("encoder", "tiny-projector")
    with pytest.raises(
        UnknownComponentError, match=r"unknown component kind 'projectors' \(did you mean 'projector'"
    ):
        registry.list_components("projectors")


CHECKED = '''
from __future__ import annotations

from typing import Literal, Optional

from zoo.components.base import Projector

BUILT = []


class Checked(Projector):
    """A component with annotated arguments."""

    def __init__(
        self,
        dim_in: int,
        llm_dim: int,
        hidden: int = 4,
        act: Literal["gelu", "relu"] = "gelu",
        dropout: float = 0.0,
        scales: list[int] | None = None,
        kernel: tuple[int, int] = (3, 3),
        label: Optional[str] = None,
        extra: dict[str, float] | None = None,
        bias: bool = True,
    ) -> None:
        BUILT.append({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        super().__init__(dim_in, llm_dim)
'''


@pytest.fixture
def checked(site: Site) -> Registry:
    site.install(
        "zoo-checked",
        "0.5.0",
        {"zoo.projectors": {"checked": "checked_mod:Checked"}},
        {"checked_mod.py": CHECKED},
    )
    return Registry()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            {"hiden": 3},
            r"does not accept argument\(s\) 'hiden' \(did you mean 'hidden'\?\); accepted arguments: dim_in, llm_dim, hidden, act",
        ),
        ({"hidden": "3"}, r"argument 'hidden' expects int, got str \('3'\)"),
        ({"hidden": True}, r"argument 'hidden' expects int, got bool"),
        ({"act": "silu"}, r"argument 'act' expects Literal\['gelu', 'relu'\], got str \('silu'\)"),
        ({"dropout": "0.1"}, r"argument 'dropout' expects float, got str"),
        ({"scales": [1, "2"]}, r"argument 'scales' expects list\[int\] \| None, got list"),
        ({"kernel": [3, 3, 3]}, r"argument 'kernel' expects tuple\[int, int\]"),
        ({"label": 7}, r"argument 'label' expects Optional\[str\], got int"),
        ({"extra": {"a": "b"}}, r"argument 'extra' expects dict\[str, float\] \| None"),
        ({"bias": "yes"}, r"argument 'bias' expects bool, got str"),
    ],
)
def test_bad_arguments_are_rejected_before_building(checked: Registry, args: dict, expected: str) -> None:
    with pytest.raises(
        ComponentArgumentError, match=r"projector 'checked' \(zoo-checked 0\.5\.0\):? .*" + expected
    ):
        checked.validate_args("projector", "checked", args)
    with pytest.raises(ComponentArgumentError):
        checked.build("projector", "checked", args, dim_in=2, llm_dim=3)
    assert sys.modules["checked_mod"].BUILT == []


def test_good_arguments_validate_and_build(checked: Registry) -> None:
    args = {"hidden": 8, "act": "relu", "dropout": 1, "scales": [1, 2], "kernel": [5, 5], "label": None}
    checked.validate_args("projector", "checked", args)
    assert sys.modules["checked_mod"].BUILT == []  # validation builds nothing
    checked.build("projector", "checked", args, dim_in=2, llm_dim=3)
    [built] = sys.modules["checked_mod"].BUILT
    assert (built["hidden"], built["dim_in"], built["kernel"], built["bias"]) == (8, 2, [5, 5], True)


def test_missing_and_doubly_given_arguments(checked: Registry) -> None:
    with pytest.raises(ComponentArgumentError, match=r"needs argument\(s\) llm_dim"):
        checked.build("projector", "checked", {"hidden": 2}, dim_in=2)
    with pytest.raises(ComponentArgumentError, match=r"argument\(s\) dim_in are set by zoo"):
        checked.build("projector", "checked", {"dim_in": 4}, dim_in=2, llm_dim=3)
    with pytest.raises(ComponentArgumentError, match="args must be a mapping, got list"):
        checked.validate_args("projector", "checked", ["hidden"])  # type: ignore[arg-type]


def test_runtime_registration_and_the_loaded_hook() -> None:
    class NotebookProjector(Projector):
        """Defined in a notebook cell."""

        def __init__(self, scale: float = 1.0) -> None:
            super().__init__(1, 1)
            self.scale = scale

    class Recorder:
        loaded: list[tuple[ComponentEntry, object]] = []

        @hookimpl
        def zoo_component_loaded(self, entry: ComponentEntry, obj: object) -> None:
            self.loaded.append((entry, obj))

    registry = Registry()
    registry.plugin_manager.register(Recorder())
    registry.register("projector", "nb-proj", NotebookProjector)
    [entry] = [e for e in registry.list_components("projector") if e.name == "nb-proj"]
    assert (entry.distribution, entry.description, entry.source) == (
        RUNTIME,
        "Defined in a notebook cell.",
        "runtime",
    )
    assert registry.build("projector", "nb-proj", {"scale": 2.0}).scale == 2.0
    assert Recorder.loaded == [(entry, NotebookProjector)]
    with pytest.raises(ComponentArgumentError, match="argument 'scale' expects float, got str"):
        registry.build("projector", "nb-proj", {"scale": "big"})

    class Replacement(NotebookProjector):
        """The cell, run again."""

    registry.register("projector", "nb-proj", Replacement)
    assert registry.load("projector", "nb-proj") is Replacement
    with pytest.raises(ComponentArgumentError, match="expected a class or factory, got int"):
        registry.register("projector", "number", 3)


def test_module_level_shortcuts_use_the_process_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zoo.registry, "_REGISTRY", None)
    assert zoo.get_registry() is zoo.get_registry()

    class Sized(Encoder):
        def __init__(self, dim: int) -> None:
            super().__init__()
            self.dim = dim

    def make_encoder(dim: int) -> Encoder:
        """A factory works as well as a class."""
        return Sized(dim)

    zoo.register_component("encoder", "factory-encoder", make_encoder)
    assert "factory-encoder" in {e.name for e in zoo.list_components("encoder")}
    assert zoo.registry.build_component("encoder", "factory-encoder", {"dim": 3}).dim == 3
    with pytest.raises(ComponentArgumentError, match="accepted arguments: dim"):
        zoo.registry.validate_component_args("encoder", "factory-encoder", {"width": 3})


def test_a_factory_that_returns_something_else_is_a_contract_error() -> None:
    registry = Registry()
    registry.register("encoder", "dict-encoder", lambda dim: {"dim": dim})
    with pytest.raises(
        ContractError, match=r"returned a dict, not a zoo Encoder: make it return an instance"
    ):
        registry.build("encoder", "dict-encoder", {"dim": 3})


NOT_COMPONENTS = {
    "notcomp.py": '''
        WIDTH = 768


        class Settings:
            """A plain class, not a component."""
        ''',
}


def test_an_entry_point_that_is_not_a_component_says_what_to_change(site: Site) -> None:
    encoders = {"settings": "notcomp:Settings", "width": "notcomp:WIDTH"}
    site.install(
        "zoo-notcomp",
        "0.2",
        {"zoo.encoders": encoders, "zoo.readers": {"width": "notcomp:WIDTH"}},
        NOT_COMPONENTS,
    )
    registry = Registry()
    assert {"settings", "width"} <= {e.name for e in registry.list_components("encoder")}  # listing is static
    with pytest.raises(PluginLoadError) as caught:
        registry.load("encoder", "settings")
    assert "notcomp.Settings is not a subclass of zoo.components.base.Encoder: derive it from Encoder" in str(
        caught.value
    )
    with pytest.raises(
        PluginLoadError, match="it is an int, not a class or factory: point the entry point at"
    ):
        registry.load("encoder", "width")
    with pytest.raises(PluginLoadError, match="it is an int, not a function or class"):
        registry.load("reader", "width")
    [info] = registry.plugins(["zoo-notcomp"])
    assert set(info.errors) == {"encoder settings", "encoder width", "reader width"}


def test_a_plugin_for_another_component_api_is_reported_and_refused(site: Site) -> None:
    site.install(
        "zoo-old", "0.3", {"zoo.projectors": {"old": "oldproj:Old"}, "zoo.api": {"version": "0"}},
        {"oldproj.py": "raise ImportError('from zoo.components import gone')"},
    )  # fmt: skip
    registry = Registry()
    [entry] = [e for e in registry.list_components("projector") if e.name == "old"]
    assert entry.api == "0"
    message = "zoo-old 0.3 targets zoo component API 0, but this zoo provides component API 1"
    with pytest.raises(ComponentAPIError, match=message):
        registry.build("projector", "old", {}, dim_in=2, llm_dim=2)
    [info] = registry.plugins(["zoo-old"])
    assert info.api == "0" and message in info.errors["projector old"]
    assert "oldproj" not in sys.modules  # refused before importing it


def test_the_core_declares_the_api_it_provides_and_lists_every_entry_point_it_installs() -> None:
    core = importlib.metadata.distribution("zoo").entry_points
    assert [ep.value for ep in core.select(group="zoo.api")] == [zoo.registry.COMPONENT_API]
    listed = {(e.kind, e.name): e for e in Registry().list_components() if e.distribution == "zoo"}
    for kind, group in zoo.registry.GROUPS.items():
        for ep in core.select(group=group):
            if kind != "recipe":
                assert (listed[kind, ep.name].target, listed[kind, ep.name].api) == (ep.value, "1")
    assert {name for kind, name in listed if kind == "recipe"} >= {"tiny", "s3-smol"}
    assert {name for kind, name in listed if kind == "reader"} == {"s3", "m3it", "macaw", "llava", "shots"}


def test_recipes_are_discovered_from_a_folder_in_a_distribution(site: Site) -> None:
    files = {
        "extra_recipes/__init__.py": "raise RuntimeError('a recipe folder is never imported')\n",
        "extra_recipes/alpha-7b.yaml": "description: |\n  Alpha layout, 7B.\n  Second line.\ncomponents: {}\n",
        "extra_recipes/beta.yaml": "components: {}\n",
        "extra_recipes/notes.txt": "not a recipe\n",
    }
    site.install("zoo-more-recipes", "0.9", {"zoo.recipes": {"more": "extra_recipes"}}, files)
    site.install("zoo-lost-recipes", "0.1", {"zoo.recipes": {"lost": "no_such_folder"}})
    registry = Registry()
    mine = {e.name: e for e in registry.list_components("recipe") if e.distribution == "zoo-more-recipes"}
    assert sorted(mine) == ["alpha-7b", "beta"]
    assert (mine["alpha-7b"].description, mine["beta"].description) == ("Alpha layout, 7B.", "")
    assert registry.recipe_path("alpha-7b") == site.root / "extra_recipes" / "alpha-7b.yaml"
    assert registry.recipe_path("zoo-more-recipes:beta").read_text() == "components: {}\n"
    assert "extra_recipes" not in sys.modules
    with pytest.raises(
        PluginLoadError, match="zoo-lost-recipes 0.1 .*recipe folder 'no_such_folder' not found"
    ):
        registry.recipe_path("lost")
    with pytest.raises(RecipeError, match="use Registry.recipe_path"):
        registry.load("recipe", "beta")


def test_a_recipe_folder_without_init_in_a_package_that_is_not_imported(site: Site) -> None:
    files = {
        "nsplug/__init__.py": "raise RuntimeError('listing recipes never imports the package')\n",
        "nsplug/recipes/gamma.yaml": "description: Gamma.\nextends: tiny\n",
    }
    site.install("zoo-nsplug", "0.1", {"zoo.recipes": {"nsplug": "nsplug.recipes"}}, files)
    [entry] = [e for e in Registry().list_components("recipe") if e.distribution == "zoo-nsplug"]
    assert (entry.name, entry.description, entry.error) == ("gamma", "Gamma.", "")
    assert "nsplug" not in sys.modules


def test_description_is_read_through_reexports_and_editable_finders(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "checkout" / "edpkg"  # an editable install: the code lives outside sys.path
    (source / "parts").mkdir(parents=True)
    (source / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (source / "parts" / "__init__.py").write_text("from .impl import Resampler as Exported\n")
    (source / "parts" / "impl.py").write_text(
        'class Resampler:\n    """Latents that attend to the features."""\n\n    class Inner:\n        """Nested."""\n'
    )
    monkeypatch.setattr(sys, "meta_path", [EditableFinder({"edpkg": source}), *sys.meta_path])
    projectors = {
        "resampler": "edpkg.parts:Exported",
        "inner": "edpkg.parts.impl:Resampler.Inner",
        "gone": "edpkg:Nope",
    }
    site.install("zoo-editable", "0.1", {"zoo.projectors": projectors})
    found = {
        e.name: e.description
        for e in Registry().list_components("projector")
        if e.distribution == "zoo-editable"
    }
    assert found == {"resampler": "Latents that attend to the features.", "inner": "Nested.", "gone": ""}
    assert not [name for name in sys.modules if name.startswith("edpkg")]


def test_metrics_are_a_plugin_kind_looked_up_like_the_others(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"metricpkg.py": '''
        def word_overlap(predictions, references):
            """Fraction of reference words found in the prediction, averaged."""
            return sum(len(set(p.split()) & set(r.split())) / len(set(r.split()))
                       for p, r in zip(predictions, references)) / len(references)
        '''}  # fmt: skip
    site.install("zoo-metrics-x", "0.1", {"zoo.metrics": {"word-overlap": "metricpkg:word_overlap"}}, files)
    monkeypatch.setattr(zoo.registry, "_REGISTRY", None)
    [entry] = [e for e in zoo.list_components("metric") if e.distribution == "zoo-metrics-x"]
    assert (entry.name, entry.description) == (
        "word-overlap",
        "Fraction of reference words found in the prediction, averaged.",
    )
    assert "metricpkg" not in sys.modules
    metric = zoo.registry.load_component("metric", "word-overlap")
    assert metric(["a red cube"], ["the red cube"]) == pytest.approx(2 / 3)
    with pytest.raises(
        UnknownComponentError, match=r"unknown metric 'word-overlab' \(did you mean 'word-overlap'\?\)"
    ):
        zoo.registry.load_component("metric", "word-overlab")
