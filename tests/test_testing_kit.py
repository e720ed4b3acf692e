"""The conformance kit catches components that break the contract, and says what to change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

import zoo.data
import zoo.registry
from zoo.components.base import Encoder, Projector
from zoo.components.projectors import LinearProjector
from zoo.data.readers import Context
from zoo.errors import ContractError, DataError
from zoo.registry import Registry
from zoo.testing import checks


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    """A fresh process-wide registry, so runtime registrations here vanish after the test."""
    fresh = Registry()
    monkeypatch.setattr(zoo.registry, "_REGISTRY", fresh)
    yield fresh


def entry(registry: Registry, kind: str, name: str, obj: object) -> zoo.registry.ComponentEntry:
    registry.register(kind, name, obj)
    return registry.resolve(kind, name)


class OffByOne(LinearProjector):
    """Declares one token fewer than it emits."""

    tiny_args = {}
    tiny_input_lengths = (7, 20)

    def output_length(self, input_length: int) -> int:
        return input_length - 1


class WrongWidth(Projector):
    """Emits tokens of the input width instead of the LLM's."""

    tiny_args = {}

    def output_length(self, input_length: int) -> int:
        return input_length

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class DeadWeight(LinearProjector):
    """Holds a layer forward never uses."""

    tiny_args = {}

    def __init__(self, dim_in: int, llm_dim: int) -> None:
        super().__init__(dim_in, llm_dim)
        self.unused = nn.Linear(2, 2)


class LeftBehind(LinearProjector):
    """Keeps a scale as a plain tensor attribute: .to() does not move it."""

    tiny_args = {}

    def __init__(self, dim_in: int, llm_dim: int) -> None:
        super().__init__(dim_in, llm_dim)
        self.scale = torch.ones(llm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features) * self.scale


class Patches(Encoder):
    """An image encoder that says 4 tokens but emits 5, and forgets to freeze itself."""

    modality = "image"
    tiny_args = {}

    def __init__(self) -> None:
        super().__init__()
        self.dim = 8
        self.proj = nn.Linear(3, 8)

    @property
    def num_tokens(self) -> int:
        return 4

    def preprocess(self, item: object) -> torch.Tensor:
        return torch.zeros(3, 5)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.proj(inputs.transpose(1, 2))


def test_a_wrong_declared_length_names_both_numbers_and_what_to_change(registry: Registry) -> None:
    bad = entry(registry, "projector", "off-by-one", OffByOne)
    with pytest.raises(ContractError) as caught:
        checks.check_output_contract(bad)
    assert str(caught.value) == (
        "projector 'off-by-one' ((runtime)): forward returned (2, 7, 64) for features (2, 7, 16), but "
        "output_length(7) says 6 tokens, so (2, 6, 64) was expected: make output_length(L) return the number of "
        "tokens forward emits for L input tokens, each llm_dim wide (the processor inserts that many "
        "placeholders per item)"
    )


def test_a_wrong_output_width_is_named(registry: Registry) -> None:
    bad = entry(registry, "projector", "wrong-width", WrongWidth)
    with pytest.raises(
        ContractError, match=r"forward returned \(2, 1, 16\) .* but llm_dim is 64, so \(2, 1, 64\)"
    ):
        checks.check_output_contract(bad)


def test_an_encoder_that_emits_another_count_than_it_declares_and_is_not_frozen(registry: Registry) -> None:
    bad = entry(registry, "encoder", "patches", Patches)
    with pytest.raises(ContractError, match=r"returned \(1, 5, 8\) for a batch of 1, but the encoder declares "
                       r"num_tokens=4 and dim=8, so \(1, 4, 8\) was expected: make num_tokens"):  # fmt: skip
        checks.check_output_contract(bad)
    with pytest.raises(ContractError, match=r"parameters proj.weight, proj.bias are trainable when built.*"
                       r"requires_grad_\(False\)"):  # fmt: skip
        checks.check_frozen_by_default(bad)


def test_a_parameter_without_gradient_and_a_tensor_left_behind(registry: Registry) -> None:
    dead = entry(registry, "projector", "dead", DeadWeight)
    with pytest.raises(ContractError, match="parameters unused.weight, unused.bias get no gradient"):
        checks.check_gradients_reach_parameters(dead)
    behind = entry(registry, "projector", "behind", LeftBehind)
    with pytest.raises(
        ContractError,
        match=r"after .to\(torch.bfloat16\) tensors scale are not in torch.bfloat16: .*register_buffer",
    ):
        checks.check_dtype_and_device_moves(behind)


def test_a_component_without_tiny_args_is_told_to_declare_them(registry: Registry) -> None:
    class Plain(LinearProjector):
        """No tiny_args of its own."""

    Plain.tiny_args = None
    bad = entry(registry, "projector", "plain", Plain)
    with pytest.raises(
        ContractError, match=r"declares no tiny_args: add a class attribute `tiny_args = \{...\}`"
    ):
        checks.check_meta_build(bad)


def test_good_components_pass_every_check(registry: Registry) -> None:
    good = registry.resolve("projector", "zoo:linear")
    for check in (
        checks.check_meta_build,
        checks.check_cpu_build,
        checks.check_output_contract,
        checks.check_dtype_and_device_moves,
        checks.check_gradients_reach_parameters,
        checks.check_safetensors_round_trip,
        checks.check_listing_is_lazy,
    ):
        check(good)


def test_a_reader_that_raises_something_else_than_data_error(registry: Registry) -> None:
    def careless(record: dict, ctx: Context) -> None:
        return record["question"]

    bad = entry(registry, "reader", "careless", careless)
    with pytest.raises(ContractError, match=r"no fields raised KeyError: 'question'; raise `ctx.error"):
        checks.check_reader(bad)

    def careful(record: dict, ctx: Context) -> object:
        if "q" not in record:
            raise ctx.error("field 'q' is missing")
        return ctx.sample([{"role": "user", "type": "text", "content": record["q"]},
                           {"role": "assistant", "type": "text", "content": "a"}])  # fmt: skip

    good = entry(registry, "reader", "careful", careful)
    with pytest.raises(ContractError, match="declares no examples"):
        checks.check_reader(good)
    careful.examples = [{"q": "why?"}]
    checks.check_reader(good)
    with pytest.raises(DataError, match="field 'q' is missing"):
        zoo.data.convert({}, "careful", Context("d", 0))


def test_a_distribution_that_registers_nothing_fails_instead_of_passing_silently() -> None:
    with pytest.raises(ContractError, match="'zoo-typo' registers no zoo component: is it installed"):
        checks.check_distribution("zoo-typo")
    checks.check_distribution("zoo")
