"""The composed model: encoders → projectors → placeholder splice → causal-LM backbone, as one HF model.

``ZooConfig`` lists the component specs (name, args, weight source and revision, providing distribution
and version); ``ZooModel`` builds them through the registry. The processor has already expanded each media
item into exactly ``projector.output_length(encoder.num_tokens)`` placeholder tokens; ``forward`` encodes and
projects the media and writes the features over the placeholder embeddings with one masked scatter per
modality. Generation uses the KV cache: media is spliced on the first step only.
"""

from __future__ import annotations

import copy
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from transformers import AutoConfig, GenerationMixin, PretrainedConfig, PreTrainedModel

from zoo.components.base import Backbone, Encoder, Projector
from zoo.errors import IncompatibleComponentsError, PlaceholderMismatchError

MODEL_TYPE = "zoo"
RECIPE_FILE = "recipe.yaml"
TOKEN_ROWS_PREFIX = "zoo.added_token_rows."  # checkpoint keys of the recipe tokens' embedding rows
MEDIA_POSITIONS = ("inline", "after_bos")
_MEDIA_KWARGS = ("media", "media_features")


@functools.cache
def _takes_logits_to_keep(model_class: type) -> bool:
    """Whether a causal LM class's ``forward`` takes ``logits_to_keep`` (read once per class, not per step)."""
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _label_positions(labels: torch.Tensor, kwargs: dict) -> dict:
    """In training, the LM head runs only where a position predicts a label (the loss ignores the rest).

    A sample's response is a few tokens of a sequence that also holds the prompt and the media tokens, and
    the LM head (hidden × vocabulary, 49 k rows for SmolLM2) dominates a small model's step. transformers'
    causal LMs take a boolean ``logits_to_keep`` mask and the matching ``shift_labels``, so the loss is the
    same sum over the same positions; ``outputs.logits`` then holds only those positions, flattened.
    """
    from zoo.processor import IGNORE_INDEX

    if "logits_to_keep" in kwargs or "shift_labels" in kwargs:
        return {}
    shifted = nn.functional.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    keep = shifted != IGNORE_INDEX
    return {"logits_to_keep": keep, "shift_labels": shifted[keep]}


def default_media_tokens(modality: str) -> dict[str, str]:
    """Placeholder and boundary tokens used when a recipe does not name its own."""
    return {"placeholder": f"<|zoo_{modality}|>", "start": f"<{modality}>", "end": f"</{modality}>"}


class ZooConfig(PretrainedConfig):
    """Component specs and token layout of a composed multimodal model (``model_type = "zoo"``)."""

    model_type = MODEL_TYPE
    sub_configs = {"text_config": AutoConfig}

    def __init__(
        self,
        backbone: dict | None = None,
        encoders: dict | None = None,
        projectors: dict | None = None,
        media_tokens: dict | None = None,
        recipe_tokens: list | None = None,
        token_ids: dict | None = None,
        text_vocab_size: int | None = None,
        recipe: str | None = None,
        text_config: dict | PretrainedConfig | None = None,
        chat_template: str | None = None,
        media_position: str = "inline",
        max_sequence_length: int | None = None,
        merge_messages: bool = True,
        stop_tokens: list | None = None,
        applied_stages: list | None = None,
        **kwargs: Any,
    ) -> None:
        if media_position not in MEDIA_POSITIONS:
            raise IncompatibleComponentsError(
                f"media_position must be one of {list(MEDIA_POSITIONS)}, got {media_position!r}"
            )
        if isinstance(text_config, dict):
            fields = dict(text_config)
            text_config = AutoConfig.for_model(fields.pop("model_type"), **fields)
        self.text_config = text_config  # the backbone's own config, recorded when the model is built
        self.backbone = backbone or {}
        self.encoders = encoders or {}
        self.projectors = projectors or {}
        self.media_tokens = {
            m: {**default_media_tokens(m), **(media_tokens or {}).get(m, {})} for m in self.encoders
        }
        self.recipe_tokens = list(recipe_tokens or [])
        self.token_ids = token_ids or {}
        self.text_vocab_size = text_vocab_size
        self.recipe = recipe
        self.chat_template = (
            chat_template  # the recipe's chat layout; None keeps the backbone tokenizer's own
        )
        self.media_position = media_position  # "inline": where the message puts it; "after_bos": Macaw
        # The recipe's training sequence budget in tokens (recipe field `max_length`; named apart from the
        # generation setting `max_length`, which transformers refuses to find in a model config).
        self.max_sequence_length = max_sequence_length
        self.merge_messages = merge_messages  # consecutive messages of one role form one turn (S3: False)
        self.stop_tokens = list(stop_tokens or [])  # generation also ends at these (S3: [/RS])
        # The recipe stages applied to the model, in order: reloading replays them (LoRA, merges, freezing).
        self.applied_stages = list(applied_stages or [])
        super().__init__(**kwargs)

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def added_tokens(self) -> list[str]:
        """Every token the recipe adds to the backbone's vocabulary, in a fixed order."""
        tokens: list[str] = []
        for modality in sorted(self.modalities):  # saved configs sort their keys: keep ids stable
            layout = self.media_tokens[modality]
            tokens += [layout["start"], layout["placeholder"], layout["end"]]
        tokens += self.recipe_tokens
        tokens = [token for token in tokens if token]  # `start: null` / `end: null`: no boundary token
        return list(dict.fromkeys(tokens))


