"""Decoding media items given as paths, URLs cached locally, base64 strings, bytes or in-memory objects.

Images become RGB PIL images (EXIF orientation applied); audio becomes a mono float32 waveform at the
encoder's sampling rate (soundfile to read, torchaudio to resample); video becomes a list of frames,
``num_frames`` of them sampled uniformly: from a video file with PyAV (seeking to the keyframe before
each target time and decoding forward to it, never the whole file), from a time range of a file
(``{"video": path, "start": s, "end": s}``, one shot), from a folder of frame images or from a list of
frames. ``http(s)://`` URLs are read from a local cache folder (``ZOO_MEDIA_CACHE``); nothing is
downloaded. Anything that cannot be decoded raises ``MediaError`` naming the item and the reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import itertools
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from zoo.errors import MediaError

_BASE64_MIN_LENGTH = 64
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")
_SPACE = re.compile(r"\s")
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
CACHE_ENV = "ZOO_MEDIA_CACHE"
# An image (or video frame) with more pixels than this is refused before it is decoded: a few kilobytes of
# PNG can declare gigapixels (a decompression bomb). 8192 x 8192; PIL's own limit is higher.
MAX_IMAGE_PIXELS = int(os.environ.get("ZOO_MAX_IMAGE_PIXELS", 8192 * 8192))
# Audio longer than this is refused before it is decoded, unless the caller gives its own limit.
MAX_AUDIO_SECONDS = float(os.environ.get("ZOO_MAX_AUDIO_SECONDS", 3600))
MAX_SAMPLING_RATE = 1_000_000  # above any real recording (768 kHz is the highest in use)
_AUDIO_BLOCK_SECONDS = 10  # audio is decoded, mixed to mono and resampled block by block


def describe(item: Any) -> str:
    """A short, printable name for a media item, for error messages."""
    if isinstance(item, (str, Path)):
        text = str(item)
        return repr(text if len(text) <= 80 else text[:40] + "…" + text[-20:])
    if isinstance(item, dict) and "video" in item:
        return f"{describe(item['video'])}[{item.get('start')}s..{item.get('end')}s]"
    return f"<{type(item).__name__}>"


# -- locating bytes ---------------------------------------------------------------------------------------
def media_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The folder holding media fetched earlier for ``http(s)://`` URLs: the argument, ``$ZOO_MEDIA_CACHE``,
    or ``~/.cache/zoo/media``."""
    chosen = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zoo" / "media"
    return Path(chosen).expanduser()


def resolve_url(url: str, cache_dir: str | Path | None = None) -> Path:
    """The local file behind a ``file://`` URL, or the cached copy of an ``http(s)://`` URL.

    A web URL ``https://host/a/b.jpg`` maps to ``CACHE/host/a/b.jpg`` (the layout ``wget -x`` writes).
    Nothing is downloaded: an uncached URL raises ``MediaError``.
    """
    try:
        parts = urlsplit(url)
    except ValueError as error:  # e.g. "http://[x/a.jpg": an unclosed IPv6 bracket
        raise MediaError(f"{describe(url)} is not a valid URL ({error})") from None
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    cached = media_cache_dir(cache_dir) / parts.netloc / unquote(parts.path).lstrip("/")
    if not is_file(cached):
        raise MediaError(
            f"{describe(url)} is not in the local media cache (looked for {cached}); nothing is downloaded: "
            f"fetch it into the cache folder (${CACHE_ENV} or cache_dir) first"
        )
    return cached


def is_file(path: str | Path) -> bool:
    """Whether ``path`` is a file; a name the OS cannot even look up (too long, NUL byte) is not one."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def is_dir(path: str | Path) -> bool:
    """Whether ``path`` is a folder; a name the OS cannot look up is not one."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def expand_user(text: str) -> Path:
    """``Path(text).expanduser()``, with an unknown ``~user`` as a ``MediaError``."""
    try:
        return Path(text).expanduser()
    except RuntimeError as error:  # "Could not determine home directory" for ~nosuchuser
        raise MediaError(f"{describe(text)}: {error}") from None


