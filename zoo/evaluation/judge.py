"""M3IT's GPT-4 evaluation protocol with a local judge: two answers rated 1-10, in both orders, averaged.

M3IT (appendix E, Table 11) fills each (question, reference, response 1, response 2) into its template
twice, with the responses in both orders (FairEval's balanced position calibration), samples three
completions per order at temperature 1, and averages the six scores each response gets; the higher mean
wins. Here the judge is any local causal LM: a zoo model (recipe, saved folder) or a transformers model
folder. ``samples`` and ``temperature`` default to one greedy completion per order; pass ``samples=3,
temperature=1.0`` for the paper's setting. A template must contain ``{Q}``, ``{R}``, ``{R1}`` and ``{R2}``;
one that does not is refused before any model is loaded.
"""

from __future__ import annotations

import json
import re
import statistics
import string
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.errors import EvaluationError

# M3IT, Table 11 (as printed, including its "Please rate the on the follow aspects").
JUDGE_TEMPLATE = """[Question]
{Q}
[The Start of Reference Answer]
{R}
[The End of Reference Answer]
[The Start of Assistant 1's Answer]
{R1}
[The End of Assistant 1's Answer]
[The Start of Assistant 2's Answer]
{R2}
[The End of Assistant 2's Answer]

[System]
We would like to request your feedback on the performance of two AI assistants in response to the user's multimodal question displayed above. We provided no multimodal inputs other than question text, but we provided a reference answer for this question. You need to evaluate the quality of the two responses based on the question and the reference answer.
Please rate the on the follow aspects:
1. Accuracy: whether the candidate's response is consistent with the original answer, this is important as we do not want a misleading result;
2. Relevance: whether the candidate's response is highly relevant to the question and image content;
3. Naturalness: whether the candidate's response is engaging, providing a great communication experience for the user when interacting with the AI visual assistant.
of the two Assistants' responses.

Each assistant receives an overall score on a scale of 1 to 10, where a higher score indicates better overall performance.
Please first provide a comprehensive explanation of your evaluation, avoiding any potential bias and ensuring that the order in which the responses were presented does not affect your judgment.
Then, output two lines indicating the scores for Assistant 1 and 2, respectively.

Output with the following format:
Evaluation evidence: <evaluation explanation here>
The score of Assistant 1: <score>
The score of Assistant 2: <score>"""
REQUIRED_FIELDS = ("Q", "R", "R1", "R2")
_SCORE = re.compile(r"score of assistant\s*([12])\s*[:：]?\s*\**\s*(\d+(?:\.\d+)?)", re.IGNORECASE)


def check_template(template: str) -> None:
    """Refuse a template without the question, reference and two answer fields (or with other fields)."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise EvaluationError(
            f"judge template cannot be filled: {error} (use {{Q}} {{R}} {{R1}} {{R2}})"
        ) from None
    missing = [f"{{{name}}}" for name in REQUIRED_FIELDS if name not in fields]
    unknown = sorted(f"{{{name}}}" for name in fields - set(REQUIRED_FIELDS))
    if missing or unknown:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has unknown fields {', '.join(unknown)} (write literal braces as {{{{ }}}})"]
            if unknown
            else []
        )
        raise EvaluationError(
            f"judge template {' and '.join(problems)}; it needs {{Q}} (question), {{R}} (reference answer), "
            "{R1} and {R2} (the two answers)"
        )


def parse_scores(text: str) -> tuple[float | None, float | None]:
    """The last "The score of Assistant 1/2: N" of a judge's reply; None where it gave none (or >10)."""
    found: dict[str, float] = {}
    for assistant, value in _SCORE.findall(text):
        found[assistant] = float(value)
    return tuple(  # type: ignore[return-value]
        found[a] if a in found and 0 <= found[a] <= 10 else None for a in ("1", "2")
    )


@dataclass
class Judgement:
    """One question judged in both orders: every parsed score of each answer, their means, the winner."""

    question: str
    reference: str
    answer_a: str
    answer_b: str
    scores_a: list[float | None] = field(default_factory=list)
    scores_b: list[float | None] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    @property
    def mean_a(self) -> float | None:
        return _mean(self.scores_a)

    @property
    def mean_b(self) -> float | None:
        return _mean(self.scores_b)

    @property
    def winner(self) -> str | None:
        """ "a", "b", "tie", or None when the judge gave no usable score."""
        if self.mean_a is None or self.mean_b is None:
            return None
        return "a" if self.mean_a > self.mean_b else "b" if self.mean_b > self.mean_a else "tie"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean_a": self.mean_a, "mean_b": self.mean_b, "winner": self.winner}


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


