"""One evaluation run: read the data, check everything, generate in batches, score, write the results.

``evaluate(model, data, metrics)`` reads every sample of every dataset once (the data readers and their
skip ledger: a sample that cannot be read, decoded or generated is listed with its reason), checks the
request before any generation starts (metric names, references and options the metrics need, media the
model has encoders for), then gathers only what the metrics need: greedy answers generated in batches
(left padding, KV cache), the log-probabilities of the reference answers (S3's HM), the log-likelihood
of each option (multiple choice). Scores are computed overall and per dataset, task and dialog type;
``results.json``, ``predictions.jsonl`` and ``skipped_samples.jsonl`` go to ``output_dir``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo import __version__
from zoo.data.mixture import DatasetSpec, Mixture
from zoo.data.pipeline import SkipLedger
from zoo.data.readers import list_files
from zoo.data.schema import Sample, Skip
from zoo.errors import EvaluationError, ZooError
from zoo.evaluation.metrics import OPTIONS, PREDICTION, REFERENCE, REFERENCE_LOGPROBS, Metric, Record

logger = logging.getLogger(__name__)

GROUPS = ("dataset", "task", "dialog_type")
MEDIA = ("image", "audio", "video")
_SHORT = 200  # media references longer than this (base64) are summarised in predictions.jsonl


@dataclass
class GenerationSettings:
    """How answers are generated; recorded in results.json. Greedy unless told otherwise."""

    max_new_tokens: int = 64
    batch_size: int = 8
    do_sample: bool = False
    num_beams: int = 1
    seed: int = 0
    use_cache: bool = True
    padding_side: str = "left"
    extra: dict = field(default_factory=dict)  # any other `generate` keyword (temperature, top_p, ...)

    def generate_kwargs(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            "num_beams": self.num_beams,
            "use_cache": self.use_cache,
            **self.extra,
        }


@dataclass
class Item:
    """One sample to evaluate: the conversation before the reference answer, and what scores it."""

    sample: Sample
    prompt: list[dict]
    references: list[str]
    task: str
    dialog_type: str
    options: list[str] | None = None
    record: Record | None = None


@dataclass
class EvalResult:
    """``scores``: ``{metric: value}`` plus ``by_dataset`` / ``by_task`` / ``by_dialog_type`` breakdowns."""

    scores: dict[str, Any]
    predictions: list[dict]
    skipped: list[Skip]
    info: dict[str, Any]
    output_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info,
            "scores": self.scores,
            "samples": {
                "evaluated": len(self.predictions),
                "skipped": len(self.skipped),
                "read": len(self.predictions) + len(self.skipped),
            },
            "skipped": [s.to_dict() for s in self.skipped],
        }


# -- the request ------------------------------------------------------------------------------------------
def resolve_metrics(names: str | Sequence[str]) -> list[Metric]:
    """The ``Metric`` of each name (comma-separated string or list), found through the registry's
    ``zoo.metrics`` entry points (zoo's own metrics register there too); unknown names are an error."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise EvaluationError(f"no metric given; choose from {', '.join(_known_metrics())}")
    return [_metric(n) for n in dict.fromkeys(names)]


def _metric(name: str) -> Metric:
    from zoo.errors import UnknownComponentError
    from zoo.evaluation.metrics import plugin_metric
    from zoo.registry import get_registry

    try:
        return plugin_metric(name, get_registry().load("metric", name))
    except UnknownComponentError:
        known = _known_metrics()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise EvaluationError(f"unknown metric {name!r}{hint}; known: {', '.join(known)}") from None


def _known_metrics() -> list[str]:
    from zoo.registry import get_registry

    return sorted({e.name for e in get_registry().list_components("metric")})


def as_mixture(data: Any, data_format: str = "s3", name: str | None = None) -> Mixture:
    """A ``Mixture`` from a mixture, its mapping or YAML file, a list of dataset entries, or one data path."""
    if isinstance(data, Mixture):
        return data
    if isinstance(data, dict):
        return Mixture.from_dict(data)
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return Mixture.from_dict({"datasets": data})
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.suffix.lower() in (".yaml", ".yml"):
            return Mixture.from_yaml(path)
        spec = DatasetSpec.from_dict(
            {"name": name or path.stem, "path": str(path), "format": data_format}, base_dir=None
        )
        return Mixture([spec])
    raise EvaluationError(
        f"cannot evaluate on {type(data).__name__}: give a data file or folder, a mixture YAML, a mapping, "
        "or a Mixture"
    )


def read_items(mixture: Mixture, limit: int | None, ledger: SkipLedger) -> list[Item]:
    """Every dataset's samples once, in file order (at most ``limit`` per dataset); skips go to ``ledger``."""
    items = []
    for spec in mixture.datasets:
        for taken, entry in enumerate(mixture.dataset_pass(spec)):
            if limit is not None and taken >= limit:
                break
            if isinstance(entry, Skip):
                ledger.add(entry)
            else:
                items.append(make_item(entry, spec))
    return items


def make_item(sample: Sample, spec: DatasetSpec | None = None) -> Item:
    """Split a sample into the prompt and its reference answer (the last assistant text, if it ends there)."""
    messages = list(sample.messages)
    references: list[str] = []
    if messages and messages[-1]["role"] == "assistant" and messages[-1]["type"] == "text":
        references.append(messages.pop()["content"])
    extra = sample.meta.get("references")
    if isinstance(extra, list):
        references += [str(r) for r in extra if str(r) not in references]
    options = sample.meta.get("options")
    task = sample.meta.get("task") or (spec.task if spec else None) or sample.dataset
    return Item(
        sample=sample,
        prompt=messages,
        references=references,
        task=str(task),
        dialog_type=dialog_type(messages),
        options=[str(o) for o in options] if isinstance(options, list) and options else None,
    )


def dialog_type(messages: Iterable[dict]) -> str:
    """S3's dialog types: ``text``, ``text+image``, ``text+audio``, ``text+image+audio`` (and ``+video``)."""
    present = {m["type"] for m in messages}
    return "+".join(["text", *(m for m in MEDIA if m in present)])


def check_request(items: list[Item], metrics: list[Metric], modalities: Sequence[str]) -> None:
    """Everything that would make the run fail or score nothing, found before generation starts."""
    needs = set().union(*(m.needs for m in metrics))
    by_dataset: dict[str, list[Item]] = {}
    for item in items:
        by_dataset.setdefault(item.sample.dataset, []).append(item)
    problems = []
    for dataset, group in by_dataset.items():
        if REFERENCE in needs:
            missing = sum(not i.references for i in group)
            if missing:
                named = [m.name for m in metrics if REFERENCE in m.needs]
                problems.append(
                    f"dataset {dataset!r}: {missing} of {len(group)} samples have no reference answer (the "
                    f"conversation does not end with an assistant message), which {', '.join(named)} need"
                )
        if OPTIONS in needs:
            missing = sum(not i.options for i in group)
            if missing:
                problems.append(
                    f"dataset {dataset!r}: {missing} of {len(group)} samples have no 'options' list "
                    "(record field or meta.options), which choice needs"
                )
        unsupported = sorted({t for i in group for t in i.dialog_type.split("+")[1:]} - set(modalities))
        if unsupported:
            problems.append(
                f"dataset {dataset!r} has {', '.join(unsupported)} but the model has encoders only for "
                f"{', '.join(modalities) or 'no media'}"
            )
    if problems:
        raise EvaluationError("cannot evaluate:\n  " + "\n  ".join(problems))


# -- the model --------------------------------------------------------------------------------------------
def load_model(target: Any) -> Any:
    """A model from a model object, a saved folder, a recipe name or YAML, or (with zoo.load) a Hub repo."""
    if not isinstance(target, (str, Path)):
        return target
    import zoo

    path = Path(target)
    loader = getattr(zoo, "load", None)
    if path.is_dir():
        if loader is not None:
            return loader(path)
        from zoo.modeling import ZooModel

        return ZooModel.from_pretrained(path)
    try:
        return zoo.build(str(target))
    except ZooError:
        if loader is None or path.suffix in (".yaml", ".yml"):
            raise
        return loader(str(target))


def model_info(target: Any, model: Any) -> dict[str, Any]:
    """What the scores belong to: the model's config and a revision (manifest hash for a saved folder)."""
    config = json.loads(model.config.to_json_string())
    info: dict[str, Any] = {"target": None, "recipe": config.get("recipe"), "revision": None}
    if isinstance(target, (str, Path)):
        info["target"] = str(target)
        folder = Path(target)
        for name in ("zoo_checkpoint.json", "model.safetensors", "config.json"):
            if (folder / name).is_file():
                info["revision"] = {"file": name, "sha256": sha256_file(folder / name)}
                break
    info["components"] = {key: config.get(key) for key in ("backbone", "encoders", "projectors")}
    info["applied_stages"] = config.get("applied_stages")
    info["config"] = config
    return info


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_info(mixture: Mixture, source: Any) -> dict[str, Any]:
    """Each dataset's files with their sha256, and the mixture file's when there is one."""
    datasets = []
    for spec in mixture.datasets:
        files = list_files(spec.path)
        datasets.append(
            {
                "name": spec.name,
                "format": spec.format,
                "task": spec.task,
                "files": [
                    {"path": str(f), "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in files
                ],
            }
        )
    info: dict[str, Any] = {"datasets": datasets}
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() in (".yaml", ".yml"):
        info["mixture"] = {"path": str(source), "sha256": sha256_file(Path(source))}
    return info


# -- gathering --------------------------------------------------------------------------------------------
class Gatherer:
    """Generates answers and scores log-probabilities for items, batched; failures become skips."""

    def __init__(
        self, model: Any, processor: Any, settings: GenerationSettings, progress: bool = True
    ) -> None:
        self.model = model
        self.processor = processor
        self.settings = settings
        self.progress = progress

    def _bar(self, total: int, desc: str) -> Any:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit="sample", disable=not self.progress)

    def encode(self, messages: list[dict], add_generation_prompt: bool) -> Any:
        return self.processor.encode(messages, add_generation_prompt=add_generation_prompt)

    def generate(self, encoded: list[Any]) -> dict[int, str | Exception]:
        """Greedy (by default) answers in batches of similar length; a failing batch is retried one by one.

        Returns ``{position in encoded: answer text or the error}``."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        answers: dict[int, str | Exception] = {}
        size = self.settings.batch_size
        with self._bar(len(encoded), "generating") as bar:
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                try:
                    texts = self._generate_batch([encoded[i] for i in chunk])
                    answers.update(zip(chunk, texts, strict=True))
                except Exception:
                    for i in chunk:  # isolate the sample that fails
                        try:
                            answers[i] = self._generate_batch([encoded[i]])[0]
                        except Exception as error:
                            answers[i] = error
                bar.update(len(chunk))
        return answers

    @torch.inference_mode()
    def _generate_batch(self, encoded: list[Any]) -> list[str]:
        inputs = self.processor.collate(encoded, padding_side="left")
        inputs.pop("labels")
        output = self.model.generate(
            **inputs, pad_token_id=self.processor.pad_id, **self.settings.generate_kwargs()
        )
        new = output[:, inputs["input_ids"].shape[1] :]
        return [self.processor.decode(row).strip() for row in new]

    def response_logprobs(self, conversations: list[tuple[list[dict], str]]) -> list[list[float] | Exception]:
        """Log-probability of each response token given its prompt (teacher forcing, batched).

        The response tokens are those the processor labels for the last assistant turn (the answer and the
        chat template's end of turn), i.e. exactly the tokens a training step would learn.
        """
        return [r if isinstance(r, Exception) else r[0] for r in self.response_scores(conversations)]

    def response_scores(
        self, conversations: list[tuple[list[dict], str]]
    ) -> list[tuple[list[float], bool] | Exception]:
        """Per conversation: the response tokens' log-probabilities, and whether greedy decoding would
        produce exactly those tokens (lmms-eval's ``is_greedy``)."""
        prepared: list[tuple[Any, int] | Exception] = []
        for prompt, answer in conversations:
            try:
                start = len(self.encode(prompt, add_generation_prompt=True))
                full = self.encode([*prompt, {"role": "assistant", "type": "text", "content": answer}], False)
                prepared.append((full, start))
            except Exception as error:
                prepared.append(error)
        results: list[Any] = [p if isinstance(p, Exception) else None for p in prepared]
        good = [i for i, p in enumerate(prepared) if not isinstance(p, Exception)]
        size = self.settings.batch_size
        with self._bar(len(good), "scoring") as bar:
            for start in range(0, len(good), size):
                chunk = good[start : start + size]
                try:
                    scores = self._score_batch([prepared[i] for i in chunk])
                except Exception as error:
                    scores = [error] * len(chunk)
                for i, value in zip(chunk, scores, strict=True):
                    results[i] = value
                bar.update(len(chunk))
        return results

    @torch.inference_mode()
    def _score_batch(self, batch: list[tuple[Any, int]]) -> list[tuple[list[float], bool]]:
        from zoo.processor import IGNORE_INDEX

        masked = []
        for encoded, start in batch:
            labels = [IGNORE_INDEX] * start + list(encoded.labels[start:])
            masked.append(type(encoded)(encoded.input_ids, labels, encoded.media, encoded.blocks))
        inputs = self.processor.collate(masked, padding_side="right")
        labels = inputs.pop("labels")
        logits = self.model(**inputs).logits.float()[:, :-1]
        logprobs = torch.log_softmax(logits, dim=-1)
        targets = labels[:, 1:]
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        greedy = logits.argmax(dim=-1) == targets
        rows = []
        for row in range(len(batch)):
            keep = targets[row] != IGNORE_INDEX
            rows.append((picked[row][keep].tolist(), bool(greedy[row][keep].all())))
        return rows


def _skip(item: Item, stage: str, error: Exception) -> Skip:
    reason = str(error) if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"
    s = item.sample
    return Skip(s.dataset, s.index, s.id, stage, reason, s.meta.get("source"))


def gather(items: list[Item], metrics: list[Metric], gatherer: Gatherer, ledger: SkipLedger) -> list[Item]:
    """Fill each item's ``Record`` with what the metrics need; items that fail go to ``ledger``."""
    needs = set().union(*(m.needs for m in metrics))
    alive: list[Item] = []
    encoded = []
    for item in items:
        item.record = Record(
            id=item.sample.id,
            dialog_type=item.dialog_type,
            references=item.references,
            options=item.options,
        )
        if PREDICTION not in needs:
            alive.append(item)
            continue
        try:
            encoded.append(gatherer.encode(item.prompt, add_generation_prompt=True))
            alive.append(item)
        except Exception as error:
            ledger.add(_skip(item, "decode", error))
    if PREDICTION in needs:
        answers = gatherer.generate(encoded)
        alive = _keep(
            alive, answers, "generate", ledger, lambda item, text: setattr(item.record, "prediction", text)
        )
    if REFERENCE_LOGPROBS in needs:
        scores = gatherer.response_logprobs([(i.prompt, i.references[0]) for i in alive])
        alive = _keep(
            alive, dict(enumerate(scores)), "score", ledger,
            lambda item, value: setattr(item.record, "reference_logprobs", value),
        )  # fmt: skip
    if OPTIONS in needs:
        alive = _option_logliks(alive, gatherer, ledger)
    return alive


def _keep(items: list[Item], results: dict, stage: str, ledger: SkipLedger, store: Any) -> list[Item]:
    kept = []
    for index, item in enumerate(items):
        value = results[index]
        if isinstance(value, Exception):
            ledger.add(_skip(item, stage, value))
            continue
        store(item, value)
        kept.append(item)
    return kept


def _option_logliks(items: list[Item], gatherer: Gatherer, ledger: SkipLedger) -> list[Item]:
    """Sum of log-probabilities of each option given as the answer (its letter when the reference is one)."""
    from zoo.evaluation.answers import option_letters

    queries, owners = [], []
    for n, item in enumerate(items):
        options = item.options or []
        letters = option_letters(len(options))
        by_letter = item.references[0].strip().strip("().: ").upper() in letters
        for letter, text in zip(letters, options, strict=True):
            queries.append((item.prompt, letter if by_letter else text))
            owners.append(n)
    scores = gatherer.response_logprobs(queries)
    per_item: dict[int, list[float] | Exception] = {}
    for owner, value in zip(owners, scores, strict=True):
        current = per_item.setdefault(owner, [])
        if isinstance(current, Exception):
            continue
        per_item[owner] = value if isinstance(value, Exception) else [*current, sum(value)]
    return _keep(items, per_item, "score", ledger, lambda item, v: setattr(item.record, "option_logliks", v))


# -- scoring ----------------------------------------------------------------------------------------------
def score(items: list[Item], metrics: list[Metric]) -> tuple[dict[str, Any], list[dict]]:
    """Aggregate scores (overall and per group) and the per-sample score dicts, aligned with ``items``."""
    records = [item.record for item in items]
    scores: dict[str, Any] = {}
    per_sample: list[dict] = [{} for _ in items]
    for metric in metrics:
        result = metric.compute(records)
        scores.update(result.scores)
        for target, values in zip(per_sample, result.per_sample, strict=True):
            target.update(values)
    for group in GROUPS:
        members: dict[str, list[Record]] = {}
        for item in items:
            members.setdefault(
                str(getattr(item, group) if group != "dataset" else item.sample.dataset), []
            ).append(item.record)
        scores[f"by_{group}"] = {
            key: {"n": len(recs), **_group_scores(recs, metrics)} for key, recs in sorted(members.items())
        }
    return scores, per_sample


def _group_scores(records: list[Record], metrics: list[Metric]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in metrics:
        out.update(metric.compute(records).scores)
    return out


def _prompt_view(messages: list[dict]) -> list[dict]:
    """Messages as written to predictions.jsonl: long media content (base64) summarised."""
    view = []
    for m in messages:
        content = m["content"]
        if m["type"] != "text" and not (isinstance(content, str) and len(content) <= _SHORT):
            content = f"<{m['type']}: {type(content).__name__} of {len(str(content))} characters>"
        view.append({"role": m["role"], "type": m["type"], "content": content})
    return view


def prediction_rows(items: list[Item], per_sample: list[dict]) -> list[dict]:
    rows = []
    for item, scores in zip(items, per_sample, strict=True):
        r = item.record
        rows.append(
            {
                "id": item.sample.id,
                "dataset": item.sample.dataset,
                "index": item.sample.index,
                "task": item.task,
                "dialog_type": item.dialog_type,
                "prompt": _prompt_view(item.prompt),
                "prediction": r.prediction,
                "reference": item.references[0] if item.references else None,
                "references": item.references,
                **({"options": item.options} if item.options else {}),
                "scores": scores,
            }
        )
    return rows


# -- the whole run ----------------------------------------------------------------------------------------
def evaluate(
    model: Any,
    data: Any,
    metrics: str | Sequence[str],
    output_dir: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    *,
    data_format: str = "s3",
    seed: int = 0,
    progress: bool = True,
    generation: dict | None = None,
) -> EvalResult:
    """Score ``model`` (a model, saved folder, recipe name or YAML) on ``data`` with the named metrics.

    ``data`` is a data file or folder (``data_format``: s3, m3it, macaw, llava, shots), a mixture YAML or
    mapping, or a ``Mixture``; every dataset is read once in file order, at most ``limit`` samples each.
    Generation is greedy unless ``generation`` (extra ``generate`` keywords) says otherwise.
    Raises ``EvaluationError`` before generating when a metric is unknown, references or options are
    missing, or the data has media the model cannot read.
    """
    chosen = resolve_metrics(metrics)
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be a positive number of samples, got {limit}")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    if generation:
        settings.extra = dict(generation)
        settings.do_sample = bool(settings.extra.pop("do_sample", False))
        settings.num_beams = int(settings.extra.pop("num_beams", 1))
    mixture = as_mixture(data, data_format)
    ledger = SkipLedger()
    items = read_items(mixture, limit, ledger)
    if not items:
        raise EvaluationError(
            f"no sample of the data could be read ({len(ledger)} skipped)\n{ledger.summary(0)}"
        )
    check_request(items, chosen, _modalities_of(model))
    for metric in chosen:
        if metric.prepare is not None:
            metric.prepare()  # e.g. METEOR's WordNet: missing data is an error now, not after generating
    started = time.perf_counter()
    loaded = load_model(model).eval()
    check_request(items, chosen, loaded.config.modalities)
    from zoo.processor import ZooProcessor

    gatherer = Gatherer(loaded, ZooProcessor.from_model(loaded), settings, progress=progress)
    with torch.random.fork_rng():  # seeded here, and the caller's (a training run's) random state untouched
        torch.manual_seed(seed)
        kept = gather(items, chosen, gatherer, ledger)
    scores, per_sample = score(kept, chosen) if kept else ({}, [])
    info = {
        "zoo_version": __version__,
        "metrics": {
            m.name: {"implementation": m.implementation, "description": m.description} for m in chosen
        },
        "model": model_info(model, loaded),
        "data": data_info(mixture, data),
        "generation": {k: v for k, v in asdict(settings).items()},
        "limit_per_dataset": limit,
        "seconds": round(time.perf_counter() - started, 2),
    }
    result = EvalResult(scores, prediction_rows(kept, per_sample), list(ledger.entries), info)
    if output_dir is not None:
        write_outputs(result, Path(output_dir), ledger)
    if len(ledger):
        logger.warning("%s", ledger.summary(len(kept)))
    return result


def _modalities_of(target: Any) -> list[str]:
    """The model's modalities when known without loading it (a model object or a saved config)."""
    config = getattr(target, "config", None)
    if config is not None:
        return list(config.modalities)
    if isinstance(target, (str, Path)) and (Path(target) / "config.json").is_file():
        encoders = json.loads((Path(target) / "config.json").read_text()).get("encoders") or {}
        return list(encoders)
    try:
        from zoo.recipes_api import load_recipe

        return list(load_recipe(str(target)).encoders)
    except Exception:
        return list(MEDIA)  # unknown until loaded: checked again after loading


def write_outputs(result: EvalResult, folder: Path, ledger: SkipLedger) -> None:
    """``results.json``, ``predictions.jsonl`` and ``skipped_samples.jsonl`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n")
    with (folder / "predictions.jsonl").open("w", encoding="utf-8") as f:
        for row in result.predictions:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    ledger.write(folder / "skipped_samples.jsonl")
    result.output_dir = folder