def base64_payload(text: str) -> str | None:
    """The base64 text of a ``data:`` URL or of a bare base64 string (line breaks allowed), else None.

    Base64 uses no ``.``, so a file name with an extension is never taken for it; a bare string counts
    only from 64 characters on (JPEG's ``/9j/4AAQ…`` starts like a path and is base64 all the same).
    """
    if text.startswith("data:"):
        header, sep, payload = text.partition(",")
        return "".join(payload.split()) if sep and header.endswith(";base64") else None
    if len(text) < _BASE64_MIN_LENGTH:
        return None
    compact = "".join(text.split()) if _SPACE.search(text) else text
    return compact if _BASE64.fullmatch(compact) else None


def local_path(item: Any, modality: str, cache_dir: str | Path | None = None) -> Path | None:
    """The file a path or URL item names (checked to exist), or ``None`` for bytes/base64/in-memory items."""
    if isinstance(item, Path):
        path = item
    elif isinstance(item, str):
        if item.startswith(("file://", "http://", "https://")):
            path = resolve_url(item, cache_dir)
        elif item.startswith("data:") or (base64_payload(item) is not None and not is_file(item)):
            return None
        else:
            path = expand_user(item)
    else:
        return None
    if not is_file(path):
        if isinstance(item, str) and len(item) >= _BASE64_MIN_LENGTH and not Path(item[-255:]).suffix:
            raise MediaError(f"{modality} {describe(item)}: neither an existing file nor valid base64")
        raise MediaError(f"{modality} {describe(item)}: no such file")
    return path


