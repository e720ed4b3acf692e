"""What a recipe builds, for ``zoo info``: components, sequence budget, and per stage the plan and memory.

``recipe_info(name)`` builds the recipe on the meta device once per stage (no weights, no download; each
stage's plan is applied to a fresh build) and collects a ``RecipeInfo``; ``format_info`` renders it as text,
``RecipeInfo.to_dict`` as JSON. Memory per stage assumes bf16 mixed-precision AdamW training (see
``MEMORY_ASSUMPTIONS``); activations are not included. ``format_table(model)`` is the component table of
an already built model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

BYTES = {"weights": 2, "gradients": 2, "master": 4, "adamw": 8}
MEMORY_ASSUMPTIONS = (
    "bf16 weights, 2 B per parameter (all parameters); bf16 gradients, 2 B per trainable parameter; "
    "fp32 master copy of the trainable weights, 4 B each (mixed-precision AdamW keeps one); AdamW's two "
    "moments in fp32, 8 B per trainable parameter; activations, buffers and framework overhead not included"
)


@dataclass(frozen=True)
class ComponentRow:
    """One component of a built model."""

    part: str
    component: str
    provider: str
    source: str
    parameters: int
    trainable: int
    tokens_per_item: int | None
    revision: str | None = None
    lora: int = 0


@dataclass(frozen=True)
class Memory:
    """Bytes needed to train a stage (see ``MEMORY_ASSUMPTIONS``)."""

    weights: int
    gradients: int
    master: int
    adamw: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.master + self.adamw


def memory_estimate(parameters: int, trainable: int) -> Memory:
    """Memory for bf16 weights of all ``parameters`` and gradients, master copy and AdamW of ``trainable``."""
    return Memory(
        weights=BYTES["weights"] * parameters,
        gradients=BYTES["gradients"] * trainable,
        master=BYTES["master"] * trainable,
        adamw=BYTES["adamw"] * trainable,
    )


@dataclass
class StageInfo:
    """One stage: per-part modes and trainable counts, learning rates, hyper-parameters and memory."""

    name: str
    plan: dict[str, str]
    trainable_per_part: dict[str, int]
    component_modes: dict[str, str]
    parameters: int
    trainable: int
    learning_rates: dict[str, tuple[float, int]]  # lr part → (rate, trainable parameters at that rate)
    settings: dict[str, Any]
    memory: Memory


@dataclass
class SequenceBudget:
    """Tokens a media item takes (with its boundary tokens) against the recipe's ``max_length``."""

    max_length: int | None
    per_item: dict[str, int]
    media_position: str

    @property
    def one_of_each(self) -> int:
        return sum(self.per_item.values())

    @property
    def text_left(self) -> int | None:
        return None if self.max_length is None else self.max_length - self.one_of_each


