"""Optional parts other packages provide: the evaluator (``zoo.evaluation``) and the frozen-encoder
feature cache (``zoo.training.feature_cache``). Each is looked up when a run asks for it, with a clear
error when it is not installed."""

from __future__ import annotations

from typing import Any

from zoo.errors import TrainingError


def evaluator() -> Any:
    try:
        from zoo.evaluation import evaluate
    except ImportError as error:
        raise TrainingError(
            f"--eval-data needs zoo.evaluation, which this installation does not have ({error})"
        ) from None
    return evaluate


def feature_cache_class() -> Any:
    try:
        from zoo.training.feature_cache import FeatureCache
    except ImportError:
        raise TrainingError(
            "--cache-features: the frozen-encoder feature cache (zoo.training.feature_cache) is not "
            "available in this version of zoo yet; train without --cache-features"
        ) from None
    return FeatureCache
