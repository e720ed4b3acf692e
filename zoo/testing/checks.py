"""The contract checks of the conformance kit, one function per check, each raising ``ContractError``.

Every check takes a ``ComponentEntry`` (from ``zoo.list_components``) and builds what it needs with the
component's ``tiny_args`` (see ``zoo.testing.tiny``). A failure says what the component did and what to
change. They run as plain functions too: ``check_output_contract(get_registry().resolve("projector", "x"))``.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from zoo.components.base import MODALITIES
from zoo.errors import ContractError, DataError
from zoo.registry import COMPONENT_API, ComponentEntry, canonical_distribution, list_components
from zoo.testing import tiny
from zoo.testing.tiny import DIM_IN, label

# Stages without `lr` train at transformers' TrainingArguments default rate.
DEFAULT_LR = 5e-5
# When the tokenizer has no chat template (a base LM), the composed check lays turns out with this one.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def _names(names: Iterable[str], limit: int = 6) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _wrap(entry: ComponentEntry, what: str, error: Exception) -> ContractError:
    if isinstance(error, ContractError):
        return error
    return ContractError(f"{label(entry)}: {what} failed: {type(error).__name__}: {error}")


# --- building -------------------------------------------------------------------------------------------


def check_meta_build(entry: ComponentEntry) -> None:
    """It builds on the meta device (``build(..., device="meta")``, ``zoo info``) and allocates nothing."""
    try:
        component = tiny.build(entry, device="meta")
    except Exception as error:
        raise _wrap(entry, "building on the meta device with tiny_args", error) from error
    real = [name for name, tensor in tiny.tensors(component) if not tensor.is_meta]
    if real:
        raise ContractError(
            f"{label(entry)}: built on the meta device, tensors {_names(real)} were still allocated: create "
            "tensors without an explicit `device=` (torch.device('meta') then places them), and load no "
            "weights when load_weights=False"
        )
    _describe(entry, component)


def check_cpu_build(entry: ComponentEntry) -> None:
    """It builds on the CPU with its tiny arguments, with finite weights and the attributes its kind declares."""
    try:
        component = tiny.build(entry)
    except Exception as error:
        raise _wrap(entry, "building on the CPU with tiny_args", error) from error
    bad = [
        name for name, t in tiny.tensors(component) if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        raise ContractError(
            f"{label(entry)}: tensors {_names(bad)} hold NaN or infinity right after building"
        )
    _describe(entry, component)
    if entry.kind == "backbone":
        _check_backbone_parts(entry, component)


def _describe(entry: ComponentEntry, component: Any) -> None:
    """The attributes the composed model reads: modality/dim/num_tokens, dim_in/llm_dim, hidden_size."""
    if entry.kind == "encoder":
        if component.modality not in MODALITIES:
            raise ContractError(
                f"{label(entry)}: modality is {component.modality!r}; set the class attribute `modality` to "
                f"one of {', '.join(MODALITIES)}"
            )
        for attribute in ("dim", "num_tokens"):
            value = getattr(component, attribute, None)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ContractError(
                    f"{label(entry)}: {attribute} is {value!r}; it must be a positive int (the width of a token "
                    "and the tokens per item that forward returns)"
                )
    elif entry.kind == "projector":
        for length in _input_lengths(entry, component):
            _output_length(entry, component, length)
    elif entry.kind == "backbone":
        width = component.model.get_input_embeddings().embedding_dim
        if component.hidden_size != width:
            raise ContractError(
                f"{label(entry)}: hidden_size is {component.hidden_size} but the input embeddings are {width} "
                "wide: hidden_size must be the width of the vectors the model reads (projectors emit it)"
            )


def _check_backbone_parts(entry: ComponentEntry, backbone: Any) -> None:
    targets = backbone.lora_targets
    linear = {
        n.rsplit(".", 1)[-1] for n, m in backbone.model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    unknown = [t for t in targets if t not in linear]
    if not targets or unknown:
        raise ContractError(
            f"{label(entry)}: lora_targets is {targets}; it must name the Linear modules LoRA may adapt "
            f"(its Linear modules are {sorted(linear)})"
        )
    tokenizer = backbone.tokenizer
    if len(tokenizer) > backbone.model.get_input_embeddings().num_embeddings:
        raise ContractError(
            f"{label(entry)}: its tokenizer has {len(tokenizer)} tokens but the embedding table "
            f"{backbone.model.get_input_embeddings().num_embeddings} rows"
        )


# --- what forward returns ---------------------------------------------------------------------------------


def _input_lengths(entry: ComponentEntry, projector: Any) -> tuple[int, ...]:
    lengths = tuple(getattr(projector, "tiny_input_lengths", ()) or ())
    if not lengths or not all(isinstance(n, int) and n > 0 for n in lengths):
        raise ContractError(
            f"{label(entry)}: tiny_input_lengths is {lengths!r}; give a tuple of input lengths (encoder tokens "
            "per item) that output_length accepts, e.g. (1, 7, 20)"
        )
    return lengths


def _output_length(entry: ComponentEntry, projector: Any, length: int) -> int:
    try:
        declared = projector.output_length(length)
    except Exception as error:
        raise ContractError(
            f"{label(entry)}: output_length({length}) raised {type(error).__name__}: {error}; it is one of "
            f"its tiny_input_lengths {projector.tiny_input_lengths}, so it must be accepted"
        ) from error
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        raise ContractError(
            f"{label(entry)}: output_length({length}) returned {declared!r}; it must return a positive int, "
            "the number of tokens forward emits for that many input tokens"
        )
    return declared


def check_output_contract(entry: ComponentEntry) -> None:
    """The output shape agrees with what the component declares, for several inputs."""
    component = tiny.build(entry).eval()
    with torch.no_grad():
        if entry.kind == "encoder":
            _check_encoder_output(entry, component)
        elif entry.kind == "projector":
            for length in _input_lengths(entry, component):
                _check_projector_output(entry, component, length)
        elif entry.kind == "backbone":
            _check_backbone_output(entry, component)


def _check_encoder_output(entry: ComponentEntry, encoder: Any) -> None:
    items = [encoder.preprocess(item) for item in tiny.raw_items(encoder.modality)]
    shapes = {tuple(t.shape) for t in items}
    if len(shapes) != 1:
        raise ContractError(
            f"{label(entry)}: preprocess gave tensors of shapes {sorted(shapes)} for two {encoder.modality} items "
            "of different sizes; it must give one shape (resize or pad), so items stack into a batch"
        )
    for batch in (items[0].unsqueeze(0), torch.stack(items)):
        out = encoder(batch)
        expected = (batch.shape[0], encoder.num_tokens, encoder.dim)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ContractError(
                f"{label(entry)}: forward returned {got} for a batch of {batch.shape[0]}, but the encoder "
                f"declares num_tokens={encoder.num_tokens} and dim={encoder.dim}, so {expected} was expected: "
                "make num_tokens the tokens forward emits per item and dim their width (the processor inserts "
                "num_tokens placeholders per item)"
            )


def _check_projector_output(entry: ComponentEntry, projector: Any, length: int) -> None:
    declared = _output_length(entry, projector, length)
    features = torch.randn(2, length, DIM_IN)
    out = projector(features)
    expected = (2, declared, projector.llm_dim)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        what = (
            f"output_length({length}) says {declared} tokens"
            if isinstance(out, torch.Tensor) and out.ndim == 3 and out.shape[1] != declared
            else f"llm_dim is {projector.llm_dim}"
        )
        raise ContractError(
            f"{label(entry)}: forward returned {got} for features {tuple(features.shape)}, but {what}, so "
            f"{expected} was expected: make output_length(L) return the number of tokens forward emits for L "
            "input tokens, each llm_dim wide (the processor inserts that many placeholders per item)"
        )
    if not torch.isfinite(out).all():
        raise ContractError(f"{label(entry)}: forward returned NaN or infinity for random features")


def _check_backbone_output(entry: ComponentEntry, backbone: Any) -> None:
    for length in (3, 9):
        ids = torch.randint(0, len(backbone.tokenizer), (1, length))
        embeds = backbone.embed(ids)
        if tuple(embeds.shape) != (1, length, backbone.hidden_size):
            raise ContractError(
                f"{label(entry)}: embed(ids of shape (1, {length})) returned {tuple(embeds.shape)}, expected "
                f"(1, {length}, {backbone.hidden_size})"
            )
        logits = backbone(inputs_embeds=embeds, attention_mask=torch.ones_like(ids)).logits
        if tuple(logits.shape[:2]) != (1, length):
            raise ContractError(
                f"{label(entry)}: forward(inputs_embeds=[1, {length}, {backbone.hidden_size}]) gave logits of "
                f"shape {tuple(logits.shape)}; expected one row of logits per input position"
            )


# --- moves ---------------------------------------------------------------------------------------------


def move_targets() -> list[str]:
    """Devices the move check uses: ``meta`` always (a tensor left behind fails there as on a GPU), and
    ``cuda`` when one is available."""
    return ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


def check_dtype_and_device_moves(entry: ComponentEntry) -> None:
    """``.to(torch.bfloat16)`` and ``.to(device)`` move every tensor, and forward follows."""
    component = _moved(entry, dtype=torch.bfloat16)
    out = _forward_sample(entry, component, dtype=torch.bfloat16)
    if entry.kind != "backbone" and out.dtype != torch.bfloat16:
        raise ContractError(
            f"{label(entry)}: moved to bfloat16, forward returned {out.dtype}: compute in the parameters' dtype "
            "(cast the input with `.to(weight.dtype)` as the core's components do)"
        )
    if not torch.isfinite(out.float()).all():
        raise ContractError(f"{label(entry)}: in bfloat16, forward returned NaN or infinity")
    for device in move_targets():
        component = _moved(entry, device=device)
        out = _forward_sample(entry, component, device=device)
        if out is None:
            continue  # a data-dependent step (e.g. `.item()` in a mask) cannot run on meta: nothing to learn
        if out.device.type != torch.device(device).type:
            raise ContractError(
                f"{label(entry)}: moved to {device}, forward returned a tensor on {out.device}: create new "
                "tensors on the input's device"
            )


def _moved(entry: ComponentEntry, device: str | None = None, dtype: torch.dtype | None = None) -> Any:
    backbone = tiny.tiny_backbone() if entry.kind == "projector" else None
    component = tiny.build(entry, backbone=backbone).eval()
    target = {"device": device} if device else {"dtype": dtype}
    component.to(**target)
    if backbone is not None:
        backbone.to(**target)
    left = [
        name
        for name, tensor in [*tiny.tensors(component), *_plain_tensors(component)]
        if (device and tensor.device.type != torch.device(device).type)
        or (dtype and tensor.is_floating_point() and tensor.dtype != dtype)
    ]
    if left:
        where = f"on {device}" if device else f"in {dtype}"
        raise ContractError(
            f"{label(entry)}: after .to({device or dtype}) tensors {_names(left)} are not {where}: "
            "keep state in parameters and buffers (register_buffer), which nn.Module moves"
        )
    return component


def _plain_tensors(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Tensors held as plain attributes (not parameters or buffers): ``.to()`` leaves them behind."""
    found = []
    for prefix, child in module.named_modules():
        for name, value in vars(child).items():
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                found.append((f"{prefix}.{name}" if prefix else name, value))
    return found


