"""Video decoding with PyAV: uniform sampling, per-shot time ranges, seeking instead of decoding everything."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from zoo.errors import MediaError
from zoo.media import load_video, read_video

FPS, FRAMES, STEP = 24, 48, 5  # frame i is a flat grey of level i * STEP


def write_mp4(path, frames: int = FRAMES, gop: int = 12) -> None:
    """An H.264 MP4 whose frame i is grey level i*STEP, with a keyframe every ``gop`` frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "0"}
        for i in range(frames):
            image = np.full((32, 32, 3), (i * STEP) % 250, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def indices(frames) -> list[int]:
    return [round(np.asarray(f)[..., 0].mean() / STEP) for f in frames]


@pytest.fixture
def mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    write_mp4(path)
    return path


def test_uniform_sampling_picks_the_frame_at_each_segment_centre(mp4) -> None:
    video = read_video(mp4, 4)
    assert indices(video.frames) == [6, 18, 30, 42]  # centres of 4 equal segments of 48 frames
    assert video.times == pytest.approx([0.25, 0.75, 1.25, 1.75], abs=1e-6)
    assert video.total_frames == FRAMES and video.duration == pytest.approx(2.0)
    assert all(f.mode == "RGB" and f.size == (32, 32) for f in video.frames)


def test_seeking_decodes_far_fewer_frames_than_the_file_has(tmp_path) -> None:
    path = tmp_path / "long.mp4"
    write_mp4(path, frames=240, gop=24)  # 10 s, a keyframe every second
    video = read_video(path, 4)  # targets at frames 30, 90, 150, 210
    assert video.seeks == 4  # one seek per group of pictures holding a target
    assert video.frames_decoded <= 4 * 25  # at most one group of pictures (+1 look-ahead) per target
    assert video.frames_decoded < video.total_frames / 4


def test_one_long_group_of_pictures_is_decoded_once_not_per_target(tmp_path) -> None:
    path = tmp_path / "one_gop.mp4"
    write_mp4(path, gop=1000)
    video = read_video(path, 8)
    assert indices(video.frames) == [3, 9, 15, 21, 27, 33, 39, 45]
    assert video.seeks == 1 and video.frames_decoded <= FRAMES


def test_time_range_is_sampled_within_the_shot(mp4) -> None:
    frames = load_video({"video": str(mp4), "start": 1.0, "end": 1.5}, num_frames=4)
    assert indices(frames) == [25, 28, 31, 34]  # 1.0 s..1.5 s is frames 24..35


def test_video_from_bytes_and_more_frames_than_the_file(mp4) -> None:
    frames = load_video(mp4.read_bytes(), num_frames=4)
    assert indices(frames) == [6, 18, 30, 42]
    assert len(read_video(mp4, FRAMES * 2).frames) == FRAMES * 2  # short clips repeat frames


def test_frame_lists_and_folders_are_sampled_without_loading_every_frame(tmp_path) -> None:
    for i in range(10):
        Image.new("RGB", (8, 8), (i * STEP,) * 3).save(tmp_path / f"f{i:02d}.png")
    (tmp_path / "f05.png").write_bytes(b"not a png")  # never chosen for 2 frames of 10, so never read
    assert indices(load_video(tmp_path, num_frames=2)) == [2, 7]
    paths = sorted(str(p) for p in tmp_path.iterdir())
    assert indices(load_video(paths[:4], num_frames=2)) == [1, 3]


def test_corrupt_missing_and_bad_ranges_are_media_errors(mp4, tmp_path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(MediaError, match="corrupt.mp4.*cannot be decoded"):
        read_video(corrupt, 4)
    with pytest.raises(MediaError, match="missing.mp4.*no such file"):
        read_video(tmp_path / "missing.mp4", 4)
    with pytest.raises(MediaError, match="start 5.0s is outside the video"):
        load_video({"video": str(mp4), "start": 5, "end": 6}, 2)
    with pytest.raises(MediaError, match="empty time range"):
        load_video({"video": str(mp4), "start": 1, "end": 0.5}, 2)
    with pytest.raises(MediaError, match="no video stream"):
        audio_only = tmp_path / "tone.wav"
        import soundfile

        soundfile.write(audio_only, np.zeros(1600, np.float32), 16000)
        read_video(audio_only, 2)


def test_video_encoder_preprocesses_sampled_frames() -> None:
    import zoo

    model = zoo.build("tiny")
    encoder = model.encoders["video"]
    frames = [Image.new("RGB", (40, 40), (i * 20,) * 3) for i in range(6)]
    tensor = encoder.preprocess(frames)
    assert tensor.shape == (2, 3, 32, 32)  # num_frames=2 chosen of 6, each through the CLIP processor
    assert torch.equal(tensor, encoder.preprocess([frames[1], frames[4]]))
