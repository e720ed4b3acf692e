"""The ``zoo`` command line: a table of subcommands, each a pair of functions (arguments, run).

To add a command, write ``add_<name>_arguments(parser)`` and ``run_<name>(args) -> int`` and append a
``Command`` to ``COMMANDS``. Keep the module that defines them cheap to import: import torch or
transformers inside ``run``, so that ``zoo --help`` and ``zoo list`` stay fast. A ``ZooError`` raised by a
command is printed as ``zoo: error: <message>`` with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from zoo import __version__
from zoo.errors import ComponentConflictError, ZooError
from zoo.registry import (
    API_DECLARATION,
    COMPONENT_API,
    KINDS,
    PREFER_ENV,
    RUNTIME,
    ComponentEntry,
    PluginInfo,
    Registry,
    get_registry,
)


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, argument set-up and the function that runs it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# --- zoo list --------------------------------------------------------------------------------------------


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=KINDS, help="only this kind of component")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_list(args: argparse.Namespace) -> int:
    registry = get_registry()
    entries = registry.list_components(args.kind)
    marks = conflict_marks(registry, args.kind)
    if args.json:
        rows = [
            {**asdict(e), "qualified_name": e.qualified_name, "conflict": marks.get(e, "")} for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    header = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "DESCRIPTION")
    print(format_table([header, *(_list_row(e, marks.get(e, "")) for e in entries)]))
    if any(mark == "conflict" for mark in marks.values()):
        print(
            "\n[conflict]: several distributions provide this name. Pick one with distribution:name, "
            f"or with {PREFER_ENV}='name=distribution'."
        )
    return 0


def conflict_marks(registry: Registry, kind: str | None) -> dict[ComponentEntry, str]:
    """For names several distributions provide: "conflict", or "preferred"/"shadowed" once one is picked."""
    marks = {}
    for (k, name), entries in registry.conflicts(kind).items():
        try:
            chosen = registry.resolve(k, name)
        except ComponentConflictError:
            chosen = None
        for entry in entries:
            marks[entry] = "conflict" if chosen is None else "preferred" if entry == chosen else "shadowed"
    return marks


def _list_row(entry: ComponentEntry, mark: str) -> tuple[str, ...]:
    name = f"{entry.name} [{mark}]" if mark else entry.name
    description = f"(broken: {entry.error})" if entry.error else entry.description
    return (entry.kind, name, entry.distribution, entry.version, description)


def format_table(rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] if rows else []
    lines = [
        indent + "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


# --- zoo plugins -----------------------------------------------------------------------------------------


def add_plugins_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("distributions", nargs="*", metavar="DISTRIBUTION", help="only these distributions")


def run_plugins(args: argparse.Namespace) -> int:
    from zoo.recipes_api import recipe_problem

    infos = get_registry().plugins(args.distributions or None, check_recipe=recipe_problem)
    if not infos:
        wanted = ", ".join(args.distributions) or "any distribution"
        print(f"no zoo components found in {wanted}", file=sys.stderr)
        return 1
    for info in infos:
        status = "OK" if info.ok else f"{len(info.errors)} of {len(info.components)} failed to load"
        print(f"{info.distribution} {info.version}".rstrip() + f"{_api_note(info)}: {status}")
        rows = [(e.kind, e.name, info.errors.get(f"{e.kind} {e.name}", "OK")) for e in info.components]
        print(format_table(rows, indent="  "))
    undeclared = [i.distribution for i in infos if not i.api and i.distribution != RUNTIME]
    if undeclared:
        print(
            f"\nnote: {', '.join(undeclared)} declare(s) no component API version: add {API_DECLARATION} "
            "to the pyproject.toml once the components pass the conformance kit (docs/testing.md)"
        )
    return 0 if all(info.ok for info in infos) else 1


def _api_note(info: PluginInfo) -> str:
    """`` (component API 1)``, or what is wrong with the declaration."""
    if info.distribution == RUNTIME:
        return ""
    if not info.api:
        return " (component API: not declared)"
    if info.api != COMPONENT_API:
        return f" (component API {info.api}; this zoo provides {COMPONENT_API})"
    return f" (component API {info.api})"


# --- zoo info -------------------------------------------------------------------------------------------


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe name (see `zoo list --kind recipe`) or path to a recipe YAML")
    parser.add_argument("--stage", help="only this stage (name or index); default: every stage")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run_info(args: argparse.Namespace) -> int:
    """Build the recipe on the meta device per stage (no weights, no download) and describe it."""
    from zoo.summary import format_info, recipe_info

    stage = int(args.stage) if args.stage is not None and args.stage.isdigit() else args.stage
    info = recipe_info(args.recipe, stage=stage)
    print(json.dumps(info.to_dict(), indent=2) if args.json else format_info(info))
    return 0


# --- zoo push ------------------------------------------------------------------------------------------


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a folder written by save_pretrained or `zoo train`")
    parser.add_argument("repo_id", metavar="REPO_ID", help="the Hub repo, org/name (created if missing)")
    parser.add_argument(
        "--revision", metavar="BRANCH", help="push to this branch (created from main if missing)"
    )
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument(
        "--merged", action="store_true", help="a standalone export: LoRA merged, every weight included"
    )
    parser.add_argument("--message", "-m", help="the commit message")
    parser.add_argument("--license", help="the card's license id (default: derived from the components')")


def run_push(args: argparse.Namespace) -> int:
    """Push a checkpoint folder; the token is read by huggingface_hub (HF_TOKEN or `hf auth login`)."""
    from zoo.hub import push

    commit = push(
        args.folder,
        args.repo_id,
        revision=args.revision,
        private=args.private,
        merged=args.merged,
        commit_message=args.message,
        license=args.license,
    )
    print(f"pushed {args.folder} to {args.repo_id}@{args.revision or 'main'}: commit {commit.oid}")
    print(commit.commit_url)
    return 0


# --- zoo new-plugin -----------------------------------------------------------------------------------------

PLUGIN_KINDS = ("encoder", "projector", "backbone", "recipe", "reader", "metric")


def add_new_plugin_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="distribution name, e.g. zoo-pool (imported as zoo_pool)")
    parser.add_argument("--kind", required=True, choices=PLUGIN_KINDS, help="what the package adds")
    parser.add_argument("--output", help="folder to write (default: ./NAME; must not exist or be empty)")


def run_new_plugin(args: argparse.Namespace) -> int:
    from zoo.scaffold import new_plugin, plugin_names

    root = new_plugin(args.name, args.kind, args.output)
    names = plugin_names(args.name)
    print(f"wrote {root}/ ({args.kind} '{names.component}' of {names.distribution}):")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(root)}")
    print(f'\nnext:\n  pip install -e "{root}[test]"\n  (cd {root} && pytest)\n  zoo list --kind {args.kind}')
    return 0


def _model_commands(name: str) -> tuple[Callable, Callable]:
    from zoo import cli_model

    return getattr(cli_model, f"add_{name}_arguments"), getattr(cli_model, f"run_{name}")


def _train_command() -> tuple[Callable, Callable]:
    from zoo import cli_train

    return cli_train.add_train_arguments, cli_train.run_train


def _evaluation_commands(name: str) -> tuple[Callable, Callable]:
    from zoo.evaluation import commands

    return getattr(commands, f"add_{name}_arguments"), getattr(commands, f"run_{name}")


COMMANDS: list[Command] = [
    Command("list", "list components and recipes (imports no plugin)", add_list_arguments, run_list),
    Command(
        "plugins",
        "check that each distribution's components import (exit 1 if one does not)",
        add_plugins_arguments,
        run_plugins,
    ),
    Command(
        "info",
        "what a recipe builds: components, sources, parameters, stages, memory (no download)",
        add_info_arguments,
        run_info,
    ),
    Command("chat", "ask a recipe or checkpoint about an image / audio / video", *_model_commands("chat")),
    Command("eval", "score a model on data with the papers' metrics", *_evaluation_commands("eval")),
    Command(
        "judge",
        "rate two models' answers with a judge model (M3IT's protocol)",
        *_evaluation_commands("judge"),
    ),
    Command("data", "data tools: `zoo data audit DATA` (quality indicators)", *_evaluation_commands("data")),
    Command(
        "push",
        "push a checkpoint folder to the Hugging Face Hub (delta, or --merged)",
        add_push_arguments,
        run_push,
    ),
    Command(
        "new-plugin",
        "write a plugin package (entry point, component, recipe, README, conformance tests)",
        add_new_plugin_arguments,
        run_new_plugin,
    ),
    Command("train", "train a recipe on data, stage by stage, into a reloadable model", *_train_command()),
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="zoo", description="Plugin registry and model zoo for multimodal LLMs."
    )
    parser.add_argument("--version", action="version", version=f"zoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``zoo`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ZooError as exc:
        print(f"zoo: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `zoo info … | head`: the reader stopped; say nothing more (Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
