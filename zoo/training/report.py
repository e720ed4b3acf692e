"""``train_report.json`` and the loss curves: what each stage of a run did.

Per stage: status (``done``, ``running``, ``interrupted``, ``failed``), steps, the batch split, samples used
and skipped, first and last loss, wall time, samples/s, the precision, the last checkpoint and evaluation
scores. The ``run`` section records what the run was asked for (recipe, overrides, data, seed), so a
``--resume`` with other settings is refused. ``loss_<stage>.png`` plots the per-step loss.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPORT = "train_report.json"


@dataclass
class StageReport:
    """What one stage did (see the module docstring)."""

    name: str
    status: str = "running"
    steps: int = 0
    max_steps: int = 0
    global_batch: int = 0
    per_device_batch: int = 0
    accumulation: int = 0
    processes: int = 1
    precision: str = "fp32"
    samples_per_epoch: int = 0
    samples_used: int = 0
    samples_skipped: int = 0
    first_loss: float | None = None
    last_loss: float | None = None
    wall_time_s: float = 0.0
    samples_per_s: float | None = None
    trainable_parameters: int = 0
    checkpoint: str | None = None
    loss_curve: str | None = None
    eval: dict | None = None
    losses: list[list[float]] = field(default_factory=list)  # [step, loss] pairs
    error: str | None = None


@dataclass
class TrainReport:
    """The whole run: what it was asked for and one ``StageReport`` per stage, in recipe order."""

    run: dict = field(default_factory=dict)
    stages: dict[str, StageReport] = field(default_factory=dict)
    output_dir: str = ""

    def stage(self, name: str) -> StageReport:
        return self.stages.setdefault(name, StageReport(name))

    def to_dict(self) -> dict:
        return {"run": self.run, "stages": {name: asdict(s) for name, s in self.stages.items()}}

    @classmethod
    def from_dict(cls, data: dict, output_dir: str = "") -> TrainReport:
        fields = set(StageReport.__dataclass_fields__)
        stages = {
            name: StageReport(**{k: v for k, v in entry.items() if k in fields})
            for name, entry in (data.get("stages") or {}).items()
        }
        return cls(run=data.get("run") or {}, stages=stages, output_dir=output_dir)

    @classmethod
    def read(cls, folder: Path) -> TrainReport | None:
        path = folder / REPORT
        if not path.is_file():
            return None
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")), str(folder))

    def write(self, folder: Path) -> Path:
        """Write ``train_report.json`` (through a temporary file, so a reader never sees half of it)."""
        path = folder / REPORT
        staging = folder / f".{REPORT}.tmp"
        staging.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(staging, path)
        return path

    def summary(self) -> str:
        """One line per stage, for the end of a run."""
        lines = []
        for s in self.stages.values():
            loss = (
                f"loss {s.first_loss:.4f} → {s.last_loss:.4f}"
                if s.first_loss is not None and s.last_loss is not None
                else "no loss logged"
            )
            rate = f", {s.samples_per_s:.2f} samples/s" if s.samples_per_s else ""
            lines.append(
                f"stage {s.name}: {s.status}, {s.steps}/{s.max_steps} steps, {loss}, {s.samples_used} samples "
                f"used, {s.samples_skipped} skipped, {s.wall_time_s:.1f} s{rate}"
            )
        return "\n".join(lines)


def plot_losses(losses: list[list[float]], path: Path, title: str) -> Path | None:
    """The per-step training loss as a PNG (matplotlib, no display needed); None when nothing was logged."""
    if not losses:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps, values = zip(*losses, strict=True)
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    axes.plot(steps, values, linewidth=1.2)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def stage_losses(log_history: list[dict[str, Any]]) -> list[list[float]]:
    """[step, loss] of every logged training step (Trainer's ``state.log_history``)."""
    return [[entry["step"], entry["loss"]] for entry in log_history if "loss" in entry and "step" in entry]
