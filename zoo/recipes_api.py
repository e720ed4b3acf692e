"""Recipes: YAML files that name components, token layout and training stages; ``build()`` composes them.

``load_recipe`` parses a recipe with PyYAML's node API so that every error names the file and line
(``recipes/x.yaml:12: stages[0].train.backbon: unknown part ...``; keyword overrides say ``override``).
A recipe may ``extends:`` another (a registered name or a YAML path) and give only what changes: the two
are deep-merged as keyword overrides are, and an error in an inherited field names the file it came from.
``build(name_or_path)`` checks every field, component name and argument before anything heavy is built,
composes the ``ZooModel``, checks every stage's parts and LoRA targets against it, and applies the chosen
stage's plan. ``device="meta"`` builds the full architecture with no weights and no download. The format
is documented in docs/recipes.md.
"""

from __future__ import annotations

import copy
import difflib
import importlib.metadata
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zoo.errors import RecipeError, UnknownComponentError, ZooError
from zoo.safe_yaml import BoundedLoader
from zoo.stages import (
    DEFAULT_PLAN,
    GENERAL_PARTS,
    OPTIMIZER_DEFAULTS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TRAIN_MODES,
)

MEDIA_POSITIONS = ("inline", "after_bos")
_LEAF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- reading YAML with line numbers ----------------------------------------------------------------------


class _Loader(BoundedLoader):
    """Safe loading with aliases bounded (``zoo.safe_yaml``) that also reads ``5e-5`` and ``1e-8`` as floats
    (YAML 1.1 wants ``5.0e-5``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


@dataclass
class RecipeSource:
    """Where a recipe's values come from: the line per field path (and, for fields inherited through
    ``extends``, the file), and the keyword overrides."""

    path: Path
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    origins: dict[tuple[str, ...], Path] = field(default_factory=dict)  # inherited fields: their file

    def where(self, key_path: tuple) -> str:
        """``file:LINE`` of the field at ``key_path`` (its nearest written ancestor), or ``override``."""
        if _in_overrides(self.overrides, key_path):
            return "override"
        keys = tuple(str(k) for k in key_path)
        for depth in range(len(keys), -1, -1):
            if keys[:depth] in self.lines:
                return f"{self.origins.get(keys[:depth], self.path)}:{self.lines[keys[:depth]]}"
        return str(self.path)


def _in_overrides(overrides: Any, key_path: tuple) -> bool:
    """Whether the field at ``key_path`` was given by a keyword override rather than the file."""
    node = overrides
    for key in key_path:
        found = isinstance(node, dict) and key in node
        found = found or (isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node))
        if not found:
            return False
        node = node[key]
    return bool(key_path)


def _node_lines(node: yaml.Node, prefix: tuple[str, ...], lines: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            _node_lines(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            lines[path] = item.start_mark.line + 1
            _node_lines(item, path, lines)


def read_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    """The data of a YAML file and the line of each field path; invalid YAML names file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: cannot read the recipe: {error}") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = " ".join(filter(None, [error.context, error.problem]))
        raise RecipeError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: invalid YAML: {error}") from None
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _node_lines(node, (), lines)
    return data, lines


# --- the recipe -------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """A parsed recipe: component specs, token layout, sequence layout and training stages."""

    name: str
    description: str
    backbone: dict
    encoders: dict[str, dict]
    projectors: dict[str, dict]
    tokens: dict = field(default_factory=dict)
    stages: list[dict] = field(default_factory=list)
    path: Path | None = None
    paper: Any = None
    chat_template: str | None = None
    media_position: str = "inline"
    max_length: int | None = None
    merge_messages: bool = True
    stop_tokens: list[str] = field(default_factory=list)
    source: RecipeSource | None = field(default=None, repr=False)
    data: dict = field(default_factory=dict, repr=False)  # the mapping it was parsed from (overrides merged)

    def where(self, key_path: tuple) -> str:
        """``file:LINE`` (or ``override``) of a field, for error messages."""
        return self.source.where(key_path) if self.source else str(self.path or self.name)

    def stage_index(self, stage: int | str) -> int:
        """Index of a stage given by position or name."""
        names = [s["name"] for s in self.stages]
        if isinstance(stage, int) and not isinstance(stage, bool) and 0 <= stage < len(names):
            return stage
        if stage in names:
            return names.index(stage)
        raise RecipeError(f"recipe {self.name!r} has no stage {stage!r}; its stages are {names}")

    def zoo_config(self) -> Any:
        """The ``ZooConfig`` of this recipe, each spec stamped with its providing distribution and version."""
        from zoo.modeling import ZooConfig

        media_tokens = {m: v for m, v in self.tokens.items() if m in self.encoders}
        return ZooConfig(
            backbone=_stamp("backbone", self.backbone),
            encoders={m: _stamp("encoder", s) for m, s in self.encoders.items()},
            projectors={m: _stamp("projector", s) for m, s in self.projectors.items()},
            media_tokens=media_tokens,
            recipe_tokens=list(self.tokens.get("extra", [])),
            recipe=self.name,
            chat_template=self.chat_template,
            media_position=self.media_position,
            max_sequence_length=self.max_length,
            merge_messages=self.merge_messages,
            stop_tokens=list(self.stop_tokens),
        )


