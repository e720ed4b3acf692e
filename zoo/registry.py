"""The component registry: discovery through entry points, lazy listing, conflicts, validated building.

Kinds and their entry-point groups: ``encoder`` → ``zoo.encoders``, ``projector`` → ``zoo.projectors``,
``backbone`` → ``zoo.backbones`` (``name = "module:Class"``), ``reader`` → ``zoo.readers`` and ``metric`` →
``zoo.metrics`` (``name = "module:function"``), and ``recipe`` → ``zoo.recipes`` (``name = "package.path"``
naming a folder whose ``*.yaml`` files are recipes). Discovery runs through the pluggy hooks of
``zoo.hookspecs``; the core's sources are installed entry points and runtime registration.

A distribution declares the component API it was written for in the ``zoo.api`` group
(``version = "1"``), read from its metadata without importing it; a component of a distribution that
declares another version than ``COMPONENT_API`` is refused when it is loaded, naming both versions.

Listing never imports a plugin module, torch or transformers: descriptions are the first docstring line
of the target class, read from its source file with ``ast``. ``Registry.load`` imports one module.
A name that two distributions provide must be picked: ``distribution:name``, ``Registry.prefer`` or
``ZOO_PREFER="name=distribution,..."``.
"""

from __future__ import annotations

import ast
import difflib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pluggy
import yaml

from zoo import hookspecs
from zoo.errors import (
    ComponentAPIError,
    ComponentArgumentError,
    ComponentConflictError,
    ContractError,
    PluginLoadError,
    RecipeError,
    UnknownComponentError,
    ZooError,
)
from zoo.hookspecs import hookimpl

GROUPS = {
    "encoder": "zoo.encoders",
    "projector": "zoo.projectors",
    "backbone": "zoo.backbones",
    "recipe": "zoo.recipes",
    "reader": "zoo.readers",
    "metric": "zoo.metrics",
}
KINDS = tuple(GROUPS)
# The base class an entry point of each component kind must give (readers and metrics: any callable).
BASES = {
    "encoder": "zoo.components.base:Encoder",
    "projector": "zoo.components.base:Projector",
    "backbone": "zoo.components.base:Backbone",
}
RUNTIME = "(runtime)"
PREFER_ENV = "ZOO_PREFER"
# The component API this zoo provides; plugins declare theirs in the ``zoo.api`` entry-point group.
COMPONENT_API = "1"
API_GROUP = "zoo.api"
API_DECLARATION = f'[project.entry-points."{API_GROUP}"] version = "{COMPONENT_API}"'


@dataclass(frozen=True)
class ComponentEntry:
    """One named component or recipe and where it comes from, known without importing it."""

    kind: str
    name: str
    distribution: str
    version: str
    target: str  # "module:attr" of a component; the package path of the folder of a recipe
    description: str = ""
    source: str = "entry-point"  # which hook source owns it: "entry-point" or "runtime"
    path: str = ""  # recipes: the YAML file
    error: str = ""  # a problem seen without importing (malformed value, missing recipe folder)
    api: str = ""  # the component API its distribution declares ("" when it declares none)

    @property
    def qualified_name(self) -> str:
        """``distribution:name``, accepted everywhere a name is."""
        return f"{self.distribution}:{self.name}"

    @property
    def group(self) -> str:
        """The entry-point group of this kind."""
        return GROUPS[self.kind]


@dataclass(frozen=True)
class PluginInfo:
    """One distribution's components and which of them failed to load (``errors``: "kind name" → error)."""

    distribution: str
    version: str
    components: tuple[ComponentEntry, ...]
    errors: dict[str, str] = field(default_factory=dict)
    api: str = ""  # the component API the distribution declares ("" when it declares none)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_kind(kind: str) -> str:
    """Return ``kind`` if it is one of ``KINDS``, else raise an error that lists them."""
    if kind not in GROUPS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownComponentError(f"unknown component kind {kind!r}{hint}; kinds are: {', '.join(KINDS)}")
    return kind


def canonical_distribution(name: str) -> str:
    """PEP 503 normalisation, so ``zoo_openclip`` and ``Zoo-OpenCLIP`` name the same distribution.

    (``packaging.utils.canonicalize_name`` does the same, but importing it costs ``zoo list`` ~35 ms.)"""
    return re.sub(r"[-_.]+", "-", name).lower()


def _first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines()]
    return lines[0] if lines else ""


# --- reading a module's source without executing it -------------------------------------------------


