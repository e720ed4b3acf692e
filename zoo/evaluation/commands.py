"""`zoo eval`, `zoo judge` and `zoo data audit`: argument set-up and thin runners over zoo.evaluation.

Cheap to import (``zoo --help`` builds these parsers): torch and the metric packages load inside ``run_*``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DATA_FORMATS = ("s3", "m3it", "macaw", "llava", "shots")


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", dest="data_format", default="s3", choices=DATA_FORMATS,
        help="format of a data file or folder (a mixture YAML names its own); default s3",
    )  # fmt: skip
    parser.add_argument("--limit", type=int, help="at most N samples of each dataset")


# --- zoo eval --------------------------------------------------------------------------------------------
def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", help="recipe name or YAML, or a folder written by save_pretrained / zoo train"
    )
    parser.add_argument("--data", required=True, help="a data file or folder, or a mixture YAML")
    parser.add_argument(
        "--metrics", required=True,
        help="comma-separated: rouge_l, meteor, bleu, cider, hm, integral, choice, exact_match",
    )  # fmt: skip
    parser.add_argument("--output", help="folder for results.json, predictions.jsonl, skipped_samples.jsonl")
    _add_data_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_eval(args: argparse.Namespace) -> int:
    from zoo.evaluation.run import evaluate

    result = evaluate(
        args.model,
        args.data,
        args.metrics,
        output_dir=args.output,
        limit=args.limit,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        data_format=args.data_format,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(format_scores(result.scores))
    counts = result.to_dict()["samples"]
    print(f"\n{counts['evaluated']} samples evaluated, {counts['skipped']} skipped")
    if result.output_dir is not None:
        print(
            f"results: {result.output_dir / 'results.json'}  predictions: {result.output_dir / 'predictions.jsonl'}"
        )
    return 0


def format_scores(scores: dict[str, Any]) -> str:
    """The overall scores, then one table per breakdown (dataset, task, dialog type)."""
    from zoo.cli import format_table

    overall = [(k, _number(v)) for k, v in scores.items() if not k.startswith("by_")]
    parts = [format_table([("METRIC", "SCORE"), *overall])]
    for key, groups in scores.items():
        if not key.startswith("by_") or not groups:
            continue
        names = [k for k in next(iter(groups.values())) if k != "n" and "/mean[" not in k]
        header = (key[3:].upper().replace("_", " "), "N", *names)
        rows = [(g, str(v["n"]), *(_number(v.get(n)) for n in names)) for g, v in groups.items()]
        parts.append(format_table([header, *rows]))
    return "\n\n".join(parts)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if not isinstance(value, float):
        return str(value)
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.2e}"  # HM of an untrained model


# --- zoo judge -------------------------------------------------------------------------------------------
def add_judge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "answers", nargs=2, metavar="PREDICTIONS", help="two predictions.jsonl files of zoo eval"
    )
    parser.add_argument(
        "--judge",
        required=True,
        help="judge model: recipe, saved zoo folder, or a transformers causal LM folder",
    )
    parser.add_argument("--output", help="folder for judgements.jsonl and judge_results.json")
    parser.add_argument(
        "--template", help="a text file with the judge template ({Q} {R} {R1} {R2}); default M3IT's"
    )
    parser.add_argument(
        "--samples", type=int, default=1, help="completions per order (M3IT: 3 at temperature 1)"
    )
    parser.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--limit", type=int, help="at most N questions")


def run_judge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from zoo.evaluation.judge import JUDGE_TEMPLATE, judge_prediction_files

    template = Path(args.template).read_text(encoding="utf-8") if args.template else JUDGE_TEMPLATE
    summary = judge_prediction_files(
        args.answers[0], args.answers[1], args.judge, template=template, output_dir=args.output,
        samples=args.samples, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
        limit=args.limit,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


# --- zoo data audit --------------------------------------------------------------------------------------
def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    audit = sub.add_parser(
        "audit",
        help="the review's data-quality indicators per dataset and for the mixture",
        description="Task, instruction and response diversity, balance, image-text matching, lengths, media.",
    )
    audit.add_argument("data", help="a data file or folder, or a mixture YAML")
    _add_data_arguments(audit)
    audit.add_argument("--output", help="folder for audit.json and audit.png")
    audit.add_argument(
        "--text-encoder", default="all-MiniLM-L6-v2",
        help="sentence-transformers model folder for response diversity (default: the packaged all-MiniLM-L6-v2); 'none' skips it",
    )  # fmt: skip
    audit.add_argument(
        "--clip",
        help="image-text matching through CLIP: open_clip:ARCH[:PRETRAINED_FILE_OR_TAG] or a transformers CLIP folder",
    )
    audit.add_argument("--eps", type=float, default=0.3, help="DBSCAN radius (cosine distance) for responses")
    audit.add_argument("--json", action="store_true", help="print JSON instead of tables")


def run_data(args: argparse.Namespace) -> int:
    from zoo.evaluation.audit import audit, format_audit

    report = audit(
        args.data, data_format=args.data_format, limit=args.limit, output_dir=args.output,
        text_encoder=None if args.text_encoder == "none" else args.text_encoder, clip=args.clip,
        eps=args.eps,
    )  # fmt: skip
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_audit(report))
    return 0
