"""The conformance kit over everything the registry lists, as timm's tests run over ``list_models()``.

A component is checked the moment it is registered (the core's, and every installed plugin's); there is
no hand-kept list of components here. Only the tiny recipe is trained for a step (the others need real
weights or are full size: tests/test_recipes_small.py and tests/test_recipes_full.py cover them).
"""

from __future__ import annotations

from zoo.testing import ConformanceSuite


class TestEveryRegisteredComponent(ConformanceSuite):
    distribution = None
    train_recipes = ("tiny",)
