"""Training: ``zoo.train`` / ``zoo train`` turn a recipe and data into a trained model, stage by stage.

Built on transformers' ``Trainer`` (``zoo.training.trainer.ZooTrainer``), fed by the project's loader,
with resumable, atomic, pickle-free checkpoints. Importing this package is cheap; torch and transformers
load when ``train`` runs. See docs/training.md.

    import zoo
    report = zoo.train("s3-smol", "data/train.jsonl", "runs/s3", overrides=["stages.0.batch.size=8"])
    model = zoo.load("runs/s3")
"""

from __future__ import annotations

from zoo import lazy_exports

_LAZY = {
    "train": "zoo.training.run",
    "TrainReport": "zoo.training.report",
    "StageReport": "zoo.training.report",
    "ZooTrainer": "zoo.training.trainer",
    "overrides_from_sets": "zoo.training.overrides",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports("zoo.training", _LAZY, globals())
