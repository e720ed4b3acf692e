"""``--set KEY=VALUE`` recipe overrides: dotted keys into the recipe, turned into ``build()`` overrides.

``KEY`` is a dotted path into the recipe YAML, its ``extends`` chain resolved (so inherited stages can be
reached); a segment that is a number indexes a list, and inside ``stages`` a segment may also be a stage
name: ``stages.0.lr=1e-3`` and ``stages.align.lr=1e-3`` are the same. Inside a stage's ``train`` and ``lr``
mappings the rest of the key is one part name, dots included (``stages.instruct.train.backbone.q_proj=full``).
``VALUE`` is read as YAML (``1e-4``, ``true``, ``[q_proj, v_proj]``, ``{size: 4}``; quote a string that
looks like a number).

The result is the keyword-override mapping of ``build(name, **overrides)`` (deep-merged, a component spec
with another ``name`` replaces the old spec): a key below a list carries the whole list, changed at that
place. Unknown fields are not checked here but by the recipe parser, which names them as ``override``.
Torch-free.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import RecipeError

# Mappings whose keys are part names, which may contain dots (backbone.q_proj).
_PART_MAPPINGS = ("train", "lr")


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"stages.0.lr=1e-3"`` → ``("stages.0.lr", 0.001)``; the value is read as YAML."""
    from zoo.recipes_api import _Loader

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE with a dotted KEY, e.g. stages.0.lr=1e-4")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise RecipeError(f"--set {text!r}: the value is not valid YAML ({error})") from None
    return key, value


def recipe_data(name_or_path: str | Path) -> dict:
    """The recipe's mapping with its ``extends`` chain resolved (no defaults filled in): what ``build()``
    merges the overrides into, so ``stages.0`` exists in a recipe that inherits its stages."""
    from zoo.recipes_api import load_recipe

    data = load_recipe(name_or_path).data
    return data if isinstance(data, dict) else {}


def overrides_from_sets(data: dict, assignments: Iterable[str], base: dict | None = None) -> dict:
    """``build()`` overrides for ``--set`` assignments applied in order to the recipe mapping ``data``.

    ``base`` holds overrides given already (as ``build`` keywords); the assignments are applied on top.
    """
    from zoo.recipes_api import _merge

    overrides = copy.deepcopy(base or {})
    for text in assignments:
        key, value = parse_assignment(text)
        current = _merge(data, overrides)
        overrides = _merge(overrides, _override_for(current, key.split("."), value, text))
    return overrides


def _override_for(current: dict, parts: list[str], value: Any, text: str) -> dict:
    """The smallest override that sets ``parts`` to ``value``: nested mappings down to the first list,
    which is carried whole (changed at that place)."""
    parts = _dict_path(parts)
    node: Any = current
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if isinstance(child, list):
            whole = copy.deepcopy(child)
            _assign(whole, parts[depth + 1 :], value, text, parts[: depth + 1])
            return _nest(parts[: depth + 1], whole)
        if not isinstance(child, dict):
            break
        node = child
    return _nest(parts, value)


def _dict_path(parts: list[str]) -> list[str]:
    """Key segments with the tail inside a ``train``/``lr`` mapping joined back into one part name."""
    for index, part in enumerate(parts[:-1]):
        if part in _PART_MAPPINGS and index >= 2 and parts[0] == "stages":
            return [*parts[: index + 1], ".".join(parts[index + 1 :])]
    return parts


def _nest(parts: list[str], value: Any) -> Any:
    for part in reversed(parts):
        value = {part: value}
    return value


def _assign(container: Any, parts: list[str], value: Any, text: str, above: list[str]) -> None:
    """Set ``value`` at ``parts`` inside ``container`` (lists by index or entry name), in place."""
    for depth, part in enumerate(parts):
        where = ".".join([*above, *parts[:depth]]) or "the recipe"
        last = depth == len(parts) - 1
        if isinstance(container, list):
            index = _list_index(container, part, where, text)
            if last:
                container[index] = value
                return
            container = container[index]
        elif isinstance(container, dict):
            if last:
                container[part] = value
                return
            if not isinstance(container.get(part), (dict, list)):
                if part in container and container[part] is not None:
                    raise RecipeError(
                        f"--set {text}: {where}.{part} is {container[part]!r}, not a mapping or a list"
                    )
                container[part] = {}
            container = container[part]
        else:
            raise RecipeError(f"--set {text}: {where} is {container!r}, not a mapping or a list")


def _list_index(items: list, part: str, where: str, text: str) -> int:
    if part.lstrip("-").isdigit():
        index = int(part)
        if 0 <= index < len(items):
            return index
        raise RecipeError(f"--set {text}: {where} has {len(items)} entries; index {part} does not exist")
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if part in names:
        return names.index(part)
    known = [n for n in names if n is not None]
    detail = f"; its names are {known}" if known else ""
    raise RecipeError(f"--set {text}: {where} has no entry named {part!r}{detail} (or give an index)")
