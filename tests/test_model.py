"""The composed model on the tiny recipe: splicing, labels, batching, generation, meta builds, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.errors import (
    ComponentArgumentError,
    IncompatibleComponentsError,
    MediaError,
    PlaceholderMismatchError,
    UnknownComponentError,
)
from zoo.processor import IGNORE_INDEX


@pytest.fixture(scope="module")
def model() -> zoo.ZooModel:
    torch.manual_seed(0)
    return zoo.build("tiny").eval()


@pytest.fixture(scope="module")
def processor(model: zoo.ZooModel) -> zoo.ZooProcessor:
    return zoo.ZooProcessor.from_model(model)


def picture(colour: str) -> Image.Image:
    return Image.new("RGB", (40, 48), colour)


def tone(seconds: float = 1.0) -> np.ndarray:
    return np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, int(16000 * seconds))).astype(np.float32)


def multimodal_conversation() -> list[dict]:
    return [
        {"role": "system", "type": "text", "content": "Be brief."},
        {"role": "user", "type": "image", "content": picture("red")},
        {"role": "user", "type": "text", "content": "What colour?"},
        {"role": "assistant", "type": "text", "content": "Red."},
        {"role": "user", "type": "audio", "content": tone()},
        {"role": "user", "type": "video", "content": [picture("blue"), picture("green"), picture("white")]},
        {"role": "user", "type": "image", "content": picture("black")},
        {"role": "user", "type": "text", "content": "And now?"},
        {"role": "assistant", "type": "text", "content": "A tone, a video and a black image."},
    ]


def test_placeholders_match_projector_output_and_are_wrapped(model, processor) -> None:
    batch = processor(multimodal_conversation())
    ids = batch["input_ids"][0].tolist()
    for modality in ("image", "audio", "video"):
        layout = processor.layouts[modality]
        items = len(batch["media"][modality])
        assert ids.count(layout.placeholder_id) == items * model.tokens_per_item(modality)
        first = ids.index(layout.placeholder_id)
        assert ids[first - 1] == layout.start_id
        assert ids[first + model.tokens_per_item(modality)] == layout.end_id
    assert batch["media"]["image"].shape[0] == 2
    assert batch["media"]["video"].shape[:2] == (1, 2)  # 3 frames given, 2 sampled


def test_labels_cover_exactly_the_assistant_responses(processor) -> None:
    batch = processor(multimodal_conversation())
    labels = batch["labels"][0]
    response = processor.decode(labels[labels != IGNORE_INDEX], skip_special_tokens=True)
    assert response.replace("\n", "") == "Red.A tone, a video and a black image."


def test_forward_backward_trains_projectors_not_encoders(model, processor) -> None:
    model.train()
    batch = processor([multimodal_conversation(), multimodal_conversation()[:4]])
    out = model(**batch)
    out.loss.backward()
    model.eval()
    assert torch.isfinite(out.loss)
    for modality in ("image", "audio", "video"):
        assert all(
            p.grad is not None and p.grad.abs().sum() > 0 for p in model.projectors[modality].parameters()
        )
        assert all(p.grad is None for p in model.encoders[modality].parameters())
    model.zero_grad(set_to_none=True)


def test_training_runs_the_lm_head_only_where_labels_are_and_the_loss_is_unchanged(model, processor) -> None:
    batch = processor([multimodal_conversation(), multimodal_conversation()[:4]])
    predicting = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    model.train()
    runs = {}
    for name, extra in {"label positions": {}, "every position": {"logits_to_keep": 0}}.items():
        torch.manual_seed(0)  # the same dropout masks in both runs
        out = model(**batch, **extra)
        out.loss.backward()
        runs[name] = out, [p.grad.clone() for p in model.projectors["image"].parameters()]
        model.zero_grad(set_to_none=True)
    model.eval()
    (kept, kept_grads), (full, full_grads) = runs["label positions"], runs["every position"]
    assert kept.logits.shape[0] == predicting < full.logits.shape[0] * full.logits.shape[1]
    torch.testing.assert_close(kept.loss, full.loss, rtol=1e-5, atol=1e-6)
    for got, expected in zip(kept_grads, full_grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_padded_batch_row_equals_the_same_conversation_alone(model, processor) -> None:
    long, short = multimodal_conversation(), multimodal_conversation()[:4]
    batch = processor([short, long])
    alone = processor(long)
    with torch.no_grad():
        logits_batch = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        logits_alone = model(**{k: v for k, v in alone.items() if k != "labels"}).logits
    torch.testing.assert_close(logits_batch[1], logits_alone[0], atol=1e-4, rtol=1e-4)


def test_media_changes_the_output(model, processor) -> None:
    def logits(colour: str) -> torch.Tensor:
        conv = [
            {"role": "user", "type": "image", "content": picture(colour)},
            {"role": "user", "content": "?"},
        ]
        batch = processor(conv)
        batch.pop("labels")
        with torch.no_grad():
            return model(**batch).logits[0, -1]

    assert not torch.allclose(logits("red"), logits("blue"))


def test_generation_splices_media_once_and_matches_uncached_generation(model, processor) -> None:
    conv = [{"role": "user", "type": "image", "content": picture("red")}, {"role": "user", "content": "Hi"}]
    inputs = processor(conv, add_generation_prompt=True)
    inputs.pop("labels")
    calls = []
    hook = model.projectors["image"].register_forward_hook(lambda *_: calls.append(1))
    try:
        cached = model.generate(**inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6)
        assert len(calls) == 1
        uncached = model.generate(
            **inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6, use_cache=False
        )
    finally:
        hook.remove()
    assert cached.shape[1] == inputs["input_ids"].shape[1] + 6
    assert torch.equal(cached, uncached)


def test_placeholder_count_mismatch_names_the_item(model, processor) -> None:
    batch = processor(
        [{"role": "user", "type": "image", "content": picture("red")}, {"role": "user", "content": "x"}]
    )
    ids = batch["input_ids"].clone()
    ids[0, (ids[0] == processor.layouts["image"].placeholder_id).nonzero()[0]] = 5  # drop one placeholder
    with pytest.raises(PlaceholderMismatchError, match=r"image item 0 \(batch row 0\) has 3 placeholders"):
        model(input_ids=ids, attention_mask=batch["attention_mask"], media=batch["media"])


def test_meta_build_has_the_same_architecture_without_weights(model) -> None:
    meta = zoo.build("tiny", device="meta")
    assert all(p.device.type == "meta" for p in meta.parameters())
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in model.parameters())
    assert meta.tokens_per_item("video") == model.tokens_per_item("video")


def test_save_and_reload_through_auto_classes(model, processor, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(reloaded) is zoo.ZooModel
    batch = processor(multimodal_conversation())
    rebuilt = zoo.ZooProcessor.from_model(reloaded)(multimodal_conversation())
    assert torch.equal(rebuilt["input_ids"], batch["input_ids"])
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_config_records_providing_distribution() -> None:
    config = zoo.load_recipe("tiny").zoo_config()
    assert config.backbone["distribution"] == "zoo"
    assert config.encoders["image"]["version"] == zoo.__version__


def test_message_type_without_encoder_is_rejected(processor) -> None:
    with pytest.raises(MediaError, match="type 'pointcloud' has no encoder"):
        processor([{"role": "user", "type": "pointcloud", "content": "x.ply"}])


def test_undecodable_media_names_the_file(processor, tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(MediaError, match=r"message 0: image .*broken.png.*cannot be decoded"):
        processor([{"role": "user", "type": "image", "content": str(broken)}])


def test_unknown_recipe_suggests_close_matches() -> None:
    with pytest.raises(UnknownComponentError, match="tiny"):
        zoo.build("tinny")


def test_projector_width_mismatch_is_caught_before_building() -> None:
    with pytest.raises(IncompatibleComponentsError, match=r"dim_in=512.*emits width 32"):
        zoo.build("tiny", projectors={"image": {"name": "linear", "args": {"dim_in": 512}}})


def test_wrong_argument_type_is_caught_before_building() -> None:
    with pytest.raises(ComponentArgumentError, match="num_tokens"):
        zoo.build("tiny", projectors={"image": {"name": "s3", "args": {"num_tokens": "four"}}})


ATTENTION_PROJECTORS = {
    "image": {"name": "macaw", "args": {"kernel_size": 4, "stride": 4, "num_heads": 4}},
    "video": {"name": "qformer", "args": {"num_queries": 3, "hidden_size": 32, "num_layers": 2, "num_heads": 2,
                                          "intermediate_size": 64}},
    "audio": {"name": "perceiver", "args": {"num_latents": 5, "depth": 1, "num_heads": 2, "head_dim": 8,
                                            "num_key_value_heads": 1}},
}  # fmt: skip


def test_macaw_qformer_and_perceiver_compose_train_and_reload(tmp_path) -> None:
    from transformers import AutoModel

    model = zoo.build("tiny", projectors=ATTENTION_PROJECTORS)
    assert {m: model.tokens_per_item(m) for m in model.encoders} == {"image": 4, "video": 3, "audio": 5}
    # Macaw attends over the backbone's embedding matrix by reference: no copy in its state dict.
    assert not [k for k in model.state_dict() if k.startswith("projectors.image.") and "embed" in k]
    processor = zoo.ZooProcessor.from_model(model)
    batch = processor(multimodal_conversation())
    model(**batch).loss.backward()
    assert all(p.grad is not None for p in model.projectors.parameters())
    model.eval().save_pretrained(tmp_path)
    reloaded = AutoModel.from_pretrained(tmp_path)
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def test_left_padded_batch_generates_what_each_conversation_generates_alone(model, processor) -> None:
    conversations = [
        [{"role": "user", "type": "image", "content": picture("red")}, {"role": "user", "content": "Hi"}],
        multimodal_conversation()[:3],
    ]
    batch = processor(conversations, add_generation_prompt=True)
    batch.pop("labels")
    assert (batch["attention_mask"][:, 0] == 0).any()  # one row is left-padded
    together = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    for row, conversation in enumerate(conversations):
        alone = processor(conversation, add_generation_prompt=True)
        alone.pop("labels")
        single = model.generate(**alone, max_new_tokens=5, min_new_tokens=5, do_sample=False)
        assert together[row, -5:].tolist() == single[0, -5:].tolist()