def read_bytes(item: Any, modality: str, cache_dir: str | Path | None = None) -> bytes:
    """Raw bytes of a media item: a path, a URL cached locally, base64 (optionally a data: URL) or bytes."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if not isinstance(item, (str, Path)):
        raise MediaError(
            f"{modality} {describe(item)}: expected a path, URL, base64 string or bytes, got {type(item).__name__}"
        )
    path = local_path(item, modality, cache_dir)
    if path is not None:
        try:
            return path.read_bytes()
        except OSError as error:
            raise MediaError(f"{modality} {describe(item)}: cannot be read ({error})") from None
    payload = base64_payload(str(item))
    if payload is None:
        raise MediaError(f"{modality} {describe(item)}: a data: URL that is not base64")
    try:
        if "-" in payload or "_" in payload:
            return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise MediaError(
            f"{modality} {describe(item)}: neither an existing file nor valid base64 ({error})"
        ) from None


# -- images -----------------------------------------------------------------------------------------------
def load_image(item: Any, cache_dir: str | Path | None = None, max_pixels: int | None = None) -> Any:
    """An RGB ``PIL.Image`` from a PIL image, numpy array, path, URL, base64 string or bytes.

    PNG, JPEG, WebP, GIF (first frame), BMP… as PIL reads them. An image of more than ``max_pixels``
    (default ``MAX_IMAGE_PIXELS``) is refused from its header, before it is decoded.
    """
    from PIL import Image

    budget = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if isinstance(item, Image.Image):
        _check_pixels(item.size, budget, item)
        return _to_rgb(item, item)
    try:
        if isinstance(item, np.ndarray):
            _check_pixels(item.shape[1::-1] if item.ndim >= 2 else (item.size, 1), budget, item)
            image = Image.fromarray(item)
        else:
            image = Image.open(io.BytesIO(read_bytes(item, "image", cache_dir)))
            _check_pixels(image.size, budget, item)
            image.load()
        return _to_rgb(image, item)
    except MediaError:
        raise
    except Image.DecompressionBombError as error:  # past PIL's own (higher) limit: refused from the header
        raise MediaError(f"image {describe(item)}: {error} (ZOO_MAX_IMAGE_PIXELS is {budget})") from None
    except Exception as error:  # PIL raises many types on corrupt data; each is this image's fault
        raise MediaError(f"image {describe(item)}: cannot be decoded ({_name(error)})") from None


def _check_pixels(size: tuple[int, int], budget: int, item: Any) -> None:
    width, height = size
    if width * height > budget:
        raise MediaError(
            f"image {describe(item)}: {width}x{height} pixels is more than the limit of {budget} "
            "(a decompression bomb, or an image to downscale first; ZOO_MAX_IMAGE_PIXELS sets the limit)"
        )
    if width < 1 or height < 1:
        raise MediaError(f"image {describe(item)}: has no pixels ({width}x{height})")


def _to_rgb(image: Any, item: Any) -> Any:
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))  # transparent pixels become white
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


def _name(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


# -- audio ------------------------------------------------------------------------------------------------
def load_audio(
    item: Any,
    sampling_rate: int = 16000,
    cache_dir: str | Path | None = None,
    *,
    max_seconds: float | None = None,
    truncate: bool = False,
) -> np.ndarray:
    """A mono float32 waveform at ``sampling_rate`` from an array, path, URL, base64 string or bytes.

    A bare array is taken to be at ``sampling_rate`` already; ``(array, rate)`` tuples are resampled.
    Files are decoded, mixed to mono and resampled block by block (soxr, whose cost does not depend on the
    ratio of the rates), so memory follows the output, not the file. A clip longer than ``max_seconds``
    (default ``MAX_AUDIO_SECONDS``) is a ``MediaError`` found from the header before decoding, or with
    ``truncate`` its first ``max_seconds`` (with a warning). NaN or infinite samples are a ``MediaError``, and
    so are finite ones so large that resampling overflows float32 into NaN or infinity.
    """
    target = _check_rate(sampling_rate, item, "target sampling rate")
    limit = MAX_AUDIO_SECONDS if max_seconds is None else float(max_seconds)
    if isinstance(item, tuple) and len(item) == 2:
        rate = _check_rate(item[1], item, "sampling rate")
        waveform = _as_waveform(item[0], item)
    elif isinstance(item, np.ndarray):
        rate, waveform = target, _as_waveform(item, item)
    else:
        return _decode_audio(item, target, limit, truncate, cache_dir)
    waveform = _fit_duration(waveform, rate, limit, truncate, item)
    _check_finite(waveform, item)
    return _check_resampled(resample(waveform, rate, target), waveform, item, rate, target)


def _check_rate(rate: Any, item: Any, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise MediaError(f"audio {describe(item)}: {what} must be a number of Hz, got {type(rate).__name__}")
    whole = isinstance(rate, (int, np.integer)) or (math.isfinite(rate) and float(rate).is_integer())
    if not whole or not 1 <= rate <= MAX_SAMPLING_RATE:  # ints are compared exactly (10**400 too)
        raise MediaError(
            f"audio {describe(item)}: {what} {rate!r:.40} is not a whole number of Hz in 1..{MAX_SAMPLING_RATE}"
        )
    return int(rate)


def _as_waveform(data: Any, item: Any) -> np.ndarray:
    try:
        waveform = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise MediaError(f"audio {describe(item)}: not an array of samples ({error})") from None
    if waveform.ndim == 2:  # soundfile's layout: [frames, channels]
        waveform = waveform.mean(axis=1, dtype=np.float32)
    if waveform.ndim != 1 or waveform.size == 0:
        raise MediaError(f"audio {describe(item)}: expected a non-empty mono or multi-channel waveform")
    return waveform


def _check_finite(waveform: np.ndarray, item: Any) -> None:
    if not np.isfinite(waveform).all():
        bad = int(np.count_nonzero(~np.isfinite(waveform)))
        raise MediaError(f"audio {describe(item)}: {bad} samples are NaN or infinite")


def _check_resampled(out: np.ndarray, source: np.ndarray, item: Any, rate: int, target: int) -> np.ndarray:
    """``out`` if it is finite: soxr's filter overflows float32 on finite samples near its limit (|x| about
    1e38 gives all NaN), so finite input alone does not make finite output."""
    if rate != target and not np.isfinite(out).all():
        bad = int(np.count_nonzero(~np.isfinite(out)))
        peak = float(np.max(np.abs(source), initial=0.0))
        raise MediaError(
            f"audio {describe(item)}: {bad} samples are NaN or infinite after resampling {rate} Hz to "
            f"{target} Hz: samples as large as {peak:.3g} overflow float32 (audio samples are expected in -1..1)"
        )
    return out


def _too_long(seconds: float, limit: float, item: Any) -> MediaError:
    return MediaError(
        f"audio {describe(item)}: {seconds:.1f}s is longer than the {limit:g}s this encoder takes "
        "(see the encoder's long_audio / max_audio_chunks arguments)"
    )


def _fit_duration(waveform: np.ndarray, rate: int, limit: float, truncate: bool, item: Any) -> np.ndarray:
    seconds = waveform.size / rate
    if seconds <= limit:
        return waveform
    if not truncate:
        raise _too_long(seconds, limit, item)
    _warn_truncated(seconds, limit)
    return waveform[: int(limit * rate)]


def _warn_truncated(seconds: float, limit: float) -> None:
    import logging
    import warnings

    message = f"audio clip of {seconds:.1f}s truncated to its first {limit:.0f}s (long_audio: truncate)"
    warnings.warn(message, stacklevel=4)
    logging.getLogger("zoo").warning(message)


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``waveform`` from ``rate`` to ``target`` Hz with soxr (time and memory linear in the samples, for any
    pair of rates: torchaudio's sinc kernels grow with ``rate / gcd(rate, target)``)."""
    if rate == target:
        return np.ascontiguousarray(waveform, dtype=np.float32)
    import soxr

    return soxr.resample(np.ascontiguousarray(waveform, dtype=np.float32), rate, target, quality="HQ")


