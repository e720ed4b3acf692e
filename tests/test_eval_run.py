"""zoo.evaluate and `zoo eval` on the tiny recipe: outputs, reproducibility, HM, skips, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import zoo
from zoo.cli import main
from zoo.data.synthetic import make_synthetic_dataset
from zoo.errors import EvaluationError
from zoo.evaluation.run import Gatherer, GenerationSettings


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic_dataset(root, n_train=2, n_test=6, modalities=("image", "audio"), seed=0)


@pytest.fixture(scope="module")
def tiny() -> zoo.ZooModel:
    torch.manual_seed(0)
    return zoo.build("tiny").eval()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_evaluate_writes_results_and_predictions(tiny, synthetic, tmp_path) -> None:
    metrics = ["exact_match", "rouge_l", "hm", "integral"]
    result = zoo.evaluate(
        tiny, synthetic["test"], metrics, output_dir=tmp_path, batch_size=4, max_new_tokens=4
    )
    for name in ("exact_match", "rouge_l", "hm", "integral"):
        assert result.scores[name] is not None
    assert set(result.scores["by_task"]) == {"colour", "shape", "beeps"}
    assert set(result.scores["by_dialog_type"]) == {"text+image", "text+audio"}
    assert result.scores["by_dataset"]["test"]["n"] == 6
    assert 0 < result.scores["hm"] < 1

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["scores"]["hm"] == pytest.approx(result.scores["hm"])
    assert saved["generation"]["do_sample"] is False and saved["generation"]["batch_size"] == 4
    assert saved["model"]["config"]["model_type"] == "zoo"
    files = saved["data"]["datasets"][0]["files"]
    assert files[0]["sha256"] and files[0]["path"].endswith("test.jsonl")
    assert saved["samples"] == {"evaluated": 6, "skipped": 0, "read": 6}

    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"test-{i:05d}" for i in range(6)]
    assert {"id", "prompt", "prediction", "reference", "scores", "task", "dialog_type"} <= set(rows[0])
    assert rows[0]["prompt"][0]["type"] == "image" and set(rows[0]["scores"]) >= set(metrics)


def test_generation_is_reproducible_and_batching_does_not_change_answers(tiny, synthetic) -> None:
    one = zoo.evaluate(
        tiny, synthetic["test"], ["exact_match"], batch_size=1, max_new_tokens=6, progress=False
    )
    again = zoo.evaluate(
        tiny, synthetic["test"], ["exact_match"], batch_size=1, max_new_tokens=6, progress=False
    )
    batched = zoo.evaluate(
        tiny, synthetic["test"], ["exact_match"], batch_size=6, max_new_tokens=6, progress=False
    )
    answers = [r["prediction"] for r in one.predictions]
    assert answers == [r["prediction"] for r in again.predictions]
    assert answers == [r["prediction"] for r in batched.predictions]


def test_hm_is_exp_of_minus_the_models_own_loss_on_the_answer(tiny) -> None:
    """The gathered log-probabilities are the ones transformers' loss averages over the answer tokens."""
    processor = zoo.ZooProcessor.from_model(tiny)
    prompt = [{"role": "user", "type": "text", "content": "What colour is the sky?"}]
    answer = "It is blue today."
    gatherer = Gatherer(tiny, processor, GenerationSettings(batch_size=2), progress=False)
    logprobs = gatherer.response_logprobs([(prompt, answer), (prompt * 2, answer)])[0]
    batch = processor([*prompt, {"role": "assistant", "type": "text", "content": answer}])
    with torch.inference_mode():
        loss = tiny(**batch).loss  # labels: the answer tokens only (single turn)
    assert len(logprobs) == int((batch["labels"] != -100).sum())
    assert math.exp(sum(logprobs) / len(logprobs)) == pytest.approx(math.exp(-loss.item()), rel=1e-4)


def test_choice_scores_every_option(tiny, tmp_path) -> None:
    question = "Which colour? A. red B. green C. blue. Answer with the option's letter."
    records = [
        {"id": f"q{i}", "options": ["red", "green", "blue"],
         "messages": [{"role": "user", "text": question}, {"role": "bot", "text": answer}]}
        for i, answer in enumerate(["B", "blue"])
    ]  # fmt: skip
    data = write_jsonl(tmp_path / "mc.jsonl", records)
    result = zoo.evaluate(tiny, data, ["choice"], max_new_tokens=3, progress=False)
    assert {"choice/loglik", "choice/generated", "choice/guessed"} <= set(result.scores)
    assert result.scores["choice/loglik"] in (0.0, 0.5, 1.0)