def find_module_spec(module: str) -> ModuleSpec | None:
    """The spec of ``module`` found without importing it or its parent packages (``None`` if not found).

    ``importlib.util.find_spec`` imports the parents of a dotted name, so submodules are looked up with
    the finders of ``sys.meta_path`` (editable installs included), given the parent's search locations.
    """
    spec: ModuleSpec | None = None
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        try:  # a finder that fails counts as not finding the module
            if name in sys.modules:
                spec = getattr(sys.modules[name], "__spec__", None)
            elif depth == 1:
                spec = importlib.util.find_spec(name)
            else:
                spec = _find_submodule_spec(name, spec.submodule_search_locations or [])
        except Exception:
            return None
        if spec is None or (depth < len(parts) and spec.submodule_search_locations is None):
            return None
    return spec


def _find_submodule_spec(name: str, locations: Iterable[str]) -> ModuleSpec | None:
    locations = list(locations)
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        try:  # PathFinder raises for a namespace package whose parent is not imported: handled below
            spec = find_spec(name, locations) if find_spec else None
        except Exception:
            spec = None
        if spec is not None:
            return spec
    return _namespace_spec(name, locations)


def _namespace_spec(name: str, locations: list[str]) -> ModuleSpec | None:
    """A folder without ``__init__.py`` (a namespace package, like zoo's own recipe folder) found in the
    parent's locations, without importing the parent (which the import system's namespace path needs)."""
    last = name.rpartition(".")[2]
    folders = [str(Path(location) / last) for location in locations if (Path(location) / last).is_dir()]
    if not folders:
        return None
    spec = ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = folders
    return spec


class StaticDocs:
    """First docstring lines of classes and functions, read with ``ast`` from source files."""

    def __init__(self) -> None:
        self._trees: dict[str, tuple[ast.Module, ModuleSpec] | None] = {}

    def describe(self, module: str, attr: str, hops: int = 3) -> str:
        """First line of the docstring of ``module:attr`` ("" when it cannot be found statically)."""
        parsed = self._parse(module)
        if parsed is None:
            return ""
        tree, spec = parsed
        head, *rest = attr.split(".")
        node = _definition(tree, head)
        if node is not None:
            target = _descend(node, rest)
            return _first_line(ast.get_docstring(target)) if target is not None else ""
        documented = _attribute_docstring(tree, head) if not rest else ""
        if documented:  # a module-level object such as `ROUGE_L = Metric(...)` with a string literal after it
            return _first_line(documented)
        origin, name = _reexport(tree, head, spec)
        if origin and hops > 0:  # ``from .impl import Cls`` in a package's __init__: follow it
            return self.describe(origin, ".".join([name, *rest]), hops - 1)
        return ""

    def _parse(self, module: str) -> tuple[ast.Module, ModuleSpec] | None:
        if module not in self._trees:
            self._trees[module] = _parse_module(module)
        return self._trees[module]


def _parse_module(module: str) -> tuple[ast.Module, ModuleSpec] | None:
    try:  # best effort: a finder or a file we cannot read must never break listing
        spec = find_module_spec(module)
        get_source = getattr(spec.loader, "get_source", None) if spec else None
        source = get_source(spec.name) if get_source else None
        return (ast.parse(source), spec) if source else None
    except Exception:
        return None


def _definition(tree: ast.Module, name: str) -> ast.AST | None:
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return node
    return None


def _attribute_docstring(tree: ast.Module, name: str) -> str:
    """The string literal right after a top-level ``name = ...`` (the attribute-docstring convention)."""
    for node, after in zip(tree.body, tree.body[1:], strict=False):
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        named = any(isinstance(t, ast.Name) and t.id == name for t in targets)
        if named and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
            return str(after.value.value) if isinstance(after.value.value, str) else ""
    return ""


def _reexport(tree: ast.Module, name: str, spec: ModuleSpec) -> tuple[str | None, str]:
    """``(module, original name)`` of a ``from module import original as name`` at the top level."""
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _import_origin(node, spec), alias.name
    return None, name


def _descend(node: ast.AST, path: list[str]) -> ast.AST | None:
    for name in path:
        found = [n for n in getattr(node, "body", []) if getattr(n, "name", None) == name]
        if not found:
            return None
        node = found[0]
    return node


def _import_origin(node: ast.ImportFrom, spec: ModuleSpec) -> str | None:
    if node.level == 0:
        return node.module
    package = spec.name if spec.submodule_search_locations is not None else spec.parent
    try:
        return importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    except ImportError:
        return None


# --- the core's hook implementations: two sources of components --------------------------------------