def _decode_audio(
    item: Any, target: int, limit: float, truncate: bool, cache_dir: str | Path | None
) -> np.ndarray:
    """soundfile for audio files (WAV, FLAC, OGG, MP3); PyAV for the audio track of a video (Macaw's
    audio-with-video samples point at the MP4 itself)."""
    import soundfile

    path = local_path(item, "audio", cache_dir)  # a file is read from disk block by block, never whole
    source: Any = str(path) if path is not None else io.BytesIO(read_bytes(item, "audio", cache_dir))
    try:
        sound = soundfile.SoundFile(source)
    except Exception as error:  # libsndfile cannot read it: maybe a container with an audio track
        return _audio_track(source, item, target, limit, truncate, error)
    with sound:
        rate = _check_rate(sound.samplerate, item, "sampling rate")
        if sound.frames > 0 and sound.frames / rate > limit:
            if not truncate:
                raise _too_long(sound.frames / rate, limit, item)
            _warn_truncated(sound.frames / rate, limit)
        try:
            blocks = sound.blocks(blocksize=rate * _AUDIO_BLOCK_SECONDS, dtype="float32", always_2d=True)
            return _stream_resample(blocks, rate, target, limit, truncate, item)
        except MediaError:
            raise
        except Exception as error:
            raise MediaError(f"audio {describe(item)}: cannot be decoded ({_name(error)})") from None


def _stream_resample(
    blocks: Iterator[np.ndarray], rate: int, target: int, limit: float, truncate: bool, item: Any
) -> np.ndarray:
    """Blocks ``[frames, channels]`` mixed to mono, checked, resampled with one soxr stream, joined."""
    import soxr

    stream = soxr.ResampleStream(rate, target, 1, dtype="float32", quality="HQ") if rate != target else None
    budget = int(limit * rate)
    taken = 0
    out: list[np.ndarray] = []
    for block in blocks:
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if taken + mono.size > budget:
            if not truncate:
                raise _too_long((taken + mono.size) / rate, limit, item)
            mono = mono[: budget - taken]
        _check_finite(mono, item)
        taken += mono.size
        if stream is None:
            out.append(mono.copy())
        else:
            out.append(_check_resampled(stream.resample_chunk(mono, last=False), mono, item, rate, target))
        if taken >= budget:
            break
    if taken == 0:
        raise MediaError(f"audio {describe(item)}: the file holds no samples")
    if stream is not None:
        tail = stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        out.append(_check_resampled(tail, mono, item, rate, target))  # the filter's tail: the last block's
    return np.concatenate(out).astype(np.float32, copy=False)


