"""Audio: WAV/FLAC read with soundfile at any rate, resampled to 16 kHz, batched Whisper log-mel features,
and the long-audio policy (chunk into 30 s windows / truncate / error)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from zoo.errors import ComponentArgumentError, MediaError
from zoo.media import load_audio

TINY_WHISPER = {
    "d_model": 32, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
    "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64, "num_mel_bins": 80,
    "vocab_size": 64, "max_source_positions": 1500, "pad_token_id": 0, "bos_token_id": 1,
    "eos_token_id": 2, "decoder_start_token_id": 1,
}  # fmt: skip


def encoder(**args):
    from zoo.components.encoders import WhisperAudioEncoder

    return WhisperAudioEncoder(config=TINY_WHISPER, **args)


def tone(seconds: float, rate: int, hz: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.mark.parametrize(
    ("suffix", "rate", "channels"), [(".wav", 8000, 1), (".flac", 44100, 2), (".wav", 48000, 2)]
)
def test_wav_and_flac_at_any_rate_become_16k_mono(tmp_path, suffix, rate, channels) -> None:
    path = tmp_path / f"tone{suffix}"
    soundfile.write(path, tone(1.5, rate, 1000, channels), rate)
    waveform = load_audio(str(path), 16000)
    assert waveform.dtype == np.float32 and waveform.ndim == 1
    assert abs(len(waveform) - 24000) <= 1
    peak = np.argmax(np.abs(np.fft.rfft(waveform))) * 16000 / len(waveform)
    assert abs(peak - 1000) < 5


def test_features_are_batched_and_equal_to_one_at_a_time() -> None:
    audio = encoder()
    clips = [tone(2.0, 16000, 300), tone(5.0, 16000, 2000)]
    batch = audio.features(clips)
    assert batch.shape == (2, 80, 3000)
    for clip, row in zip(clips, batch, strict=True):
        assert torch.allclose(audio.features([clip])[0], row, atol=1e-5)
    # a higher tone puts its energy in higher mel bins
    assert batch[0, :, 10:100].mean(1).argmax() < batch[1, :, 10:100].mean(1).argmax()


def test_long_clip_is_chunked_into_30s_windows_by_default() -> None:
    audio = encoder()
    clip = np.concatenate([tone(30, 16000, 300), tone(30, 16000, 2000), tone(10, 16000, 300)])
    items = audio.preprocess_items(clip)
    assert len(items) == 3 and all(item.shape == (80, 3000) for item in items)
    assert torch.allclose(items[1], audio.features([tone(30, 16000, 2000)])[0], atol=1e-5)
    with pytest.raises(MediaError, match="spans 3 Whisper windows"):
        audio.preprocess(clip)
    with pytest.raises(MediaError, match="70.0s needs 3 windows.*max_audio_chunks=2"):
        encoder(max_audio_chunks=2).preprocess_items(clip)


def test_a_shorter_window_pads_less_and_keeps_whispers_first_positions() -> None:
    """window_seconds=5: a 2 s clip is 250 frames instead of 1500, encoded with Whisper's own first 250
    position embeddings; a 12 s clip becomes three 5 s windows."""
    full, short = encoder(), encoder(window_seconds=5)
    assert short.num_tokens == 250 and full.num_tokens == 1500
    (item,) = short.preprocess_items(tone(2.0, 16000, 300))
    assert item.shape == (80, 500)
    assert torch.allclose(item, full.preprocess(tone(2.0, 16000, 300))[:, :500], atol=1e-5)
    short.model.load_state_dict(
        {k: v[:250] if k == "embed_positions.weight" else v for k, v in full.model.state_dict().items()}
    )
    assert torch.equal(short.model.embed_positions.weight, full.model.embed_positions.weight[:250])
    assert short(item[None]).shape == (1, 250, 32)
    assert len(short.preprocess_items(tone(12.0, 16000))) == 3
    with pytest.raises(ComponentArgumentError, match="window_seconds must be a whole number of seconds"):
        encoder(window_seconds=45)


def test_truncate_keeps_the_first_30s_and_warns_and_error_rejects() -> None:
    clip = np.concatenate([tone(30, 16000, 300), tone(5, 16000, 2000)])
    with pytest.warns(UserWarning, match="35.0s truncated to its first 30s"):
        items = encoder(long_audio="truncate").preprocess_items(clip)
    assert len(items) == 1 and torch.allclose(items[0], encoder().features([clip[: 30 * 16000]])[0])
    with pytest.raises(MediaError, match="35.0s exceeds Whisper's 30s window"):
        encoder(long_audio="error").preprocess_items(clip)
    with pytest.raises(ComponentArgumentError, match="long_audio must be one of"):
        encoder(long_audio="drop")


def test_long_audio_in_a_conversation_becomes_one_block_per_window(tmp_path) -> None:
    import zoo
    from zoo.processor import ZooProcessor

    model = zoo.build("tiny")
    processor = ZooProcessor.from_model(model)
    path = tmp_path / "long.flac"
    soundfile.write(path, tone(65, 22050, 500), 22050)
    conversation = [
        {"role": "user", "type": "audio", "content": str(path)},
        {"role": "user", "type": "text", "content": "What do you hear?"},
        {"role": "assistant", "type": "text", "content": "A tone."},
    ]
    encoded = processor.encode(conversation)
    assert [m for m, _ in encoded.media] == ["audio"] * 3  # 65 s -> windows of 30 + 30 + 5 s
    placeholder = model.placeholder_id("audio")
    assert encoded.input_ids.count(placeholder) == 3 * model.tokens_per_item("audio")
    batch = processor.collate([encoded])
    assert batch["media"]["audio"].shape == (3, 80, 3000)
    assert torch.isfinite(model(**batch).loss)


def test_undecodable_audio_names_the_file(tmp_path) -> None:
    path = tmp_path / "broken.flac"
    path.write_bytes(b"fLaC" + b"\x00" * 40)
    with pytest.raises(MediaError, match="broken.flac.*cannot be decoded"):
        load_audio(str(path))


def test_the_soundtrack_of_a_video_file_is_read_with_pyav(tmp_path) -> None:
    """Macaw-LLM's audio-with-video samples point the audio message at the MP4 itself."""
    import av

    path = tmp_path / "clip.mp4"
    rate, seconds = 44100, 1.0
    wave = tone(seconds, rate, hz=440.0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        frame_size = 1024
        for start in range(0, wave.size, frame_size):
            chunk = wave[start : start + frame_size].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    waveform = load_audio(str(path), 16000)
    assert abs(waveform.size - 16000 * seconds) < 0.1 * 16000  # AAC adds a little priming
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(np.argmax(spectrum) * 16000 / waveform.size - 440.0) < 10  # the tone survived


def test_a_video_without_a_soundtrack_is_not_audio(tmp_path) -> None:
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width = stream.height = 32
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(MediaError, match="silent.mp4"):
        load_audio(str(path))
