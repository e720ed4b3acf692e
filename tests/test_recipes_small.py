"""The small variants of the seed recipes run on this CPU: a training step and a generation each.

Real SmolLM2-135M-Instruct (GGUF) and real Whisper tiny.en where audio is used; vision towers are random-init
(no vision weights ship offline). Each variant trains the parts its full recipe's first stage trains.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from zoo.data.synthetic import shape_image

pytestmark = pytest.mark.slow
SPEECH = Path(__file__).parent / "data" / "speech_fox.flac"
SMALL = {
    "macaw-smol": ("image", "video", "audio"),
    "s3-smol": ("image", "audio"),
    "ying-vlm-smol": ("image", "video"),
    "llava-smol": ("image",),
}


def _frames(count: int) -> list:
    return [shape_image() for _ in range(count)]


def _media_message(modality: str) -> dict:
    content = {"image": shape_image, "video": lambda: _frames(8), "audio": lambda: str(SPEECH)}[modality]()
    return {"role": "user", "type": modality, "content": content}


@pytest.fixture(scope="module", params=sorted(SMALL))
def built(request: pytest.FixtureRequest) -> tuple[str, zoo.ZooModel, zoo.ZooProcessor]:
    torch.manual_seed(0)
    model = zoo.build(request.param)
    return request.param, model, zoo.ZooProcessor.from_model(model)


def _conversation(name: str, answer: bool = True) -> list[dict]:
    messages = [_media_message(m) for m in SMALL[name]]
    messages.append({"role": "user", "content": "Describe what you see and hear."})
    if answer:
        messages.append({"role": "assistant", "content": "A red disc on a plain background."})
    return messages


def test_training_step_reaches_exactly_the_trained_parts(built) -> None:
    name, model, processor = built
    model.train()
    batch = processor(_conversation(name))
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    for modality in SMALL[name]:
        projector = model.projectors[modality]
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters()), modality
        assert all(p.grad is None for p in model.encoders[modality].parameters()), modality
    frozen_with_grad = [n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None]
    assert frozen_with_grad == []
    model.zero_grad(set_to_none=True)
    model.eval()


def test_generation_runs_with_every_modality(built) -> None:
    name, model, processor = built
    inputs = processor(_conversation(name, answer=False), add_generation_prompt=True)
    inputs.pop("labels")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_small_variant_keeps_the_full_recipes_layout(built) -> None:
    name, model, _ = built
    full = {
        "macaw-smol": "macaw-7b",
        "s3-smol": "s3-7b",
        "ying-vlm-smol": "ying-vlm-13b",
        "llava-smol": "llava-1.5-7b",
    }
    reference = zoo.load_recipe(full[name])
    assert {m: s["name"] for m, s in model.recipe.projectors.items()} == {
        m: s["name"] for m, s in reference.projectors.items()
    }
    for modality in SMALL[name]:
        assert model.config.media_tokens[modality] == reference.tokens[modality]
    assert [s["name"] for s in model.recipe.stages] == [s["name"] for s in reference.stages]
    assert model.config.chat_template == reference.chat_template
    for modality in SMALL[name]:
        assert model.tokens_per_item(modality) == _full_tokens(full[name], modality, model)


def _full_tokens(full_name: str, modality: str, small: zoo.ZooModel) -> int:
    """Tokens per item of the full recipe (meta build), which the small variant must reproduce."""
    return zoo.build(full_name, device="meta").tokens_per_item(modality)
