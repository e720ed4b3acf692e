"""`zoo new-plugin`: the package it writes is lint-clean, installs with `pip install -e`, lists, and passes
its own tests (the conformance kit) without edits; a bad name says what to change."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from zoo.cli import main
from zoo.recipes_api import load_recipe
from zoo.scaffold import KINDS, new_plugin, plugin_names

RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_a_lint_clean_package_with_entry_point_recipe_readme_and_tests(
    kind: str, tmp_path: Path
) -> None:
    root = new_plugin(f"zoo-my-{kind}", kind, tmp_path / "plugin")
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    module = f"zoo_my_{kind}"
    assert {"pyproject.toml", "README.md", f"{module}/__init__.py", f"tests/test_{module}.py"} <= files
    assert (f"{module}/{kind}.py" in files) == (kind != "recipe")
    assert not any(name.startswith(f"{module}/recipes/__init__") for name in files)  # a plain folder
    pyproject = (root / "pyproject.toml").read_text()
    assert 'build-backend = "hatchling.build"' in pyproject and '"zoo>=0.1"' in pyproject
    assert (
        'test = ["pytest>=8"]' in pyproject and 'pip install -e ".[test]"' in (root / "README.md").read_text()
    )
    assert '[project.entry-points."zoo.api"]\nversion = "1"' in pyproject
    recipes = sorted((root / module / "recipes").glob("*.yaml")) if kind not in ("reader", "metric") else []
    for recipe in recipes:
        assert load_recipe(recipe).path == recipe  # parses, and its `extends: zoo:tiny` resolves
        assert "\nextends: zoo:tiny\n" in recipe.read_text()  # as docs/plugins.md shows it
    for path in root.rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    for command in (["check", "."], ["format", "--check", "."]):  # with the package's own ruff settings
        done = subprocess.run([RUFF, *command], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "my plugin",
            "'my plugin' is not a valid package name: use letters, digits, '-', '_' and '.'.*'my-plugin'",
        ),
        ("zoo-x-", "not a valid package name.*starting and ending with a letter or digit.*'zoo-x'"),
        ("3d-vision", "would be imported as '3d_vision', which is not a Python identifier.*'zoo-3d-vision'"),
        ("json", "would shadow the standard module 'json'"),
        ("Zoo", "would shadow zoo itself"),
    ],
)
def test_a_name_that_is_not_a_package_name_says_what_to_change(
    name: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["new-plugin", name, "--kind", "projector", "--output", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo: error: ") and re.search(message, err), err
    assert not (tmp_path / "x").exists()


def test_names_and_a_folder_in_the_way(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    names = plugin_names("Zoo_Pool.Plus")
    assert (names.module, names.component, names.class_name("projector")) == (
        "zoo_pool_plus",
        "pool-plus",
        "PoolPlusProjector",
    )
    assert plugin_names("zoo-smart-encoder").class_name("encoder") == "SmartEncoder"
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["new-plugin", "zoo-pool", "--kind", "projector", "--output", str(tmp_path / "busy")]) == 2
    assert "busy already exists and is not empty" in capsys.readouterr().err
    assert main(["new-plugin", "zoo-pool", "--kind", "projector", "--output", str(tmp_path / "new")]) == 0
    out = capsys.readouterr().out
    assert "projector 'pool' of zoo-pool" in out and f'pip install -e "{tmp_path / "new"}[test]"' in out


@pytest.fixture(scope="module")
def plugin_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees this environment's packages (zoo included) through `site.addsitedir`."""
    root = tmp_path_factory.mktemp("scaffold-venv")
    venv.create(root / "venv", with_pip=False)
    python = root / "venv" / "bin" / "python"
    site = subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    ).strip()
    purelib = sysconfig.get_paths()["purelib"]
    (Path(site) / "zz_test_environment.pth").write_text(f"import site; site.addsitedir({purelib!r})\n")
    return python


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_the_package_installs_lists_and_passes_its_tests_unchanged(
    kind: str, plugin_venv: Path, tmp_path: Path
) -> None:
    root = new_plugin(f"zoo-scaffolded-{kind}", kind, tmp_path / "plugin")
    install = [sys.executable, "-m", "pip", "--python", str(plugin_venv), "install", "--quiet", "--no-deps"]
    done = subprocess.run([*install, "--no-build-isolation", "-e", str(root)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = subprocess.run(
        [plugin_venv, "-m", "zoo.cli", "list", "--kind", kind], capture_output=True, text=True, check=True
    ).stdout
    name = f"scaffolded-{kind}"
    assert any(line.split()[1:3] == [name, f"zoo-scaffolded-{kind}"] for line in listed.splitlines()[1:]), (
        listed
    )
    tests = subprocess.run(
        [plugin_venv, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout[-4000:]
    assert " passed" in tests.stdout and "failed" not in tests.stdout
