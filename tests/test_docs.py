"""The documentation: every Python block of the docs runs, and the site builds with ``mkdocs build --strict``.

Every ```` ```python ```` block of ``docs/**/*.md`` and ``README.md`` is a test. It runs in a fresh namespace,
in an empty temporary folder, offline (conftest.py). An HTML comment right before the fence (invisible on
GitHub and on the site) changes that; its first line holds the words, the lines after it are set-up code
run first in the same namespace (to make the files a block reads, or what an earlier step of the page made):

    <!-- docs-test: slow (why) -->     real weights or a longer run: part of the slow suite
    <!-- docs-test: hub (why) -->      against the test Hub server (tests/hub_server.py) on 127.0.0.1
    <!-- docs-test: skip (why) -->     not run at all; the reason is required (keep these few)
    <!-- docs-test: setup (why)
    make_synthetic_dataset("data", 8, 0)
    -->
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
MARKER = "docs-test:"
WORDS = {"setup", "slow", "hub", "skip"}


@dataclass
class Block:
    """One Python block of a Markdown file, with what its marker comment asks for."""

    path: Path
    line: int  # of the first code line
    code: str
    setup: str = ""
    words: set[str] = field(default_factory=set)
    reason: str = ""

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        end = next(j for j in range(index + 1, len(lines)) if lines[j].strip() == "```")
        block = Block(path, index + 2, textwrap.dedent("\n".join(lines[index + 1 : end])))
        _read_marker(block, lines, index)
        blocks.append(block)
        index = end + 1
    return blocks


def _read_marker(block: Block, lines: list[str], fence: int) -> None:
    """Fill ``words``, ``reason`` and ``setup`` from a ``<!-- docs-test: ... -->`` comment ending right above."""
    if fence == 0 or not lines[fence - 1].rstrip().endswith("-->"):
        return
    start = next((i for i in range(fence - 1, -1, -1) if "<!--" in lines[i]), None)
    if start is None or MARKER not in lines[start]:
        return
    head = lines[start].split(MARKER, 1)[1].replace("-->", "").strip()
    words, _, reason = head.partition("(")
    block.words = set(words.replace(";", " ").split())
    block.reason = reason.rsplit(")", 1)[0].strip()
    body = lines[start + 1 : fence - 1] if start < fence - 1 else []
    block.setup = textwrap.dedent("\n".join(body))
    unknown = block.words - WORDS
    if unknown or ("skip" in block.words and not block.reason):
        raise ValueError(
            f"{block.where}: marker {head!r}: words are {sorted(WORDS)}, and `skip` needs a reason in parentheses"
        )


def _param(block: Block) -> pytest.param:
    marks = [pytest.mark.slow] if "slow" in block.words else []
    if "skip" in block.words:
        marks.append(pytest.mark.skip(reason=f"{block.where}: {block.reason}"))
    return pytest.param(block, id=block.where, marks=marks)


BLOCKS = [block for path in DOC_FILES for block in python_blocks(path)]


def test_the_docs_have_python_blocks_and_few_are_skipped() -> None:
    assert len(BLOCKS) >= 10
    skipped = [b.where for b in BLOCKS if "skip" in b.words]
    assert len(skipped) <= 3, f"keep skipped blocks few: {skipped}"


def test_a_marker_is_read_with_its_setup_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: slow; hub (needs both)\nx = 1\n-->\n```python\nprint(x)\n```\n\n"
        "```python\ny = 2\n```\n",
        encoding="utf-8",
    )
    first, second = python_blocks(page)
    assert (first.words, first.reason, first.setup, first.code, first.line) == (
        {"slow", "hub"},
        "needs both",
        "x = 1",
        "print(x)",
        5,
    )
    assert (second.words, second.setup, second.code) == (set(), "", "y = 2")
    page.write_text("<!-- docs-test: skip -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs a reason"):
        python_blocks(page)


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with _hub_if_marked(block, tmp_path):
        if block.setup:
            exec(compile(block.setup, f"{block.where} (set-up in the marker comment)", "exec"), namespace)
        # Blank lines in front keep the line numbers of a traceback those of the Markdown file.
        exec(compile("\n" * (block.line - 1) + block.code, str(block.path), "exec"), namespace)


@contextmanager
def _hub_if_marked(block: Block, tmp_path: Path) -> Iterator[None]:
    """The test Hub server, with huggingface_hub pointed at it, for blocks marked ``hub``."""
    if "hub" not in block.words:
        yield
        return
    import transformers.utils.hub
    from hub_server import HubServer, client_pointed_at

    server = HubServer().start()
    try:
        with client_pointed_at(server.endpoint, tmp_path / "hf-cache", "hf_docsTestToken") as patch:
            # transformers keeps one HfApi, which holds the endpoint it was made with: one made here must
            # not outlive this server (the patch puts back the one that was there before).
            patch.setattr(transformers.utils.hub, "_hf_api", None, raising=False)
            yield
    finally:
        server.stop()


def test_readme_links_reach_files_that_exist() -> None:
    """README.md is read on GitHub: its relative links must name files of the repository."""
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    local = [link for link in links if "://" not in link]
    assert "docs/index.md" in local
    assert [link for link in local if not (ROOT / link).exists()] == []


# --- the site -----------------------------------------------------------------------------------------------


def _hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_references_are_generated_from_the_registry_and_the_parser() -> None:
    from zoo.cli import COMMANDS

    hooks = _hooks()
    cli = hooks.cli_reference()
    for command in COMMANDS:
        assert f"## `zoo {command.name}`" in cli and f"usage: zoo {command.name}" in cli, command.name
    assert "--max-steps" in cli and "--kind {encoder,projector,backbone,recipe,reader,metric}" in cli
    tiny = hooks.recipe_reference(["tiny"])
    assert "## tiny {#zoo-tiny}" in tiny and "### Stage 1 of 1: finetune {#zoo-tiny-finetune}" in tiny
    rows = {line.split(" | ")[0].strip("| `") for line in tiny.splitlines() if line.startswith("| `")}
    assert {"encoder.image", "projector.image", "backbone", "encoders", "projectors"} <= rows


@pytest.mark.slow
def test_the_site_builds_strict_with_generated_references_and_api_pages(tmp_path: Path) -> None:
    site = tmp_path / "site"
    environment = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "WARNING" not in result.stderr, result.stderr[-4000:]
    import zoo
    from zoo.cli import COMMANDS

    recipes = (site / "reference" / "recipes" / "index.html").read_text(encoding="utf-8")
    for entry in zoo.list_components("recipe"):
        assert f'id="{entry.distribution}-{entry.name}'.replace(".", "-") in recipes, entry.qualified_name
    assert "Stage 2 of 2: instruct" in recipes and "tokens per item" in recipes
    ids = re.findall(r'id="([^"]+)"', recipes)
    assert sorted({i for i in ids if ids.count(i) > 1}) == [], "anchors must be unique"
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in COMMANDS:
        assert f"usage: zoo {command.name}" in cli, command.name
    api = (site / "api" / "zoo" / "index.html").read_text(encoding="utf-8")
    assert 'id="zoo.recipes_api.build"' in api and "gives the whole architecture without weights" in api
    assert not list(ROOT.joinpath("docs", "reference").glob("*.md")), "generated pages must not be committed"
