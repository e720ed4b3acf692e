"""Every small recipe, saved and loaded in a fresh interpreter with an empty $ZOO_HOME, gives the same logits.

The reloading process has to convert the GGUF backbone and the CTranslate2 Whisper again (its zoo cache is
empty) outside any meta-device context, rebuild the random-init parts from the checkpoint and replay the
stage (s3-smol: LoRA with trained embeddings and LM head).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import zoo
from zoo.data.synthetic import draw_shape

pytestmark = pytest.mark.slow

SMOL = ["s3-smol", "s3-smol-dinov2", "macaw-smol", "llava-smol", "ying-vlm-smol"]
QUESTION = "What colour is the shape?"


def conversation(model: zoo.ZooModel) -> list[dict]:
    messages = [
        {"role": "user", "type": "image", "content": draw_shape("circle", (220, 30, 30), (32, 32), 12)}
    ]
    if "audio" in model.encoders:
        messages.append(
            {"role": "user", "type": "audio", "content": (torch.randn(8000).numpy() * 0.1, 16000)}
        )
    return [*messages, {"role": "user", "content": QUESTION}, {"role": "assistant", "content": "red"}]


def perturb_trainable(model: zoo.ZooModel) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.01)


RELOAD = """
import json, sys, torch, zoo
for name, folder, inputs in json.loads(sys.argv[1]):
    model = zoo.load(folder)
    batch = torch.load(inputs, weights_only=True)
    with torch.no_grad():
        torch.save(model(**batch).logits, inputs + ".logits")
    print(name, sorted(n for n, p in model.named_parameters() if p.requires_grad) == json.load(open(folder + "/trainable.json")))
"""


def test_every_small_recipe_reloads_identically_in_a_fresh_interpreter(tmp_path) -> None:
    jobs, expected = [], {}
    for name in SMOL:
        torch.manual_seed(0)
        model = zoo.build(name)
        perturb_trainable(model)
        model.eval()
        folder = tmp_path / name
        model.save_pretrained(folder)
        names = sorted(n for n, p in model.named_parameters() if p.requires_grad)
        (folder / "trainable.json").write_text(json.dumps(names))
        batch = zoo.ZooProcessor.from_model(model)(conversation(model))
        batch.pop("labels")
        torch.save(batch, tmp_path / f"{name}.inputs")  # test artefacts, written and read by this test only
        with torch.no_grad():
            expected[name] = model(**batch).logits
        jobs.append([name, str(folder), str(tmp_path / f"{name}.inputs")])
        del model
    env = {**__import__("os").environ, "ZOO_HOME": str(tmp_path / "empty-zoo-home")}
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, json.dumps(jobs)], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [line.split() for line in done.stdout.strip().splitlines()] == [[n, "True"] for n in SMOL]
    for name in SMOL:
        reloaded = torch.load(tmp_path / f"{name}.inputs.logits", weights_only=True)
        assert torch.equal(reloaded, expected[name]), name
