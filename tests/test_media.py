"""Media decoding: images from paths/base64/bytes with EXIF orientation, audio read and resampled, errors."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile
from PIL import Image

from zoo.errors import MediaError
from zoo.media import load_audio, load_image, load_video


def png_bytes(size: tuple[int, int] = (30, 20), mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_from_path_base64_data_url_and_bytes_is_rgb(tmp_path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes())
    encoded = base64.b64encode(png_bytes()).decode()
    for item in (str(path), path, encoded, f"data:image/png;base64,{encoded}", png_bytes()):
        image = load_image(item)
        assert image.mode == "RGB" and image.size == (30, 20)


def test_exif_orientation_is_applied(tmp_path) -> None:
    image = Image.new("RGB", (40, 10), "blue")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (10, 40)


def test_missing_and_corrupt_images_name_the_item(tmp_path) -> None:
    with pytest.raises(MediaError, match="missing.png.*no such file"):
        load_image(str(tmp_path / "missing.png"))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(MediaError, match="corrupt.jpg.*cannot be decoded"):
        load_image(corrupt)
    with pytest.raises(MediaError, match="neither an existing file nor valid base64"):
        load_image("Q" * 100 + "!")


def test_audio_file_is_mixed_to_mono_and_resampled_to_16k(tmp_path) -> None:
    rate = 44100
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1).astype(np.float32)
    path = tmp_path / "tone.flac"
    soundfile.write(path, stereo, rate)
    waveform = load_audio(str(path), 16000)
    assert waveform.ndim == 1 and abs(len(waveform) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(np.argmax(spectrum) * 16000 / len(waveform) - 440) < 5  # the tone survives resampling


def test_audio_array_with_rate_is_resampled_and_bare_array_kept() -> None:
    assert len(load_audio((np.zeros(8000, np.float32), 8000), 16000)) == 16000
    assert len(load_audio(np.zeros(1234, np.float32), 16000)) == 1234


def test_undecodable_audio_is_a_media_error(tmp_path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(MediaError, match="noise.wav.*cannot be decoded"):
        load_audio(str(path))


def test_video_from_frame_folder_is_sorted(tmp_path) -> None:
    for index, colour in enumerate(["red", "green", "blue"]):
        Image.new("RGB", (8, 8), colour).save(tmp_path / f"frame_{index:02d}.png")
    frames = load_video(tmp_path)
    assert [f.getpixel((0, 0)) for f in frames] == [(255, 0, 0), (0, 128, 0), (0, 0, 255)]
    with pytest.raises(MediaError, match="list of frames or a folder"):
        load_video(42)


@pytest.mark.parametrize(
    ("fmt", "mode", "colour"),
    [("PNG", "RGB", (10, 200, 30)), ("JPEG", "L", 128), ("WEBP", "RGB", (0, 0, 255)), ("GIF", "P", 3)],
)
def test_png_jpeg_webp_gif_and_grayscale_decode_to_rgb(tmp_path, fmt, mode, colour) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    Image.new(mode, (12, 9), colour).save(path, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (12, 9)
    expected = Image.new(mode, (1, 1), colour).convert("RGB").getpixel((0, 0))
    assert all(abs(a - b) <= 2 for a, b in zip(image.getpixel((5, 5)), expected, strict=True))


def test_transparent_pixels_become_white_not_black(tmp_path) -> None:
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    path = tmp_path / "alpha.png"
    image.save(path)
    rgb = load_image(path)
    assert rgb.getpixel((3, 3)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (0, 0, 255)


def test_urls_read_local_files_and_the_media_cache_never_the_network(tmp_path, monkeypatch) -> None:
    local = tmp_path / "dir with space" / "a.png"
    local.parent.mkdir()
    local.write_bytes(png_bytes())
    assert load_image(local.as_uri()).size == (30, 20)
    cache = tmp_path / "cache"
    (cache / "example.com" / "images").mkdir(parents=True)
    (cache / "example.com" / "images" / "bird.png").write_bytes(png_bytes((7, 5)))
    monkeypatch.setenv("ZOO_MEDIA_CACHE", str(cache))
    assert load_image("https://example.com/images/bird.png").size == (7, 5)
    with pytest.raises(MediaError, match="not in the local media cache.*nothing is downloaded"):
        load_image("https://example.com/images/missing.png")
    other = tmp_path / "other"
    (other / "example.com").mkdir(parents=True)
    (other / "example.com" / "x.png").write_bytes(png_bytes((3, 3)))
    assert load_image("http://example.com/x.png", cache_dir=other).size == (3, 3)