def _stamp(kind: str, spec: dict) -> dict:
    from zoo.registry import get_registry

    entry = get_registry().resolve(kind, spec["name"])
    return {**spec, "distribution": entry.distribution, "version": entry.version}


def _merge(
    base: dict, overrides: dict, replaced: list[tuple[str, ...]] | None = None, at: tuple = ()
) -> dict:
    """Deep-merge ``overrides`` into ``base``: mappings merge key by key; anything else (a list, a value, a
    spec with a different ``name``) replaces what was there. The replaced field paths go to ``replaced``."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        old = merged.get(key)
        mergeable = isinstance(old, dict) and isinstance(value, dict)
        if mergeable and value.get("name", old.get("name")) == old.get("name"):
            merged[key] = _merge(old, value, replaced, (*at, str(key)))
        else:
            merged[key] = copy.deepcopy(value)
            if replaced is not None:
                replaced.append((*at, str(key)))
    return merged


MODALITY_GROUPS = ("encoders", "projectors", "tokens")


def _drop_removed_modalities(data: Any) -> Any:
    """``encoders: {video: null}`` (likewise projectors, tokens) removes what a base recipe had there."""
    if not isinstance(data, dict):
        return data
    for group in MODALITY_GROUPS:
        if isinstance(data.get(group), dict):
            data[group] = {key: value for key, value in data[group].items() if value is not None}
    return data


# --- extends: a recipe on top of another -------------------------------------------------------------------

Located = dict[tuple[str, ...], tuple[Path, int]]  # field path -> (file, line)


def _read_recipe(path: Path, chain: tuple[Path, ...] = ()) -> tuple[Any, Located]:
    """The data of a recipe file with every ``extends`` resolved, and where each field was written."""
    data, lines = read_yaml(path)
    located = {key: (path, line) for key, line in lines.items()}
    if not isinstance(data, dict) or "extends" not in data:
        return data, located
    loc = Loc(RecipeSource(path, lines), ("extends",))
    parent = _parent_file(data["extends"], path, loc)
    seen = [p.resolve() for p in (*chain, path)]
    if parent.resolve() in seen:
        cycle = " -> ".join(str(p) for p in (*chain, path, parent))
        raise loc.error(f"{cycle} is a cycle: remove `extends` from one of these recipes")
    base, base_located = _read_recipe(parent, (*chain, path))
    if not isinstance(base, dict):
        raise Loc(RecipeSource(parent)).error("a recipe must be a YAML mapping at the top level")
    own = {key: value for key, value in data.items() if key != "extends"}
    inherited = {key: value for key, value in base.items() if key != "name"}  # the name is the file's
    replaced: list[tuple[str, ...]] = []
    merged = _merge(inherited, own, replaced)
    kept = {
        key: where
        for key, where in base_located.items()
        if key[:1] != ("name",) and not any(key[: len(r)] == r for r in replaced)
    }
    own_located = {key: where for key, where in located.items() if key[:1] != ("extends",)}
    return merged, {**kept, **own_located}


def _parent_file(reference: Any, child: Path, loc: Loc) -> Path:
    """The file ``extends: reference`` names: a YAML path (relative to ``child``'s folder) or a recipe name."""
    hint = "name an installed recipe (`zoo list --kind recipe`, e.g. tiny) or a YAML file relative to this recipe"
    if not isinstance(reference, str) or not reference.strip():
        raise loc.error(f"expected a recipe name or a YAML path, got {reference!r}: {hint}")
    candidate = Path(reference).expanduser()
    if candidate.suffix in {".yaml", ".yml"} or "/" in reference:
        path = candidate if candidate.is_absolute() else child.parent / candidate
        if not path.is_file():
            raise loc.error(f"{reference!r} names no file (looked for {path}): {hint}")
        return path
    from zoo.registry import get_registry

    try:
        return get_registry().recipe_path(reference)
    except ZooError as error:
        raise loc.error(f"{error}. `extends` must {hint}") from None


def _recipe_file(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise RecipeError(f"recipe file {str(path)!r} does not exist")
        return path
    from zoo.registry import get_registry

    return get_registry().recipe_path(str(name_or_path))


# --- field checks: each takes the value and its location, returns the normalised value -------------------


@dataclass(frozen=True)
class Loc:
    """A field's path inside the recipe, for messages such as ``file:12: stages[0].lr: ...``."""

    source: RecipeSource
    path: tuple = ()

    def __truediv__(self, key: str | int) -> Loc:
        return Loc(self.source, (*self.path, key))

    @property
    def dotted(self) -> str:
        text = ""
        for key in self.path:
            text += f"[{key}]" if isinstance(key, int) else f".{key}" if text else str(key)
        return text or "the recipe"

    def error(self, message: str) -> RecipeError:
        return RecipeError(f"{self.source.where(self.path)}: {self.dotted}: {message}")


Check = Callable[[Any, Loc], Any]


def _type_error(loc: Loc, expected: str, value: Any) -> RecipeError:
    return loc.error(f"expected {expected}, got {type(value).__name__} {value!r}")


def _string(value: Any, loc: Loc) -> str:
    if not isinstance(value, str):
        raise _type_error(loc, "a string (quote numbers, e.g. revision: '1.0')", value)
    return value


def _number(value: Any, loc: Loc) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(loc, "a number", value)
    return value


def _positive(value: Any, loc: Loc) -> float:
    if _number(value, loc) <= 0:
        raise loc.error(f"must be a positive number, got {value!r}")
    return value


def _non_negative(value: Any, loc: Loc) -> float:
    if _number(value, loc) < 0:
        raise loc.error(f"must be zero or more, got {value!r}")
    return value


def _fraction(value: Any, loc: Loc) -> float:
    if not 0 <= _number(value, loc) < 1:
        raise loc.error(f"must be in [0, 1), got {value!r}")
    return float(value)


def _positive_int(value: Any, loc: Loc) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _type_error(loc, "a positive integer", value)
    return value


def _non_negative_int(value: Any, loc: Loc) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _type_error(loc, "an integer >= 0", value)
    return value


def _choice(*options: str) -> Check:
    def check(value: Any, loc: Loc) -> str:
        if value not in options:
            raise loc.error(f"is {value!r}; use one of {', '.join(options)}")
        return value

    return check


def _string_list(value: Any, loc: Loc) -> list[str]:
    if not isinstance(value, list):
        raise _type_error(loc, "a list of strings", value)
    return [_string(item, loc / i) for i, item in enumerate(value)]


def _boolean(value: Any, loc: Loc) -> bool:
    if not isinstance(value, bool):
        raise _type_error(loc, "true or false", value)
    return value


def _any_mapping(value: Any, loc: Loc) -> dict:
    if not isinstance(value, dict):
        raise _type_error(loc, "a mapping", value)
    return value


def _anything(value: Any, loc: Loc) -> Any:
    return value


def _fields(value: Any, loc: Loc, checks: dict[str, Check], required: tuple[str, ...] = ()) -> dict:
    """Check a mapping field by field: unknown fields and missing required ones are errors."""
    if not isinstance(value, dict):
        raise _type_error(loc, f"a mapping with fields {', '.join(checks)}", value)
    for key in value:
        if key not in checks:
            close = difflib.get_close_matches(str(key), list(checks), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise (loc / key).error(f"unknown field{hint}; allowed: {', '.join(checks)}")
    for key in required:
        if key not in value:
            raise loc.error(f"missing required field `{key}`")
    return {key: checks[key](item, loc / key) for key, item in value.items()}


SPEC_CHECKS: dict[str, Check] = {
    "name": _string,
    "args": lambda v, loc: {} if v is None else _any_mapping(v, loc),
    "source": lambda v, loc: None if v is None else _string(v, loc),
    "revision": lambda v, loc: None if v is None else _string(v, loc),
    "plugin": _string,
    # For the model card of a pushed checkpoint: the license of the weights and the Hub model they derive
    # from, when the source does not say (a package file); a Hub source's own card is read otherwise.
    "license": _string,
    "base_model": _string,
}
SPEC_FIELDS = set(SPEC_CHECKS)
# A projector may share another modality's weights (Ying-VLM's video frames go through the image Q-Former).
PROJECTOR_CHECKS: dict[str, Check] = {**SPEC_CHECKS, "shared_with": _string}


def _spec(value: Any, loc: Loc, checks: dict[str, Check] = SPEC_CHECKS) -> dict:
    return {"args": {}, **_fields(value, loc, checks, required=("name",))}


def _specs(value: Any, loc: Loc, checks: dict[str, Check] = SPEC_CHECKS) -> dict[str, dict]:
    if value is None:
        return {}
    return {str(m): _spec(s, loc / m, checks) for m, s in _any_mapping(value, loc).items()}


def _check_sharing(projectors: dict[str, dict], loc: Loc) -> None:
    for modality, spec in projectors.items():
        target = spec.get("shared_with")
        if target is not None and (
            target == modality or projectors.get(target, {"shared_with": 1}).get("shared_with")
        ):
            raise (loc / modality / "shared_with").error(
                "must name another modality's projector that is not itself shared; "
                f"projectors: {sorted(projectors)}"
            )


def _optional_string(value: Any, loc: Loc) -> str | None:
    return None if value is None else _string(value, loc)


# `start: null` / `end: null` put no boundary token around a media block (LLaVA-1.5).
_LAYOUT_CHECKS = {"placeholder": _string, "start": _optional_string, "end": _optional_string}


def _tokens(value: Any, loc: Loc) -> dict:
    tokens = {}
    for key, item in ({} if value is None else _any_mapping(value, loc)).items():
        check = _string_list if key == "extra" else lambda v, lc: _fields(v, lc, _LAYOUT_CHECKS)
        tokens[key] = check(item, loc / key)
    return tokens


_PAPER_CHECKS = {"title": _string, "arxiv": lambda v, loc: str(_anything(v, loc)), "code": _string}

# --- stages ----------------------------------------------------------------------------------------------


def check_part(part: Any, loc: Loc, modalities: list[str]) -> str:
    """A part name valid for a recipe with ``modalities`` (``backbone.<leaf>`` is matched at build)."""
    part = _string(part, loc)
    group, dot, rest = part.partition(".")
    if part in GENERAL_PARTS:
        return part
    if dot and group in ("encoders", "projectors") and rest in modalities:
        return part
    if dot and group == "backbone" and _LEAF.fullmatch(rest):
        return part
    known = [*GENERAL_PARTS, *(f"{g}.{m}" for g in ("encoders", "projectors") for m in modalities)]
    close = difflib.get_close_matches(part, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise loc.error(
        f"unknown part{hint}; parts are {', '.join(known)}, or backbone.<module name> such as backbone.q_proj"
    )


def _train(value: Any, loc: Loc, modalities: list[str]) -> dict[str, str]:
    plan = {}
    for part, mode in _any_mapping(value, loc).items():
        plan[check_part(part, loc / part, modalities)] = _choice(*TRAIN_MODES)(mode, loc / part)
        if mode == "lora" and part != "backbone":
            raise (loc / part).error("LoRA applies to the whole backbone only: use `backbone: lora`")
    return plan


def _lr(value: Any, loc: Loc, modalities: list[str]) -> dict[str, float]:
    if not isinstance(value, dict):
        return {"default": float(_positive(value, loc))}
    rates = {}
    for part, rate in value.items():
        name = part if part == "default" else check_part(part, loc / part, modalities)
        rates[name] = float(_positive(rate, loc / part))
    return rates


_LORA_CHECKS = {"r": _positive_int, "alpha": _positive, "dropout": _fraction, "targets": _string_list}


def _betas(value: Any, loc: Loc) -> list[float]:
    if not isinstance(value, list) or len(value) != 2:
        raise _type_error(loc, "two numbers [beta1, beta2]", value)
    return [_fraction(b, loc / i) for i, b in enumerate(value)]


_OPTIMIZER_CHECKS = {
    "name": _choice(*OPTIMIZERS),
    "weight_decay": _non_negative,
    "betas": _betas,
    "eps": _positive,
}
_SCHEDULE_CHECKS = {"name": _choice(*SCHEDULES), "warmup_steps": _non_negative_int, "warmup_ratio": _fraction}
_BATCH_CHECKS = {
    "size": _positive_int,
    "per_device": _positive_int,
    "accumulation": _positive_int,
    "devices": _positive_int,
}


def _schedule(value: Any, loc: Loc) -> dict:
    schedule = {"name": "linear", **_fields(value, loc, _SCHEDULE_CHECKS)}
    if "warmup_steps" in schedule and "warmup_ratio" in schedule:
        raise loc.error("give warmup_steps or warmup_ratio, not both")
    return schedule


def _batch(value: Any, loc: Loc) -> dict:
    batch = _fields(value, loc, _BATCH_CHECKS)
    split = [batch.get(k) for k in ("per_device", "accumulation", "devices")]
    if any(split):
        product = (split[0] or 1) * (split[1] or 1) * (split[2] or 1)
        if batch.setdefault("size", product) != product:
            raise loc.error(f"size {batch['size']} is not per_device × accumulation × devices = {product}")
    if "size" not in batch:
        raise loc.error("give `size`, or `per_device` (with optional `accumulation` and `devices`)")
    return batch


def _stage(value: Any, loc: Loc, modalities: list[str]) -> dict:
    checks: dict[str, Check] = {
        "name": _string,
        "train": lambda v, lc: _train(v, lc, modalities),
        "lora": lambda v, lc: _fields(v, lc, _LORA_CHECKS),
        "lr": lambda v, lc: _lr(v, lc, modalities),
        "optimizer": lambda v, lc: {**OPTIMIZER_DEFAULTS, **_fields(v, lc, _OPTIMIZER_CHECKS)},
        "schedule": _schedule,
        "batch": _batch,
        "epochs": _positive,
        "precision": _choice(*PRECISIONS),
    }
    stage = _fields(value, loc, checks)
    stage.setdefault("name", str(loc.path[-1]))
    stage.setdefault("train", {})
    stage.setdefault("optimizer", dict(OPTIMIZER_DEFAULTS))
    stage.setdefault("schedule", {"name": "linear"})
    if stage.get("train", {}).get("backbone") == "lora" and "lora" not in stage:
        stage["lora"] = {}
    if "lora" in stage and stage["train"].get("backbone") != "lora":
        raise (loc / "lora").error("LoRA options given but `train.backbone` is not `lora`")
    _check_trains_something(stage, loc)
    return stage


def _check_trains_something(stage: dict, loc: Loc) -> None:
    if all(mode == "frozen" for mode in {**DEFAULT_PLAN, **stage["train"]}.values()):
        raise (loc / "train").error("this stage trains nothing: every part is frozen")


def _stages(value: Any, loc: Loc, modalities: list[str]) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(loc, "a list of stages", value)
    stages = [_stage(s, loc / i, modalities) for i, s in enumerate(value)]
    names = [s["name"] for s in stages]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise (loc / index / "name").error(f"stage name {name!r} is used twice")
    return stages


# --- the whole recipe ------------------------------------------------------------------------------------


def _top_level_checks(modalities: list[str]) -> dict[str, Check]:
    return {
        "name": _string,
        "extends": _string,  # resolved by load_recipe before the fields are checked
        "description": _string,
        "paper": lambda v, lc: _fields(v, lc, _PAPER_CHECKS) if isinstance(v, dict) else _string(v, lc),
        "backbone": _spec,
        "encoders": _specs,
        "projectors": lambda v, lc: _specs(v, lc, PROJECTOR_CHECKS),
        "tokens": _tokens,
        "chat_template": _string,
        "media_position": _choice(*MEDIA_POSITIONS),
        "max_length": _positive_int,
        "merge_messages": _boolean,
        "stop_tokens": _string_list,
        "stages": lambda v, lc: _stages(v, lc, modalities),
    }


RECIPE_FIELDS = set(_top_level_checks([]))


def parse_recipe(data: Any, path: Path, source: RecipeSource | None = None) -> Recipe:
    """Validate every field of a recipe mapping (component names and arguments are checked by build)."""
    source = source or RecipeSource(path)
    loc = Loc(source)
    if not isinstance(data, dict):
        raise loc.error("a recipe must be a YAML mapping at the top level")
    modalities = (
        [str(m) for m in (data.get("encoders") or {})] if isinstance(data.get("encoders"), dict) else []
    )
    fields = _fields(data, loc, _top_level_checks(modalities), required=("backbone",))
    encoders, projectors = fields.get("encoders", {}), fields.get("projectors", {})
    for modality in sorted(set(encoders) ^ set(projectors)):
        group = "encoders" if modality in encoders else "projectors"
        raise (loc / group / modality).error("every modality needs both an encoder and a projector")
    _check_sharing(projectors, loc / "projectors")
    tokens = fields.get("tokens", {})
    for key in tokens:
        if key != "extra" and key not in encoders:
            raise (loc / "tokens" / key).error(f"no encoder for this modality; modalities are {modalities}")
    return Recipe(
        name=fields.get("name") or path.stem,
        description=fields.get("description", ""),
        backbone=fields["backbone"],
        encoders=encoders,
        projectors=projectors,
        tokens=tokens,
        stages=fields.get("stages", []),
        path=path,
        paper=fields.get("paper"),
        chat_template=fields.get("chat_template"),
        media_position=fields.get("media_position", "inline"),
        max_length=fields.get("max_length"),
        merge_messages=fields.get("merge_messages", True),
        stop_tokens=fields.get("stop_tokens", []),
        source=source,
        data=copy.deepcopy(data),
    )


def load_recipe(name_or_path: str | Path, **overrides: Any) -> Recipe:
    """Read a recipe by registered name or YAML path (its ``extends`` chain resolved), with optional
    deep-merged overrides (merged by the same rules as ``extends``).

    A recipe shipped by a distribution means that distribution's own components where another
    distribution registers the same name too (see ``Registry.own_name``)."""
    path = _recipe_file(name_or_path)
    data, located = _read_recipe(path)
    lines = {key: line for key, (_, line) in located.items()}
    origins = {key: file for key, (file, _) in located.items() if file != path}
    source = RecipeSource(path, lines, overrides, origins)
    if overrides and data is not None and not isinstance(data, dict):
        raise Loc(source).error("a recipe must be a YAML mapping at the top level")
    if "extends" in overrides:
        raise Loc(source, ("extends",)).error(
            "`extends` is read from recipe files, not from overrides: write a recipe file that extends"
        )
    recipe = parse_recipe(_drop_removed_modalities(_merge(data or {}, overrides)), path, source)
    _prefer_own_components(recipe, path)
    return recipe


# --- components and stages against the installed registry and the built model --------------------------


def validate_recipe(recipe: Recipe) -> None:
    """Check every component name and argument, before anything is built; errors name file and line."""
    _validate_component(recipe, "backbone", recipe.backbone, ("backbone",))
    for modality, spec in recipe.encoders.items():
        _validate_component(recipe, "encoder", spec, ("encoders", modality))
        projector = recipe.projectors[modality]
        projector = {**projector, "args": {k: v for k, v in projector["args"].items() if k != "dim_in"}}
        _validate_component(
            recipe, "projector", projector, ("projectors", modality), extra=("dim_in", "llm_dim")
        )


def _validate_component(
    recipe: Recipe, kind: str, spec: dict, key_path: tuple, extra: tuple[str, ...] = ()
) -> None:
    from zoo.registry import validate_component_args

    try:
        validate_component_args(kind, spec["name"], spec["args"], extra=extra)
    except UnknownComponentError as error:
        where = recipe.where((*key_path, "name"))
        dist = spec.get("plugin")
        if dist and not _installed(dist):
            raise UnknownComponentError(
                f"{where}: {'.'.join(key_path)}: `{spec['name']}` is provided by the `{dist}` distribution, "
                f"which is not installed: pip install {dist}"
            ) from None
        note = (
            f" (the `{dist}` distribution is installed but provides no {kind} `{spec['name']}`)"
            if dist
            else ""
        )
        raise UnknownComponentError(f"{where}: {'.'.join(key_path)}: {error}{note}") from None
    except ZooError as error:
        raise type(error)(f"{recipe.where((*key_path, 'args'))}: {'.'.join(key_path)}: {error}") from None


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def check_stages_against(model: Any, recipe: Recipe) -> None:
    """Every stage's ``backbone.<leaf>`` parts and LoRA targets exist in the built model."""
    from zoo.training_plan import stage_problems

    for index, stage in enumerate(recipe.stages):
        for key_path, message in stage_problems(model, stage):
            loc = Loc(
                recipe.source or RecipeSource(recipe.path or Path(recipe.name)), ("stages", index, *key_path)
            )
            raise loc.error(message)


def build(name_or_path: str | Path, device: str | None = None, stage: int | str = 0, **overrides: Any) -> Any:
    """Build the model of a recipe with one stage's plan applied (the first by default).

    ``device="meta"`` gives the whole architecture without weights or downloads, for counting parameters
    and planning memory. Keyword overrides are deep-merged into the recipe, e.g.
    ``build("tiny", projectors={"image": {"name": "mlp"}})``.
    """
    import torch

    from zoo.modeling import ZooModel
    from zoo.training_plan import apply_stage

    recipe = load_recipe(name_or_path, **overrides)
    validate_recipe(recipe)
    check_chat_template(recipe)
    index = recipe.stage_index(stage) if recipe.stages else None
    config = recipe.zoo_config()
    if device == "meta":
        with torch.device("meta"):
            model = ZooModel(config, load_weights=False)
    else:
        model = ZooModel(config, load_weights=True)
        if device is not None:
            model = model.to(device)
    model.recipe = recipe
    if index is not None:
        check_stages_against(model, recipe)
        apply_stage(model, recipe.stages[index])
    return model


# --- checks of shipped recipes: their own components, their chat template, their YAML -------------------


def _prefer_own_components(recipe: Recipe, path: Path) -> None:
    """Qualify the component names of a recipe that a distribution ships with that distribution, where
    another distribution registers the same name (a plugin re-registering ``clip-vision`` does not break
    the built-in recipes)."""
    from zoo.registry import get_registry

    registry = get_registry()
    shipped = [e for e in registry.list_components("recipe") if e.path and _same_file(e.path, path)]
    if not shipped:
        return
    distribution = shipped[0].distribution
    recipe.backbone = registry.own_spec("backbone", recipe.backbone, distribution)
    recipe.encoders = {m: registry.own_spec("encoder", s, distribution) for m, s in recipe.encoders.items()}
    recipe.projectors = {
        m: registry.own_spec("projector", s, distribution) for m, s in recipe.projectors.items()
    }


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


_PROBE = [
    {"role": "system", "content": "zoo-probe-system"},
    {"role": "user", "content": "zoo-probe-question"},
    {"role": "assistant", "content": "zoo-probe-answer"},
    {"role": "user", "content": "zoo-probe-follow-up"},
]


def check_chat_template(recipe: Recipe) -> None:
    """Render a probe conversation (with and without a system message) through the recipe's
    ``chat_template``, so a broken template is a ``RecipeError`` naming its line at build time, not an
    error at the first sample."""
    if not recipe.chat_template:
        return
    from transformers.utils.chat_template_utils import render_jinja_template

    where = f"{recipe.where(('chat_template',))}: chat_template"
    for conversation in (_PROBE, _PROBE[1:]):
        try:
            rendered, _ = render_jinja_template(
                [conversation], chat_template=recipe.chat_template, add_generation_prompt=True,
                bos_token="<s>", eos_token="</s>",
            )  # fmt: skip
        except Exception as error:  # jinja2 syntax errors, raise_exception(), undefined names, ...
            raise RecipeError(
                f"{where}: cannot render a conversation of {', '.join(m['role'] for m in conversation)} "
                f"messages ({type(error).__name__}: {error})"
            ) from None
        missing = [m["content"] for m in conversation if m["content"] not in rendered[0]]
        if missing:
            raise RecipeError(f"{where}: the rendered conversation leaves out message content {missing}")


def recipe_problem(entry: Any) -> str:
    """What is wrong with a registered recipe (its YAML, fields, components, chat template), or ""."""
    try:
        recipe = load_recipe(entry.path)
        validate_recipe(recipe)
        check_chat_template(recipe)
    except ZooError as error:
        return str(error)
    return ""
