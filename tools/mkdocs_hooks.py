"""mkdocs hooks (registered in mkdocs.yml): the recipe and CLI reference pages, generated at build time.

``reference/recipes.md`` describes every recipe the registry lists — components, tokens per item, and per
stage what trains — from ``zoo.summary.recipe_info``, which builds each recipe on the meta device (no
weights, nothing downloaded). ``reference/cli.md`` is ``zoo COMMAND --help`` for every subcommand of
``zoo.cli.build_parser()``. Neither page exists in ``docs/``: they are made from the installed code on
every build, so they cannot go stale. A recipe that cannot be described is a warning (a failed strict build).
"""

from __future__ import annotations

import argparse
import functools
import logging
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.zoo")  # under "mkdocs": its warnings fail `mkdocs build --strict`

RECIPES_PAGE = "reference/recipes.md"
CLI_PAGE = "reference/cli.md"
HELP_WIDTH = 100


def on_files(files: Files, config: Any) -> Files:
    """Add the generated reference pages to the site."""
    for uri, make in ((RECIPES_PAGE, recipe_reference), (CLI_PAGE, cli_reference)):
        if files.get_file_from_path(uri) is not None:
            raise PluginError(f"docs/{uri} is generated at build time: delete the file from docs/")
        files.append(File.generated(config, uri, content=make()))
    return files


# --- the recipe reference ----------------------------------------------------------------------------------


def recipe_reference(names: list[str] | None = None) -> str:
    """Markdown describing every installed recipe (or only ``names``, qualified or not)."""
    import zoo

    entries = [
        e for e in zoo.list_components("recipe") if names is None or {e.name, e.qualified_name} & set(names)
    ]
    parts = [
        "# Recipe reference",
        "",
        "Every recipe the installed registry lists (`zoo list --kind recipe`), built on the meta device: the",
        "architecture without weights, nothing downloaded. `zoo info NAME` prints the same and the memory each",
        "stage needs; the recipe format is in [Recipes](../recipes.md). This page is generated when the site",
        "is built, from the recipes and plugins installed there.",
        "",
        _table(
            ("recipe", "distribution", "stages", "parameters", "description"),
            [(f"[{e.name}](#{_anchor(e)})", f"{e.distribution} {e.version}", *_summary(e)) for e in entries],
        ),
    ]
    parts += [_recipe_section(entry) for entry in entries]
    return "\n".join(parts) + "\n"


@functools.cache
def _info(qualified_name: str) -> Any:
    from zoo.summary import recipe_info

    return recipe_info(qualified_name)


def _summary(entry: Any) -> tuple[str, str, str]:
    try:
        info = _info(entry.qualified_name)
    except Exception:  # reported in the recipe's own section
        return ("?", "?", _cell(entry.description))
    from zoo.summary import human

    stages = ", ".join(s.name for s in info.stages) or "none"
    return (stages, human(info.parameters), _cell(entry.description))


def _recipe_section(entry: Any) -> str:
    heading = f"\n## {entry.name} {{#{_anchor(entry)}}}\n"
    try:
        info = _info(entry.qualified_name)
    except Exception as error:
        log.warning(
            "recipe %s cannot be described: %s: %s", entry.qualified_name, type(error).__name__, error
        )
        return (
            heading + f'\n!!! failure "This recipe does not build"\n    `{type(error).__name__}: {error}`\n'
        )
    from zoo.summary import human, paper_line

    lines = [
        heading,
        f"`{entry.qualified_name}` ({entry.distribution} {entry.version}). {info.description}",
        "",
    ]
    if info.paper:
        lines += [f"Paper: {paper_line(info.paper)}", ""]
    lines += [_components(info), "", f"{info.parameters:,} parameters ({human(info.parameters)}).", ""]
    lines += [_budget(info.budget), ""]
    for index, stage in enumerate(info.stages):
        lines += [_stage(stage, index, len(info.stages), _anchor(entry)), ""]
    return "\n".join(lines)


def _components(info: Any) -> str:
    rows = [
        (
            f"`{row.part}`",
            f"`{row.component}`",
            row.provider,
            _cell(row.source) + (f" @ `{row.revision}`" if row.revision else ""),
            f"{row.parameters:,}",
            "" if row.tokens_per_item is None else str(row.tokens_per_item),
        )
        for row in info.components
    ]
    return _table(("part", "component", "provider", "weights", "parameters", "tokens per item"), rows)


def _budget(budget: Any) -> str:
    length = budget.max_length if budget.max_length is not None else "not set"
    items = "; ".join(f"one {modality} item {tokens}" for modality, tokens in budget.per_item.items())
    return (
        f"Sequence budget: `max_length` {length}, media {budget.media_position}. Tokens per media item with"
        f" its boundary tokens: {items or 'no media'}."
    )


def _stage(stage: Any, index: int, count: int, recipe_anchor: str) -> str:
    from zoo.summary import human, rates_line, setting_text

    rows = [
        (f"`{part}`", mode, f"{stage.trainable_per_part.get(part, 0):,}") for part, mode in stage.plan.items()
    ]
    share = 100 * stage.trainable / max(stage.parameters, 1)
    lines = [
        f"### Stage {index + 1} of {count}: {stage.name} {{#{recipe_anchor}-{_slug(stage.name)}}}",
        "",
        _table(("part", "mode", "trainable parameters"), rows),
        "",
        f"Trainable: {stage.trainable:,} of {stage.parameters:,} parameters ({share:.2f}%). "
        f"Learning rates: {rates_line(stage)}. Memory to train in bf16, activations not included: "
        f"{human(stage.memory.total, 'B')}.",
    ]
    if stage.settings:
        lines += [""] + [f"- {key}: {_cell(setting_text(value))}" for key, value in stage.settings.items()]
    return "\n".join(lines)


def _anchor(entry: Any) -> str:
    return _slug(entry.qualified_name)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower())


# --- the CLI reference -------------------------------------------------------------------------------------


def cli_reference() -> str:
    """Markdown with the help of ``zoo`` and of every subcommand, as argparse prints it."""
    from zoo.cli import build_parser

    parser = build_parser()
    commands = _subcommands(parser)
    parts = [
        "# Command line reference",
        "",
        "`zoo --help` and `zoo COMMAND --help` for every subcommand, generated from the CLI's own parser",
        "when the site is built.",
        "",
        _table(
            ("command", "what it does"),
            [(f"[`zoo {n}`](#zoo-{n})", _cell(h)) for n, (h, _) in commands.items()],
        ),
        "",
        "```text",
        _help(parser),
        "```",
    ]
    for name, (summary, sub) in commands.items():
        parts += ["", f"## `zoo {name}` {{#zoo-{name}}}", "", summary, "", "```text", _help(sub), "```"]
    return "\n".join(parts) + "\n"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """name → (one-line help, its parser), in the CLI's order."""
    # argparse keeps subparsers in a private action class; this is how every argparse doc tool reads them.
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}


def _help(parser: argparse.ArgumentParser) -> str:
    """The parser's help at a fixed width, so the page does not depend on the terminal that built it."""
    parser.formatter_class = functools.partial(parser.formatter_class, width=HELP_WIDTH)
    return parser.format_help().rstrip()


# --- markdown ----------------------------------------------------------------------------------------------


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