def _build(kind: str, spec: dict, load_weights: bool, **extra: Any) -> nn.Module:
    from zoo.registry import build_component, get_registry

    # A config records the distribution that provided each component: a plugin installed later that
    # registers the same name does not make a saved model ambiguous.
    spec = get_registry().own_spec(kind, spec, spec.get("distribution") or "")
    cls = get_registry().load(kind, spec["name"])
    accepted = inspect.signature(cls.__init__).parameters
    weight_fields = {k: spec[k] for k in ("source", "revision") if spec.get(k) is not None}
    if "load_weights" in accepted:
        weight_fields["load_weights"] = load_weights
    return build_component(kind, spec["name"], dict(spec.get("args") or {}), **weight_fields, **extra)


def _pin_hub_sources(config: ZooConfig) -> None:
    """Rewrite every Hub weight source of ``config`` as ``org/name@<commit>`` before it is built, so the
    config records the exact revision whose weights the model holds (``main`` may move on later)."""
    from zoo.weights import pin_revision

    specs = [config.backbone, *config.encoders.values(), *config.projectors.values()]
    specs += [
        s["args"]["frame_encoder"]
        for s in config.encoders.values()
        if isinstance((s.get("args") or {}).get("frame_encoder"), dict)
    ]
    for spec in specs:
        if spec.get("source"):
            pinned = pin_revision(spec["source"], spec.get("revision"))
            if pinned is not None:
                spec["source"], spec["revision"] = pinned, None


def add_recipe_tokens(tokenizer: Any, config: ZooConfig) -> dict[str, int]:
    """Add the recipe's tokens to ``tokenizer`` (idempotent) and return the id of each added token."""
    tokenizer.add_tokens(config.added_tokens(), special_tokens=True)
    return {token: tokenizer.convert_tokens_to_ids(token) for token in config.added_tokens()}