class EntryPointSource:
    """Components declared in the entry points of installed distributions, the core's own included.

    The installed entry points are read once (``importlib.metadata.entry_points()`` scans every
    distribution) and kept until ``forget``; each kind selects its group from them.
    """

    def __init__(self) -> None:
        self._entry_points: importlib.metadata.EntryPoints | None = None
        self._names: dict[int, tuple[str, str]] = {}  # id(distribution) -> (name, version)

    def forget(self) -> None:
        self._entry_points = None
        self._names.clear()

    def _name_and_version(self, dist: importlib.metadata.Distribution | None) -> tuple[str, str]:
        """Read once per distribution: each ``dist.name`` / ``dist.version`` parses its METADATA file."""
        if dist is None:
            return "", ""
        if id(dist) not in self._names:
            metadata = dist.metadata
            self._names[id(dist)] = (metadata["Name"], metadata["Version"])
        return self._names[id(dist)]

    def _installed(self) -> importlib.metadata.EntryPoints:
        if self._entry_points is None:
            self._entry_points = importlib.metadata.entry_points()
        return self._entry_points

    @hookimpl
    def zoo_discover(self, kind: str) -> list[ComponentEntry]:
        docs = StaticDocs()
        apis = declared_apis(self._installed())
        entries: list[ComponentEntry] = []
        for ep in self._installed().select(group=GROUPS[kind]):
            name, version = self._name_and_version(ep.dist)
            if kind == "recipe":
                found = _recipe_entries(ep, name, version)
            else:
                found = [_component_entry(kind, ep, name, version, docs)]
            entries.extend(replace(entry, api=apis.get(canonical_distribution(name), "")) for entry in found)
        return entries

    @hookimpl
    def zoo_load_component(self, entry: ComponentEntry) -> object | None:
        if entry.source != "entry-point":
            return None
        return importlib.metadata.EntryPoint(name=entry.name, value=entry.target, group=entry.group).load()


def declared_apis(installed: importlib.metadata.EntryPoints) -> dict[str, str]:
    """Distribution (PEP 503 name) → the component API version it declares in the ``zoo.api`` group."""
    found: dict[str, set[str]] = {}
    for ep in installed.select(group=API_GROUP):
        if ep.dist is not None:
            found.setdefault(canonical_distribution(ep.dist.name), set()).add(ep.value.strip())
    return {dist: ",".join(sorted(values)) for dist, values in found.items()}


def _component_entry(
    kind: str, ep: importlib.metadata.EntryPoint, dist: str, version: str, docs: StaticDocs
) -> ComponentEntry:
    what = "module:Class" if kind in BASES else "module:function"
    if ep.pattern.match(ep.value) is None or not ep.attr:
        error = f"malformed entry point value {ep.value!r}: expected '{what}'"
        return ComponentEntry(kind, ep.name, dist, version, ep.value, error=error)
    description = docs.describe(ep.module, ep.attr)
    return ComponentEntry(kind, ep.name, dist, version, ep.value, description)


def _recipe_entries(ep: importlib.metadata.EntryPoint, dist: str, version: str) -> list[ComponentEntry]:
    match = ep.pattern.match(ep.value)
    spec = find_module_spec(ep.value) if match and not ep.attr else None
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        error = f"recipe folder {ep.value!r} not found (expected an importable package path naming a folder)"
        return [ComponentEntry("recipe", ep.name, dist, version, ep.value, error=error)]
    files = {path.stem: path for folder in reversed(folders) for path in sorted(Path(folder).glob("*.yaml"))}
    return [
        ComponentEntry("recipe", stem, dist, version, ep.value, _recipe_description(path), path=str(path))
        for stem, path in sorted(files.items())
    ]