def _audio_track(
    source: Any, item: Any, target: int, limit: float, truncate: bool, cause: BaseException
) -> np.ndarray:
    """The first audio stream of a container (e.g. an MP4's soundtrack), decoded by FFmpeg straight to mono
    float32 at ``target`` Hz, frame by frame, stopping at ``limit`` seconds."""
    import av

    budget = int(limit * target)
    chunks: list[np.ndarray] = []
    taken = 0
    try:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        with av.open(source) as container:
            if not container.streams.audio:
                raise MediaError(f"audio {describe(item)}: cannot be decoded ({_name(cause)})")
            stream = container.streams.audio[0]
            to_mono = av.AudioResampler(format="flt", layout="mono", rate=target)
            frames = (c for frame in container.decode(stream) for c in to_mono.resample(frame))
            for converted in itertools.chain(frames, to_mono.resample(None)):
                chunk = converted.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                _check_finite(chunk, item)
                chunks.append(chunk)
                taken += chunk.size
                if taken > budget:
                    if not truncate:
                        raise _too_long(taken / target, limit, item)
                    _warn_truncated(taken / target, limit)
                    break
    except MediaError:
        raise
    except Exception:  # FFmpeg cannot read it either: report what soundfile said
        raise MediaError(f"audio {describe(item)}: cannot be decoded ({_name(cause)})") from None
    if not chunks:
        raise MediaError(f"audio {describe(item)}: the audio track holds no samples")
    return np.concatenate(chunks)[:budget]


# -- video ------------------------------------------------------------------------------------------------
def uniform_indices(total: int, count: int) -> list[int]:
    """``count`` frame indices spread uniformly over ``total`` frames (the centre of each equal segment)."""
    if total < 1:
        raise MediaError("video has no frames")
    return [min(total - 1, int((i + 0.5) * total / count)) for i in range(count)]


@dataclass
class DecodedVideo:
    """Frames sampled from a video file, their presentation times, and how much decoding it took."""

    frames: list[Any]
    times: list[float]
    frames_decoded: int
    total_frames: int
    duration: float
    seeks: int = 0
    keyframes: list[float] = field(default_factory=list)


def read_video(
    item: Any,
    num_frames: int,
    start: float | None = None,
    end: float | None = None,
    cache_dir: str | Path | None = None,
) -> DecodedVideo:
    """``num_frames`` frames sampled uniformly from a video file (path, URL, base64 or bytes) with PyAV.

    The range ``[start, end)`` (seconds, default the whole stream) is split into ``num_frames`` equal
    segments and the frame shown at each segment's centre is returned. The decoder seeks to the keyframe
    before each target and decodes forward to it; it keeps decoding instead when the next target lies
    in the group of pictures it is already in, so no frame is decoded twice and most are never decoded.
    """
    import av

    num_frames = _check_num_frames(num_frames, item)
    path = local_path(item, "video", cache_dir)
    source = str(path) if path is not None else io.BytesIO(read_bytes(item, "video", cache_dir))
    try:
        with av.open(source) as container:
            return _sample_container(container, item, num_frames, start, end)
    except MediaError:
        raise
    except Exception as error:  # FFmpeg errors, and what PyAV raises on a broken stream's values
        raise MediaError(f"video {describe(item)}: cannot be decoded ({_name(error)})") from None


MAX_FRAMES = 1024  # frames sampled from one video item


def _check_num_frames(num_frames: Any, item: Any) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or not 1 <= num_frames <= MAX_FRAMES:
        raise MediaError(
            f"video {describe(item)}: num_frames must be an integer in 1..{MAX_FRAMES}, got {num_frames!r}"
        )
    return num_frames