class ZooModel(PreTrainedModel, GenerationMixin):
    """A causal LM that reads images, video and audio through per-modality encoders and projectors."""

    config_class = ZooConfig
    base_model_prefix = "zoo"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    def __init__(self, config: ZooConfig, load_weights: bool = False) -> None:
        super().__init__(config)
        # Every parameter trained under an applied stage (filled by training_plan.apply_stage): with the
        # recipe tokens' rows and the components that have no weight source, what a checkpoint holds.
        self.trained_parameter_names: set[str] = set()
        if load_weights:
            _pin_hub_sources(config)
        self.backbone: Backbone = _build("backbone", config.backbone, load_weights)
        config.text_config = self.backbone.model.config
        self.encoders, shared = self._build_encoders(load_weights)
        self.projectors = nn.ModuleDict({m: self._build_projector(m, load_weights) for m in config.encoders})
        shared.update(self._share_projectors())
        self._ensure_token_ids()
        self.generation_config = self._generation_config()
        # Shared components hold one tensor under two names: save_pretrained stores it once (it reads the
        # instance's `_tied_weights_keys`), from_pretrained re-ties it (it reads `all_tied_weights_keys`).
        self._tied_weights_keys = {**(type(self)._tied_weights_keys or {}), **shared}
        self.post_init()
        self.all_tied_weights_keys.update(shared)

    # -- construction ---------------------------------------------------------------------------------
    def _build_encoders(self, load_weights: bool) -> tuple[nn.ModuleDict, dict[str, str]]:
        """Build the encoders; a ``video-frames`` encoder whose ``frame_encoder`` names a modality reuses it.

        Macaw-LLM and Ying-VLM read video frames with their image tower: ``frame_encoder: image`` gives one
        set of weights (built, loaded and counted once). Returns the ``{tied name: source name}`` pairs.
        """
        specs = self.config.encoders
        by_reference = {
            m: s["args"]["frame_encoder"]
            for m, s in specs.items()
            if isinstance((s.get("args") or {}).get("frame_encoder"), str)
        }
        built = {m: _build("encoder", s, load_weights) for m, s in specs.items() if m not in by_reference}
        tied: dict[str, str] = {}
        for modality, target in by_reference.items():
            if target not in built:
                raise IncompatibleComponentsError(
                    f"encoder for {modality}: frame_encoder={target!r} must name another modality's encoder "
                    f"that is built from its own spec (encoders: {sorted(built)})"
                )
            spec = specs[modality]
            args = {k: v for k, v in spec["args"].items() if k != "frame_encoder"}
            built[modality] = _build(
                "encoder", {**spec, "args": args}, load_weights, frame_encoder=built[target]
            )
            for name, _ in built[target].named_parameters():
                tied[f"encoders.{modality}.frame_encoder.{name}"] = f"encoders.{target}.{name}"
        return nn.ModuleDict({m: built[m] for m in specs}), tied

    def _build_projector(self, modality: str, load_weights: bool) -> Projector:
        spec = self.config.projectors.get(modality)
        if spec is None:
            raise IncompatibleComponentsError(
                f"modality {modality!r} has an encoder but no projector in the config"
            )
        encoder: Encoder = self.encoders[modality]
        declared = (spec.get("args") or {}).get("dim_in")
        if declared is not None and declared != encoder.dim:
            raise IncompatibleComponentsError(
                f"projector {spec['name']!r} for {modality} expects input width dim_in={declared}, "
                f"but encoder {self.config.encoders[modality]['name']!r} emits width {encoder.dim}"
            )
        args = {k: v for k, v in (spec.get("args") or {}).items() if k != "dim_in"}
        projector = _build(
            "projector",
            {**spec, "args": args},
            load_weights,
            dim_in=encoder.dim,
            llm_dim=self.backbone.hidden_size,
        )
        if projector.needs_backbone:
            projector.attach_backbone(self.backbone)
        return projector

    def _share_projectors(self) -> dict[str, str]:
        """Give each projector whose spec says ``shared_with: <modality>`` that modality's parameters.

        Ying-VLM reads video frames with the image Q-Former: one set of weights, trained once. Returns the
        ``{tied name: source name}`` pairs so saving stores each shared tensor once and loading re-ties it.
        """
        tied: dict[str, str] = {}
        for modality, spec in self.config.projectors.items():
            target = spec.get("shared_with")
            if target is None:
                continue
            if (
                target == modality
                or target not in self.projectors
                or self.config.projectors[target].get("shared_with")
            ):
                raise IncompatibleComponentsError(
                    f"projector for {modality}: shared_with={target!r} must name another modality's projector "
                    f"that is not itself shared (projectors: {sorted(self.projectors)})"
                )
            for name in _share_parameters(
                self.projectors[modality], self.projectors[target], modality, target
            ):
                tied[f"projectors.{modality}.{name}"] = f"projectors.{target}.{name}"
        return tied

    def _generation_config(self) -> Any:
        """The backbone's generation settings, with the recipe's stop tokens added to ``eos_token_id``."""
        config = copy.deepcopy(self.backbone.model.generation_config)
        if not self.config.stop_tokens:
            return config
        eos = config.eos_token_id
        ids = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        for token in self.config.stop_tokens:
            if token not in self.config.token_ids:
                raise IncompatibleComponentsError(
                    f"stop token {token!r} is not one of the recipe's tokens {self.config.added_tokens()}; "
                    "add it to tokens.extra"
                )
            ids.append(self.config.token_ids[token])
        config.eos_token_id = list(dict.fromkeys(ids))
        return config

    def _ensure_token_ids(self) -> None:
        """Add the recipe's tokens to the tokenizer and the embedding table (ids recorded in the config).

        A meta-device build whose tokenizer cannot be had without a download (a full-size recipe with an
        empty Hub cache) numbers the tokens after the backbone config's ``vocab_size`` instead.
        """
        if not self.config.token_ids:
            tokenizer = self._tokenizer_for_ids()
            if tokenizer is None:
                first = self.backbone.model.config.vocab_size
                self.config.text_vocab_size = first
                self.config.token_ids = {t: first + i for i, t in enumerate(self.config.added_tokens())}
            else:
                self.config.text_vocab_size = len(tokenizer)
                self.config.token_ids = add_recipe_tokens(tokenizer, self.config)
        needed = max(self.config.token_ids.values(), default=-1) + 1
        if needed > self.backbone.model.get_input_embeddings().num_embeddings:
            self.backbone.model.resize_token_embeddings(needed, mean_resizing=False)

    def _tokenizer_for_ids(self) -> Any:
        """The backbone's tokenizer; on the meta device only when it is available without a download."""
        if self.backbone.model.get_input_embeddings().weight.is_meta:
            offline = getattr(self.backbone, "offline_tokenizer", None)
            return offline() if offline is not None else None
        return self.backbone.tokenizer

    @property
    def tokenizer(self) -> Any:
        """The backbone's tokenizer with the recipe's tokens added and the recipe's chat template, checked
        against the ids the model uses. With a recipe template this is a copy: the backbone's own tokenizer
        keeps its own template (SmolLM2 still answers in its chat format through ``backbone.tokenizer``)."""
        tokenizer = self.backbone.tokenizer
        if self.config.chat_template:
            cached = self.__dict__.get("_recipe_tokenizer")
            if cached is None:
                cached = copy.deepcopy(tokenizer)
                cached.chat_template = self.config.chat_template
                self.__dict__["_recipe_tokenizer"] = cached
            tokenizer = cached
        ids = add_recipe_tokens(tokenizer, self.config)
        if ids != self.config.token_ids:
            raise IncompatibleComponentsError(
                f"the backbone's tokenizer gives the recipe tokens ids {ids}, but this model was built with "
                f"{self.config.token_ids}; load the tokenizer the model was trained with"
            )
        return tokenizer

    def _init_weights(self, module: nn.Module) -> None:
        """Components initialise (or load) their own weights when they are built."""

    # -- checkpoints: the delta, saving and loading ---------------------------------------------------
    def _sourced_prefixes(self) -> list[str]:
        """Module prefixes of the components whose weights come from a weight source."""
        specs = {"backbone": self.config.backbone}
        specs.update({f"encoders.{m}": s for m, s in self.config.encoders.items()})
        specs.update({f"projectors.{m}": s for m, s in self.config.projectors.items()})
        return [f"{prefix}." for prefix, spec in specs.items() if spec.get("source")]

    def delta_parameter_names(self) -> list[str]:
        """Parameters a checkpoint must hold: those trained under an applied stage, and those of components
        without a weight source (random init: nothing else can give them back). Shared tensors once."""
        sourced = self._sourced_prefixes()
        names_of: dict[int, list[str]] = {}
        for name, parameter in self.named_parameters(remove_duplicate=False):
            names_of.setdefault(id(parameter), []).append(name)
        keep = []
        for name, parameter in self.named_parameters():
            aliases = names_of[id(parameter)]
            from_source = any(alias.startswith(tuple(sourced)) for alias in aliases)
            if name in self.trained_parameter_names or not from_source:
                keep.append(name)
        return keep

    def delta_state_dict(self, state_dict: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint holds (see ``delta_parameter_names``), LoRA adapters through peft's own
        state-dict function, plus the rows of the recipe's added tokens when the embeddings are not held
        whole. ``state_dict`` (e.g. one gathered under FSDP) supplies the values instead of the parameters."""
        values = dict(self.state_dict()) if state_dict is None else state_dict
        names = self.delta_parameter_names()
        delta = {n: values[n] for n in names if "lora_" not in n}
        delta.update(self._lora_state_dict(values) if any("lora_" in n for n in names) else {})
        delta.update(self._delta_buffers(names, values))
        delta.update(self._token_rows(set(names)))
        return {k: v.detach().cpu().contiguous() for k, v in delta.items()}

    def _lora_state_dict(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        prefix = "backbone.model."
        inner = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
        adapter = get_peft_model_state_dict(
            self.backbone.model, state_dict=inner, save_embedding_layers=False
        )
        return {prefix + k: v for k, v in adapter.items()}

    def _delta_buffers(self, names: list[str], values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Persistent buffers of the modules whose parameters are in the delta (e.g. norm running stats)."""
        owners = {name.rpartition(".")[0] for name in names}
        persistent = set(self.state_dict())
        return {
            name: values[name]
            for name, _ in self.named_buffers()
            if name in persistent and name.rpartition(".")[0] in owners
        }

    def _token_rows(self, names: set[str]) -> dict[str, torch.Tensor]:
        """Rows of the recipe's added tokens in the input (and untied output) embeddings, unless held whole."""
        ids = sorted(self.config.token_ids.values())
        if not ids:
            return {}
        full = dict(self.named_parameters())
        rows = {}
        tables = {"input": self.get_input_embeddings(), "output": self.get_output_embeddings()}
        seen: set[int] = set()
        for which, module in tables.items():
            weight = getattr(module, "weight", None)
            if weight is None or id(weight) in seen or any(full.get(n) is weight for n in names):
                continue
            seen.add(id(weight))
            rows[f"{TOKEN_ROWS_PREFIX}{which}"] = weight.detach()[ids]
        return rows

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict | None = None,
        **kwargs: Any,
    ) -> None:
        """Save config, the delta weights (``delta_state_dict``), tokenizer, recipe and, last, the manifest.

        A save interrupted before the end leaves no manifest, so the folder is refused on load instead of
        giving a model with missing parts. Other keyword arguments of transformers' method are accepted
        and ignored (the format is always safetensors, one file).
        """
        from safetensors.torch import save_file

        from zoo.checkpoint import WEIGHTS, begin_save, write_manifest

        if not is_main_process:
            return
        folder = Path(save_directory)
        begin_save(folder)
        save_file(self.delta_state_dict(state_dict), str(folder / WEIGHTS), metadata={"format": "pt"})
        self.config.save_pretrained(folder)
        self.generation_config.save_pretrained(folder)
        self._save_tokenizer(folder)
        recipe = getattr(self, "recipe", None)
        if getattr(recipe, "data", None):
            (folder / RECIPE_FILE).write_text(yaml.safe_dump(recipe.data, sort_keys=False), encoding="utf-8")
        write_manifest(folder, "delta")

    def _save_tokenizer(self, folder: Path) -> None:
        """The tokenizer with the recipe tokens and chat template, and the processor that goes with it
        (``processor_config.json``: ``AutoProcessor.from_pretrained(folder)`` reads it back)."""
        from zoo.processor import ZooProcessor

        if self.get_input_embeddings().weight.is_meta and self._tokenizer_for_ids() is None:
            return  # a meta build whose tokenizer is not on disk: nothing to save
        ZooProcessor.from_model(self).save_pretrained(folder)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        merged: bool = False,
        commit_message: str | None = None,
        token: str | None = None,
        license: str | None = None,
        **unsupported: Any,
    ) -> Any:
        """Push this model as a zoo checkpoint: exactly what ``zoo.hub.push`` pushes (pinned config, the delta
        or with ``merged`` a standalone export, tokenizer, processor, model card), in one commit."""
        from zoo.hub.push import push

        if unsupported:
            raise TypeError(f"ZooModel.push_to_hub does not take {sorted(unsupported)} (see zoo.hub.push)")
        return push(
            self,
            repo_id,
            revision=revision,
            private=bool(private),
            merged=merged,
            commit_message=commit_message,
            token=token,
            license=license,
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any, **kwargs: Any
    ) -> ZooModel:
        """A saved zoo model: base parts from their weight sources, applied stages replayed, delta loaded.

        Weight sources are materialized outside any meta-device context (GGUF and CTranslate2 conversions
        run on a machine whose ``$ZOO_HOME`` is empty). Tensors missing from the file, unexpected, of the
        wrong shape or not finite are errors naming the folder and tensor. Nothing is unpickled.
        """
        from zoo.checkpoint import read_manifest

        if model_args:
            raise TypeError(f"ZooModel.from_pretrained takes no positional model arguments, got {model_args}")
        from zoo.errors import HubError, ZooError

        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        revision = kwargs.pop("revision", None)
        hub_options = {key: kwargs.pop(key) for key in ("token", "force_download") if key in kwargs}
        folder = _local_folder(pretrained_model_name_or_path, revision, **hub_options)
        try:
            manifest = read_manifest(folder)
            model = cls._rebuild(folder, full=manifest["weights"] == "full")
        except ZooError as error:
            if Path(pretrained_model_name_or_path).expanduser().is_dir() or isinstance(error, HubError):
                raise
            where = f"{pretrained_model_name_or_path}@{revision or 'main'} (commit {folder.name[:12]})"
            raise HubError(f"{where}: {error}") from error
        if dtype is not None:
            model = model.to(dtype=getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        return model.to(device) if device is not None else model

    @classmethod
    def _rebuild(cls, folder: Path, full: bool) -> ZooModel:
        from zoo.checkpoint import WEIGHTS, read_tensors
        from zoo.training_plan import apply_stage

        config = ZooConfig.from_pretrained(folder)
        stages, config.applied_stages = config.applied_stages, []
        model = cls(config, load_weights=not full)
        if (
            getattr(model.backbone, "tokenizer_source", "") is None
            and (folder / "tokenizer_config.json").is_file()
        ):
            model.backbone.tokenizer_source = str(
                folder
            )  # a standalone export: its own tokenizer is all there is
        for stage in stages:
            apply_stage(model, stage)
        model.load_checkpoint_weights(read_tensors(folder / WEIGHTS), folder / WEIGHTS, full=full)
        return model.eval()

    def load_checkpoint_weights(
        self, tensors: dict[str, torch.Tensor], where: Any, full: bool = False
    ) -> None:
        """Copy a checkpoint's tensors into the model; every expected tensor must be there, nothing else.

        ``full`` checkpoints hold every parameter and persistent buffer; others hold ``delta_state_dict``.
        """
        from zoo.errors import CheckpointError

        expected = self._expected_shapes(full)
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        problems = [f"{len(missing)} missing (e.g. {missing[:3]})"] if missing else []
        problems += [f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"] if unexpected else []
        if problems:
            raise CheckpointError(f"{where}: the tensors do not fit this model: {'; '.join(problems)}")
        for name, tensor in tensors.items():
            if expected[name] != tuple(tensor.shape):
                raise CheckpointError(
                    f"{where}: tensor {name} has shape {tuple(tensor.shape)} but this model's is "
                    f"{expected[name]} (the base weights or the recipe differ from the ones it was saved with)"
                )
        self._copy_in(tensors)

    def _expected_shapes(self, full: bool) -> dict[str, tuple[int, ...]]:
        if not full:
            return {k: tuple(v.shape) for k, v in self.delta_state_dict().items()}
        names = [*dict(self.named_parameters()), *(n for n, _ in self.named_buffers())]
        state = self.state_dict()
        return {n: tuple(state[n].shape) for n in names if n in state}

    def _copy_in(self, tensors: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        state = self.state_dict(keep_vars=True)
        lora = {k[len("backbone.model.") :]: v for k, v in tensors.items() if "lora_" in k}
        with torch.no_grad():
            for name, tensor in tensors.items():
                if name.startswith(TOKEN_ROWS_PREFIX):
                    self._put_token_rows(name[len(TOKEN_ROWS_PREFIX) :], tensor)
                elif "lora_" not in name:
                    state[name].copy_(tensor)
            if lora:
                set_peft_model_state_dict(self.backbone.model, lora)

    def _put_token_rows(self, which: str, rows: torch.Tensor) -> None:
        module = self.get_input_embeddings() if which == "input" else self.get_output_embeddings()
        ids = torch.tensor(sorted(self.config.token_ids.values()), device=module.weight.device)
        module.weight.index_copy_(0, ids, rows.to(module.weight.device, module.weight.dtype))

    # -- embeddings, for transformers' generic utilities -------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return self.backbone.model.get_output_embeddings()

    def placeholder_id(self, modality: str) -> int:
        return self.config.token_ids[self.config.media_tokens[modality]["placeholder"]]

    def tokens_per_item(self, modality: str) -> int:
        """Placeholder tokens the processor must insert for one item of ``modality``."""
        return self.projectors[modality].output_length(self.encoders[modality].num_tokens)

    # -- media ----------------------------------------------------------------------------------------
    def use_feature_cache(self, cache: Any) -> None:
        """Serve frozen encoders' outputs from ``cache`` (a ``zoo.training.feature_cache.FeatureCache``), or
        stop with ``None``. The cache is not part of the model: it is not saved and not copied."""
        self.__dict__["_feature_cache"] = cache

    @property
    def feature_cache(self) -> Any:
        return self.__dict__.get("_feature_cache")

    def encode_media(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """Encoder features for a batch of preprocessed items (no autograd graph when it is frozen).

        A frozen encoder's outputs come from the feature cache when one is in use (``use_feature_cache``):
        only the items it has not seen are encoded. A trainable encoder always runs.
        """
        encoder = self.encoders[modality]
        inputs = inputs.to(_device_of(encoder, inputs.device))
        if any(p.requires_grad for p in encoder.parameters()):
            return encoder(inputs)
        with torch.no_grad():
            if self.feature_cache is not None:
                return self.feature_cache.encode(self._encoder_spec(modality), encoder, inputs)
            return encoder(inputs)

    def _encoder_spec(self, modality: str) -> dict:
        """The encoder's spec, with the spec of the encoder it shares frames with (``frame_encoder``)."""
        spec = dict(self.config.encoders[modality])
        shared = (spec.get("args") or {}).get("frame_encoder")
        if isinstance(shared, str):
            spec["frame_encoder_spec"] = self.config.encoders.get(shared)
        return spec

    def project_media(
        self,
        media: dict[str, torch.Tensor] | None = None,
        media_features: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Projected tokens ``[items, tokens_per_item, hidden]`` per modality, from raw inputs or features."""
        features = dict(media_features or {})
        for modality, inputs in (media or {}).items():
            if modality not in self.encoders:
                raise IncompatibleComponentsError(
                    f"media of type {modality!r} given, but this model has encoders only for {self.config.modalities}"
                )
            features.setdefault(modality, self.encode_media(modality, inputs))
        return {m: self._project(m, f) for m, f in features.items()}

    def _project(self, modality: str, features: torch.Tensor) -> torch.Tensor:
        projector = self.projectors[modality]
        reference = next(projector.parameters(), None)
        if reference is not None:  # e.g. a bf16 encoder feeding an fp32 projector on another device
            features = features.to(device=reference.device, dtype=reference.dtype)
        return projector(features)

    def splice(
        self, input_ids: torch.Tensor, embeds: torch.Tensor, projected: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Write projected media tokens over their placeholder embeddings (one masked scatter per modality)."""
        for modality, tokens in projected.items():
            mask = input_ids == self.placeholder_id(modality)
            expected = tokens.shape[0] * tokens.shape[1]
            found = int(mask.sum())
            if found != expected:
                raise PlaceholderMismatchError(
                    self._mismatch_message(modality, mask, tokens.shape[:2], found)
                )
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), tokens.to(embeds.device, embeds.dtype))
        return embeds

    @staticmethod
    def _mismatch_message(modality: str, mask: torch.Tensor, shape: torch.Size, found: int) -> str:
        items, per_item = int(shape[0]), int(shape[1])
        runs = _placeholder_runs(mask)
        detail = f"{len(runs)} placeholder blocks in the batch for {items} {modality} items"
        for index, (row, length) in enumerate(runs):
            if length != per_item:
                detail = f"{modality} item {index} (batch row {row}) has {length} placeholders"
                break
        return (
            f"{modality}: the input has {found} placeholder tokens but the projector produced {items} items × "
            f"{per_item} tokens = {items * per_item}; {detail}, expected {per_item} per item. "
            "Build inputs with the model's ZooProcessor so placeholders match the projector's output length."
        )

    # -- forward and generation -------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        media: dict[str, torch.Tensor] | None = None,
        media_features: dict[str, torch.Tensor] | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            if media or media_features:
                inputs_embeds = self.splice(
                    input_ids, inputs_embeds, self.project_media(media, media_features)
                )
        if use_cache is None and past_key_values is None:
            # A training step needs no KV cache, and packed rows (position_ids restarting, no attention mask)
            # must not get one: transformers keeps packed samples apart only when there is no cache.
            packed = attention_mask is None and position_ids is not None
            use_cache = False if self.training or packed else None
        if past_key_values is not None:  # transformers 5 passes `cache` instead; the old name still works
            kwargs["past_key_values"] = past_key_values
        if labels is not None and self.training and self._backbone_keeps_logits():
            kwargs.update(_label_positions(labels, kwargs))
        return self.backbone.model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            labels=labels,
            use_cache=use_cache,
            **kwargs,
        )

    def _backbone_keeps_logits(self) -> bool:
        """Whether the backbone's causal LM takes ``logits_to_keep`` (transformers' LMs do)."""
        model = self.backbone.model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        return _takes_logits_to_keep(type(base))

    def prepare_inputs_for_generation(
        self, *args: Any, is_first_iteration: bool | None = False, **kwargs: Any
    ):
        inputs = super().prepare_inputs_for_generation(*args, is_first_iteration=is_first_iteration, **kwargs)
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in _MEDIA_KWARGS:  # spliced into the KV cache on the first step; never again
                inputs.pop(key, None)
        return inputs


def _share_parameters(module: nn.Module, source: nn.Module, name: str, source_name: str) -> list[str]:
    """Replace every parameter of ``module`` by the same-named parameter of ``source``; return the names."""
    own = dict(module.named_parameters())
    theirs = dict(source.named_parameters())
    if own.keys() != theirs.keys() or any(own[k].shape != theirs[k].shape for k in own):
        raise IncompatibleComponentsError(
            f"the {name} projector cannot share the {source_name} projector's weights: their parameters differ "
            "(use the same projector name and size arguments)"
        )
    for key, parameter in theirs.items():
        owner_name, _, leaf = key.rpartition(".")
        setattr(module.get_submodule(owner_name) if owner_name else module, leaf, parameter)
    return sorted(theirs)


def _device_of(module: nn.Module, default: torch.device) -> torch.device:
    parameter = next(module.parameters(), None)
    return default if parameter is None else parameter.device


def _placeholder_runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """(batch row, length) of each contiguous run of placeholder tokens, in reading order."""
    runs = []
    for row, row_mask in enumerate(mask.tolist()):
        length = 0
        for flag in [*row_mask, False]:
            if flag:
                length += 1
            elif length:
                runs.append((row, length))
                length = 0
    return runs


def register_with_auto_classes() -> None:
    """Make ``AutoConfig``/``AutoModel``/``AutoModelForCausalLM`` resolve ``model_type = "zoo"`` (``AutoProcessor``:
    see ``zoo.processor``)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    try:
        AutoConfig.register(MODEL_TYPE, ZooConfig)
    except ValueError:  # already registered in this process
        return
    AutoModel.register(ZooConfig, ZooModel)
    AutoModelForCausalLM.register(ZooConfig, ZooModel)
    processor = sys.modules.get("zoo.processor")  # loaded first: it registers once the config is known
    register = getattr(processor, "register_with_auto_processor", None)
    if register is not None:
        register()


def _local_folder(name_or_path: str | os.PathLike, revision: str | None, **hub_options: Any) -> Path:
    """The folder of a saved model: a local path, or (for ``org/name``) the Hub snapshot zoo.hub fetches
    (checked and verified before anything is loaded; ``hub_options``: ``token``, ``force_download``)."""
    from zoo.errors import CheckpointError
    from zoo.hub.pull import fetch, is_repo_id

    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if is_repo_id(name_or_path):
        return fetch(str(name_or_path), revision, **hub_options)
    if path.exists() or str(name_or_path).startswith(("/", "./", "../", "~")):
        raise CheckpointError(f"{name_or_path}: not a folder written by save_pretrained")
    raise CheckpointError(
        f"{name_or_path!r} is neither a folder written by save_pretrained nor a Hub repo id (org/name)"
    )


def load(name_or_path: str | os.PathLike, revision: str | None = None, **kwargs: Any) -> ZooModel:
    """A saved zoo model from a folder (or a Hub repo id): ``ZooModel.from_pretrained``."""
    return ZooModel.from_pretrained(name_or_path, revision=revision, **kwargs)


register_with_auto_classes()
