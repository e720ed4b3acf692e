"""Each metric against its reference implementation's published values or a hand-computed example."""

from __future__ import annotations

import math

import pytest

from zoo.errors import EvaluationError
from zoo.evaluation.answers import answer_index, normalize_vqa_answer, parse_option_letter, vqa_accuracy
from zoo.evaluation.metrics import INTEGRAL_WEIGHTS, METRICS, Record, hidden_metric
from zoo.evaluation.run import resolve_metrics


def records(*pairs: tuple[str, str | list[str]], **fields) -> list[Record]:
    return [
        Record(id=str(i), prediction=p, references=[r] if isinstance(r, str) else r, **fields)
        for i, (p, r) in enumerate(pairs)
    ]


def test_rouge_l_is_the_lcs_f_measure() -> None:
    # LCS("the cat sat on the mat", "the cat is on the mat") = "the cat on the mat": 5 of 6 words each way.
    result = METRICS["rouge_l"].compute(records(("the cat sat on the mat", "the cat is on the mat")))
    assert result.scores["rouge_l"] == pytest.approx(5 / 6)
    # Several references: the best one counts (M3IT scores against its single paraphrased answer).
    best = METRICS["rouge_l"].compute(records(("a red disc", ["blue", "a red disc"])))
    assert best.scores["rouge_l"] == pytest.approx(1.0)


def test_meteor_matches_nltks_documented_value() -> None:
    """nltk's meteor_score doctest: 0.6944 for this pair (needs the WordNet 3.0 synonyms)."""
    hypothesis = (
        "It is a guide to action which ensures that the military always obeys the commands of the party"
    )
    reference = "It is a guide to action that ensures that the military will forever heed Party commands"
    result = METRICS["meteor"].compute(records((hypothesis, reference)))
    assert round(result.scores["meteor"], 4) == 0.6944
    assert METRICS["meteor"].compute(records(("non matching hypothesis", "this is a cat"))).scores[
        "meteor"
    ] == pytest.approx(0.0)


def test_bleu_matches_sacrebleus_documented_example() -> None:
    """sacreBLEU's README: BLEU = 48.53 for these three sentences against two reference streams."""
    system = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    refs = [
        ["The dog bit the man.", "The dog had bit the man."],
        ["It was not unexpected.", "No one was surprised."],
        ["The man bit him first.", "The man had bitten the dog."],
    ]
    result = METRICS["bleu"].compute(records(*zip(system, refs, strict=True)))
    assert round(result.scores["bleu"], 2) == 48.53
    assert result.per_sample[0]["bleu"] == pytest.approx(100.0)


def test_cider_d_by_hand() -> None:
    """Two captions with disjoint words: every n-gram has idf log 2, so a caption equal to its reference
    has cosine 1 at each n and CIDEr-D = 10 (Shot2Story's tables show ×100); one sharing nothing has 0."""
    exact = METRICS["cider"].compute(
        records(("A man rides a horse.", "a man rides a horse"), ("dogs", "cats"))
    )
    assert exact.per_sample[0]["cider"] == pytest.approx(10.0)
    assert exact.per_sample[1]["cider"] == pytest.approx(0.0)
    assert exact.scores["cider"] == pytest.approx(5.0)


def test_hidden_metric_by_hand() -> None:
    # HM = exp(mean log p): tokens of probability 0.5 and 0.125 give exp((ln .5 + ln .125) / 2) = 0.25.
    assert hidden_metric([math.log(0.5), math.log(0.125)]) == pytest.approx(0.25)
    result = METRICS["hm"].compute([Record("a", reference_logprobs=[math.log(0.5), math.log(0.125)])])
    assert result.scores["hm"] == pytest.approx(0.25)


def test_integral_metric_by_hand() -> None:
    """S3 sec. 4.1: sum over dialog types of w_j times the mean of (METEOR + HM) / 2.

    text:        "a b c" = reference: METEOR 1 - 0.5·(1/3)^3 = 0.981481, HM 0.5     -> 0.740741
    text+image:  no overlap (METEOR 0), HM 0.8 and 0.2                             -> mean(0.4, 0.1) = 0.25
    all three:   "dog" = reference: METEOR 1 - 0.5·1^3 = 0.5, HM 1                  -> 0.75
    Integral = 0.1·0.740741 + 0.2·0.25 + 0.4·0.75 = 0.424074 (text+audio absent: weights present 0.7).
    """
    data = [
        Record("t", "text", "a b c", ["a b c"], [math.log(0.5)]),
        Record("i1", "text+image", "x", ["y"], [math.log(0.8)]),
        Record("i2", "text+image", "zz", ["qq"], [math.log(0.2)] * 2),
        Record("all", "text+image+audio", "dog", ["dog"], [0.0]),
    ]
    result = METRICS["integral"].compute(data)
    assert result.per_sample[0]["meteor"] == pytest.approx(1 - 0.5 / 27)
    assert result.scores["integral/mean[text]"] == pytest.approx((1 - 0.5 / 27 + 0.5) / 2)
    assert result.scores["integral/mean[text+image]"] == pytest.approx(0.25)
    assert result.scores["integral/mean[text+image+audio]"] == pytest.approx(0.75)
    assert result.scores["integral"] == pytest.approx(0.424074, abs=1e-6)
    assert result.scores["integral/weight_present"] == pytest.approx(0.7)
    assert sum(INTEGRAL_WEIGHTS.values()) == pytest.approx(1.0)


