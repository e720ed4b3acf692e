"""Processor: shot-structured video, media_position, truncation that never cuts media, padding and packing."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import DataError, IncompatibleComponentsError, SampleTooLongError
from zoo.processor import IGNORE_INDEX, ZooProcessor


@pytest.fixture(scope="module")
def model():
    built = zoo.build("tiny")
    built.eval()
    return built


@pytest.fixture
def processor(model):
    return ZooProcessor.from_model(model)


def frames(*levels: int) -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (level,) * 3) for level in levels]


def qa(question: str, answer: str, media: list[tuple[str, object]] = ()) -> list[dict]:
    messages = [{"role": "user", "type": kind, "content": item} for kind, item in media]
    return messages + [
        {"role": "user", "type": "text", "content": question},
        {"role": "assistant", "type": "text", "content": answer},
    ]


def write_mp4(path, count: int = 24) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(count):
            image = np.full((32, 32, 3), i * 10, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# -- shot-structured video -------------------------------------------------------------------------------
def test_shots_become_indexed_video_blocks_with_the_asr_in_the_prompt(model, processor, tmp_path) -> None:
    clip = tmp_path / "clip.mp4"
    write_mp4(clip)
    video = {
        "shots": [frames(0, 50, 100, 150), {"video": str(clip), "start": 0.5, "end": 1.0}],
        "asr": "hello from the kitchen",
    }
    encoded = processor.encode(qa("Describe this video in detail.", "A kitchen.", [("video", video)]))
    assert [m for m, _ in encoded.media] == ["video", "video"]
    first, second = (tensor for _, tensor in encoded.media)
    assert first.shape == second.shape == (2, 3, 32, 32)  # the tiny recipe samples 2 frames per shot
    video_encoder = model.encoders["video"]
    assert torch.equal(first, video_encoder.preprocess(frames(50, 150)))  # centres of 2 halves of 4 frames
    text = processor.decode(encoded.input_ids, skip_special_tokens=False)
    assert "Shot 1: <video>" in text and "Shot 2: <video>" in text
    assert text.index("Shot 1:") < text.index("Shot 2:") < text.index("The audio transcripts are: hello from")
    assert "The audio transcripts are: hello from the kitchen.\nDescribe this video in detail." in text
    assert len(encoded.blocks) == 2 and processor.decode(
        encoded.input_ids[slice(*encoded.blocks[1])], skip_special_tokens=False
    ).startswith("Shot 2: <video>")
    batch = processor.collate([encoded])
    assert torch.isfinite(model(**batch).loss)


def test_shot_errors_name_the_message(processor, tmp_path) -> None:
    from zoo.errors import MediaError

    with pytest.raises(MediaError, match="message 0: shot-structured video needs a non-empty `shots`"):
        processor.encode(qa("Q?", "A.", [("video", {"shots": []})]))
    with pytest.raises(MediaError, match="message 0: video .*missing.mp4.*no such file"):
        processor.encode(qa("Q?", "A.", [("video", {"shots": [{"video": str(tmp_path / "missing.mp4")}]})]))


# -- media position ---------------------------------------------------------------------------------------
def test_after_bos_moves_every_media_block_before_the_text(model) -> None:
    inline = ZooProcessor.from_model(model)
    after = ZooProcessor.from_model(model, media_position="after_bos")
    conversation = qa("What colour?", "Red.", [("image", frames(200)[0])])
    conversation.insert(0, {"role": "user", "type": "text", "content": "Look:"})
    a, b = inline.encode(conversation), after.encode(conversation)
    assert sorted(a.input_ids) == sorted(b.input_ids) and len(a.media) == len(b.media) == 1
    start, stop = b.blocks[0]
    assert start == 0 and b.input_ids[start:stop] == a.input_ids[slice(*a.blocks[0])]
    assert a.blocks[0][0] > 0  # inline: after "Look:"
    response = [t for t, label in zip(b.input_ids, b.labels, strict=True) if label != IGNORE_INDEX]
    assert inline.decode(response).startswith("Red.")
    model.config.media_position = "after_bos"
    try:
        assert ZooProcessor.from_model(model).media_position == "after_bos"
    finally:
        del model.config.media_position
    after.tokenizer.bos_token = "<|im_start|>"  # a tokenizer whose conversations open with BOS
    try:
        c = after.encode(conversation)
        assert c.input_ids[0] == after.tokenizer.bos_token_id and c.blocks[0][0] == 1
    finally:
        after.tokenizer.bos_token = None


# -- truncation -------------------------------------------------------------------------------------------
def test_truncation_cuts_the_response_end_and_keeps_media(processor) -> None:
    long_answer = " ".join(["red"] * 60)
    encoded = processor.encode(
        qa("Colour?", long_answer, [("image", frames(10)[0]), ("video", frames(1, 2))])
    )
    limit = len(encoded) - 40
    cut = processor.truncate(encoded, limit)
    assert len(cut) == limit and len(cut.media) == 2
    assert (
        cut.input_ids[: len(cut) - 1] == encoded.input_ids[: limit - 1]
        or cut.input_ids == encoded.input_ids[:limit]
    )
    for (s0, e0), (s1, e1) in zip(encoded.blocks, cut.blocks, strict=True):
        assert encoded.input_ids[s0:e0] == cut.input_ids[s1:e1]
    assert sum(label != IGNORE_INDEX for label in cut.labels) > 0
    assert processor.truncate(encoded, len(encoded)) is encoded


def test_truncation_skips_over_a_block_at_the_end(processor) -> None:
    conversation = [
        {"role": "user", "type": "text", "content": " ".join(["word"] * 30)},
        {"role": "user", "type": "image", "content": frames(10)[0]},
    ]
    encoded = processor.encode(conversation)
    block = encoded.input_ids[slice(*encoded.blocks[0])]
    cut = processor.truncate(encoded, len(encoded) - 20)
    assert cut.input_ids[slice(*cut.blocks[0])] == block and len(cut) == len(encoded) - 20
    assert cut.input_ids[-len(block) :] == block  # the turn's closing tokens went first, then text before it
    assert cut.input_ids[: cut.blocks[0][0]] == encoded.input_ids[: cut.blocks[0][0]]


def test_sample_too_long_even_without_text_is_reported(processor) -> None:
    encoded = processor.encode(qa("Q?", "A.", [("image", frames(1)[0]), ("image", frames(2)[0])]))
    with pytest.raises(
        SampleTooLongError, match=rf"{len(encoded)} tokens.*max_length=8.*2 media blocks take 12"
    ):
        processor.truncate(encoded, 8)
    with pytest.raises(SampleTooLongError, match="would keep 0 of its"):
        processor.truncate(encoded, 14)  # both blocks fit, but no response token would be left


# -- padding ----------------------------------------------------------------------------------------------
def test_padding_to_a_multiple_of_8_with_masked_labels(processor) -> None:
    short = processor.encode(qa("Hi?", "Yes."))
    long = processor.encode(qa("What is in the picture here?", "A dark square.", [("image", frames(5)[0])]))
    batch = processor.collate([short, long], pad_to_multiple_of=8)
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["input_ids"].shape[1] >= len(long)
    assert (
        batch["attention_mask"][0].sum() == len(short) and batch["attention_mask"][0, len(short) :].sum() == 0
    )
    assert (batch["labels"][0, len(short) :] == IGNORE_INDEX).all()
    left = processor.collate([short, long], padding_side="left")
    assert left["attention_mask"][0, : len(long) - len(short)].sum() == 0
    capped = processor.collate([short, long], max_length=len(long) - 2)
    assert capped["input_ids"].shape[1] == len(long) - 2 and capped["media"]["image"].shape[0] == 1
    with pytest.raises(DataError, match="no samples"):
        processor.collate([])


# -- packing ----------------------------------------------------------------------------------------------
def test_packed_rows_compute_the_same_logits_as_each_sample_alone(model, processor) -> None:
    samples = [
        processor.encode(qa("Colour of the image?", "Bright.", [("image", frames(250)[0])])),
        processor.encode(qa("And the video?", "It goes dark then light.", [("video", frames(0, 90, 180))])),
        processor.encode(qa("Short one?", "Yes.", [("image", frames(30)[0])])),
        processor.encode(
            qa("Two images, which is darker?", "The first.", [("image", f) for f in frames(9, 99)])
        ),
    ]
    capacity = max(len(samples[0]) + len(samples[2]), *(len(s) for s in samples))
    batch = processor.collate(samples, packing=True, max_length=capacity, pad_to_multiple_of=8)
    assert "attention_mask" not in batch and batch["input_ids"].shape[1] % 8 == 0
    layout = _rows(batch["position_ids"])
    assert sum(len(row) for row in layout) >= len(samples) and len(layout) < len(samples)
    with torch.no_grad():
        packed = model(**batch).logits  # the model turns the KV cache off for packed rows by itself
        model.train()
        model.projectors.eval()  # keep the projectors' dropout out of the comparison
        try:
            # and for training steps (every position's logits: training keeps only label positions)
            trained_mode = model(**batch, logits_to_keep=0).logits
        finally:
            model.eval()
        assert torch.allclose(trained_mode, packed, atol=1e-5)
        placed = _placement(samples, layout)
        for sample, (row, offset) in zip(samples, placed, strict=True):
            alone = model(**processor.collate([sample])).logits[0]
            assert torch.allclose(packed[row, offset : offset + len(sample)], alone, atol=1e-5)


def _rows(position_ids: torch.Tensor) -> list[list[tuple[int, int]]]:
    """(offset, length) of every segment of each packed row, padding included."""
    rows = []
    for positions in position_ids.tolist():
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        rows.append([(a, b - a) for a, b in zip(starts, starts[1:], strict=False)])
    return rows


def _placement(samples: list, layout: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    """Where first-fit put each sample: every sample is found once, in input order within its row."""
    free = {(r, off): length for r, row in enumerate(layout) for off, length in row}
    placed = []
    for sample in samples:
        spot = next(k for k, length in sorted(free.items()) if length == len(sample))
        placed.append(spot)
        del free[spot]
    return placed


def test_packing_keeps_media_in_reading_order_and_masks_sample_starts(processor) -> None:
    a = processor.encode(qa("A?", " ".join(["long"] * 20), [("image", frames(10)[0])]))
    b = processor.encode(qa("B?", " ".join(["longer"] * 30), [("image", frames(20)[0])]))
    c = processor.encode(qa("C?", "c", [("image", frames(30)[0])]))
    assert len(b) > len(a) + len(c)
    batch = processor.collate([a, b, c], packing=True, max_length=len(b))
    assert batch["input_ids"].shape[0] == 2  # row 0: a + c (first fit), row 1: b
    images = batch["media"]["image"]
    expected = [a.media[0][1], c.media[0][1], b.media[0][1]]
    assert all(torch.equal(x, y) for x, y in zip(images, expected, strict=True))
    assert batch["labels"][0, len(a)] == IGNORE_INDEX and batch["position_ids"][0, len(a)] == 0
    assert batch["position_ids"][1, : len(b)].tolist() == list(range(len(b)))
    with pytest.raises(DataError, match="packing needs max_length"):
        processor.collate([a], packing=True)


def test_packing_refuses_a_backbone_that_cannot_separate_samples(processor) -> None:
    processor.packing_error = "the backbone GPT2Model builds its own mask"
    with pytest.raises(IncompatibleComponentsError, match="packing is not supported: the backbone GPT2Model"):
        processor.collate([processor.encode(qa("Q?", "A."))], packing=True, max_length=64)


def test_media_blocks_without_boundary_tokens() -> None:
    """LLaVA-1.5 puts its 576 image features in the text with no start/end tokens around them."""
    model = zoo.build("tiny", tokens={"image": {"placeholder": "<image>", "start": None, "end": None}}).eval()
    assert "<image>" in model.config.added_tokens() and None not in model.config.added_tokens()
    processor = ZooProcessor.from_model(model)
    batch = processor(qa("Which is darker?", "The first.", [("image", f) for f in frames(9, 99)]))
    ids = batch["input_ids"][0].tolist()
    placeholder, per_item = model.placeholder_id("image"), model.tokens_per_item("image")
    starts = [i for i, token in enumerate(ids) if token == placeholder and ids[i - 1] != placeholder]
    assert len(starts) == 2  # one run of placeholders per image, only the text's newline between them
    for start in starts:
        assert ids[start : start + per_item] == [placeholder] * per_item
        assert ids[start - 1] not in model.config.token_ids.values()  # no boundary token before
        assert ids[start + per_item] not in model.config.token_ids.values()  # nor after
    batch.pop("labels")
    with torch.no_grad():
        assert torch.isfinite(model(**batch).logits).all()
