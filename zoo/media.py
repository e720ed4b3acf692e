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
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from zoo.errors import MediaError

_BASE64_MIN_LENGTH = 64
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
CACHE_ENV = "ZOO_MEDIA_CACHE"


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
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    cached = media_cache_dir(cache_dir) / parts.netloc / unquote(parts.path).lstrip("/")
    if not cached.is_file():
        raise MediaError(
            f"{describe(url)} is not in the local media cache (looked for {cached}); nothing is downloaded: "
            f"fetch it into the cache folder (${CACHE_ENV} or cache_dir) first"
        )
    return cached


def _looks_like_base64(text: str) -> bool:
    return len(text) >= _BASE64_MIN_LENGTH and "/" not in text[:8] and not Path(text[:255]).suffix


def local_path(item: Any, modality: str, cache_dir: str | Path | None = None) -> Path | None:
    """The file a path or URL item names (checked to exist), or ``None`` for bytes/base64/in-memory items."""
    if not isinstance(item, (str, Path)):
        return None
    text = str(item)
    if text.startswith(("file://", "http://", "https://")):
        path = resolve_url(text, cache_dir)
    elif text.startswith("data:") or (_looks_like_base64(text) and not Path(text[:4096]).exists()):
        return None
    else:
        path = Path(text).expanduser()
    if not path.is_file():
        raise MediaError(f"{modality} {describe(item)}: no such file")
    return path


def read_bytes(item: str | Path | bytes, modality: str, cache_dir: str | Path | None = None) -> bytes:
    """Raw bytes of a media item: a path, a URL cached locally, base64 (optionally a data: URL) or bytes."""
    if isinstance(item, bytes):
        return item
    path = local_path(item, modality, cache_dir)
    if path is not None:
        return path.read_bytes()
    text = str(item)
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MediaError(
            f"{modality} {describe(item)}: neither an existing file nor valid base64 ({error})"
        ) from None


# -- images -----------------------------------------------------------------------------------------------
def load_image(item: Any, cache_dir: str | Path | None = None) -> Any:
    """An RGB ``PIL.Image`` from a PIL image, numpy array, path, URL, base64 string or bytes."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(item, Image.Image):
        image = item
    elif isinstance(item, np.ndarray):
        image = Image.fromarray(item)
    else:
        try:
            image = Image.open(io.BytesIO(read_bytes(item, "image", cache_dir)))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError) as error:
            if isinstance(error, MediaError):
                raise
            raise MediaError(f"image {describe(item)}: cannot be decoded ({error})") from None
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))  # transparent pixels become white
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")


# -- audio ------------------------------------------------------------------------------------------------
def load_audio(item: Any, sampling_rate: int = 16000, cache_dir: str | Path | None = None) -> np.ndarray:
    """A mono float32 waveform at ``sampling_rate`` from an array, path, URL, base64 string or bytes.

    A bare array is taken to be at ``sampling_rate`` already; ``(array, rate)`` tuples are resampled.
    """
    if isinstance(item, tuple) and len(item) == 2:
        waveform, rate = np.asarray(item[0], dtype=np.float32), int(item[1])
    elif isinstance(item, np.ndarray):
        waveform, rate = item.astype(np.float32, copy=False), sampling_rate
    else:
        waveform, rate = _decode_audio(item, cache_dir)
    if waveform.ndim == 2:  # soundfile gives [frames, channels]
        waveform = waveform.mean(axis=1)
    if waveform.ndim != 1 or waveform.size == 0:
        raise MediaError(f"audio {describe(item)}: expected a non-empty mono or multi-channel waveform")
    return _resample(waveform, rate, sampling_rate) if rate != sampling_rate else waveform


def _decode_audio(item: Any, cache_dir: str | Path | None) -> tuple[np.ndarray, int]:
    """soundfile for audio files (WAV, FLAC, OGG, MP3); PyAV for the audio track of a video (Macaw's
    audio-with-video samples point at the MP4 itself)."""
    import soundfile

    data = read_bytes(item, "audio", cache_dir)
    try:
        waveform, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        track = _audio_track(data)
        if track is None:
            raise MediaError(f"audio {describe(item)}: cannot be decoded ({error})") from None
        return track
    return waveform, int(rate)


def _audio_track(data: bytes) -> tuple[np.ndarray, int] | None:
    """The first audio stream of a container (e.g. an MP4's soundtrack) as mono float32, or None."""
    import av

    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            to_mono = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
            chunks = [
                converted.to_ndarray().reshape(-1)
                for frame in container.decode(stream)
                for converted in to_mono.resample(frame)
            ]
            chunks += [converted.to_ndarray().reshape(-1) for converted in to_mono.resample(None)]
    except (av.FFmpegError, ValueError):
        return None
    return (np.concatenate(chunks).astype(np.float32), int(stream.rate)) if chunks else None


def _resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    import torch
    import torchaudio.functional

    tensor = torch.from_numpy(np.ascontiguousarray(waveform))
    return torchaudio.functional.resample(tensor, rate, target).numpy()


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

    if num_frames < 1:
        raise MediaError(f"video {describe(item)}: num_frames must be >= 1, got {num_frames}")
    path = local_path(item, "video", cache_dir)
    source = str(path) if path is not None else io.BytesIO(read_bytes(item, "video", cache_dir))
    try:
        with av.open(source) as container:
            return _sample_container(container, item, num_frames, start, end)
    except av.FFmpegError as error:
        raise MediaError(f"video {describe(item)}: cannot be decoded ({error})") from None


def _sample_container(
    container: Any, item: Any, num_frames: int, start: float | None, end: float | None
) -> DecodedVideo:
    if not container.streams.video:
        raise MediaError(f"video {describe(item)}: the file has no video stream")
    stream = container.streams.video[0]
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
    if stream.duration:
        return float(stream.duration * stream.time_base)
    if container.duration:
        import av

        return container.duration / av.time_base
    raise MediaError("video stream has no known duration")


def _check_range(item: Any, start: float | None, end: float | None, duration: float) -> tuple[float, float]:
    first = 0.0 if start is None else float(start)
    last = duration if end is None else min(float(end), duration)
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


def load_video(item: Any, num_frames: int | None = None, cache_dir: str | Path | None = None) -> list[Any]:
    """Frames of a video: ``num_frames`` sampled uniformly (all of them for frame lists when ``None``).

    ``item`` is a video file (path, URL, base64 or bytes, decoded with PyAV), a time range of one
    (``{"video": ..., "start": seconds, "end": seconds}``), a folder of frame images (sorted by name) or
    a list of frames (images, paths, arrays).
    """
    if isinstance(item, dict):
        return _load_range(item, num_frames, cache_dir)
    if isinstance(item, (str, Path)) and not str(item).startswith(("http", "file:")) and Path(item).is_dir():
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
    try:
        start = None if item.get("start") is None else float(item["start"])
        end = None if item.get("end") is None else float(item["end"])
    except (TypeError, ValueError):
        raise MediaError(f"video range {describe(item)}: start/end must be numbers of seconds") from None
    return read_video(item["video"], num_frames or 8, start, end, cache_dir).frames


def _pick_frames(frames: list[Any], num_frames: int | None, cache_dir: str | Path | None) -> list[Any]:
    chosen = frames if num_frames is None else [frames[i] for i in uniform_indices(len(frames), num_frames)]
    return [load_image(frame, cache_dir) for frame in chosen]


LOADERS = {"image": load_image, "audio": load_audio, "video": load_video}
