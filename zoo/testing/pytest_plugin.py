"""The conformance kit's pytest plugin, registered through zoo's ``pytest11`` entry point.

It parametrises every test that takes a ``zoo_entry`` argument over the registry: the components of the
kinds named by the test's ``zoo_kinds`` marker, of the distribution named by its class's ``distribution``
attribute (``None``: all). With ``zoo_offline = true`` in the pytest configuration (the scaffold writes
it) it sets ``HF_HUB_OFFLINE=1`` and temporary ``HF_HOME`` / ``ZOO_HOME`` folders before any test module
is imported, so nothing is downloaded and no cache is shared. Importing this module imports neither torch
nor transformers: it loads in every pytest run of an environment where zoo is installed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

MARKERS = (
    "zoo_kinds(*kinds): the component kinds a test taking `zoo_entry` is parametrised over",
    "zoo_train_recipes: parametrise only over the class's `train_recipes` (recipes trained one step)",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "zoo_offline",
        "zoo conformance kit: set HF_HUB_OFFLINE=1 and temporary HF_HOME / ZOO_HOME for the test session",
        type="bool",
        default=False,
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if config.getini("zoo_offline"):
        home = Path(tempfile.mkdtemp(prefix="zoo-kit-"))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_HOME", str(home / "hf"))
        os.environ.setdefault("ZOO_HOME", str(home / "zoo"))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "zoo_entry" not in metafunc.fixturenames:
        return
    from zoo.registry import KINDS

    marker = metafunc.definition.get_closest_marker("zoo_kinds")
    kinds = tuple(marker.args) if marker else KINDS
    distribution = getattr(metafunc.cls, "distribution", None)
    recipes = None
    if metafunc.definition.get_closest_marker("zoo_train_recipes") is not None:
        recipes = getattr(metafunc.cls, "train_recipes", None)
    from zoo.testing.tiny import registered

    entries = registered(kinds, distribution, recipes)
    metafunc.parametrize("zoo_entry", entries, ids=[f"{e.kind}:{e.qualified_name}" for e in entries])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect a check for a kind the distribution has nothing of (an empty parameter set), and, in a suite
    over everything installed, the entries of a distribution whose own suite runs in the same session (each
    component is checked once)."""
    from zoo.registry import canonical_distribution

    own = {
        canonical_distribution(item.cls.distribution)
        for item in items
        if "zoo_entry" in getattr(item, "fixturenames", ()) and getattr(item.cls, "distribution", None)
    }
    dropped = [item for item in items if _has_no_entries(item) or _checked_elsewhere(item, own)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def _checked_elsewhere(item: pytest.Item, own: set[str]) -> bool:
    from zoo.registry import canonical_distribution

    callspec = getattr(item, "callspec", None)
    entry = callspec.params.get("zoo_entry") if callspec is not None else None
    if entry is None or not hasattr(entry, "distribution") or getattr(item.cls, "distribution", None):
        return False
    return canonical_distribution(entry.distribution) in own


def _has_no_entries(item: pytest.Item) -> bool:
    if "zoo_entry" not in getattr(item, "fixturenames", ()):
        return False
    skip = item.get_closest_marker("skip")
    return skip is not None and str(skip.kwargs.get("reason", "")).startswith("got empty parameter set")


def pytest_report_header(config: pytest.Config) -> str:
    from zoo.registry import COMPONENT_API

    return f"zoo conformance kit: component API {COMPONENT_API}"
