"""First-party projectors: encoder tokens ``[batch, L, dim_in]`` to LLM embeddings ``[batch, L', llm_dim]``.

* ``LinearProjector``: one Linear (LLaVA-1 style), ``L' = L``.
* ``MLPProjector``: LLaVA-1.5's ``mlp{N}x_gelu``, ``L' = L``.
* ``TokenSplitMLPProjector``: S3's projector, one media item to ``num_tokens`` tokens (4 in S3).
* ``MacawAligner``: Macaw-LLM's alignment module (Conv1D length compression, Linear, attention over the
  LLM's input-embedding matrix), ``L' = floor((L - kernel_size) / stride) + 1``.
* ``QFormerProjector``: BLIP-2's Q-Former (transformers) with learned queries and a language projection, as
  Ying-VLM uses it, ``L' = num_queries``.
* ``PerceiverResampler``: Idefics2's connector (transformers), ``L' = num_latents``.

Module names follow the reference implementations (``mlp.0``/``mlp.2`` as LLaVA's ``mm_projector``,
``query_tokens``/``qformer``/``language_projection`` as transformers' BLIP-2, ``linear_projection_1/2`` as
the S3 release, ``modality_projection``/``perceiver_resampler`` as Idefics2) so released weights map by
prefix. transformers is imported only by the two projectors that use it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from zoo.components.base import Backbone, Projector
from zoo.errors import ComponentArgumentError, IncompatibleComponentsError


def _require_positive(owner: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ComponentArgumentError(f"{owner}: {name} must be a positive integer, got {value!r}")


def _require_divides(owner: str, heads_name: str, heads: int, width_name: str, width: int) -> None:
    if width % heads:
        divisors = [d for d in (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 64) if width % d == 0]
        raise ComponentArgumentError(
            f"{owner}: {heads_name}={heads} must divide {width_name}={width} (each head gets "
            f"{width_name} / {heads_name} channels); divisors that work include {divisors}"
        )


def _require_choice(owner: str, name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ComponentArgumentError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")


class _CheckedProjector(Projector):
    """Validates the widths at construction and the feature tensor at every call."""

    def __init__(self, dim_in: int, llm_dim: int) -> None:
        _require_positive(type(self).__name__, dim_in=dim_in, llm_dim=llm_dim)
        super().__init__(dim_in, llm_dim)

    def _check_features(self, features: torch.Tensor) -> None:
        name = type(self).__name__
        if not isinstance(features, torch.Tensor) or features.ndim != 3:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise IncompatibleComponentsError(
                f"{name} expects features [batch, length, {self.dim_in}], got {got}"
            )
        if features.shape[-1] != self.dim_in:
            raise IncompatibleComponentsError(
                f"{name} was built for dim_in={self.dim_in} but got features of width {features.shape[-1]} "
                f"(shape {tuple(features.shape)}): the projector's dim_in must equal the encoder's dim"
            )
        self.output_length(features.shape[1])  # raises when this length cannot be projected

    def _check_length(self, input_length: int) -> None:
        if isinstance(input_length, bool) or not isinstance(input_length, int) or input_length < 1:
            raise IncompatibleComponentsError(
                f"{type(self).__name__}: input length must be a positive integer, got {input_length!r}"
            )

    def extra_repr(self) -> str:
        return f"dim_in={self.dim_in}, llm_dim={self.llm_dim}"


class LinearProjector(_CheckedProjector):
    """One Linear from the encoder width to the LLM width, token by token (LLaVA-1)."""

    tiny_args = {}

    def __init__(self, dim_in: int, llm_dim: int) -> None:
        super().__init__(dim_in, llm_dim)
        self.proj = nn.Linear(dim_in, llm_dim)

    def output_length(self, input_length: int) -> int:
        self._check_length(input_length)
        return input_length

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check_features(features)
        return self.proj(features)


class MLPProjector(_CheckedProjector):
    """LLaVA-1.5's ``mlp{depth}x_gelu`` (default ``mlp2x_gelu``), applied token by token.

    Linear(dim_in, llm_dim), then (depth - 1) x [GELU, Linear(llm_dim, llm_dim)].
    """

    tiny_args = {"depth": 2}

    def __init__(self, dim_in: int, llm_dim: int, *, depth: int = 2) -> None:
        super().__init__(dim_in, llm_dim)
        _require_positive("MLPProjector", depth=depth)
        layers: list[nn.Module] = [nn.Linear(dim_in, llm_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(llm_dim, llm_dim)]
        self.mlp = nn.Sequential(*layers)

    def output_length(self, input_length: int) -> int:
        self._check_length(input_length)
        return input_length

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check_features(features)
        return self.mlp(features)


S3Pool = Literal["mean", "segments", "flatten", "none"]
MacawPosition = Literal["sinusoidal", "frame"]
S3Activation = Literal["none", "relu", "gelu"]
S3InputNorm = Literal["none", "layer"]
S3OutputNorm = Literal["none", "rms"]


class TokenSplitMLPProjector(_CheckedProjector):
    """S3's modality projector: one media item to ``num_tokens`` LLM token embeddings.

    What the paper says (S3, sec. 3.4-3.5): the image encoder is CLIP and, instead of the usual pooled
    embedding, "individual patched embeddings" are used; "several linear layers" map the encoder's hidden
    states to token embeddings; the last linear layer's output is ``num_tokens x llm_dim`` wide and is
    divided into ``num_tokens`` (= 4) token embeddings, "regardless of the number of output patches".
    The paper does not say how the patches are combined before the linear layers. The released code
    (s-nlp/s3, ``ModalityAdapter``) feeds one pooled, L2-normalised ImageBind embedding per item through
    Linear(dim_in, llm_dim) -> Dropout(0.1) -> Linear(llm_dim, num_tokens * llm_dim) -> Dropout(0.1), with
    no activation in between.

    What this class does: the released layer layout (``activation="none"``, ``dropout=0.1``), and, for the
    paper's per-patch features, ``pool="mean"`` by default: the patch tokens are averaged, so any number of
    patches gives ``num_tokens`` tokens. ``pool="segments"`` averages ``segments`` consecutive stretches of
    the token sequence instead and concatenates them (time segments of an audio clip, bands of image
    patches), so content confined to part of the sequence (2 s of beeps in Whisper's 30 s window) is not
    averaged away; ``pool="flatten"`` concatenates exactly ``num_patches`` patch tokens into the first
    layer's input (keeps every patch individually, at ``num_patches * dim_in * llm_dim`` weights);
    ``pool="none"`` takes one pooled embedding per item (length 1, as the released ImageBind code).
    ``output_length`` is always ``num_tokens``.

    Scale (not in the paper): ``input_norm="layer"`` puts a LayerNorm on the pooled input (the release
    L2-normalises its input; InternVL's and Qwen2-VL's connectors start with a LayerNorm), so the first
    layer sees unit-scale features whatever the encoder's output scale. ``output_norm="rms"`` ends with an
    RMSNorm per token whose gain starts at the RMS of the LLM's input-embedding matrix, so the projected
    tokens start at the scale of the word embeddings the LLM was trained on (SmolLM2's rows have norm
    ~3.2, while the untrained projector emitted ~11 and grew past 200 when trained at lr 1e-3) and cannot
    drift away from it; the gain stays trainable.
    """

    tiny_args = {"num_tokens": 4}

    def __init__(
        self,
        dim_in: int,
        llm_dim: int,
        *,
        num_tokens: int = 4,
        pool: S3Pool = "mean",
        num_patches: int | None = None,
        segments: int | None = None,
        dropout: float = 0.1,
        activation: S3Activation = "none",
        input_norm: S3InputNorm = "none",
        output_norm: S3OutputNorm = "none",
    ) -> None:
        super().__init__(dim_in, llm_dim)
        owner = "TokenSplitMLPProjector"
        _require_positive(owner, num_tokens=num_tokens)
        _require_choice(owner, "pool", pool, ("mean", "segments", "flatten", "none"))
        _require_choice(owner, "activation", activation, ("none", "relu", "gelu"))
        _require_choice(owner, "input_norm", input_norm, ("none", "layer"))
        _require_choice(owner, "output_norm", output_norm, ("none", "rms"))
        if pool == "flatten":
            if num_patches is None:
                raise ComponentArgumentError(
                    f"{owner}: pool='flatten' needs num_patches (e.g. 196 for ViT-B/16)"
                )
            _require_positive(owner, num_patches=num_patches)
        if pool == "segments":
            if segments is None:
                raise ComponentArgumentError(f"{owner}: pool='segments' needs segments (e.g. 15)")
            _require_positive(owner, segments=segments)
        self.num_tokens, self.pool, self.num_patches, self.segments = num_tokens, pool, num_patches, segments
        in_features = dim_in * {"flatten": num_patches, "segments": segments}.get(pool, 1)
        self.input_norm = nn.LayerNorm(in_features) if input_norm == "layer" else None
        self.linear_projection_1 = nn.Linear(in_features, llm_dim)
        self.activation = {"none": nn.Identity, "relu": nn.ReLU, "gelu": nn.GELU}[activation]()
        self.dropout = nn.Dropout(dropout)
        self.linear_projection_2 = nn.Linear(llm_dim, llm_dim * num_tokens)
        self.output_norm = nn.RMSNorm(llm_dim, eps=1e-6) if output_norm == "rms" else None
        self.needs_backbone = output_norm == "rms"  # its gain starts at the LLM's embedding scale

    def attach_backbone(self, backbone: Backbone) -> None:
        """Start the output RMSNorm's gain at the RMS of the backbone's input-embedding matrix."""
        if self.output_norm is None:
            return
        weight = backbone.model.get_input_embeddings().weight
        if weight.is_meta or self.output_norm.weight.is_meta:
            return
        with torch.no_grad():
            self.output_norm.weight.fill_(weight.detach().float().pow(2).mean().sqrt().item())

    def output_length(self, input_length: int) -> int:
        self._check_length(input_length)
        expected = {"flatten": self.num_patches, "none": 1}.get(self.pool)
        if expected is not None and input_length != expected:
            raise IncompatibleComponentsError(
                f"TokenSplitMLPProjector with pool={self.pool!r} takes exactly {expected} token(s) per item, "
                f"got {input_length}"
                + ("; use pool='mean' for per-patch features" if self.pool == "none" else "")
            )
        if self.pool == "segments" and input_length < self.segments:
            raise IncompatibleComponentsError(
                f"TokenSplitMLPProjector with pool='segments' needs at least segments={self.segments} tokens "
                f"per item, got {input_length}"
            )
        return self.num_tokens

    def _pooled(self, features: torch.Tensor) -> torch.Tensor:
        if self.pool == "mean":
            return features.mean(dim=1)
        if self.pool == "segments":  # [batch, length, dim] -> [batch, segments * dim], in sequence order
            pooled = nn.functional.adaptive_avg_pool1d(features.transpose(1, 2), self.segments)
            return pooled.transpose(1, 2).flatten(1)
        return features.flatten(1)  # "flatten": all patches side by side; "none": the single token

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check_features(features)
        pooled = self._pooled(features)
        if self.input_norm is not None:
            pooled = self.input_norm(pooled)
        hidden = self.dropout(self.activation(self.linear_projection_1(pooled)))
        tokens = self.dropout(self.linear_projection_2(hidden))
        tokens = tokens.view(features.shape[0], self.num_tokens, self.llm_dim)
        if self.output_norm is None:
            return tokens
        return self.output_norm(tokens.float()).to(tokens.dtype)  # in fp32 under autocast, as LLMs' RMSNorms

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_tokens={self.num_tokens}, pool={self.pool!r}"


class MacawAligner(_CheckedProjector):
    """Macaw-LLM's alignment module: Conv1D length compression, Linear, attention over the LLM embeddings.

    Following the paper (sec. 3.3, eq. 3-4) and the reference ``modeling.py`` (lyuchenyang/Macaw-LLM,
    ``MM_LLMs``): ``Conv1d(dim_in, dim_in, kernel_size, stride)`` along the token axis, then
    ``Linear(dim_in, llm_dim)``, then ``nn.MultiheadAttention(llm_dim, num_heads, dropout=0.1,
    add_bias_kv=True, add_zero_attn=True)`` whose query is the compressed features and whose keys and values
    are the backbone's input-embedding matrix ``E`` (``[vocab, llm_dim]``). As in the reference, there is no
    residual connection and no normalisation around these steps; the attention output is the result.

    Reference kernel/stride: image 48/36 over 196 patches (5 tokens), video 36/30 over 6 x 196 (39), audio
    240/220 over Whisper's 1500 frames (6). With ``video_frames`` set, the reference's temporal block runs
    first: a position encoding, then a self-attention (same kind of ``MultiheadAttention``, width
    ``dim_in``, ``temporal_heads`` heads) over the whole frame-patch sequence; the input must then hold
    ``video_frames * patches_per_frame`` tokens. ``video_position="sinusoidal"`` (default) is the released
    ``encode_video_long``: a fixed sin/cos encoding over all ``frames x patches`` positions, with the
    reference's frequencies ``10000^(-2i/d)`` for even ``i``; ``video_position="frame"`` is the earlier
    ``encode_video``'s learned per-frame embedding (``nn.Embedding(video_frames, dim_in)``) added to every
    token of its frame. The reference uses ``attention_heads`` (8) for the video self-attention and twice
    that (16) for the alignment attention.

    ``E`` is read from ``backbone.model.get_input_embeddings().weight`` at every call (so a matrix resized
    for new tokens is seen, and gradients reach it when it is trainable); the aligner keeps a plain
    reference to the backbone, outside its modules and state dict. Because the keys and values are
    the same for every item, the batch is folded into the query axis and ``E`` is projected once per call
    instead of once per item (the result is identical).
    """

    needs_backbone = True
    tiny_args = {"kernel_size": 4, "stride": 3, "num_heads": 4}
    tiny_input_lengths = (4, 10, 20)

    def __init__(
        self,
        dim_in: int,
        llm_dim: int,
        *,
        kernel_size: int = 48,
        stride: int = 36,
        num_heads: int = 8,
        dropout: float = 0.1,
        video_frames: int | None = None,
        patches_per_frame: int | None = None,
        video_position: MacawPosition = "sinusoidal",
        temporal_heads: int | None = None,
    ) -> None:
        super().__init__(dim_in, llm_dim)
        owner = "MacawAligner"
        _require_positive(owner, kernel_size=kernel_size, stride=stride, num_heads=num_heads)
        _require_divides(owner, "num_heads", num_heads, "llm_dim", llm_dim)
        _require_choice(owner, "video_position", video_position, ("sinusoidal", "frame"))
        self.kernel_size, self.stride, self.num_heads = kernel_size, stride, num_heads
        self.video_frames, self.patches_per_frame = video_frames, patches_per_frame
        self.video_position = video_position
        self.temporal_heads = num_heads if temporal_heads is None else temporal_heads
        if video_frames is not None or patches_per_frame is not None:
            self._build_temporal(video_frames, patches_per_frame, dropout)
        self.compress = nn.Conv1d(dim_in, dim_in, kernel_size=kernel_size, stride=stride)
        self.to_llm = nn.Linear(dim_in, llm_dim)
        self.align_attention = self._attention(llm_dim, num_heads, dropout)

    @staticmethod
    def _attention(width: int, heads: int, dropout: float) -> nn.MultiheadAttention:
        return nn.MultiheadAttention(
            width, heads, dropout=dropout, add_bias_kv=True, add_zero_attn=True, batch_first=True
        )

    def _build_temporal(self, frames: int | None, patches: int | None, dropout: float) -> None:
        if frames is None or patches is None:
            raise ComponentArgumentError(
                "MacawAligner: video needs both video_frames and patches_per_frame "
                f"(got video_frames={frames!r}, patches_per_frame={patches!r}; Macaw uses 6 and 196)"
            )
        _require_positive("MacawAligner", video_frames=frames, patches_per_frame=patches)
        _require_positive("MacawAligner", temporal_heads=self.temporal_heads)
        _require_divides(
            "MacawAligner",
            "temporal_heads",
            self.temporal_heads,
            "dim_in (video self-attention)",
            self.dim_in,
        )
        if self.video_position == "frame":
            self.frame_position = nn.Embedding(frames, self.dim_in)
        elif self.dim_in % 2:
            raise ComponentArgumentError(
                f"MacawAligner: video_position='sinusoidal' needs an even dim_in, got {self.dim_in}"
            )
        self.temporal_attention = self._attention(self.dim_in, self.temporal_heads, dropout)

    def output_length(self, input_length: int) -> int:
        self._check_length(input_length)
        if self.video_frames is not None and input_length != self.video_frames * self.patches_per_frame:
            frames, patches = self.video_frames, self.patches_per_frame
            raise IncompatibleComponentsError(
                f"MacawAligner for video expects video_frames x patches_per_frame = {frames} x {patches} = "
                f"{frames * patches} tokens, got {input_length}"
            )
        if input_length < self.kernel_size:
            raise IncompatibleComponentsError(
                f"MacawAligner: input length {input_length} is shorter than its Conv1D "
                f"kernel_size={self.kernel_size}"
            )
        return (input_length - self.kernel_size) // self.stride + 1

    def attach_backbone(self, backbone: Backbone) -> None:
        """Keep a reference to ``backbone`` (not registered as a submodule) to read its embedding matrix."""
        self._embedding_weight(backbone)  # fail now, not at the first forward, if it does not fit
        object.__setattr__(self, "_backbone", backbone)

    def _embedding_weight(self, backbone: Backbone | None) -> torch.Tensor:
        if backbone is None:
            raise IncompatibleComponentsError(
                "MacawAligner attends over the backbone's input-embedding matrix: call "
                "attach_backbone(backbone) before forward (the composed model does this)"
            )
        try:
            weight = backbone.model.get_input_embeddings().weight
        except AttributeError as error:
            raise IncompatibleComponentsError(
                f"MacawAligner needs backbone.model.get_input_embeddings().weight; {type(backbone).__name__} "
                f"does not provide it ({error})"
            ) from error
        if weight.ndim != 2 or weight.shape[1] != self.llm_dim:
            raise IncompatibleComponentsError(
                f"MacawAligner was built for llm_dim={self.llm_dim} but the backbone's input-embedding "
                f"matrix has shape {tuple(weight.shape)}"
            )
        return weight

    def _temporal(self, features: torch.Tensor) -> torch.Tensor:
        if self.video_position == "frame":
            frame_index = torch.arange(self.video_frames, device=features.device)
            positions = self.frame_position(frame_index).repeat_interleave(self.patches_per_frame, dim=0)
        else:
            positions = _macaw_sinusoid(
                self.video_frames * self.patches_per_frame, self.dim_in, features.device
            )
        hidden = features + positions.to(features.device, features.dtype)
        return self.temporal_attention(hidden, hidden, hidden, need_weights=False)[0]

    def _align(self, hidden: torch.Tensor) -> torch.Tensor:
        embeddings = self._embedding_weight(self.__dict__.get("_backbone"))
        batch, length, width = hidden.shape
        query = hidden.reshape(1, batch * length, width)  # same keys for every item: one attention call
        keys = embeddings.to(hidden.dtype).unsqueeze(0)
        aligned = self.align_attention(query, keys, keys, need_weights=False)[0]
        return aligned.reshape(batch, length, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check_features(features)
        self._embedding_weight(self.__dict__.get("_backbone"))
        hidden = self._temporal(features) if self.video_frames is not None else features
        hidden = self.compress(hidden.transpose(1, 2)).transpose(1, 2)
        return self._align(self.to_llm(hidden))

    def extra_repr(self) -> str:
        video = (
            f", video_frames={self.video_frames}, patches_per_frame={self.patches_per_frame}, "
            f"video_position={self.video_position!r}, temporal_heads={self.temporal_heads}"
        )
        return (
            f"{super().extra_repr()}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"num_heads={self.num_heads}" + (video if self.video_frames is not None else "")
        )


def _macaw_sinusoid(length: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """The released Macaw ``create_positional_encoding``: sin at even channels i, cos at i + 1, both at
    frequency ``10000^(-2i/width)`` (twice the usual exponent, as released; kept so features match)."""
    even = torch.arange(0, width, 2, dtype=torch.float32, device=device)
    frequency = torch.exp(-(math.log(10000.0) / width) * 2 * even)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * frequency[None, :]
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).flatten(1)


class QFormerProjector(_CheckedProjector):
    """BLIP-2's Q-Former (transformers ``Blip2QFormerModel``) with learned queries and a language projection.

    As in ``Blip2ForConditionalGeneration``: ``num_queries`` learned query tokens cross-attend to the encoder
    features (``encoder_hidden_size = dim_in``) every ``cross_attention_frequency`` layers, and
    ``language_projection`` maps them to ``llm_dim``. Defaults are BLIP-2's Q-Former (BERT-base size: 768
    wide, 12 layers, 12 heads, cross-attention every 2nd layer, 32 queries), which Ying-VLM trains with its
    projection. The query tokens start from N(0, 0.02) as in BLIP-2's original code (transformers starts
    them at zero, fine for loading checkpoints but it leaves every query identical when training anew).

    ``frames > 1`` reads video as InstructBLIP and Ying-VLM do: the input holds ``frames`` equally long
    per-frame token sequences, the Q-Former reads each frame on its own, and the frames' query outputs are
    concatenated (``frames x num_queries`` tokens). ``source`` (a BLIP-2 checkpoint: Hub id or folder)
    loads ``query_tokens`` and ``qformer.*`` from it, and ``language_projection.*`` when its shape fits
    this ``llm_dim`` (BLIP-2 OPT-2.7B projects to 2560; a new LLM width keeps a fresh projection).
    """

    tiny_args = {
        "num_queries": 5,
        "hidden_size": 32,
        "num_layers": 2,
        "num_heads": 4,
        "intermediate_size": 64,
    }

    def __init__(
        self,
        dim_in: int,
        llm_dim: int,
        *,
        num_queries: int = 32,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        cross_attention_frequency: int = 2,
        dropout: float = 0.1,
        frames: int = 1,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
    ) -> None:
        super().__init__(dim_in, llm_dim)
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        owner = "QFormerProjector"
        _require_positive(owner, num_queries=num_queries, hidden_size=hidden_size, num_layers=num_layers)
        _require_positive(owner, frames=frames)
        _require_positive(
            owner, intermediate_size=intermediate_size, cross_attention_frequency=cross_attention_frequency
        )
        _require_divides(owner, "num_heads", num_heads, "hidden_size", hidden_size)
        config = Blip2QFormerConfig(
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size,
            cross_attention_frequency=cross_attention_frequency,
            encoder_hidden_size=dim_in,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
        )
        self.num_queries, self.frames = num_queries, frames
        self.query_tokens = nn.Parameter(torch.empty(1, num_queries, hidden_size))
        nn.init.normal_(self.query_tokens, std=config.initializer_range)
        self.qformer = Blip2QFormerModel(config)
        self.language_projection = nn.Linear(hidden_size, llm_dim)
        if source is not None and load_weights:
            self._load_blip2(source, revision)

    def _load_blip2(self, source: str, revision: str | None) -> None:
        from zoo.components.blip2_vision import checkpoint_tensors
        from zoo.weights import materialize

        prefixes = ("query_tokens", "qformer.", "language_projection.")
        tensors = checkpoint_tensors(materialize(source, revision), prefixes)
        own = self.state_dict()
        fits = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
        required = [k for k in own if not k.startswith("language_projection.")]
        missing = [k for k in required if k not in fits]
        if missing:
            raise IncompatibleComponentsError(
                f"QFormerProjector: checkpoint {source!r} has no matching tensors for {missing[:5]} "
                f"({len(missing)} in all); its Q-Former size differs from this projector's arguments"
            )
        self.load_state_dict(fits, strict=False)

    def output_length(self, input_length: int) -> int:
        self._check_length(input_length)
        if input_length % self.frames:
            raise IncompatibleComponentsError(
                f"QFormerProjector with frames={self.frames} needs an input length divisible by {self.frames} "
                f"(one equal block of tokens per frame), got {input_length}"
            )
        return self.frames * self.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check_features(features)
        batch, length, width = features.shape
        per_frame = features.reshape(batch * self.frames, length // self.frames, width)
        queries = self.query_tokens.expand(per_frame.shape[0], -1, -1)
        output = self.qformer(query_embeds=queries, encoder_hidden_states=per_frame, return_dict=True)
        hidden = output.last_hidden_state.to(self.language_projection.weight.dtype)
        return self.language_projection(hidden).reshape(batch, self.frames * self.num_queries, self.llm_dim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_queries={self.num_queries}, frames={self.frames}"


class PerceiverResampler(_CheckedProjector):
    """Learned latents cross-attending to the features: Idefics2's connector (transformers).

    ``modality_projection`` (Idefics2's SwiGLU MLP, dim_in -> ``intermediate_size`` -> llm_dim) then
    ``perceiver_resampler`` (``Idefics2PerceiverResampler``: ``depth`` blocks in which the ``num_latents``
    latents attend to [features; latents], with ``num_heads`` query heads of ``head_dim`` and
    ``num_key_value_heads`` shared key/value heads, RMSNorm, SwiGLU MLP), at the LLM width. Defaults are
    Idefics2-8b's (64 latents, depth 3, 16 heads of 96, 4 key/value heads). ``intermediate_size`` defaults
    to ``4 * llm_dim``. The latents start from N(0, 1) as in Flamingo/IDEFICS (transformers starts them at
    one, which leaves every latent identical when training anew).
    """

    tiny_args = {"num_latents": 6, "depth": 2, "num_heads": 4, "head_dim": 8, "num_key_value_heads": 2}

    def __init__(
        self,
        dim_in: int,
        llm_dim: int,
        *,
        num_latents: int = 64,
        depth: int = 3,
        num_heads: int = 16,
        head_dim: int = 96,
        num_key_value_heads: int = 4,
        intermediate_size: int | None = None,
    ) -> None:
        super().__init__(dim_in, llm_dim)
        from transformers import Idefics2PerceiverConfig
        from transformers.models.idefics2.modeling_idefics2 import Idefics2MLP, Idefics2PerceiverResampler

        owner = "PerceiverResampler"
        intermediate_size = 4 * llm_dim if intermediate_size is None else intermediate_size
        _require_positive(owner, num_latents=num_latents, depth=depth, num_heads=num_heads, head_dim=head_dim)
        _require_positive(owner, num_key_value_heads=num_key_value_heads, intermediate_size=intermediate_size)
        _require_divides(owner, "num_key_value_heads", num_key_value_heads, "num_heads", num_heads)
        self.num_latents = num_latents
        self.modality_projection = Idefics2MLP(dim_in, intermediate_size, llm_dim, hidden_act="silu")
        config = Idefics2PerceiverConfig(
            hidden_size=llm_dim,
            resampler_n_latents=num_latents,
            resampler_depth=depth,
            resampler_n_heads=num_heads,
            resampler_head_dim=head_dim,
            num_key_value_heads=num_key_value_heads,
        )
        self.perceiver_resampler = Idefics2PerceiverResampler(config)
        nn.init.normal_(self.perceiver_resampler.latents)

    def output_length(self, input_length: int) -> int:
        self._check_length(input_length)
        return self.num_latents

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self._check_features(features)
        context = self.modality_projection(features)
        mask = torch.ones(features.shape[:2], dtype=torch.long, device=features.device)
        return self.perceiver_resampler(context=context, attention_mask=mask)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, num_latents={self.num_latents}"
