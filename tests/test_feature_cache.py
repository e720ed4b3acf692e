"""The frozen-encoder feature cache on the tiny recipe: hits and misses, invalidation, identical outputs,
damaged shards, and a cache shared by two processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from PIL import Image

import zoo
from zoo.training.feature_cache import FeatureCache


@pytest.fixture(scope="module")
def model() -> zoo.ZooModel:
    torch.manual_seed(0)
    return zoo.build("tiny").eval()


@pytest.fixture(scope="module")
def processor(model: zoo.ZooModel) -> zoo.ZooProcessor:
    return zoo.ZooProcessor.from_model(model)


def conversation(colour: str) -> list[dict]:
    return [
        {"role": "user", "type": "image", "content": Image.new("RGB", (40, 48), colour)},
        {"role": "user", "type": "text", "content": "What colour?"},
        {"role": "assistant", "type": "text", "content": colour},
    ]


def batch(processor, *colours: str) -> dict:
    return processor([conversation(c) for c in colours])


def logits(model, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


@pytest.fixture
def cached(model, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    model.use_feature_cache(cache)
    yield cache
    model.use_feature_cache(None)


def test_second_pass_reads_every_item_and_computes_none(model, processor, cached) -> None:
    first = logits(model, batch(processor, "red", "blue"))
    assert cached.stats() == {"hits": 0, "misses": 2}
    second = logits(model, batch(processor, "blue", "green", "red"))  # two seen, one new
    assert cached.stats() == {"hits": 2, "misses": 3}
    assert torch.equal(first[0], second[2][: first.shape[1]])


def test_outputs_with_and_without_the_cache_are_identical(model, processor, tmp_path) -> None:
    inputs = batch(processor, "red", "yellow")
    plain = logits(model, inputs)
    model.use_feature_cache(FeatureCache(tmp_path / "cache"))
    try:
        computed, read_back = logits(model, inputs), logits(model, inputs)
    finally:
        model.use_feature_cache(None)
    assert torch.equal(plain, computed) and torch.equal(plain, read_back)


def test_a_new_cache_object_reads_what_an_earlier_one_stored(model, processor, tmp_path) -> None:
    inputs = batch(processor, "red")
    model.use_feature_cache(FeatureCache(tmp_path / "cache"))
    logits(model, inputs)
    again = FeatureCache(tmp_path / "cache")
    model.use_feature_cache(again)
    try:
        logits(model, inputs)
    finally:
        model.use_feature_cache(None)
    assert again.stats() == {"hits": 1, "misses": 0}


def test_changed_encoder_weights_or_spec_get_their_own_entries(model, processor, tmp_path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    encoder = model.encoders["image"]
    spec = model.config.encoders["image"]
    pixels = batch(processor, "red")["media"]["image"]
    with torch.no_grad():
        before = cache.encode(spec, encoder, pixels)
        other_spec = {**spec, "args": {**spec["args"], "feature_layer": -2}}
        assert cache.encoder_key(other_spec, encoder) != cache.encoder_key(spec, encoder)
        torch.manual_seed(1)
        changed = zoo.build("tiny").encoders["image"]  # same spec, other random weights
        after = cache.encode(spec, changed, pixels)
    assert cache.stats() == {"hits": 0, "misses": 2}
    assert not torch.equal(before, after)
    assert torch.equal(after, changed(pixels))
    assert len({shard.parent for shard in (tmp_path / "cache").glob("*/*.safetensors")}) == 2


def test_trainable_encoder_bypasses_the_cache(model, processor, cached) -> None:
    encoder = model.encoders["image"]
    encoder.requires_grad_(True)
    try:
        logits(model, batch(processor, "red"))
    finally:
        encoder.requires_grad_(False)
    assert cached.stats() == {"hits": 0, "misses": 0}


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_moved_aside_and_recomputed(model, processor, tmp_path, damage) -> None:
    inputs = batch(processor, "red")
    expected = logits(model, inputs)
    model.use_feature_cache(FeatureCache(tmp_path / "cache"))
    logits(model, inputs)
    (shard,) = (tmp_path / "cache").glob("*/*.safetensors")
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[-3] ^= 0xFF  # a byte of the stored feature, not of the header
    shard.write_bytes(bytes(data))
    fresh = FeatureCache(tmp_path / "cache")
    model.use_feature_cache(fresh)
    try:
        with pytest.warns(UserWarning, match=f"{shard.name}.*moved aside"):
            again = logits(model, inputs)
    finally:
        model.use_feature_cache(None)
    assert torch.equal(again, expected)
    assert fresh.stats() == {"hits": 0, "misses": 1}
    assert shard.with_name(shard.name + ".corrupt").exists()


@pytest.mark.slow
def test_two_processes_share_one_cache(model, processor, tmp_path) -> None:
    """Another process's shards are picked up on a miss; writes never leave partial files behind."""
    script = textwrap.dedent(
        f"""
        import torch, zoo
        from PIL import Image
        from zoo.training.feature_cache import FeatureCache
        torch.manual_seed(0)
        model = zoo.build("tiny").eval()
        processor = zoo.ZooProcessor.from_model(model)
        cache = FeatureCache({str(tmp_path / "cache")!r})
        model.use_feature_cache(cache)
        conv = [{{"role": "user", "type": "image", "content": Image.new("RGB", (40, 48), "navy")}},
                {{"role": "user", "type": "text", "content": "What colour?"}}]
        with torch.no_grad():
            model(**{{k: v for k, v in processor(conv).items() if k != "labels"}})
        print(cache.stats())
        """
    )
    cache = FeatureCache(tmp_path / "cache")
    model.use_feature_cache(cache)
    try:
        logits(model, batch(processor, "red"))  # indexes the folder before the other process writes
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "'misses': 1" in done.stdout
        navy = [{"role": "user", "type": "image", "content": Image.new("RGB", (40, 48), "navy")}]
        with torch.no_grad():
            model(**{k: v for k, v in processor([navy + conversation("red")[1:]]).items() if k != "labels"})
    finally:
        model.use_feature_cache(None)
    assert cache.stats() == {"hits": 1, "misses": 1}
    assert not list((tmp_path / "cache").glob("*/.tmp-*"))