class Judge:
    """A local causal LM rating answer pairs with a template (M3IT's by default)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        template: str = JUDGE_TEMPLATE,
        samples: int = 1,
        temperature: float = 0.0,
        max_new_tokens: int = 256,
    ) -> None:
        check_template(template)
        if samples < 1:
            raise EvaluationError(f"samples per order must be at least 1, got {samples}")
        self.template = template
        self.samples = samples
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.model, self.tokenizer = _load_judge(model, tokenizer)

    def prompts(self, question: str, reference: str, answer_a: str, answer_b: str) -> list[str]:
        """The template filled with the answers in both orders: (a, b) then (b, a)."""
        return [
            self.template.format(Q=question, R=reference, R1=answer_a, R2=answer_b),
            self.template.format(Q=question, R=reference, R1=answer_b, R2=answer_a),
        ]

    def rate(self, question: str, reference: str, answer_a: str, answer_b: str) -> Judgement:
        """Each answer's scores from ``samples`` completions of each order."""
        first, swapped = self.prompts(question, reference, answer_a, answer_b)
        replies = self.complete([first] * self.samples + [swapped] * self.samples)
        judgement = Judgement(question, reference, answer_a, answer_b, replies=replies)
        for n, reply in enumerate(replies):
            one, two = parse_scores(reply)
            in_order = n < self.samples
            judgement.scores_a.append(one if in_order else two)
            judgement.scores_b.append(two if in_order else one)
        return judgement

    def complete(self, prompts: list[str]) -> list[str]:
        """The judge's reply to each prompt (a user turn of its chat template)."""
        import torch

        settings = {"max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        if self.temperature > 0:
            settings["temperature"] = self.temperature
        if self.tokenizer is None:  # a zoo model: its processor and batched generation
            from zoo.evaluation.run import Gatherer, GenerationSettings
            from zoo.processor import ZooProcessor

            gatherer = Gatherer(
                self.model,
                ZooProcessor.from_model(self.model),
                GenerationSettings(
                    max_new_tokens=self.max_new_tokens,
                    do_sample=self.temperature > 0,
                    extra={"temperature": self.temperature} if self.temperature > 0 else {},
                ),
                progress=False,
            )
            encoded = [gatherer.encode([{"role": "user", "content": p}], True) for p in prompts]
            out = gatherer.generate(encoded)
            return [str(out[i]) if isinstance(out[i], Exception) else out[i] for i in range(len(prompts))]
        replies = []
        for prompt in prompts:
            inputs = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt",
                return_dict=True,
            )  # fmt: skip
            with torch.inference_mode():
                output = self.model.generate(**inputs, **settings)
            new = output[0, inputs["input_ids"].shape[1] :]
            replies.append(self.tokenizer.decode(new, skip_special_tokens=True).strip())
        return replies


def _load_judge(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    """(model, tokenizer): tokenizer None means a zoo model driven through its processor."""
    if not isinstance(model, (str, Path)):
        if tokenizer is None and getattr(getattr(model, "config", None), "model_type", None) != "zoo":
            raise EvaluationError("a transformers judge model needs its tokenizer (Judge(model, tokenizer))")
        return model.eval(), tokenizer
    path = Path(model)
    config = path / "config.json"
    if path.is_dir() and config.is_file() and json.loads(config.read_text()).get("model_type") != "zoo":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    from zoo.evaluation.run import load_model

    return load_model(model).eval(), None


def judge_pairs(judge: Judge, items: list[dict]) -> tuple[list[Judgement], dict[str, Any]]:
    """Judge ``{"question", "reference", "answer_a", "answer_b"}`` items; the judgements and a summary."""
    judgements = [
        judge.rate(item["question"], item["reference"], item["answer_a"], item["answer_b"]) for item in items
    ]
    winners = [j.winner for j in judgements]
    summary = {
        "questions": len(judgements),
        "mean_score_a": _mean([j.mean_a for j in judgements]),
        "mean_score_b": _mean([j.mean_b for j in judgements]),
        "wins_a": winners.count("a"),
        "wins_b": winners.count("b"),
        "ties": winners.count("tie"),
        "unscored": winners.count(None),
        "samples_per_order": judge.samples,
        "temperature": judge.temperature,
    }
    return judgements, summary


def _question_text(prompt: list[dict]) -> str:
    return "\n".join(m["content"] for m in prompt if m.get("type", "text") == "text" and m["role"] == "user")


def judge_prediction_files(
    predictions_a: str | Path,
    predictions_b: str | Path,
    judge_model: Any,
    template: str = JUDGE_TEMPLATE,
    output_dir: str | Path | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 256,
    limit: int | None = None,
) -> dict[str, Any]:
    """Judge two ``zoo eval`` runs' answers to the same samples (matched by dataset and id)."""
    check_template(template)
    rows_a = {(r["dataset"], r["id"]): r for r in _read_jsonl(Path(predictions_a))}
    rows_b = {(r["dataset"], r["id"]): r for r in _read_jsonl(Path(predictions_b))}
    shared = [key for key in rows_a if key in rows_b][:limit]
    if not shared:
        raise EvaluationError(
            f"{predictions_a} and {predictions_b} share no sample (matched by dataset and id)"
        )
    items = [
        {
            "question": _question_text(rows_a[key]["prompt"]),
            "reference": rows_a[key].get("reference") or "",
            "answer_a": rows_a[key].get("prediction") or "",
            "answer_b": rows_b[key].get("prediction") or "",
        }
        for key in shared
    ]
    judge = Judge(judge_model, template=template, samples=samples, temperature=temperature,
                  max_new_tokens=max_new_tokens)  # fmt: skip
    judgements, summary = judge_pairs(judge, items)
    summary.update({"a": str(predictions_a), "b": str(predictions_b), "judge": str(judge_model)})
    if output_dir is not None:
        folder = Path(output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "judgements.jsonl").open("w", encoding="utf-8") as f:
            for key, judgement in zip(shared, judgements, strict=True):
                f.write(json.dumps({"dataset": key[0], "id": key[1], **judgement.to_dict()}) + "\n")
        (folder / "judge_results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise EvaluationError(f"predictions file {path} does not exist")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