def _recipe_description(path: Path) -> str:
    try:  # libyaml's loader when PyYAML was built with it: listing reads every recipe file
        data = yaml.load(
            path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""  # the recipe loader reports the problem when the recipe is used
    if not isinstance(data, dict):
        return ""
    if not data.get("description") and isinstance(data.get("extends"), str):
        return f"(extends {data['extends']})"
    description = data.get("description")  # a string only: str() of nested aliases would expand them
    return _first_line(description) if isinstance(description, str) else ""


class RuntimeSource:
    """Components registered from Python with ``register_component`` (notebooks, tests)."""

    def __init__(self) -> None:
        self._objects: dict[tuple[str, str], tuple[ComponentEntry, object]] = {}

    def add(self, entry: ComponentEntry, obj: object) -> None:
        self._objects[entry.kind, entry.name] = (entry, obj)

    @hookimpl
    def zoo_discover(self, kind: str) -> list[ComponentEntry]:
        return [entry for (k, _), (entry, _) in self._objects.items() if k == kind]

    @hookimpl
    def zoo_load_component(self, entry: ComponentEntry) -> object | None:
        found = self._objects.get((entry.kind, entry.name))
        return found[1] if entry.source == "runtime" and found and found[0] == entry else None


# --- the registry -------------------------------------------------------------------------------------


class Registry:
    """Every component and recipe that the registered sources provide; discovery runs lazily per kind."""

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.plugin_manager.add_hookspecs(hookspecs)
        self._runtime = RuntimeSource()
        self._entry_points = EntryPointSource()
        self.plugin_manager.register(self._entry_points, name="entry-points")
        self.plugin_manager.register(self._runtime, name="runtime")
        self._index: dict[str, dict[str, list[ComponentEntry]]] = {}
        self._preferences: dict[tuple[str, str], str] = {}
        self._loaded: dict[ComponentEntry, object] = {}
        self._provenance: dict[int, ComponentEntry] = {}

    # discovery and listing

    def refresh(self) -> None:
        """Forget what was discovered (e.g. after ``pip install`` in a running notebook)."""
        self._index.clear()
        self._entry_points.forget()

    def _kind_index(self, kind: str) -> dict[str, list[ComponentEntry]]:
        check_kind(kind)
        if kind not in self._index:
            by_name: dict[str, list[ComponentEntry]] = {}
            for found in self.plugin_manager.hook.zoo_discover(kind=kind):
                for entry in found:
                    by_name.setdefault(entry.name, []).append(entry)
            for entries in by_name.values():
                entries.sort(key=lambda e: (canonical_distribution(e.distribution), e.source))
            self._index[kind] = dict(sorted(by_name.items()))
        return self._index[kind]

    def list_components(self, kind: str | None = None) -> list[ComponentEntry]:
        """All entries of ``kind`` (or of every kind), conflicting ones included, without importing any."""
        kinds = [check_kind(kind)] if kind is not None else list(KINDS)
        return [e for k in kinds for entries in self._kind_index(k).values() for e in entries]

    def conflicts(self, kind: str | None = None) -> dict[tuple[str, str], list[ComponentEntry]]:
        """``(kind, name)`` → entries, for each name that more than one source provides."""
        kinds = [check_kind(kind)] if kind is not None else list(KINDS)
        index = {k: self._kind_index(k) for k in kinds}
        return {(k, n): list(es) for k in kinds for n, es in index[k].items() if len(es) > 1}

    # runtime registration and preferences

    def register(self, kind: str, name: str, obj: Any, description: str = "") -> ComponentEntry:
        """Register ``obj`` (a class or factory; for recipes a YAML path) as ``name`` for this process."""
        check_kind(kind)
        if not isinstance(name, str) or not re.fullmatch(r"[^\s:]+", name):
            raise ZooError(
                f"cannot register {kind} {name!r}: a name is a non-empty string without spaces or ':'"
            )
        entry = _runtime_entry(kind, name, obj, description)
        for old in [e for e in self._loaded if (e.kind, e.name, e.source) == (kind, name, "runtime")]:
            self._provenance.pop(id(self._loaded.pop(old)), None)
        self._runtime.add(entry, obj)
        self._index.pop(kind, None)
        return entry

    def prefer(self, kind: str, name: str, distribution: str) -> None:
        """Resolve ``name`` to the entry of ``distribution`` when several distributions provide it."""
        candidates = self._candidates(kind, name)
        if not any(_same_dist(e.distribution, distribution) for e in candidates):
            raise UnknownComponentError(
                f"cannot prefer distribution '{distribution}' for {kind} '{name}': it is provided by "
                f"{_providers(candidates)}"
            )
        self._preferences[kind, name] = distribution

    # resolution

    def _candidates(self, kind: str, name: str) -> list[ComponentEntry]:
        index = self._kind_index(kind)
        if name not in index:
            raise UnknownComponentError(self._unknown_message(kind, name, index))
        return index[name]

    def resolve(self, kind: str, name: str) -> ComponentEntry:
        """The single entry that ``name`` (or ``distribution:name``) designates for ``kind``."""
        distribution, sep, bare = name.partition(":")
        if not sep:
            distribution, bare = "", name
        candidates = self._candidates(kind, bare)
        if distribution:
            chosen = [e for e in candidates if _same_dist(e.distribution, distribution)]
            if not chosen:
                raise UnknownComponentError(
                    f"distribution '{distribution}' provides no {kind} '{bare}'; "
                    f"it is provided by {_providers(candidates)}"
                )
            return chosen[0]
        return candidates[0] if len(candidates) == 1 else self._pick(kind, bare, candidates)

    def entry_for(self, kind: str, name: str) -> ComponentEntry:
        """Where ``name`` comes from (distribution, version, target): what a model config records."""
        return self.resolve(kind, name)

    def entry_of(self, obj: object) -> ComponentEntry | None:
        """The entry a loaded class (or an instance of it) came from, ``None`` if not loaded here."""
        return self._provenance.get(id(obj)) or self._provenance.get(id(type(obj)))

    def _pick(self, kind: str, name: str, candidates: list[ComponentEntry]) -> ComponentEntry:
        preferred = self._preferences.get((kind, name)) or _env_preferences().get(name)
        chosen = [e for e in candidates if preferred and _same_dist(e.distribution, preferred)]
        if chosen:
            return chosen[0]
        note = f" (the preference for '{preferred}' matches none of them)" if preferred else ""
        first = candidates[0]
        raise ComponentConflictError(
            f"{kind} '{name}' is provided by {len(candidates)} distributions: {_providers(candidates)}{note}. "
            f"Pick one with a qualified name such as '{first.qualified_name}', with "
            f"Registry.prefer('{kind}', '{name}', '{first.distribution}'), or with the environment variable "
            f"{PREFER_ENV}='{name}={first.distribution}'"
        )

    def _unknown_message(self, kind: str, name: str, index: Mapping[str, list[ComponentEntry]]) -> str:
        close = difflib.get_close_matches(name, list(index), n=3, cutoff=0.6)
        message = f"unknown {kind} '{name}'"
        if close:
            message += f" (did you mean {' or '.join(repr(c) for c in close)}?)"
        elsewhere = [k for k in KINDS if k != kind and name in self._kind_index(k)]
        if elsewhere:
            message += f"; '{name}' is {' and '.join(_a(k) for k in elsewhere)}, not {_a(kind)}"
        return (
            f"{message}. Searched the {kind}s of installed distributions (entry-point group "
            f"'{GROUPS[kind]}') and runtime registrations; list them with `zoo list --kind {kind}`"
        )

    # loading and building

    def load(self, kind: str, name: str) -> Any:
        """The class (or factory) behind ``name``: imports that component's module and nothing else."""
        return self._load_entry(self.resolve(kind, name))

    def load_entry(self, entry: ComponentEntry) -> Any:
        """The class (or factory) behind an entry of ``list_components``, checked as ``load`` checks it."""
        return self._load_entry(entry)

    def _load_entry(self, entry: ComponentEntry) -> Any:
        if entry.kind == "recipe":
            raise RecipeError(f"recipe '{entry.name}' is a YAML file, not a class: use Registry.recipe_path")
        api_problem = _api_problem(entry)
        if api_problem:
            raise ComponentAPIError(_load_failure(entry, api_problem))
        obj, problem, cause = self._try_load(entry)
        if problem:
            raise PluginLoadError(_load_failure(entry, problem)) from cause
        return obj

    def _try_load(self, entry: ComponentEntry) -> tuple[Any, str, BaseException | None]:
        """``(obj, "", None)`` or ``(None, problem, underlying exception)``; never raises for a bad plugin."""
        if entry in self._loaded:
            return self._loaded[entry], "", None
        if entry.error:
            return None, entry.error, None
        try:
            obj = self.plugin_manager.hook.zoo_load_component(entry=entry)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # whatever a plugin's import raises (sys.exit() too) is reported
            return None, f"{type(exc).__name__}: {exc}", exc
        problem = "no source can load it" if obj is None else _kind_problem(entry.kind, obj, entry.source)
        if problem:
            return None, problem, None
        self._loaded[entry] = obj
        self._provenance[id(obj)] = entry
        self.plugin_manager.hook.zoo_component_loaded(entry=entry, obj=obj)
        return obj, "", None

    def validate_args(self, kind: str, name: str, args: Mapping[str, Any], extra: Iterable[str] = ()) -> Any:
        """Check ``args`` against the component's signature and annotations; return the loaded class.

        ``extra`` names the keyword arguments that zoo itself passes at build time (they may not be in args).
        """
        entry = self.resolve(kind, name)
        cls = self._load_entry(entry)
        _check_args(entry, cls, args, set(extra))
        return cls

    def build(self, kind: str, name: str, args: Mapping[str, Any] | None = None, /, **extra: Any) -> Any:
        """Validate ``args`` and instantiate the component as ``cls(**args, **extra)``."""
        args = dict(args or {})
        cls = self.validate_args(kind, name, args, extra)
        missing = _missing_args(cls, {*args, *extra})
        if missing:
            entry = self.resolve(kind, name)
            raise ComponentArgumentError(
                f"{_label(entry)} needs argument(s) {', '.join(missing)} (not given in args)"
            )
        built = cls(**args, **extra)
        base = _base_class(kind)
        if base is not None and not isinstance(built, base):
            entry = self.resolve(kind, name)
            raise ContractError(
                f"{_label(entry)}: {entry.target} returned {_a(type(built).__name__)}, not a zoo "
                f"{base.__name__}: make it return an instance of a {base.__name__} subclass "
                "(zoo.components.base; see docs/plugins.md)"
            )
        return built

    def recipe_path(self, name: str) -> Path:
        """The YAML file of recipe ``name`` (or ``distribution:name``)."""
        entry = self.resolve("recipe", name)
        if entry.error or not Path(entry.path).is_file():
            raise PluginLoadError(_load_failure(entry, entry.error or f"file {entry.path} is missing"))
        return Path(entry.path)

    def own_name(self, kind: str, name: str, distribution: str) -> str:
        """``name`` as a recipe shipped by ``distribution`` means it: that distribution's own component
        (qualified, ``distribution:name``) when it provides one and another distribution does too; else
        ``name`` unchanged (then a conflict is still an error, as for any recipe)."""
        if ":" in name or not distribution:
            return name
        candidates = self._kind_index(check_kind(kind)).get(name, [])
        own = [e for e in candidates if _same_dist(e.distribution, distribution)]
        return own[0].qualified_name if own and len(candidates) > 1 else name

    def own_spec(self, kind: str, spec: dict, distribution: str) -> dict:
        """A copy of a component spec with its name, and those of the specs nested in its args (a
        video-frames encoder's ``frame_encoder``), resolved with ``own_name``."""
        spec = dict(spec)
        if isinstance(spec.get("name"), str):
            spec["name"] = self.own_name(kind, spec["name"], distribution)
        if isinstance(spec.get("args"), dict):
            spec["args"] = {
                key: self.own_spec(kind, value, distribution)
                if isinstance(value, dict) and "name" in value
                else value
                for key, value in spec["args"].items()
            }
        return spec

    def plugins(
        self,
        distributions: Iterable[str] | None = None,
        check_recipe: Callable[[ComponentEntry], str] | None = None,
    ) -> list[PluginInfo]:
        """Per distribution: version, components and load errors. Imports every component's module and
        checks that it is a component of its kind; ``check_recipe`` (entry → problem or "") checks each
        recipe's YAML (``zoo plugins`` passes the recipe parser)."""
        wanted = {canonical_distribution(d) for d in distributions} if distributions else None
        grouped: dict[str, list[ComponentEntry]] = {}
        for entry in self.list_components():
            if wanted is None or canonical_distribution(entry.distribution) in wanted:
                grouped.setdefault(entry.distribution, []).append(entry)
        order = sorted(grouped, key=lambda d: (d == RUNTIME, canonical_distribution(d)))
        return [self._plugin_info(grouped[d], check_recipe) for d in order]

    def _plugin_info(
        self, entries: list[ComponentEntry], check_recipe: Callable[[ComponentEntry], str] | None
    ) -> PluginInfo:
        errors = {}
        for entry in entries:
            if entry.kind == "recipe":
                problem = entry.error or (
                    "" if Path(entry.path).is_file() else f"file {entry.path} is missing"
                )
                if not problem and check_recipe is not None:
                    problem = check_recipe(entry)
            else:
                problem = _api_problem(entry) or self._try_load(entry)[1]
            if problem:
                errors[f"{entry.kind} {entry.name}"] = problem
        first = entries[0]
        return PluginInfo(first.distribution, first.version, tuple(entries), errors, first.api)


def _runtime_entry(kind: str, name: str, obj: Any, description: str) -> ComponentEntry:
    if kind == "recipe":
        path = Path(obj)
        if not path.is_file():
            raise RecipeError(f"cannot register recipe '{name}': {path} is not a file")
        return ComponentEntry(kind, name, RUNTIME, "", str(path), description, "runtime", path=str(path))
    if not callable(obj):
        raise ComponentArgumentError(
            f"cannot register {kind} '{name}': expected a class or factory, got {type(obj).__name__}"
        )
    target = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    return ComponentEntry(kind, name, RUNTIME, "", target, description or _first_line(obj.__doc__), "runtime")


def _api_problem(entry: ComponentEntry) -> str:
    """Why ``entry``'s distribution cannot be used with this zoo's component API ("" when it can)."""
    if entry.source != "entry-point" or not entry.api or entry.api == COMPONENT_API:
        return ""
    return (
        f"{entry.distribution} {entry.version} targets zoo component API {entry.api}, but this zoo provides "
        f"component API {COMPONENT_API}: install a release of {entry.distribution} written for component "
        f"API {COMPONENT_API} (or a zoo that provides API {entry.api})"
    )


def _base_class(kind: str) -> type | None:
    """The class a component of ``kind`` must derive from (``None`` for readers and metrics)."""
    target = BASES.get(kind)
    if target is None:
        return None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _kind_problem(kind: str, obj: Any, source: str = "entry-point") -> str:
    """Why ``obj`` cannot be a ``kind`` ("" when it can). An installed plugin's factory must declare its
    return type; one registered at runtime (a notebook's lambda) is checked when it builds."""
    base = _base_class(kind)
    if base is None:
        if callable(obj):
            return ""
        return f"it is {_a(type(obj).__name__)}, not a function or class: point the entry point at the {kind}"
    if isinstance(obj, type):
        if issubclass(obj, base):
            return ""
        return (
            f"{obj.__module__}.{obj.__qualname__} is not a subclass of zoo.components.base.{base.__name__}: "
            f"derive it from {base.__name__} (see docs/plugins.md) or point the entry point at a class that does"
        )
    if callable(obj):  # a factory: its declared return type says what it builds (and Registry.build checks)
        return _factory_problem(obj, base) if source == "entry-point" else ""
    return (
        f"it is {_a(type(obj).__name__)}, not a class or factory: point the entry point at a subclass of "
        f"zoo.components.base.{base.__name__}"
    )


def _factory_problem(factory: Any, base: type) -> str:
    """Why a factory entry point cannot be checked as a ``base`` without calling it ("" when it can)."""
    name = getattr(factory, "__qualname__", repr(factory))
    try:
        returned = typing.get_type_hints(factory).get("return")
    except Exception:  # an annotation that does not resolve
        returned = None
    if isinstance(returned, type) and issubclass(returned, base):
        return ""
    fix = (
        f"annotate it `-> {base.__name__}` (or a subclass) so zoo can check it without building it, "
        f"or point the entry point at the {base.__name__} subclass itself"
    )
    if returned is None:
        return f"{name} is a function that does not declare what it returns: {fix}"
    return f"{name} is declared to return {getattr(returned, '__name__', returned)}, not a {base.__name__}: {fix}"


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _same_dist(a: str, b: str) -> bool:
    return canonical_distribution(a) == canonical_distribution(b)


def _providers(entries: Iterable[ComponentEntry]) -> str:
    return ", ".join(f"{e.distribution} {e.version} ({e.target})".replace(" ()", "") for e in entries)


def _label(entry: ComponentEntry) -> str:
    return f"{entry.kind} '{entry.name}' ({entry.distribution} {entry.version})".replace(" )", ")")


def _load_failure(entry: ComponentEntry, problem: str) -> str:
    where = (
        f"entry point '{entry.name} = {entry.target}' in group '{entry.group}'"
        if entry.source == "entry-point"
        else f"registered at runtime as {entry.target}"
    )
    return (
        f"cannot load {entry.kind} '{entry.name}' from distribution {entry.distribution} "
        f"{entry.version} ({where}): {problem}"
    )


def _env_preferences() -> dict[str, str]:
    """``ZOO_PREFER="name=distribution,..."`` as a mapping."""
    value = os.environ.get(PREFER_ENV, "")
    preferences = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, distribution = (s.strip() for s in item.partition("="))
        if not (sep and name and distribution):
            raise ZooError(f"{PREFER_ENV}={value!r}: entry {item!r} is not of the form name=distribution")
        preferences[name] = distribution
    return preferences


# --- argument validation -------------------------------------------------------------------------------

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def _signature(cls: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(cls)
    except (TypeError, ValueError):  # no introspectable signature (e.g. some builtins): not checked
        return None


def _check_args(entry: ComponentEntry, cls: Any, args: Mapping[str, Any], extra: set[str]) -> None:
    if not isinstance(args, Mapping):
        raise ComponentArgumentError(f"{_label(entry)}: args must be a mapping, got {type(args).__name__}")
    signature = _signature(cls)
    if signature is None:
        return
    params = signature.parameters
    named = [n for n, p in params.items() if p.kind in _NAMED]
    clash = sorted(set(args) & extra)
    if clash:
        raise ComponentArgumentError(
            f"{_label(entry)}: argument(s) {', '.join(clash)} are set by zoo when it builds the component; "
            "remove them from args"
        )
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [a for a in args if a not in named] if not takes_any else []
    if unknown:
        raise ComponentArgumentError(
            _unknown_args_message(entry, unknown, [n for n in named if n not in extra])
        )
    hints = _type_hints(cls.__init__ if isinstance(cls, type) else cls)
    for arg, value in args.items():
        if arg in hints and not _matches(value, hints[arg]):
            raise ComponentArgumentError(
                f"{_label(entry)}: argument '{arg}' expects {_type_name(hints[arg])}, "
                f"got {type(value).__name__} ({value!r})"
            )


def _unknown_args_message(entry: ComponentEntry, unknown: list[str], accepted: list[str]) -> str:
    hints = [
        f"'{a}' (did you mean '{c[0]}'?)" if (c := difflib.get_close_matches(a, accepted, n=1)) else f"'{a}'"
        for a in unknown
    ]
    return (
        f"{_label(entry)} does not accept argument(s) {', '.join(hints)}; "
        f"accepted arguments: {', '.join(accepted) or '(none)'}"
    )


def _missing_args(cls: Any, given: set[str]) -> list[str]:
    signature = _signature(cls)
    if signature is None:
        return []
    return [
        n
        for n, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty and p.kind in _NAMED and n not in given
    ]


def _type_hints(func: Any) -> dict[str, Any]:
    """Evaluated annotations (strings under ``from __future__ import annotations``); unresolvable ones skipped."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # one name only importable under TYPE_CHECKING: resolve the others one by one
        namespace = getattr(func, "__globals__", {})
        hints = {}
        for name, annotation in getattr(func, "__annotations__", {}).items():
            try:
                hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
            except Exception:
                continue
        return hints


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a simple annotation; annotations beyond the simple ones are not checked."""
    origin = get_origin(hint)
    if hint is None or hint is type(None):
        return value is None
    if origin is Union or origin is types.UnionType:
        return any(_matches(value, arg) for arg in get_args(hint))
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in get_args(hint))
    base = origin or hint
    if base is bool:
        return isinstance(value, bool)
    if base in (int, float):  # an int is a valid float (PEP 484); a bool is neither
        allowed = (int,) if base is int else (int, float)
        return isinstance(value, allowed) and not isinstance(value, bool)
    if base is str:
        return isinstance(value, str)
    if base in (list, tuple):  # YAML has no tuples: a list is accepted for a tuple and vice versa
        return isinstance(value, (list, tuple)) and _items_match(value, base, get_args(hint))
    if base is dict:
        key, val = get_args(hint) or (Any, Any)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, val) for k, v in value.items()
        )
    return True


