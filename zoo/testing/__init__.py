"""The plugin conformance kit: the component contract as checks, run over whatever a distribution registers.

In a plugin's tests (pytest finds the kit through zoo's ``pytest11`` entry point)::

    from zoo.testing import ConformanceSuite

    class TestMyPlugin(ConformanceSuite):
        distribution = "zoo-my-plugin"

Every check is also a plain function in ``zoo.testing.checks`` that takes a ``ComponentEntry`` and raises
``zoo.errors.ContractError`` saying what to change; ``zoo.testing.tiny`` builds the tiny instances they
use. Importing ``zoo.testing`` is cheap; torch loads with the checks. See docs/testing.md.
"""

from __future__ import annotations

from zoo import lazy_exports

_LAZY = {
    "ConformanceSuite": "zoo.testing.suite",
    "check_meta_build": "zoo.testing.checks",
    "check_cpu_build": "zoo.testing.checks",
    "check_output_contract": "zoo.testing.checks",
    "check_dtype_and_device_moves": "zoo.testing.checks",
    "check_frozen_by_default": "zoo.testing.checks",
    "check_gradients_reach_parameters": "zoo.testing.checks",
    "check_safetensors_round_trip": "zoo.testing.checks",
    "check_listing_is_lazy": "zoo.testing.checks",
    "check_composes_with_a_tiny_backbone": "zoo.testing.checks",
    "check_recipe_is_valid": "zoo.testing.checks",
    "check_recipe_trains_one_step": "zoo.testing.checks",
    "check_reader": "zoo.testing.checks",
    "check_distribution": "zoo.testing.checks",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports("zoo.testing", _LAZY, globals())
