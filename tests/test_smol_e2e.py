"""End to end with real weights: the s3-smol recipe (SmolLM2-135M-Instruct GGUF + Whisper tiny.en)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.cli import main
from zoo.data.synthetic import shape_image
from zoo.summary import component_rows

pytestmark = pytest.mark.slow
SPEECH = Path(__file__).parent / "data" / "speech_fox.flac"


@pytest.fixture(scope="module")
def model() -> zoo.ZooModel:
    return zoo.build("s3-smol").eval()


@pytest.fixture(scope="module")
def processor(model) -> zoo.ZooProcessor:
    return zoo.ZooProcessor.from_model(model)


def test_real_backbone_answers_a_text_question(model) -> None:
    """The backbone is the real SmolLM2-Instruct: with its own chat template it answers correctly (the
    recipe's S3 layout is new to it until trained)."""
    from transformers import AutoTokenizer

    from zoo.weights import materialize

    tokenizer = AutoTokenizer.from_pretrained(materialize(model.config.backbone["source"]))
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = model.backbone.model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "paris" in tokenizer.decode(out[0, ids["input_ids"].shape[1] :]).lower()


def test_conversations_use_the_s3_layout(model, processor) -> None:
    conversation = [
        {"role": "user", "type": "image", "content": shape_image()},
        {"role": "user", "content": "What is it?"},
        {"role": "assistant", "content": "A red disc."},
    ]
    text = processor.decode(processor(conversation)["input_ids"][0], skip_special_tokens=False)
    # The paper's example: the image and the question are two consecutive [RS] blocks of the user.
    assert text.rstrip().endswith(
        "[RS] [user] [M][img][img][img][img][/M] [/RS]\n[RS] [user] What is it? [/RS]\n"
        "[RS] [bot] A red disc. [/RS]"
    )
    assert model.config.token_ids["[/RS]"] in model.generation_config.eos_token_id  # a reply ends there


def test_image_and_speech_questions_run_end_to_end(model, processor) -> None:
    conversation = [
        {"role": "user", "type": "image", "content": shape_image()},
        {"role": "user", "type": "audio", "content": str(SPEECH)},
        {"role": "user", "type": "text", "content": "Describe the image and the audio."},
    ]
    inputs = processor(conversation, add_generation_prompt=True)
    assert inputs["media"]["image"].shape == (1, 3, 224, 224)
    assert inputs["media"]["audio"].shape == (1, 80, 3000)
    inputs.pop("labels")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_components_are_the_declared_real_parts(model) -> None:
    rows = {row.part: row for row in component_rows(model)}
    assert rows["encoder.image"].parameters == pytest.approx(86e6, rel=0.05)  # CLIP ViT-B/16 vision tower
    assert rows["encoder.audio"].tokens_per_item == 1500
    assert rows["projector.image"].tokens_per_item == 4  # S3: four tokens per media item
    assert rows["encoder.image"].trainable == 0 and rows["encoder.audio"].trainable == 0
    lora = [n for n, p in model.backbone.named_parameters() if p.requires_grad and "lora_" in n]
    assert lora, "the finetune stage puts LoRA adapters on the backbone"


def test_training_step_lowers_the_loss_on_a_fixed_batch(model, processor) -> None:
    conversation = [
        {"role": "user", "type": "image", "content": shape_image()},
        {"role": "user", "content": "What shape is this?"},
        {"role": "assistant", "content": "A red disc."},
    ]
    batch = processor(conversation)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    model.train()
    losses = []
    for _ in range(4):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < losses[0]


def test_chat_cli_answers_with_an_audio_file(capsys) -> None:
    assert (
        main(["chat", "s3-smol", "--audio", str(SPEECH), "-p", "What is 2 + 2?", "--max-new-tokens", "8"])
        == 0
    )
    assert capsys.readouterr().out.strip()


def test_speech_fixture_is_real_audio() -> None:
    import soundfile

    waveform, rate = soundfile.read(SPEECH)
    assert rate == 16000 and np.abs(waveform).max() > 0.05