def test_unreadable_samples_are_listed_not_lost(tiny, synthetic, tmp_path) -> None:
    lines = Path(synthetic["test"]).read_text().splitlines()[:3]
    broken = json.loads(lines[1])
    broken["messages"][0]["text"] = "test/missing.png"
    text = "\n".join([lines[0], json.dumps(broken), "{not json", lines[2]]) + "\n"
    data = Path(synthetic["root"]) / "broken.jsonl"
    data.write_text(text)
    result = zoo.evaluate(tiny, data, ["exact_match"], output_dir=tmp_path, max_new_tokens=2, progress=False)
    assert len(result.predictions) == 2
    stages = sorted(s.stage for s in result.skipped)
    assert stages == ["decode", "read"]
    listed = [json.loads(x) for x in (tmp_path / "skipped_samples.jsonl").read_text().splitlines()]
    assert {x["index"] for x in listed} == {1, 2} and "missing.png" in str(listed)


def test_bad_requests_fail_before_generation(synthetic, tmp_path) -> None:
    with pytest.raises(EvaluationError, match="unknown metric 'bleu4'"):
        zoo.evaluate("tiny", synthetic["test"], ["bleu4"])
    question_only = write_jsonl(
        tmp_path / "questions.jsonl",
        [{"id": "q", "messages": [{"role": "user", "text": "hi"}, {"role": "bot", "text": "hello"},
                                  {"role": "user", "text": "and now?"}]}],
    )  # fmt: skip
    with pytest.raises(EvaluationError, match="1 of 1 samples have no reference answer.*meteor"):
        zoo.evaluate("tiny", question_only, ["meteor"])
    with pytest.raises(EvaluationError, match="no 'options' list"):
        zoo.evaluate("tiny", synthetic["test"], ["choice"])
    video = write_jsonl(
        tmp_path / "video.jsonl",
        [{"id": "v", "messages": [{"role": "user", "type": "video", "text": "clip.mp4"},
                                  {"role": "bot", "text": "left"}]}],
    )  # fmt: skip
    # s3-smol reads images and audio only: refused from the recipe, before its weights load.
    with pytest.raises(EvaluationError, match="has video but the model has encoders only for image, audio"):
        zoo.evaluate("s3-smol", video, ["exact_match"])


def test_zoo_eval_command(synthetic, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    code = main(
        ["eval", "tiny", "--data", str(synthetic["test"]), "--metrics", "exact_match,hm",
         "--output", str(out), "--limit", "2", "--max-new-tokens", "2", "--no-progress"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "exact_match" in printed and "hm" in printed and str(out) in printed
    assert json.loads((out / "results.json").read_text())["samples"]["evaluated"] == 2
    assert main(["eval", "tiny", "--data", str(synthetic["test"]), "--metrics", "nope"]) == 2
    assert "unknown metric 'nope'" in capsys.readouterr().err


def test_missing_wordnet_is_refused_before_the_model_loads(synthetic) -> None:
    """METEOR without its WordNet data: a clear error before anything loads or generates."""
    import subprocess
    import sys

    script = (
        "import nltk; nltk.data.path[:] = ['/nonexistent']\n"
        "import zoo\nfrom zoo.errors import EvaluationError\n"
        f"try:\n    zoo.evaluate('/no/such/model', {str(synthetic['test'])!r}, ['meteor'])\n"
        "except EvaluationError as error:\n    print('REFUSED:', error)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "REFUSED: METEOR needs the WordNet 3.0 database" in run.stdout, run.stderr[-2000:]


def test_zoo_train_eval_data_scores_each_stage_with_this_evaluator(synthetic, tmp_path) -> None:
    """`zoo train --eval-data` runs zoo.evaluation at the end of the stage; the scores land in the report."""
    zoo.train(
        "tiny", synthetic["train"], tmp_path / "run", max_steps=1, eval_data=synthetic["test"],
        eval_metrics=["exact_match", "hm"], progress=False, num_workers=0,
    )  # fmt: skip
    saved = json.loads((tmp_path / "run" / "train_report.json").read_text())
    scores = saved["stages"]["finetune"]["eval"]
    assert set(scores["by_task"]) == {"colour", "shape", "beeps"} and 0 < scores["hm"] < 1
    assert (tmp_path / "run" / "eval" / "finetune" / "predictions.jsonl").is_file()
