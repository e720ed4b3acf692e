"""The causal-LM backbone: any transformers causal LM by Hub id, local directory or GGUF file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from zoo.components.base import Backbone
from zoo.errors import ComponentArgumentError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise ComponentArgumentError(f"causal-lm: dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def linear_module_names(model: nn.Module) -> list[str]:
    """Distinct leaf names of the Linear layers inside the decoder blocks (the LoRA-targetable ones)."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ".layers." in f".{name}"
    }
    return sorted(names)


class CausalLMBackbone(Backbone):
    """Any transformers causal LM (Hub id, local folder, GGUF file) with its tokenizer and chat template."""

    # A 2-layer LLaMA of width 64 with the tokenizer shipped in zoo (`package:` sources: docs/weights.md).
    tiny_args = {
        "tokenizer": "package:zoo/recipes/assets/tiny-tokenizer",
        "config": {"model_type": "llama", "vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 2048, "tie_word_embeddings": True, "bos_token_id": 1,
                   "eos_token_id": 2, "pad_token_id": 0},
    }  # fmt: skip

    def __init__(
        self,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        config: dict | None = None,
        tokenizer: str | None = None,
        dtype: str = "float32",
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM

        from zoo.weights import materialize

        if source is None and config is None:
            raise ComponentArgumentError(
                "causal-lm: give a weight `source` or an inline architecture `config`"
            )
        torch_dtype = _dtype(dtype)
        if load_weights and source is not None:
            folder = materialize(source, revision)
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch_dtype, attn_implementation=attn_implementation, use_safetensors=True
            )
        else:
            arch = self._architecture(config, source, revision)
            arch._attn_implementation = attn_implementation
            self.model = AutoModelForCausalLM.from_config(arch, dtype=torch_dtype)
        self._lora_targets = linear_module_names(self.model)  # before any adapter wraps them
        self.tokenizer_source = tokenizer or source
        self.tokenizer_revision = None if tokenizer else revision
        self._tokenizer: Any = None

    @staticmethod
    def _architecture(config: dict | None, source: str | None, revision: str | None) -> Any:
        from transformers import AutoConfig

        from zoo.weights import materialize

        if config is not None:
            fields = dict(config)
            model_type = fields.pop("model_type", None)
            if not model_type:
                raise ComponentArgumentError(
                    "causal-lm: an inline `config` needs a `model_type` (e.g. llama)"
                )
            return AutoConfig.for_model(model_type, **fields)
        return AutoConfig.from_pretrained(materialize(source, revision, metadata_only=True))

    @property
    def tokenizer(self) -> Any:
        """The backbone's tokenizer, loaded on first use (building on the meta device never needs it)."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from zoo.weights import materialize

            if self.tokenizer_source is None:
                raise ComponentArgumentError("causal-lm: no tokenizer source (set `tokenizer` or `source`)")
            folder = materialize(self.tokenizer_source, self.tokenizer_revision, metadata_only=True)
            self._tokenizer = AutoTokenizer.from_pretrained(folder)
        return self._tokenizer

    def offline_tokenizer(self) -> Any:
        """The tokenizer when it can be had without a download (a local or package source, or a Hub repo
        already in the cache), else None. Meta-device builds use this so they never fetch anything."""
        if self._tokenizer is not None or self.tokenizer_source is None:
            return self._tokenizer
        from zoo.errors import WeightSourceError
        from zoo.weights import parse_source

        parsed = parse_source(self.tokenizer_source, self.tokenizer_revision)
        if parsed.hub is None:
            try:
                return self.tokenizer
            except (WeightSourceError, OSError):
                return None
        if parsed.kind != "hub":  # a GGUF / CTranslate2 file on the Hub: converting it needs the weights
            return None
        from huggingface_hub import try_to_load_from_cache
        from transformers import AutoTokenizer

        cached = try_to_load_from_cache(parsed.location, "tokenizer_config.json", revision=parsed.revision)
        if not isinstance(cached, str):
            return None
        self._tokenizer = AutoTokenizer.from_pretrained(Path(cached).parent)
        return self._tokenizer

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().embedding_dim

    @property
    def lora_targets(self) -> list[str]:
        return list(self._lora_targets)

    def forward(self, **kwargs: Any) -> Any:
        return self.model(**kwargs)
