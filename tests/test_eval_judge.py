"""M3IT's pairwise judge protocol: both answer orders, scores averaged, template checked up front."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.errors import EvaluationError
from zoo.evaluation.judge import JUDGE_TEMPLATE, Judge, check_template, judge_pairs, parse_scores


class ScriptedJudge(Judge):
    """The protocol around a judge whose replies are fixed: scores 8/3 in the first order, 4/6 swapped."""

    def __init__(self, samples: int = 1) -> None:
        check_template(JUDGE_TEMPLATE)
        self.template, self.samples, self.temperature = JUDGE_TEMPLATE, samples, 0.0
        self.seen: list[str] = []

    def complete(self, prompts: list[str]) -> list[str]:
        self.seen += prompts
        first = "Evaluation evidence: A is right.\nThe score of Assistant 1: 8\nThe score of Assistant 2: 3"
        swapped = "Evaluation evidence: ...\nThe score of Assistant 1: 4\nThe score of Assistant 2: 6"
        return [first] * self.samples + [swapped] * self.samples


def test_both_orders_are_asked_and_scores_averaged_per_answer() -> None:
    judge = ScriptedJudge(samples=3)
    judgement = judge.rate("What colour?", "red", "It is red.", "Blue.")
    first, swapped = judge.seen[0], judge.seen[-1]
    assert first.index("It is red.") < first.index("Blue.") and swapped.index("Blue.") < swapped.index(
        "It is red."
    )
    assert "[Question]\nWhat colour?" in first and "[The Start of Reference Answer]\nred" in first
    # answer a: 8 (as assistant 1) ×3 and 6 (as assistant 2 when swapped) ×3 -> 7; answer b: 3 and 4 -> 3.5
    assert judgement.scores_a == [8, 8, 8, 6, 6, 6] and judgement.mean_a == pytest.approx(7.0)
    assert judgement.mean_b == pytest.approx(3.5) and judgement.winner == "a"
    judgements, summary = judge_pairs(
        judge, [{"question": "q", "reference": "r", "answer_a": "x", "answer_b": "y"}]
    )
    assert summary["wins_a"] == 1 and summary["mean_score_a"] == pytest.approx(7.0)


def test_score_parsing() -> None:
    assert parse_scores("The score of Assistant 1: 7\nThe score of Assistant 2: 9.5") == (7.0, 9.5)
    assert parse_scores("**The score of Assistant 1:** 6\nno second") == (6.0, None)
    assert parse_scores("I cannot judge this.") == (None, None)
    assert parse_scores("The score of Assistant 1: 42\nThe score of Assistant 2: 5") == (None, 5.0)


def test_template_without_required_fields_is_refused_before_loading() -> None:
    broken = JUDGE_TEMPLATE.replace("{R2}", "(second answer)")
    with pytest.raises(EvaluationError, match=r"lacks \{R2\}"):
        Judge("/no/such/judge/model", template=broken)  # no load attempted: the path does not exist
    with pytest.raises(EvaluationError, match=r"unknown fields \{image\}"):
        check_template(JUDGE_TEMPLATE + "{image}")


def test_a_zoo_model_judges_and_unparsed_replies_are_reported(tmp_path) -> None:
    torch.manual_seed(0)
    judge = Judge(zoo.build("tiny"), max_new_tokens=4)
    judgement = judge.rate("What colour?", "red", "red", "blue")
    assert len(judgement.replies) == 2 and judgement.winner is None  # a random tiny LM scores nothing
    rows = [
        {"dataset": "d", "id": "1", "prompt": [{"role": "user", "type": "text", "content": "What colour?"}],
         "reference": "red", "prediction": answer}
        for answer in ("red",)
    ]  # fmt: skip
    for name, answer in (("a", "red"), ("b", "blue")):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({**rows[0], "prediction": answer}) + "\n")
    code = main(["judge", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"), "--judge", "tiny",
                 "--max-new-tokens", "3", "--output", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    summary = json.loads((tmp_path / "out" / "judge_results.json").read_text())
    assert summary["questions"] == 1 and summary["unscored"] == 1
    assert (tmp_path / "out" / "judgements.jsonl").read_text().count("\n") == 1