def _items_match(value: list | tuple, base: type, args: tuple) -> bool:
    if not args or args[0] is Any:
        return True
    if base is list or (len(args) == 2 and args[1] is Ellipsis):
        return all(_matches(item, args[0]) for item in value)
    return len(value) == len(args) and all(_matches(item, arg) for item, arg in zip(value, args, strict=True))


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


# --- the process-wide registry and its shortcuts -------------------------------------------------------

_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry; discovery happens lazily, once per kind."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
    return _REGISTRY


def list_components(kind: str | None = None) -> list[ComponentEntry]:
    """Name, kind, distribution, version and description of every component, importing none of them."""
    return get_registry().list_components(kind)


def load_component(kind: str, name: str) -> Any:
    """The class or function behind ``name`` (e.g. ``load_component("metric", "rouge_l")``); imports only
    its module. An unknown name suggests close ones and says how to list them."""
    return get_registry().load(kind, name)


def register_component(kind: str, name: str, obj: Any, description: str = "") -> ComponentEntry:
    """Register ``obj`` under ``name`` in the process-wide registry (notebooks, tests)."""
    return get_registry().register(kind, name, obj, description)


def build_component(
    kind: str, name: str, args: Mapping[str, Any] | None = None, /, **extra_kwargs: Any
) -> Any:
    """Load component ``name``, validate ``args`` against its constructor, and build it."""
    return get_registry().build(kind, name, args, **extra_kwargs)


def validate_component_args(kind: str, name: str, args: Mapping[str, Any], extra: Iterable[str] = ()) -> None:
    """Check ``args`` for component ``name`` (imports its module, builds nothing); raise on a bad one."""
    get_registry().validate_args(kind, name, args, extra)
