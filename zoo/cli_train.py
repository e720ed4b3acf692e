"""`zoo train`: the command-line face of ``zoo.train`` (torch is imported inside ``run_train`` only)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe name (see `zoo list --kind recipe`) or path to a recipe YAML")
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="[STAGE=]DATA",
        help="mixture YAML, or a dataset file/folder (S3, M3IT, Macaw, LLaVA, shots); "
        "STAGE=DATA gives one stage its own data (repeat the option)",
    )
    parser.add_argument(
        "--output", "-o", required=True, help="output folder: the trained model, report, checkpoints"
    )
    parser.add_argument("--stage", help="run only this stage (name or index); default: every stage in order")
    parser.add_argument(
        "--max-steps", type=int, help="optimizer steps per stage (instead of the recipe's epochs)"
    )
    parser.add_argument("--epochs", type=float, help="passes over the data per stage (replaces the recipe's)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe field: dotted key, YAML value (stages.0.lr=1e-4, stages.align.batch.size=8)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --output from its last checkpoint"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the run in --output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-format", help="format of a bare dataset file (default: guessed from its first record)"
    )
    parser.add_argument(
        "--save-steps", type=int, default=500, help="checkpoint every N steps (and at the end)"
    )
    parser.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept per stage (0: all)")
    parser.add_argument(
        "--workers", type=int, default=2, help="data loader worker processes per training process"
    )
    parser.add_argument(
        "--max-failure-rate", type=float, default=0.05, help="stop when more samples are skipped"
    )
    parser.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations to save memory"
    )
    parser.add_argument("--cache-features", action="store_true", help="cache frozen encoders' outputs")
    parser.add_argument(
        "--eval-data", help="evaluate at the end of each stage on this data (needs zoo.evaluation)"
    )
    parser.add_argument(
        "--eval-metrics", default="exact_match", help="comma-separated metric names for --eval-data"
    )
    parser.add_argument(
        "--fsdp", help="FSDP options passed to TrainingArguments, e.g. 'full_shard auto_wrap'"
    )
    parser.add_argument("--fsdp-config", help="FSDP config JSON file passed to TrainingArguments")
    parser.add_argument(
        "--deepspeed", metavar="DS.JSON", help="DeepSpeed config file passed to TrainingArguments"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def data_argument(values: list[str]) -> object:
    """One DATA for every stage, or ``{stage: DATA}`` from ``STAGE=DATA`` values."""
    per_stage = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and "/" not in name and not Path(value).exists():
            per_stage[name] = path
        elif len(values) == 1:
            return value
        else:
            raise SystemExit(
                f"zoo train: error: with several --data options each must be STAGE=DATA, got {value!r}"
            )
    return per_stage


def run_train(args: argparse.Namespace) -> int:
    """Train the recipe; exit 128 + the signal number after SIGINT/SIGTERM (a checkpoint was saved)."""
    from zoo.errors import TrainingInterrupted
    from zoo.training.run import train

    _log_to_terminal()
    try:
        report = train(
            args.recipe,
            data_argument(args.data),
            args.output,
            stage=args.stage,
            max_steps=args.max_steps,
            epochs=args.epochs,
            overrides=args.sets,
            resume=args.resume,
            overwrite=args.overwrite,
            seed=args.seed,
            data_format=args.data_format,
            cache_features=args.cache_features,
            eval_data=args.eval_data,
            eval_metrics=[m.strip() for m in args.eval_metrics.split(",") if m.strip()],
            save_steps=args.save_steps,
            keep_checkpoints=args.keep_checkpoints or None,
            num_workers=args.workers,
            max_failure_rate=args.max_failure_rate,
            gradient_checkpointing=args.gradient_checkpointing,
            fsdp=args.fsdp,
            fsdp_config=args.fsdp_config,
            deepspeed=args.deepspeed,
            progress=not args.no_progress,
        )
    except TrainingInterrupted as stopped:
        print(f"zoo: {stopped}", file=sys.stderr)
        return 128 + stopped.signal
    if int(os.environ.get("RANK", "0")) == 0:
        print(report.summary())
        print(f"model saved in {args.output} (load it with zoo.load({str(args.output)!r}))")
    return 0


def _log_to_terminal() -> None:
    """zoo's own progress messages on stderr (warnings only on processes other than the first)."""
    logger = logging.getLogger("zoo")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("zoo: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # printed once, whatever handlers the root logger has
    logger.setLevel(logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING)
