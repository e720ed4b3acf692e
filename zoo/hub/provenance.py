"""Where each component of a checkpoint comes from: pinned weights, providing plugin, license, base model.

``pin_config`` rewrites a saved ``config.json`` so every component spec names its weights exactly: a Hub
source gets the full commit hash it resolved to (``org/name@<sha>``); a source inside an installed package
records the distribution, its version and the sha256 of each file read; a local folder records its files'
sha256 (it exists only on the machine that pushed). ``check_components`` is what a pull runs before any
weight is downloaded: every component's plugin is installed in a compatible version (else the error names
the ``pip install`` line) and every package-held weight file is the one the checkpoint was made with.
``component_license`` / ``base_model_ids`` feed the model card.
"""

from __future__ import annotations

import copy
import importlib.metadata
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zoo.errors import HubError, UnknownComponentError, WeightSourceError

log = logging.getLogger("zoo.hub")
PIN = "pinned"  # the spec field holding the pin record
RUNTIME = "(runtime)"
# Classifier → Hub license id, for packages that declare their license only as a classifier.
_CLASSIFIER_LICENSES = {
    "Apache Software License": "apache-2.0",
    "MIT License": "mit",
    "BSD License": "bsd",
    "GNU General Public License v3 (GPLv3)": "gpl-3.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "mpl-2.0",
}


@dataclass(frozen=True)
class Component:
    """One component spec of a checkpoint's config and where it sits (``encoders.image``, ``backbone``)."""

    where: str
    kind: str
    spec: dict

    @property
    def modality(self) -> str | None:
        return self.where.split(".")[1] if "." in self.where else None


def components(config: dict) -> Iterator[Component]:
    """Every component spec of a config dict, nested frame encoders included (as ``encoders.video.frame_encoder``)."""
    yield Component("backbone", "backbone", config.get("backbone") or {})
    for modality, spec in sorted((config.get("encoders") or {}).items()):
        yield Component(f"encoders.{modality}", "encoder", spec)
        nested = (spec.get("args") or {}).get("frame_encoder")
        if isinstance(nested, dict) and "name" in nested:
            yield Component(f"encoders.{modality}.frame_encoder", "encoder", nested)
    for modality, spec in sorted((config.get("projectors") or {}).items()):
        yield Component(f"projectors.{modality}", "projector", spec)


# --- pinning --------------------------------------------------------------------------------------------


def pin_config(config: dict) -> dict:
    """A copy of ``config`` whose every weight source is pinned (idempotent: pinned specs stay as they are)."""
    pinned = copy.deepcopy(config)
    for component in components(pinned):
        if component.spec.get("source") and PIN not in component.spec:
            _pin_spec(component)
    return pinned


def _pin_spec(component: Component) -> None:
    from zoo.weights import parse_source

    spec = component.spec
    try:
        parsed = parse_source(spec["source"], spec.get("revision"))
    except WeightSourceError as error:
        raise HubError(f"{component.where}: {error}") from None
    requested = str(parsed)
    if parsed.hub is not None:
        spec.update(_hub_pin(component, parsed))
    elif _package_location(parsed) is not None:
        spec[PIN] = _package_pin(component, parsed)
    else:
        spec[PIN] = {"kind": "local", "files": _file_digests(_source_path(component, parsed))}
    spec[PIN]["requested"] = requested


def _hub_pin(component: Component, parsed: Any) -> dict:
    """``source`` rewritten as ``…@<commit>`` and the pin record (the snapshot must be reachable or cached)."""
    from zoo.weights import resolve_revision

    try:  # a source the model was built from is already pinned (ZooModel pins Hub sources): no download
        commit = parsed.hub.revision if _is_commit(parsed.hub.revision) else resolve_revision(parsed)
    except WeightSourceError as error:
        raise HubError(f"{component.where}: cannot pin weight source {str(parsed)!r}: {error}") from None
    if commit is None:
        raise HubError(f"{component.where}: weight source {str(parsed)!r} did not resolve to a Hub commit")
    hub = replace(parsed.hub, revision=commit)
    source = hub if parsed.kind == "hub" else replace(parsed, inner=hub, revision=commit)
    pin = {"kind": "hub", "repo": hub.location, "commit": commit}
    return {"source": str(source), "revision": None, PIN: pin}


