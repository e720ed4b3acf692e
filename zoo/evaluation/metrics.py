"""The metrics: each a small object with a name and a compute function, kept in one table (``METRICS``).

A metric reads what the evaluation run gathered for each sample (``Record``: the generated prediction, the
reference answers, the reference answer's token log-probabilities, the options and their
log-likelihoods, the dialog type) and returns a ``MetricResult``: aggregate scores and one score dict per
sample. Each is computed by the implementation its paper's numbers come from:

| name | what | implementation | scale |
|---|---|---|---|
| ``rouge_l`` | ROUGE-L F1, best over references (M3IT / Ying-VLM tables) | ``rouge-score`` | 0-1 (papers: ×100) |
| ``meteor`` | METEOR (S3; Banerjee & Lavie 2005) | nltk ``meteor_score`` with WordNet 3.0 | 0-1 |
| ``bleu`` | corpus BLEU-4 (captioning, Shot2Story) | ``sacrebleu.corpus_bleu`` | 0-100 |
| ``cider`` | CIDEr-D (captioning, Shot2Story) | ``pycocoevalcap`` ``Cider`` | 0-10 (papers: ×100) |
| ``hm`` | S3's hidden metric: exp(mean log p of the reference tokens) | the model's own log-probs | 0-1 |
| ``integral`` | S3's Integral Metric: Σ_j ω_j · mean_j((METEOR + HM) / 2) | the two above | 0-1 |
| ``choice`` | multiple-choice accuracy (MMMU): by option log-likelihood and by the generated letter | | 0-1 |
| ``exact_match`` | VQA accuracy with the VQA evaluation's normalisation (exact match for one reference) | | 0-1 |

A group's score (per dataset, task, dialog type) is what the metric gives computed on that group alone:
corpus-level metrics (BLEU, CIDEr's document frequencies) are recomputed on the group.

To add a metric, write ``compute(records) -> MetricResult`` and put a ``Metric`` in ``METRICS``; what it
``needs`` tells the run what to gather (and what to check before generating). A plugin distribution
registers one under the ``zoo.metrics`` entry-point group: either a ``Metric`` object, or a function
``metric(predictions, references) -> float`` (the plugin kit's convention), which ``plugin_metric`` wraps
(per-sample scores: the function on each pair alone).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from zoo.errors import EvaluationError
from zoo.evaluation.answers import answer_index, parse_option_letter, vqa_accuracy

# What a metric can need: the run gathers exactly these.
PREDICTION = "prediction"  # a generated answer (greedy by default)
REFERENCE = "reference"  # reference answers in the data
REFERENCE_LOGPROBS = "reference_logprobs"  # log p of each reference token under the model
OPTIONS = "options"  # the sample's options and the log-likelihood of each as the answer

# S3 (sec. 4.1): weight of each dialog type in the Integral Metric.
INTEGRAL_WEIGHTS = {"text": 0.1, "text+image": 0.2, "text+audio": 0.3, "text+image+audio": 0.4}


@dataclass
class Record:
    """What the evaluation gathered for one sample."""

    id: str
    dialog_type: str = "text"
    prediction: str | None = None
    references: list[str] = field(default_factory=list)
    reference_logprobs: list[float] | None = None
    options: list[str] | None = None
    option_logliks: list[float] | None = None


@dataclass
class MetricResult:
    """Aggregate scores (``{"rouge_l": 0.41}``, or several keys such as ``choice/loglik``) and per sample."""

    scores: dict[str, float | None]
    per_sample: list[dict[str, float | None]]


@dataclass(frozen=True)
class Metric:
    """A named metric: what it needs gathered and the function that scores a list of records."""

    name: str
    description: str
    needs: frozenset[str]
    compute: Callable[[Sequence[Record]], MetricResult]
    implementation: str = ""
    prepare: Callable[[], Any] | None = None  # run before generation: load data, fail early and clearly

    def __call__(self, predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float | None:
        """The score of ``predictions`` against ``references`` (one string, or a list of them, per sample):
        the calling convention of a ``zoo.metrics`` plugin function. Metrics that need more than text (the
        model's log-probabilities, answer options) are computed by ``zoo.evaluate`` only."""
        extra = sorted(self.needs - {PREDICTION, REFERENCE})
        if extra:
            raise EvaluationError(
                f"metric {self.name!r} needs {', '.join(extra)}: run it through zoo.evaluate"
            )
        if len(predictions) != len(references):
            raise EvaluationError(
                f"metric {self.name!r}: {len(predictions)} predictions but {len(references)} references"
            )
        if self.prepare is not None:
            self.prepare()
        records = [
            Record(str(i), prediction=p, references=[r] if isinstance(r, str) else list(r))
            for i, (p, r) in enumerate(zip(predictions, references, strict=True))
        ]
        scores = self.compute(records).scores
        return scores.get(self.name, next(iter(scores.values()), None))


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _single(name: str, values: list[float | None]) -> MetricResult:
    return MetricResult({name: _mean(values)}, [{name: v} for v in values])


# -- text overlap -----------------------------------------------------------------------------------------
@cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def rouge_l(records: Sequence[Record]) -> MetricResult:
    """ROUGE-L F-measure of each prediction against its best reference (``RougeScorer.score_multi``)."""
    scorer = _rouge_scorer()
    values = [float(scorer.score_multi(r.references, r.prediction or "")["rougeL"].fmeasure) for r in records]
    return _single("rouge_l", values)


@cache
def _word_tokenizer() -> Any:
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def tokenize(text: str) -> list[str]:
    """Words as nltk's ``word_tokenize`` splits them (without its sentence splitter, which needs data)."""
    return _word_tokenizer().tokenize(text)


@cache
def wordnet() -> Any:
    """nltk's WordNet 3.0 reader; a clear error when the database is not installed."""
    from nltk.corpus import wordnet as reader

    try:
        reader.ensure_loaded()
    except LookupError:
        raise EvaluationError(
            "METEOR needs the WordNet 3.0 database for nltk: run `python -m zoo.evaluation.wordnet "
            "<nltk_data folder>` (the Makefile does this for .venv; it takes Debian's wordnet-base packages)"
        ) from None
    return reader


def meteor(records: Sequence[Record]) -> MetricResult:
    """nltk's METEOR (exact, stem and WordNet-synonym matches; alpha 0.9, beta 3, gamma 0.5), best over references."""
    from nltk.translate.meteor_score import meteor_score

    reader = wordnet()
    values = [
        meteor_score([tokenize(ref) for ref in r.references], tokenize(r.prediction or ""), wordnet=reader)
        for r in records
    ]
    return _single("meteor", values)


def bleu(records: Sequence[Record]) -> MetricResult:
    """sacreBLEU corpus BLEU (13a tokenisation) over all references; per sample: sentence BLEU."""
    import sacrebleu

    predictions = [r.prediction or "" for r in records]
    depth = max((len(r.references) for r in records), default=1)
    streams = [[r.references[k] if k < len(r.references) else None for r in records] for k in range(depth)]
    corpus = sacrebleu.corpus_bleu(predictions, streams).score
    per_sample = [
        {"bleu": sacrebleu.sentence_bleu(p, r.references).score}
        for p, r in zip(predictions, records, strict=True)
    ]
    return MetricResult({"bleu": corpus}, per_sample)


# The COCO caption evaluation's tokenizer (PTBTokenizer, a Java program) drops these tokens.
_COCO_PUNCTUATION = {"''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                     "--", "...", ";", "(", ")", "[", "]", "{", "}"}  # fmt: skip


def coco_tokenize(text: str) -> str:
    """Lower-cased Penn-Treebank tokens without punctuation, as the COCO caption evaluation feeds CIDEr."""
    return " ".join(t for t in tokenize(text.lower()) if t not in _COCO_PUNCTUATION)


def cider(records: Sequence[Record]) -> MetricResult:
    """CIDEr-D from pycocoevalcap (document frequencies from this set's references)."""
    from pycocoevalcap.cider.cider import Cider

    if not records:
        return _single("cider", [])
    keys = [str(i) for i in range(len(records))]
    gts = {k: [coco_tokenize(ref) for ref in r.references] for k, r in zip(keys, records, strict=True)}
    res = {k: [coco_tokenize(r.prediction or "")] for k, r in zip(keys, records, strict=True)}
    score, per_sample = Cider().compute_score(gts, res)
    return MetricResult({"cider": float(score)}, [{"cider": float(v)} for v in per_sample])


# -- S3 ---------------------------------------------------------------------------------------------------
def hidden_metric(logprobs: Sequence[float]) -> float:
    """S3's HM of one answer: exp of the mean log-probability of its tokens (1 / perplexity)."""
    if not logprobs:
        raise ValueError("HM needs at least one reference token")
    return math.exp(statistics.fmean(logprobs))


def hm(records: Sequence[Record]) -> MetricResult:
    """S3's hidden metric: exp(mean log-probability of the reference answer's tokens), averaged."""
    values = [hidden_metric(r.reference_logprobs) if r.reference_logprobs else None for r in records]
    return _single("hm", values)


def integral(records: Sequence[Record]) -> MetricResult:
    """S3's Integral Metric: Σ_j ω_j / N_j Σ_i (METEOR_i + HM_i) / 2 over dialog types j.

    As in the paper the weights (text 0.1, text+image 0.2, text+audio 0.3, all three 0.4) are not
    renormalised: a set without some dialog types scores at most the sum of the weights it has
    (``integral/weight_present``). Dialog types without a weight (video) count in no term.
    """
    meteor_scores = meteor(records).per_sample
    hm_scores = hm(records).per_sample
    per_sample = []
    by_type: dict[str, list[float]] = {}
    for record, m, h in zip(records, meteor_scores, hm_scores, strict=True):
        value = None if h["hm"] is None else (m["meteor"] + h["hm"]) / 2
        per_sample.append({"integral": value, "meteor": m["meteor"], "hm": h["hm"]})
        if value is not None:
            by_type.setdefault(record.dialog_type, []).append(value)
    weighted = {t: statistics.fmean(v) for t, v in by_type.items() if t in INTEGRAL_WEIGHTS}
    scores: dict[str, float | None] = {
        "integral": sum(INTEGRAL_WEIGHTS[t] * v for t, v in weighted.items()) if weighted else None,
        "integral/weight_present": sum(INTEGRAL_WEIGHTS[t] for t in weighted),
    }
    scores.update({f"integral/mean[{t}]": v for t, v in sorted(weighted.items())})
    return MetricResult(scores, per_sample)


# -- answers ----------------------------------------------------------------------------------------------
def choice(records: Sequence[Record]) -> MetricResult:
    """MMMU-style accuracy two ways: the option of highest log-likelihood, and the generated letter."""
    per_sample = []
    for r in records:
        options = r.options or []
        gold = answer_index(r.references[0], options) if r.references else None
        by_loglik = max(range(len(options)), key=lambda i: r.option_logliks[i]) if r.option_logliks else None
        letter, guessed = parse_option_letter(r.prediction or "", options, seed=r.id)
        per_sample.append(
            {
                "choice/loglik": None if by_loglik is None else float(by_loglik == gold),
                "choice/generated": float(ord(letter) - ord("A") == gold),
                "choice/guessed": float(guessed),
            }
        )
    keys = ("choice/loglik", "choice/generated", "choice/guessed")
    return MetricResult({k: _mean([s[k] for s in per_sample]) for k in keys}, per_sample)


def exact_match(records: Sequence[Record]) -> MetricResult:
    """VQA accuracy after the VQA evaluation's normalisation (exact match with one reference)."""
    values = [vqa_accuracy(r.prediction or "", r.references) for r in records]
    return _single("exact_match", values)


def _metric(
    name: str, compute: Callable, needs: set[str], implementation: str, prepare: Callable | None = None
) -> Metric:
    description = (compute.__doc__ or "").strip().split("\n")[0]
    return Metric(name, description, frozenset(needs), compute, implementation, prepare)


# The built-in metrics; each is also a `zoo.metrics` entry point in zoo's pyproject.toml, found through the
# registry like a plugin's.
ROUGE_L = _metric("rouge_l", rouge_l, {PREDICTION, REFERENCE}, "rouge-score")
"""ROUGE-L F-measure against the best reference (rouge-score; M3IT / Ying-VLM tables)."""
METEOR = _metric("meteor", meteor, {PREDICTION, REFERENCE}, "nltk meteor_score + WordNet 3.0", wordnet)
"""METEOR with WordNet synonyms (nltk's meteor_score; the S3 paper's text metric)."""
BLEU = _metric("bleu", bleu, {PREDICTION, REFERENCE}, "sacrebleu")
"""Corpus BLEU (sacrebleu), 0-100."""
CIDER = _metric("cider", cider, {PREDICTION, REFERENCE}, "pycocoevalcap Cider (CIDEr-D)")
"""CIDEr-D captioning consensus (pycocoevalcap)."""
HM = _metric("hm", hm, {REFERENCE, REFERENCE_LOGPROBS}, "model log-probabilities")
"""S3's hidden metric: exp(mean log-probability of the reference answer's tokens)."""
INTEGRAL = _metric("integral", integral, {PREDICTION, REFERENCE, REFERENCE_LOGPROBS}, "S3 sec. 4.1", wordnet)
"""S3's Integral Metric: (METEOR + HM) / 2 per dialog type, weighted 0.1 / 0.2 / 0.3 / 0.4."""
CHOICE = _metric("choice", choice, {PREDICTION, REFERENCE, OPTIONS}, "MMMU parsing + log-likelihood")
"""Multiple-choice accuracy as in MMMU: by the options' log-likelihood and by the generated letter."""
EXACT_MATCH = _metric("exact_match", exact_match, {PREDICTION, REFERENCE}, "VQA eval normalisation")
"""Exact match / VQA accuracy after the VQA evaluation's answer normalisation."""
METRICS: dict[str, Metric] = {
    m.name: m for m in (ROUGE_L, METEOR, BLEU, CIDER, HM, INTEGRAL, CHOICE, EXACT_MATCH)
}


def plugin_metric(name: str, target: Any) -> Metric:
    """A ``Metric`` from a ``zoo.metrics`` entry point: a ``Metric`` as it is, or a function
    ``(predictions: list[str], references: list[str]) -> float`` over the first reference of each sample."""
    if isinstance(target, Metric):
        return target
    if not callable(target):
        raise EvaluationError(
            f"metric plugin {name!r} gives {type(target).__name__}, not a function or Metric"
        )

    def compute(records: Sequence[Record]) -> MetricResult:
        predictions = [r.prediction or "" for r in records]
        references = [r.references[0] if r.references else "" for r in records]
        overall = float(target(predictions, references)) if records else None
        per_sample = [
            {name: float(target([p], [ref]))} for p, ref in zip(predictions, references, strict=True)
        ]
        return MetricResult({name: overall}, per_sample)

    description = (getattr(target, "__doc__", None) or name).strip().split("\n")[0]
    source = f"plugin {getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', name)}"
    return Metric(name, description, frozenset({PREDICTION, REFERENCE}), compute, source)