def _sample_container(
    container: Any, item: Any, num_frames: int, start: float | None, end: float | None
) -> DecodedVideo:
    if not container.streams.video:
        raise MediaError(f"video {describe(item)}: the file has no video stream")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
    if width * height > MAX_IMAGE_PIXELS:
        raise MediaError(
            f"video {describe(item)}: frames of {width}x{height} pixels are more than the limit of "
            f"{MAX_IMAGE_PIXELS} (ZOO_MAX_IMAGE_PIXELS)"
        )
    base = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    duration = _duration(container, stream)
    first, last = _check_range(item, start, end, duration)
    span = last - first
    targets = [first + (i + 0.5) * span / num_frames for i in range(num_frames)]
    sampler = _Sampler(container, stream, base)
    frames, times = zip(*(sampler.frame_at(t) for t in targets), strict=True)
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    total = stream.frames or int(round(duration * rate))
    return DecodedVideo(
        frames=[f.to_image() for f in frames],
        times=list(times),
        frames_decoded=sampler.decoded,
        total_frames=total,
        duration=duration,
        seeks=sampler.seeks,
        keyframes=sampler.keyframes,
    )


def _duration(container: Any, stream: Any) -> float:
    duration = None
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        import av

        duration = container.duration / av.time_base
    if duration is None or not math.isfinite(duration) or duration <= 0:
        raise MediaError("video stream has no known duration")
    return duration


def _check_range(item: Any, start: float | None, end: float | None, duration: float) -> tuple[float, float]:
    first = 0.0 if start is None else _seconds(start, item)
    last = duration if end is None else min(_seconds(end, item), duration)
    if first < 0 or first >= duration:
        raise MediaError(f"video {describe(item)}: start {first}s is outside the video (0..{duration:.3f}s)")
    if last <= first:
        raise MediaError(f"video {describe(item)}: empty time range {first}s..{last}s")
    return first, last


class _Sampler:
    """Walks a video stream to successive target times, seeking only when that saves decoding."""

    def __init__(self, container: Any, stream: Any, base: float) -> None:
        self.container, self.stream, self.base = container, stream, base
        self.frames: Iterator[Any] | None = None
        self.current: Any = None  # last frame at or before the previous target
        self.ahead: Any = None  # first frame after it (already decoded)
        self.decoded = 0
        self.seeks = 0
        self.keyframes: list[float] = []
        self._index: list[float] | None = None

    def frame_at(self, target: float) -> tuple[Any, float]:
        """The frame displayed at ``target`` seconds (relative to the stream start) and its time."""
        if self.ahead is None or self._time(self.ahead) <= target:
            if self.frames is None or not self._worth_continuing(target):
                self._seek(target)
            self._decode_to(target)
        if self.current is None:
            raise MediaError(f"no frame decodes at {target:.3f}s")
        return self.current, self._time(self.current)

    def _time(self, frame: Any) -> float:
        return float(frame.pts * frame.time_base) - self.base

    def _worth_continuing(self, target: float) -> bool:
        """Whether decoding on from here is cheaper than seeking to the keyframe before ``target``.

        Keyframe times come from the container's index when it has one (MP4, MKV); otherwise from the
        keyframes decoded so far, assuming a regular group-of-pictures length.
        """
        if self.ahead is None:
            return False
        position = self._time(self.ahead)
        index = self._index_keyframes()
        if index:
            return not any(position < key <= target for key in index)
        if len(self.keyframes) >= 2:
            gop = min(b - a for a, b in zip(self.keyframes, self.keyframes[1:], strict=False) if b > a)
            return target < self.keyframes[-1] + gop
        since_key = position - (self.keyframes[-1] if self.keyframes else 0.0)
        return target - position <= since_key

    def _index_keyframes(self) -> list[float]:
        if self._index is None:
            base, unit = self.base, self.stream.time_base
            entries = getattr(self.stream, "index_entries", None) or []
            self._index = [float(e.timestamp * unit) - base for e in entries if e.is_keyframe]
        return self._index

    def _seek(self, target: float) -> None:
        offset = int((target + self.base) / self.stream.time_base)
        self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
        self.frames = self.container.decode(self.stream)
        self.current = self.ahead = None
        self.seeks += 1

    def _decode_to(self, target: float) -> None:
        if self.ahead is not None:  # the look-ahead frame from the previous target
            frame, self.ahead = self.ahead, None
            if self._place(frame, target):
                return
        for frame in self.frames or ():
            self.decoded += 1
            if frame.pts is None:
                continue
            if frame.key_frame:
                self._note_keyframe(frame)
            if self._place(frame, target):
                return

    def _place(self, frame: Any, target: float) -> bool:
        """Take ``frame`` as the current one, or keep it as the look-ahead once it is past ``target``."""
        if self._time(frame) <= target + 1e-6:
            self.current = frame
            return False
        self.ahead = frame
        if self.current is None:  # the target lies before the first frame: show the first frame
            self.current = frame
        return True

    def _note_keyframe(self, frame: Any) -> None:
        time = self._time(frame)
        if time not in self.keyframes:
            self.keyframes.append(time)
            self.keyframes.sort()


