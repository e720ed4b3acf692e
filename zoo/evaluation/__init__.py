"""Evaluation: score models the way the papers did, judge answers, and measure data quality.

``import zoo.evaluation`` is cheap; torch and the metric packages load when something runs.

    import zoo
    result = zoo.evaluate("s3-smol", "data/test.jsonl", ["meteor", "hm", "integral"], output_dir="eval/")
    result.scores["integral"], result.scores["by_task"]["colour"]["exact_match"]

- ``evaluate`` / ``zoo eval``: generation and likelihood runs, ``results.json`` + ``predictions.jsonl``
  (``zoo/evaluation/run.py``);
- ``METRICS``: the metric table (``zoo/evaluation/metrics.py``): rouge_l, meteor, bleu, cider, hm,
  integral, choice, exact_match;
- ``judge_pairs`` / ``zoo judge``: M3IT's GPT-4-style pairwise rating by a local judge model
  (``zoo/evaluation/judge.py``);
- ``audit`` / ``zoo data audit``: the review's data-quality indicators (``zoo/evaluation/audit.py``).
"""

from __future__ import annotations

from zoo import lazy_exports

_LAZY = {
    "evaluate": "zoo.evaluation.run",
    "EvalResult": "zoo.evaluation.run",
    "resolve_metrics": "zoo.evaluation.run",
    "METRICS": "zoo.evaluation.metrics",
    "Metric": "zoo.evaluation.metrics",
    "MetricResult": "zoo.evaluation.metrics",
    "Record": "zoo.evaluation.metrics",
    "INTEGRAL_WEIGHTS": "zoo.evaluation.metrics",
    "JUDGE_TEMPLATE": "zoo.evaluation.judge",
    "Judge": "zoo.evaluation.judge",
    "judge_pairs": "zoo.evaluation.judge",
    "audit": "zoo.evaluation.audit",
    "AuditReport": "zoo.evaluation.audit",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports("zoo.evaluation", _LAZY, globals())