# Errors a forward on the meta device raises when it needs tensor data: inconclusive, not a contract break.
_NEEDS_DATA = ("meta tensors", "Cannot copy out of meta tensor", "data-dependent")


def _forward_sample(
    entry: ComponentEntry, component: Any, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor | None:
    try:
        with torch.no_grad():
            if entry.kind == "encoder":
                return component(tiny.encoder_inputs(_cpu_twin(entry)).to(device))
            if entry.kind == "projector":
                length = _input_lengths(entry, component)[-1]
                return component(torch.randn(2, length, DIM_IN, device=device, dtype=dtype))
            ids = torch.tensor([[1, 2, 3, 4]], device=device)
            return component(inputs_embeds=component.embed(ids), attention_mask=torch.ones_like(ids)).logits
    except ContractError:
        raise
    except Exception as error:
        if device == "meta" and any(text in str(error) for text in _NEEDS_DATA):
            return None
        hint = (
            ". A tensor kept outside the parameters and buffers (a plain attribute) stays behind on a move: "
            "register it with register_buffer, and create new tensors on the input's device"
            if any(word in str(error) for word in ("device", "dtype", "Half", "BFloat16", "same type"))
            else ""
        )
        raise ContractError(
            f"{label(entry)}: forward failed on {device} in {dtype}: {type(error).__name__}: {error}{hint}"
        ) from error


@functools.cache
def _cpu_twin_cached(entry: ComponentEntry) -> Any:
    return tiny.build(entry)


def _cpu_twin(entry: ComponentEntry) -> Any:
    """A CPU instance of an encoder, for its ``preprocess`` (the moved one may hold no weights)."""
    return _cpu_twin_cached(entry)


# --- training ----------------------------------------------------------------------------------------------


def check_frozen_by_default(entry: ComponentEntry) -> None:
    """An encoder is built with every parameter frozen (a recipe stage may unfreeze it)."""
    encoder = tiny.build(entry)
    if not getattr(encoder, "frozen_by_default", True):
        return
    trainable = [name for name, p in encoder.named_parameters() if p.requires_grad]
    if trainable:
        raise ContractError(
            f"{label(entry)}: parameters {_names(trainable)} are trainable when built, but encoders are frozen "
            "by default: end __init__ with `self.requires_grad_(False)` (a recipe stage unfreezes it with "
            "`train: {encoders: full}`)"
        )


def check_gradients_reach_parameters(entry: ComponentEntry) -> None:
    """Every trainable parameter of a projector gets a non-zero gradient from its output."""
    torch.manual_seed(0)
    projector = tiny.build(entry).train()
    out = projector(torch.randn(2, _input_lengths(entry, projector)[-1], DIM_IN))
    (out * torch.randn_like(out)).sum().backward()
    missing = [
        name
        for name, p in projector.named_parameters()
        if p.requires_grad and (p.grad is None or not bool(p.grad.abs().sum() > 0))
    ]
    if missing:
        raise ContractError(
            f"{label(entry)}: parameters {_names(missing)} get no gradient from forward's output: every "
            "trainable parameter must take part in forward (or be created with requires_grad=False)"
        )


# --- saving --------------------------------------------------------------------------------------------


def check_safetensors_round_trip(entry: ComponentEntry) -> None:
    """The weights saved with safetensors load strictly into a fresh build, which then computes the same."""
    from safetensors.torch import load_model, save_model

    saved = tiny.build(entry, seed=0).eval()
    fresh = tiny.build(entry, seed=1).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "component.safetensors")
        try:
            save_model(saved, path)
            missing, unexpected = load_model(fresh, path, strict=False)
        except Exception as error:
            raise _wrap(entry, "saving and loading its weights with safetensors", error) from error
    if missing or unexpected:
        raise ContractError(
            f"{label(entry)}: loading the saved weights into a fresh build left missing {_names(missing)} and "
            f"unexpected {_names(unexpected)}: two builds with the same arguments must have the same tensors"
        )
    torch.manual_seed(0)
    expected = _forward_sample(entry, saved)
    torch.manual_seed(0)
    got = _forward_sample(entry, fresh)
    if not torch.equal(expected, got):
        raise ContractError(
            f"{label(entry)}: after loading the saved weights a fresh build computes something else (max "
            f"difference {(expected - got).abs().max().item():.3g}): keep every state forward uses in "
            "parameters or persistent buffers"
        )