def _seconds(value: Any, item: Any) -> float:
    """A time in seconds: a finite number (``10**400`` or NaN is a ``MediaError``, not an overflow)."""
    if isinstance(value, bool):
        raise MediaError(f"video range {describe(item)}: start/end must be numbers of seconds, got a bool")
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MediaError(
            f"video range {describe(item)}: start/end must be numbers of seconds, got {value!r:.40}"
        ) from None
    if not math.isfinite(seconds):
        raise MediaError(f"video range {describe(item)}: start/end must be finite, got {value!r}")
    return seconds


def load_video(item: Any, num_frames: int | None = None, cache_dir: str | Path | None = None) -> list[Any]:
    """Frames of a video: ``num_frames`` sampled uniformly (all of them for frame lists when ``None``).

    ``item`` is a video file (path, URL, base64 or bytes, decoded with PyAV), a time range of one
    (``{"video": ..., "start": seconds, "end": seconds}``), a folder of frame images (sorted by name) or
    a list of frames (images, paths, arrays).
    """
    if isinstance(item, dict):
        return _load_range(item, num_frames, cache_dir)
    if isinstance(item, (str, Path)) and not str(item).startswith(("http", "file:")) and is_dir(item):
        frames = sorted(p for p in Path(item).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not frames:
            raise MediaError(f"video {describe(item)}: the folder holds no image frames")
        return _pick_frames(frames, num_frames, cache_dir)
    if isinstance(item, (list, tuple)) and item:
        return _pick_frames(list(item), num_frames, cache_dir)
    if isinstance(item, (str, Path, bytes)):
        return read_video(item, num_frames or 8, cache_dir=cache_dir).frames
    raise MediaError(
        f"video {describe(item)}: give a video file, a {{video, start, end}} range, a list of frames "
        "or a folder of frame images"
    )


def _load_range(item: dict, num_frames: int | None, cache_dir: str | Path | None) -> list[Any]:
    if "video" not in item:
        raise MediaError(f"video range {item!r}: needs a `video` file and optional `start`/`end` seconds")
    start = None if item.get("start") is None else _seconds(item["start"], item)
    end = None if item.get("end") is None else _seconds(item["end"], item)
    return read_video(item["video"], num_frames or 8, start, end, cache_dir).frames


def _pick_frames(frames: list[Any], num_frames: int | None, cache_dir: str | Path | None) -> list[Any]:
    if num_frames is not None:
        num_frames = _check_num_frames(num_frames, frames)
    elif len(frames) > MAX_FRAMES:
        raise MediaError(f"video of {len(frames)} frames: more than {MAX_FRAMES}; give num_frames to sample")
    chosen = frames if num_frames is None else [frames[i] for i in uniform_indices(len(frames), num_frames)]
    return [load_image(frame, cache_dir) for frame in chosen]


LOADERS = {"image": load_image, "audio": load_audio, "video": load_video}
