"""zoo: a plugin registry and model zoo for multimodal LLMs.

Importing ``zoo`` is cheap: torch and transformers load only when a model is built. The public API is
resolved lazily from the submodules below. ``model_type = "zoo"`` is registered with transformers' Auto
classes as soon as transformers itself is imported (right away if it already is).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "build": "zoo.recipes_api",
    "load_recipe": "zoo.recipes_api",
    "list_components": "zoo.registry",
    "get_registry": "zoo.registry",
    "register_component": "zoo.registry",
    "ZooConfig": "zoo.modeling",
    "ZooModel": "zoo.modeling",
    "load": "zoo.modeling",
    "ZooProcessor": "zoo.processor",
    "train": "zoo.training.run",
    "evaluate": "zoo.evaluation.run",
}

__all__ = sorted(_LAZY) + ["__version__"]


def lazy_exports(package: str, table: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``table[name]`` on first access and caches the value."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


__getattr__ = lazy_exports("zoo", _LAZY, globals())


class _RegisterWhenTransformersLoads(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``transformers`` so zoo's Auto-class registration runs right after it loads."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        original_exec = spec.loader.exec_module

        def exec_then_register(module: Any) -> None:
            original_exec(module)
            try:
                _register_model_type()
            except Exception as error:  # never let zoo break `import transformers`
                warnings.warn(
                    f"zoo could not register its model type with transformers: {error}", stacklevel=2
                )

        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


def _register_model_type() -> None:
    """Register the model (``zoo.modeling``) and then the processor (``zoo.processor``) with transformers.

    A processor import that is itself what imported transformers registers when it finishes loading."""
    importlib.import_module("zoo.modeling")
    if "zoo.processor" in sys.modules:
        getattr(sys.modules["zoo.processor"], "register_with_auto_processor", lambda: None)()
    else:
        importlib.import_module("zoo.processor")


if "transformers" in sys.modules:
    _register_model_type()
elif not any(isinstance(f, _RegisterWhenTransformersLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenTransformersLoads())