@dataclass
class RecipeInfo:
    """Everything ``zoo info`` shows about a recipe."""

    name: str
    description: str
    paper: Any
    components: list[ComponentRow]
    parameters: int
    budget: SequenceBudget
    stages: list[StageInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready form (memory in bytes, with totals)."""
        data = asdict(self)
        data["budget"].update(one_of_each=self.budget.one_of_each, text_left=self.budget.text_left)
        for stage, info in zip(data["stages"], self.stages, strict=True):
            stage["memory"]["total"] = info.memory.total
        data["memory_assumptions"] = MEMORY_ASSUMPTIONS
        return data


# --- collecting ------------------------------------------------------------------------------------------


def _count(module: nn.Module) -> tuple[int, int, int]:
    """(parameters without LoRA adapters, trainable parameters, LoRA adapter parameters)."""
    base = trainable = lora = 0
    for name, parameter in module.named_parameters():
        is_lora = "lora_" in name
        base += 0 if is_lora else parameter.numel()
        lora += parameter.numel() if is_lora else 0
        trainable += parameter.numel() if parameter.requires_grad else 0
    return base, trainable, lora


def _source(spec: dict) -> str:
    if spec.get("shared_with"):
        return f"shared with projector.{spec['shared_with']}"
    frame_encoder = (spec.get("args") or {}).get("frame_encoder")
    if isinstance(frame_encoder, str):  # video-frames reading frames with another modality's encoder
        return f"shared with encoder.{frame_encoder}"
    if not spec.get("source") and isinstance(
        frame_encoder, dict
    ):  # video-frames: the frame encoder's weights
        return _source(frame_encoder)
    return str(spec.get("source") or "random init")


def component_rows(model: Any) -> list[ComponentRow]:
    """One row per component, in the order media flows: encoders, projectors, backbone."""
    config = model.config
    rows = []
    for group, kind_specs in (("encoders", config.encoders), ("projectors", config.projectors)):
        for modality, spec in kind_specs.items():
            module = getattr(model, group)[modality]
            tokens = model.tokens_per_item(modality) if group == "projectors" else module.num_tokens
            rows.append(_row(f"{group[:-1]}.{modality}", spec, module, tokens))
    rows.append(_row("backbone", config.backbone, model.backbone, None))
    return rows


def _row(part: str, spec: dict, module: nn.Module, tokens: int | None) -> ComponentRow:
    base, trainable, lora = _count(module)
    provider = f"{spec.get('distribution', '?')} {spec.get('version', '')}".strip()
    return ComponentRow(
        part, spec["name"], provider, _source(spec), base, trainable, tokens, spec.get("revision"), lora
    )


def _mode_label(row: ComponentRow) -> str:
    if row.trainable == 0:
        return "frozen"
    if row.trainable == row.parameters + row.lora and not row.lora:
        return "full"
    if row.lora:
        extra = row.trainable - row.lora
        return "lora" + (f" + {human(extra)} full" if extra else "")
    return f"partial {human(row.trainable)}"


def _learning_rates(model: Any, stage: dict) -> dict[str, tuple[float, int]]:
    from zoo.training_plan import optimizer_groups

    if not stage.get("lr"):
        return {}
    rates: dict[str, tuple[float, int]] = {}
    for group in optimizer_groups(model, stage):
        count = sum(p.numel() for p in group["params"])
        rates[group["part"]] = (group["lr"], rates.get(group["part"], (0.0, 0))[1] + count)
    return rates


def stage_info(model: Any, stage: dict, counts: dict[str, int]) -> StageInfo:
    """What ``stage`` trains in ``model`` (its plan already applied) and the memory that needs."""
    from zoo.training_plan import stage_plan

    parameters = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    settings = {
        k: stage[k] for k in ("optimizer", "schedule", "batch", "epochs", "precision", "lora") if k in stage
    }
    return StageInfo(
        name=stage["name"],
        plan=stage_plan(stage),
        trainable_per_part=counts,
        component_modes={row.part: _mode_label(row) for row in component_rows(model)},
        parameters=parameters,
        trainable=trainable,
        learning_rates=_learning_rates(model, stage),
        settings=settings,
        memory=memory_estimate(parameters, trainable),
    )


def sequence_budget(model: Any, max_length: int | None, media_position: str = "inline") -> SequenceBudget:
    """Tokens per media item including its boundary tokens, against ``max_length``."""
    per_item = {}
    for modality in model.config.modalities:
        layout = model.config.media_tokens[modality]
        boundary = sum(1 for key in ("start", "end") if layout.get(key))
        per_item[modality] = model.tokens_per_item(modality) + boundary
    return SequenceBudget(max_length, per_item, media_position)


def recipe_info(name_or_path: str | Path, stage: int | str | None = None, **overrides: Any) -> RecipeInfo:
    """Build the recipe on the meta device once per stage (or only ``stage``) and describe it."""
    from zoo.recipes_api import build, load_recipe
    from zoo.training_plan import trainable_counts

    recipe = load_recipe(name_or_path, **overrides)
    indices = [recipe.stage_index(stage)] if stage is not None else list(range(len(recipe.stages)))
    stages, first = [], None
    for index in indices or [None]:
        model = build(name_or_path, device="meta", stage=index or 0, **overrides)
        first = first or model
        if index is not None:  # a fresh build per stage: stages are not cumulative
            stages.append(
                stage_info(model, recipe.stages[index], trainable_counts(model, recipe.stages[index]))
            )
    assert first is not None
    return RecipeInfo(
        name=recipe.name,
        description=recipe.description,
        paper=recipe.paper,
        components=component_rows(first),
        parameters=sum(p.numel() for n, p in first.named_parameters() if "lora_" not in n),
        budget=sequence_budget(first, recipe.max_length, recipe.media_position),
        stages=stages,
    )


# --- rendering -------------------------------------------------------------------------------------------


def human(count: float, unit: str = "") -> str:
    """1234567 → ``1.23M``; with ``unit="B"``, bytes in GiB / MiB / KiB."""
    if unit == "B":
        for suffix, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if count >= size:
                return f"{count / size:.2f} {suffix}"
        return f"{int(count)} B"
    for suffix, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.2f}{suffix}"
    return str(int(count))


def columns(rows: list[tuple[str, ...]], indent: str = "") -> str:
    """Left-aligned columns, a rule under the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(model: Any) -> str:
    """A plain-text table of a built model's components and its total / trainable parameter counts."""
    rows = component_rows(model)
    header = ("part", "component", "provider", "weights", "params", "trainable", "tokens/item")
    cells = [header] + [
        (r.part, r.component, r.provider, _weights(r), f"{r.parameters:,}", f"{r.trainable:,}", _tokens(r))
        for r in rows
    ]
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    share = 100 * trainable / max(total, 1)
    return columns(cells) + f"\ntotal parameters {total:,}; trainable {trainable:,} ({share:.2f}%)"


def _weights(row: ComponentRow) -> str:
    return f"{row.source}@{row.revision}" if row.revision else row.source


def _tokens(row: ComponentRow) -> str:
    return "" if row.tokens_per_item is None else str(row.tokens_per_item)


def format_info(info: RecipeInfo) -> str:
    """The text ``zoo info`` prints."""
    parts = [f"recipe {info.name}: {info.description}".rstrip(": ")]
    if info.paper:
        parts.append(f"paper: {paper_line(info.paper)}")
    parts += ["", _components(info), "", _budget(info.budget)]
    for index, stage in enumerate(info.stages):
        parts += ["", _stage(stage, index, len(info.stages))]
    parts += ["", f"memory assumptions: {MEMORY_ASSUMPTIONS}."]
    return "\n".join(parts)


def paper_line(paper: Any) -> str:
    """A recipe's ``paper`` field on one line: title; arXiv id; code URL."""
    if not isinstance(paper, dict):
        return str(paper)
    bits = [paper.get("title", "")]
    bits += [f"arXiv:{paper['arxiv']}"] if paper.get("arxiv") else []
    bits += [str(paper["code"])] if paper.get("code") else []
    return "; ".join(b for b in bits if b)


def _components(info: RecipeInfo) -> str:
    names = [s.name for s in info.stages]
    header = ("part", "component", "provider", "weights", "revision", "params", "tokens/item", *names)
    rows = [header]
    for row in info.components:
        modes = [s.component_modes.get(row.part, "") for s in info.stages]
        rows.append(
            (
                row.part,
                row.component,
                row.provider,
                row.source,
                row.revision or "-",
                f"{row.parameters:,}",
                _tokens(row),
                *modes,
            )
        )
    total = f"total parameters {info.parameters:,} ({human(info.parameters)}), built on the meta device"
    return "components (training mode per stage in the last columns)\n" + columns(rows) + "\n" + total


def _budget(budget: SequenceBudget) -> str:
    length = budget.max_length
    lines = [
        f"sequence budget: max_length {length if length is not None else 'not set'}; "
        f"media {budget.media_position}"
    ]
    for modality, tokens in budget.per_item.items():
        left = "" if length is None else f"; {length - tokens} left for text"
        lines.append(f"  one {modality} item: {tokens} tokens (with its boundary tokens){left}")
    if len(budget.per_item) > 1:
        left = "" if length is None else f"; {budget.text_left} left for text"
        lines.append(f"  one item of each modality: {budget.one_of_each} tokens{left}")
    return "\n".join(lines)


def _stage(stage: StageInfo, index: int, count: int) -> str:
    rows = [("part", "mode", "trainable")]
    rows += [(p, m, f"{stage.trainable_per_part.get(p, 0):,}") for p, m in stage.plan.items()]
    share = 100 * stage.trainable / max(stage.parameters, 1)
    lines = [
        f"stage {index + 1} of {count}: {stage.name}",
        columns(rows, indent="  "),
        f"  trainable {stage.trainable:,} of {stage.parameters:,} parameters ({share:.2f}%)",
        "  learning rates: " + rates_line(stage),
    ]
    lines += [f"  {key}: {setting_text(value)}" for key, value in stage.settings.items()]
    lines += ["  memory to train in bf16 (activations not included):", _memory(stage)]
    return "\n".join(lines)


def rates_line(stage: StageInfo) -> str:
    """A stage's learning rates on one line, each with the parameters it applies to."""
    if not stage.learning_rates:
        return "not set"
    return "; ".join(
        f"{part} {rate:g} ({human(n)} params)" for part, (rate, n) in stage.learning_rates.items()
    )


def setting_text(value: Any) -> str:
    """A stage setting (optimizer, schedule, batch, ...) as short text."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {setting_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _memory(stage: StageInfo) -> str:
    memory, total, trainable = stage.memory, stage.parameters, stage.trainable
    rows = [
        ("item", "bytes per parameter", "size"),
        ("weights (bf16)", f"2 x {human(total)} parameters", human(memory.weights, "B")),
        ("gradients (bf16)", f"2 x {human(trainable)} trainable", human(memory.gradients, "B")),
        ("master weights (fp32)", f"4 x {human(trainable)} trainable", human(memory.master, "B")),
        ("AdamW moments (fp32)", f"8 x {human(trainable)} trainable", human(memory.adamw, "B")),
        ("total", "", human(memory.total, "B")),
    ]
    return columns(rows, indent="    ")