def _is_commit(revision: str | None) -> bool:
    return bool(revision) and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def _package_location(parsed: Any) -> str | None:
    target = parsed.inner if parsed.inner is not None else parsed
    return target.location if target.kind == "package" else None


def _package_pin(component: Component, parsed: Any) -> dict:
    module = _package_location(parsed).split("/", 1)[0]
    distributions = importlib.metadata.packages_distributions().get(module) or []
    if not distributions:
        raise HubError(f"{component.where}: no installed distribution provides the module {module!r}")
    distribution = distributions[0]
    return {
        "kind": "package",
        "distribution": distribution,
        "version": importlib.metadata.version(distribution),
        "files": _file_digests(_source_path(component, parsed)),
    }


def _source_path(component: Component, parsed: Any) -> Path:
    from zoo.weights import source_path

    try:
        return source_path(parsed)
    except WeightSourceError as error:
        raise HubError(f"{component.where}: {error}") from None


def _file_digests(path: Path) -> dict[str, str]:
    """sha256 of a file, or of every file under a folder (relative names, sorted)."""
    from zoo.weights import file_digest

    if path.is_file():
        return {path.name: file_digest(path)}
    files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return {p.relative_to(path).as_posix(): file_digest(p) for p in files}


# --- checks before a pull --------------------------------------------------------------------------------


def compatible_range(version: str) -> str:
    """The versions that load a checkpoint made with ``version``: same major (same minor below 1.0), not
    older than its minor release; ``0.1.3`` → ``>=0.1,<0.2``, ``1.4.2`` → ``>=1.4,<2``."""
    from packaging.version import InvalidVersion, Version

    try:
        parsed = Version(version)
    except InvalidVersion:
        return f"=={version}"
    major, minor = parsed.release[0], (parsed.release[1] if len(parsed.release) > 1 else 0)
    upper = f"0.{minor + 1}" if major == 0 else f"{major + 1}"
    return f">={major}.{minor},<{upper}"


def check_components(config: dict, where: str) -> None:
    """Raise ``HubError`` naming ``where`` (repo and file) for the first component that cannot be loaded
    here: a plugin that is missing or outside the compatible range, or package weights that differ."""
    for component in components(config):
        _check_plugin(component, where)
    for component in components(config):
        pin = component.spec.get(PIN) or {}
        if pin.get("kind") == "package":
            _check_package_pin(component, pin, where)
        elif pin.get("kind") == "local":
            _check_local_pin(component, pin, where)


def _check_plugin(component: Component, where: str) -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    from zoo.registry import get_registry

    spec = component.spec
    name, distribution, version = spec.get("name"), spec.get("distribution"), spec.get("version")
    label = f"{where}: {component.where} `{name}`"
    if not name:
        raise HubError(f"{where}: {component.where} has no component name")
    wanted = f"{distribution}:{name}" if distribution and distribution != RUNTIME else name
    try:
        entry = get_registry().resolve(component.kind, wanted)
    except UnknownComponentError as error:
        if not distribution or distribution == RUNTIME:
            raise HubError(f"{label}: no installed plugin provides this {component.kind} ({error})") from None
        requirement = f"{distribution}{compatible_range(version)}" if version else distribution
        raise HubError(
            f"{label} is provided by `{distribution}`{f' {version}' if version else ''}, which is not installed "
            f"here: pip install '{requirement}'"
        ) from None
    _check_loads(entry, label)
    if not version or distribution == RUNTIME:
        return
    allowed = SpecifierSet(compatible_range(version))
    try:
        installed_ok = Version(entry.version) in allowed
    except InvalidVersion:
        installed_ok = entry.version == version
    if not installed_ok:
        raise HubError(
            f"{label} was made with `{distribution}` {version}; the installed {entry.distribution} "
            f"{entry.version} is outside the compatible range {compatible_range(version)}: "
            f"pip install '{distribution}{compatible_range(version)}'"
        )


def _check_loads(entry: Any, label: str) -> None:
    """The installed plugin imports and speaks this zoo's component API (its module only, no weights)."""
    from zoo.errors import PluginLoadError
    from zoo.registry import get_registry

    try:
        get_registry().load_entry(entry)
    except PluginLoadError as error:
        raise HubError(f"{label}: the installed plugin cannot be used: {error}") from None