# --- listing -------------------------------------------------------------------------------------------


_LISTING_SCRIPT = "import json, sys, zoo; zoo.list_components(); json.dump(sorted(sys.modules), sys.stdout)"


@functools.cache
def modules_imported_by_listing() -> frozenset[str]:
    """The modules a fresh interpreter has imported after ``zoo.list_components()``."""
    done = subprocess.run(
        [sys.executable, "-c", _LISTING_SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise ContractError(f"`zoo.list_components()` failed in a fresh interpreter:\n{done.stderr[-2000:]}")
    return frozenset(json.loads(done.stdout))


def check_listing_is_lazy(entry: ComponentEntry) -> None:
    """Listing (``zoo list``) does not import the component's module (checked in a fresh interpreter)."""
    if entry.source != "entry-point" or entry.kind == "recipe":
        return  # runtime registrations are imported by definition; recipes are YAML files
    module = entry.target.partition(":")[0]
    if module in modules_imported_by_listing():
        raise ContractError(
            f"{label(entry)}: `zoo list` imported {module}: listing must read entry points and docstrings only. "
            "Something imported at interpreter start or by zoo's own modules imports it (a .pth file, or an "
            "import in zoo/__init__.py or zoo/registry.py); import it lazily instead"
        )


# --- composition -------------------------------------------------------------------------------------------


def check_composes_with_a_tiny_backbone(entry: ComponentEntry) -> None:
    """Composed with tiny parts into a ``ZooModel``: one forward and backward from processor inputs, with
    gradients in the projector and the backbone and none in the (frozen) encoder."""
    from zoo.modeling import ZooConfig, ZooModel
    from zoo.processor import ZooProcessor

    modality, encoder, projector, backbone = _parts(entry)
    config = ZooConfig(
        backbone=backbone,
        encoders={modality: encoder},
        projectors={modality: projector},
        recipe="conformance",
    )
    torch.manual_seed(0)
    try:
        model = ZooModel(config, load_weights=True)
        if getattr(model.backbone.tokenizer, "chat_template", None) is None:
            model.config.chat_template = FALLBACK_CHAT_TEMPLATE
        batch = ZooProcessor.from_model(model)([tiny.conversation(modality), tiny.conversation(modality)])
        model.train()
        loss = model(**batch).loss
        loss.backward()
    except Exception as error:
        raise _wrap(
            entry, f"a composed forward and backward pass ({modality} -> tiny backbone)", error
        ) from error
    if not torch.isfinite(loss):
        raise ContractError(f"{label(entry)}: the composed model's loss is {loss.item()}")
    _check_composed_gradients(entry, model)


def _parts(entry: ComponentEntry) -> tuple[str, dict, dict, dict]:
    """``(modality, encoder spec, projector spec, backbone spec)`` with ``entry`` in its place."""
    encoder = tiny.core_spec("encoder", tiny.TINY_IMAGE_ENCODER)
    projector = tiny.core_spec("projector", tiny.TINY_PROJECTOR)
    backbone = tiny.core_spec("backbone", tiny.TINY_BACKBONE)
    modality = "image"
    if entry.kind == "encoder":
        encoder = tiny.spec(entry)
        modality = getattr(tiny.load(entry), "modality", "") or tiny.build(entry, device="meta").modality
    elif entry.kind == "projector":
        projector = tiny.spec(entry)
    else:
        backbone = tiny.spec(entry)
    return modality, encoder, projector, backbone


def _check_composed_gradients(entry: ComponentEntry, model: Any) -> None:
    problems = []
    starved = [n for n, p in model.projectors.named_parameters() if p.requires_grad and p.grad is None]
    if starved:
        problems.append(f"projector parameters {_names(starved)} got no gradient")
    leaked = [n for n, p in model.encoders.named_parameters() if p.grad is not None]
    if leaked:
        problems.append(f"frozen encoder parameters {_names(leaked)} got gradients")
    if not any(p.grad is not None for p in model.backbone.parameters()):
        problems.append("no backbone parameter got a gradient")
    if problems:
        raise ContractError(f"{label(entry)}: in the composed model, {'; '.join(problems)}")


# --- recipes ---------------------------------------------------------------------------------------------


def check_recipe_is_valid(entry: ComponentEntry) -> None:
    """The recipe parses and every component name and argument it uses is checked against the registry."""
    from zoo.recipes_api import load_recipe, validate_recipe

    validate_recipe(load_recipe(entry.qualified_name))


def check_recipe_trains_one_step(entry: ComponentEntry) -> None:
    """The recipe builds on the CPU and one optimizer step of its first stage changes its trainable weights."""
    import zoo
    from zoo.processor import ZooProcessor
    from zoo.training_plan import make_optimizer

    torch.manual_seed(0)
    model = zoo.build(entry.qualified_name)
    stage = dict(model.recipe.stages[0]) if model.recipe.stages else {"name": "default", "train": {}}
    stage.setdefault("lr", DEFAULT_LR)
    optimizer = make_optimizer(model, stage)
    media = [tiny.conversation(modality)[0] for modality in model.config.modalities]
    batch = ZooProcessor.from_model(model)([media + tiny.conversation("image")[1:]])
    trainable = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    model.train()
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    if not math.isfinite(loss.item()):
        raise ContractError(
            f"recipe '{entry.name}' ({entry.distribution}): the training loss is {loss.item()}"
        )
    changed = [n for n, p in model.named_parameters() if n in trainable and not torch.equal(p, trainable[n])]
    if not changed:
        raise ContractError(
            f"recipe '{entry.name}' ({entry.distribution}): one optimizer step of stage "
            f"{stage.get('name')!r} changed no weight"
        )


# --- readers and metrics ----------------------------------------------------------------------------------


def check_callable(entry: ComponentEntry) -> None:
    """A reader or metric entry point gives a function (or class) that takes the documented arguments."""
    obj = tiny.load(entry)
    wanted = 2
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    if len(positional) < wanted and not variadic:
        signature = "(record, ctx)" if entry.kind == "reader" else "(predictions, references)"
        raise ContractError(
            f"{label(entry)}: {entry.target} takes {len(positional)} positional argument(s); a {entry.kind} is "
            f"called as {entry.name}{signature}"
        )


def check_reader(entry: ComponentEntry) -> None:
    """A reader rejects a record that does not fit with ``DataError`` and turns its ``examples`` into Samples."""
    from zoo.data.readers import Context
    from zoo.data.schema import Sample

    reader = tiny.load(entry)
    try:
        reader({}, Context("conformance", 0))
    except DataError:
        pass
    except Exception as error:
        raise ContractError(
            f"{label(entry)}: a record with no fields raised {type(error).__name__}: {error}; raise "
            "`ctx.error('field ... is missing')` (a DataError naming the record and the field) instead"
        ) from error
    else:
        raise ContractError(
            f"{label(entry)}: an empty record {{}} was accepted; check the fields the format needs and raise "
            "`ctx.error(...)` for a record without them"
        )
    examples = getattr(reader, "examples", None)
    if not examples:
        raise ContractError(
            f"{label(entry)}: declares no examples: set `{entry.target.partition(':')[2]}.examples = [record, "
            "...]` (records of its format, media as paths or in-memory objects) so the kit can read them"
        )
    for index, record in enumerate(examples):
        sample = reader(record, Context("conformance", index))
        if not isinstance(sample, Sample):
            raise ContractError(
                f"{label(entry)}: example {index} gave {type(sample).__name__}, not a Sample: return "
                "`ctx.sample(messages, sample_id)`"
            )


# --- distributions ---------------------------------------------------------------------------------------


def check_distribution(distribution: str | None) -> None:
    """The distribution registers something and declares the component API this zoo provides."""
    if distribution is None:
        return
    entries = [
        e
        for e in list_components()
        if canonical_distribution(e.distribution) == canonical_distribution(distribution)
    ]
    if not entries:
        raise ContractError(
            f"distribution {distribution!r} registers no zoo component: is it installed (`pip install -e .`), "
            "and are its entry points in the groups zoo reads (`zoo list`; docs/plugins.md)?"
        )
    api = entries[0].api
    if api != COMPONENT_API:
        from zoo.registry import API_DECLARATION

        found = f"declares component API {api}" if api else "declares no component API version"
        raise ContractError(
            f"distribution {distribution!r} {found}; this zoo provides component API {COMPONENT_API}: put "
            f"{API_DECLARATION} in its pyproject.toml (once its components pass this kit) and reinstall it"
        )
