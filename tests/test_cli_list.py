"""`zoo list` and `zoo plugins`: the table, conflicts, broken plugins, and listing that imports nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_dists import Site

import zoo.registry
from zoo.cli import main

PLUGIN_FILES = {
    "listed_plugin/__init__.py": "",
    "listed_plugin/projector.py": '''
        """Imports torch at the top, as real plugins do."""
        import torch

        from zoo.components.base import Projector


        class Squeeze(Projector):
            """Averages every four tokens into one."""
        ''',
    "listed_plugin/broken.py": 'raise ImportError("libfoo missing")\n',
}
FINE_ENCODER = "from zoo.components.base import Encoder\n\n\nclass Fine(Encoder): ...\n"
PLUGIN_ENTRY_POINTS = {
    "zoo.projectors": {"squeeze": "listed_plugin.projector:Squeeze", "broken": "listed_plugin.broken:Broken"},
    "zoo.api": {"version": "1"},
}


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    site = Site.on_sys_path(tmp_path / "site", monkeypatch)
    site.install("zoo-listed", "4.5.6", PLUGIN_ENTRY_POINTS, PLUGIN_FILES)
    monkeypatch.setattr(zoo.registry, "_REGISTRY", None)  # a fresh process-wide registry sees the new site
    monkeypatch.delenv("ZOO_PREFER", raising=False)
    yield site
    site.forget_modules()


def _rows(out: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in out.splitlines()[1:]:
        cells = line.split(None, 4)
        if len(cells) >= 4:
            rows[cells[0], cells[1]] = cells[2:]
    return rows


def _marks(out: str, name: str) -> list[tuple[str, str]]:
    """(mark, distribution) of each table row for ``name``."""
    return [(cells[2], cells[3]) for cells in map(str.split, out.splitlines()) if cells[1:2] == [name]]


def test_list_shows_kind_name_distribution_version_description(
    site: Site, capsys: pytest.CaptureFixture
) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["KIND", "NAME", "DISTRIBUTION", "VERSION", "DESCRIPTION"]
    rows = _rows(out)
    assert rows["projector", "squeeze"] == ["zoo-listed", "4.5.6", "Averages every four tokens into one."]
    assert rows["projector", "linear"][:1] == ["zoo"] and rows["backbone", "causal-lm"][:1] == ["zoo"]


def test_list_filters_by_kind_and_prints_json(site: Site, capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "--kind", "projector", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["kind"] for row in rows} == {"projector"}
    [row] = [row for row in rows if row["name"] == "squeeze"]
    assert row["qualified_name"] == "zoo-listed:squeeze"
    assert (row["distribution"], row["version"], row["conflict"]) == ("zoo-listed", "4.5.6", "")
    with pytest.raises(SystemExit) as caught:
        main(["list", "--kind", "projectors"])
    assert caught.value.code == 2
    assert "invalid choice: 'projectors'" in capsys.readouterr().err


def test_list_marks_conflicts_and_preferences(
    site: Site, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.install("zoo-rival", "0.1", {"zoo.projectors": {"squeeze": "rival:Squeeze"}})
    assert main(["list", "--kind", "projector"]) == 0
    out = capsys.readouterr().out
    assert _marks(out, "squeeze") == [("[conflict]", "zoo-listed"), ("[conflict]", "zoo-rival")]
    assert "pick one with distribution:name" in out.lower() and "ZOO_PREFER" in out

    monkeypatch.setenv("ZOO_PREFER", "squeeze=zoo-rival")
    assert main(["list", "--kind", "projector"]) == 0
    assert _marks(capsys.readouterr().out, "squeeze") == [
        ("[shadowed]", "zoo-listed"),
        ("[preferred]", "zoo-rival"),
    ]
    monkeypatch.setenv("ZOO_PREFER", "squeeze")
    assert main(["list"]) == 2
    assert capsys.readouterr().err.strip() == (
        "zoo: error: ZOO_PREFER='squeeze': entry 'squeeze' is not of the form name=distribution"
    )


def test_plugins_reports_the_broken_component_and_its_healthy_sibling(
    site: Site, capsys: pytest.CaptureFixture
) -> None:
    assert main(["plugins", "zoo-listed"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "zoo-listed 4.5.6 (component API 1): 1 of 2 failed to load"
    assert lines[1].split() == ["projector", "broken", "ImportError:", "libfoo", "missing"]
    assert lines[2].split() == ["projector", "squeeze", "OK"]

    fine = "from zoo.components.base import Encoder\n\n\nclass Fine(Encoder): ...\n"
    site.install("zoo-fine", "1.0", {"zoo.encoders": {"fine": "fine_enc:Fine"}}, {"fine_enc.py": fine})
    zoo.registry.get_registry().refresh()
    assert main(["plugins", "zoo-fine"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "zoo-fine 1.0 (component API: not declared): OK",
        "  encoder  fine  OK",
        "",
        'note: zoo-fine declare(s) no component API version: add [project.entry-points."zoo.api"] version = "1" '
        "to the pyproject.toml once the components pass the conformance kit (docs/testing.md)",
    ]
    assert main(["plugins", "zoo-nothing-here"]) == 1
    assert "no zoo components found in zoo-nothing-here" in capsys.readouterr().err


LAZY_SCRIPT = """
import json, sys
import zoo
entries = zoo.list_components()
from zoo.cli import main
main(["list"])
main(["list", "--json"])
try:
    main(["--help"])
except SystemExit:
    pass
heavy = ("torch", "transformers", "open_clip", "zoo_openclip", "listed_plugin", "zoo.components")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("zoo.components"))
print("RESULT", json.dumps({"loaded": loaded, "names": [e.qualified_name for e in entries]}))
"""


def test_listing_imports_no_plugin_torch_or_transformers(site: Site) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site.root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", LAZY_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert result["loaded"] == []
    assert {
        "zoo-listed:squeeze",
        "zoo-listed:broken",
        "zoo:clip-vision",
        "zoo-openclip:openclip-vision",
    } <= set(result["names"])
    assert "Averages every four tokens into one." in done.stdout