def test_vqa_normalisation_and_accuracy() -> None:
    assert normalize_vqa_answer("Two dogs.") == normalize_vqa_answer("2 dogs") == "2 dogs"
    assert normalize_vqa_answer("The cat isnt black!") == "cat isn't black"
    # 3 of 10 annotators agree: leave-one-out min(1, n/3) gives (3·2/3 + 7·1) / 10 = 0.9.
    humans = ["two"] * 3 + ["three"] * 7
    assert vqa_accuracy("2", humans) == pytest.approx(0.9)
    assert vqa_accuracy("four", humans) == 0.0
    result = METRICS["exact_match"].compute(records(("A red disc.", "red disc"), ("blue", "red")))
    assert result.scores["exact_match"] == pytest.approx(0.5)


def test_mmmu_option_parsing() -> None:
    options = ["red", "green", "blue", "yellow"]
    assert parse_option_letter("(B)", options) == ("B", False)
    assert parse_option_letter("The answer is C.", options) == ("C", False)
    assert parse_option_letter("I think A, no wait, the answer is D", options) == ("D", False)
    # More than five words naming no letter: the option's text decides.
    assert parse_option_letter("the shape in this picture looks yellow to me", options) == ("D", False)
    letter, guessed = parse_option_letter("no idea", options, seed="sample-7")
    assert guessed and letter in "ABCD"
    assert parse_option_letter("no idea", options, seed="sample-7") == (letter, True)  # reproducible
    assert answer_index("(C)", options) == 2 and answer_index("Green", options) == 1
    assert answer_index("purple", options) is None


def test_choice_reports_loglik_and_generated_accuracy() -> None:
    options = ["red", "green"]
    data = [
        Record("a", prediction="B", references=["green"], options=options, option_logliks=[-3.0, -1.0]),
        Record("b", prediction="(A)", references=["B"], options=options, option_logliks=[-0.5, -2.0]),
    ]
    scores = METRICS["choice"].compute(data).scores
    assert scores["choice/loglik"] == pytest.approx(0.5)
    assert scores["choice/generated"] == pytest.approx(0.5)
    assert scores["choice/guessed"] == pytest.approx(0.0)


def test_metric_table_and_unknown_names() -> None:
    assert set(METRICS) == {"rouge_l", "meteor", "bleu", "cider", "hm", "integral", "choice", "exact_match"}
    assert all(m.name == name and callable(m.compute) and m.description for name, m in METRICS.items())
    assert [m.name for m in resolve_metrics("meteor, hm")] == ["meteor", "hm"]
    with pytest.raises(
        EvaluationError, match=r"unknown metric 'blue' \(did you mean 'bleu'\?\); known: bleu"
    ):
        resolve_metrics(["meteor", "blue"])


def test_built_in_metrics_are_entry_points_and_score_plain_text() -> None:
    """zoo's own metrics are found through the `zoo.metrics` group, as a plugin's would be, and a text metric
    takes the plugin calling convention metric(predictions, references)."""
    from zoo.registry import get_registry

    entries = {e.name: e for e in get_registry().list_components("metric")}
    assert {name: entries[name].distribution for name in METRICS} == dict.fromkeys(METRICS, "zoo")
    assert METRICS["rouge_l"](["a red disc"], ["a red disc"]) == 1.0
    assert METRICS["exact_match"](["Red."], ["red"]) == 1.0  # VQA normalisation: case, punctuation
    with pytest.raises(EvaluationError, match="needs reference_logprobs"):
        METRICS["hm"](["red"], ["red"])


def test_a_metric_plugin_is_found_by_name_and_scored() -> None:
    """A `zoo.metrics` entry point in the plugin kit's convention: metric(predictions, references) -> float."""
    from zoo.registry import register_component

    def word_overlap(predictions: list[str], references: list[str]) -> float:
        """Share of predictions that contain their reference."""
        return sum(r in p for p, r in zip(predictions, references, strict=True)) / len(predictions)

    register_component("metric", "word_overlap_test", word_overlap)
    [metric] = resolve_metrics("word_overlap_test")
    result = metric.compute(records(("a red disc", "red"), ("blue", "green")))
    assert result.scores["word_overlap_test"] == pytest.approx(0.5)
    assert [s["word_overlap_test"] for s in result.per_sample] == [1.0, 0.0]
    assert "plugin" in metric.implementation and metric.description.startswith("Share of predictions")
