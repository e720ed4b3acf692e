"""``ConformanceSuite``: the kit's checks as pytest tests, parametrised over what a distribution registers.

Subclass it in a test module; the kit's pytest plugin (``zoo.testing.pytest_plugin``, registered through
the ``pytest11`` entry point, so it is active wherever zoo is installed) runs every test once per matching
component, with ids such as ``test_output_matches_what_it_declares[projector:zoo-x:my-projector]``.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from zoo.registry import ComponentEntry
from zoo.testing import checks

COMPONENTS = ("encoder", "projector", "backbone")
CODE = (*COMPONENTS, "reader", "metric")


class ConformanceSuite:
    """The component contract, checked on every component, reader, metric and recipe a distribution registers.

        from zoo.testing import ConformanceSuite

        class TestMyPlugin(ConformanceSuite):
            distribution = "zoo-my-plugin"

    ``distribution = None`` checks everything installed (zoo's own tests do). ``train_recipes`` names the
    recipes that are trained for one step on the CPU (default ``None``: every recipe of the distribution;
    name only small ones). Components are built with their ``tiny_args``.
    """

    distribution: ClassVar[str | None] = None
    train_recipes: ClassVar[tuple[str, ...] | None] = None

    def test_distribution_registers_components_and_declares_the_api(self) -> None:
        checks.check_distribution(self.distribution)

    @pytest.mark.zoo_kinds(*COMPONENTS)
    def test_builds_on_the_meta_device(self, zoo_entry: ComponentEntry) -> None:
        checks.check_meta_build(zoo_entry)

    @pytest.mark.zoo_kinds(*COMPONENTS)
    def test_builds_on_the_cpu_with_tiny_args(self, zoo_entry: ComponentEntry) -> None:
        checks.check_cpu_build(zoo_entry)

    @pytest.mark.zoo_kinds(*COMPONENTS)
    def test_output_matches_what_it_declares(self, zoo_entry: ComponentEntry) -> None:
        checks.check_output_contract(zoo_entry)

    @pytest.mark.zoo_kinds(*COMPONENTS)
    def test_dtype_and_device_moves(self, zoo_entry: ComponentEntry) -> None:
        checks.check_dtype_and_device_moves(zoo_entry)

    @pytest.mark.zoo_kinds("encoder")
    def test_encoder_is_frozen_by_default(self, zoo_entry: ComponentEntry) -> None:
        checks.check_frozen_by_default(zoo_entry)

    @pytest.mark.zoo_kinds("projector")
    def test_gradients_reach_every_trainable_parameter(self, zoo_entry: ComponentEntry) -> None:
        checks.check_gradients_reach_parameters(zoo_entry)

    @pytest.mark.zoo_kinds(*COMPONENTS)
    def test_weights_survive_a_safetensors_round_trip(self, zoo_entry: ComponentEntry) -> None:
        checks.check_safetensors_round_trip(zoo_entry)

    @pytest.mark.zoo_kinds(*CODE)
    def test_listing_does_not_import_it(self, zoo_entry: ComponentEntry) -> None:
        checks.check_listing_is_lazy(zoo_entry)

    @pytest.mark.zoo_kinds(*COMPONENTS)
    def test_composes_with_a_tiny_backbone(self, zoo_entry: ComponentEntry) -> None:
        checks.check_composes_with_a_tiny_backbone(zoo_entry)

    @pytest.mark.zoo_kinds("reader", "metric")
    def test_is_a_function_of_the_documented_arguments(self, zoo_entry: ComponentEntry) -> None:
        checks.check_callable(zoo_entry)

    @pytest.mark.zoo_kinds("reader")
    def test_reader_reads_its_examples_and_rejects_bad_records(self, zoo_entry: ComponentEntry) -> None:
        checks.check_reader(zoo_entry)

    @pytest.mark.zoo_kinds("recipe")
    def test_recipe_is_valid(self, zoo_entry: ComponentEntry) -> None:
        checks.check_recipe_is_valid(zoo_entry)

    @pytest.mark.zoo_kinds("recipe")
    @pytest.mark.zoo_train_recipes
    def test_recipe_trains_one_step(self, zoo_entry: ComponentEntry) -> None:
        checks.check_recipe_trains_one_step(zoo_entry)