def _check_package_pin(component: Component, pin: dict, where: str) -> None:
    distribution, version = pin["distribution"], pin["version"]
    label = f"{where}: {component.where} weights ({pin.get('requested')})"
    try:
        installed = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise HubError(
            f"{label} come from the package `{distribution}` {version}, which is not installed here: "
            f"pip install '{distribution}=={version}'"
        ) from None
    if installed != version:
        raise HubError(
            f"{label} come from `{distribution}` {version}, but {installed} is installed (its weights may "
            f"differ): pip install '{distribution}=={version}'"
        )
    _check_files(component, pin, label)


def _check_local_pin(component: Component, pin: dict, where: str) -> None:
    label = f"{where}: {component.where} weights ({pin.get('requested')})"
    _check_files(component, pin, f"{label} come from a folder on the machine that pushed; here")


def _check_files(component: Component, pin: dict, label: str) -> None:
    from zoo.weights import parse_source

    try:
        found = _file_digests(_source_path(component, parse_source(component.spec["source"])))
    except HubError as error:
        raise HubError(f"{label}: {error}") from None
    for name, digest in sorted(pin.get("files", {}).items()):
        if found.get(name) != digest:
            state = "is missing" if name not in found else f"has sha256 {found[name][:12]}…"
            raise HubError(
                f"{label}: file {name} {state}, but the checkpoint was made with sha256 {digest[:12]}…"
            )


# --- licenses and base models, for the model card ------------------------------------------------------


def base_model_id(spec: dict) -> str | None:
    """The Hub model id a component's weights come from: its Hub source, or the recipe's ``base_model``."""
    from zoo.weights import parse_source

    if spec.get("base_model"):
        return str(spec["base_model"])
    if not spec.get("source"):
        return None
    try:
        hub = parse_source(spec["source"], spec.get("revision")).hub
    except WeightSourceError:
        return None
    return hub.location if hub is not None else None


def component_license(spec: dict) -> tuple[str | None, str]:
    """``(license id, where it was read)`` for a component's weights; ``(None, why)`` when unknown or when the
    component has no pretrained weights (``why`` says which)."""
    if spec.get("license"):
        return str(spec["license"]).lower(), "recipe"
    if not spec.get("source"):
        return None, "no pretrained weights"
    pin = spec.get(PIN) or {}
    if pin.get("kind") == "package":
        found = package_license(pin["distribution"])
        return found, f"package {pin['distribution']}" if found else "not declared by its package"
    if pin.get("kind") == "hub":
        found = _hub_card_license(pin["repo"], pin["commit"])
        return found, f"model card of {pin['repo']}" if found else f"not found in the card of {pin['repo']}"
    return None, "unknown"


def package_license(distribution: str) -> str | None:
    """A distribution's license as a Hub license id, from its metadata (expression, field or classifier)."""
    try:
        metadata = importlib.metadata.metadata(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    expression = metadata.get("License-Expression") or ""
    field = (metadata.get("License") or "").strip()
    if expression:
        return expression.strip().lower()
    if field and len(field) <= 40 and "\n" not in field:
        return field.lower().replace(" license", "").replace(" ", "-")
    for classifier in metadata.get_all("Classifier") or []:
        if classifier.startswith("License ::"):
            name = classifier.rsplit("::", 1)[-1].strip()
            if name in _CLASSIFIER_LICENSES:
                return _CLASSIFIER_LICENSES[name]
    return None


def _hub_card_license(repo_id: str, commit: str) -> str | None:
    """The ``license`` in a Hub repo's model card (from the cache offline), or None."""
    from huggingface_hub import ModelCard, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        path = hf_hub_download(repo_id, "README.md", revision=commit)
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None
    license_id = ModelCard.load(path, ignore_metadata_errors=True).data.get("license")
    return str(license_id).lower() if license_id else None


def combined_license(licenses: dict[str, str | None]) -> tuple[str, str | None]:
    """``(license, license_name)`` for the card metadata from each pretrained part's license: the common one,
    ``other`` with a composite name when they differ, ``unknown`` when any part's license is unknown."""
    values = set(licenses.values())
    if not licenses or None in values:
        return "unknown", None
    if len(values) == 1:
        return values.pop(), None
    return "other", "-and-".join(sorted(values))
