"""``zoo.train``: a recipe and data into a trained model, stage by stage, in one output folder.

Everything that can be checked is checked before the first step: the overrides against the recipe, the
stage name, the output folder, the data (readable, usable samples, media the recipe has encoders for),
the batch split and the learning rates. Then each stage runs on the same model object: ``apply_stage``
(LoRA injected once, continued or merged by the later stage) and one ``ZooTrainer``. At the end of a stage
the model is saved into the output folder itself (``zoo.load(DIR)`` gives it back), with the loss curve,
the report and, with ``eval_data``, evaluation scores.

Output folder::

    DIR/config.json, model.safetensors, tokenizer..., zoo_checkpoint.json   the model after the last stage
    DIR/train_report.json  DIR/loss_<stage>.png  DIR/skipped_samples.jsonl
    DIR/checkpoints/<stage>/checkpoint-<step>/    resumable checkpoints (not part of the model)
    DIR/runs/<stage>/                             TensorBoard logs (when TensorBoard is installed)
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError, RecipeError, TrainingError
from zoo.training.arguments import RunOptions
from zoo.training.data import as_mixture, describe
from zoo.training.distributed import barrier, world
from zoo.training.extras import evaluator, feature_cache_class
from zoo.training.outputs import RUN_MARKERS, remove_run
from zoo.training.report import TrainReport
from zoo.training.stage import StageRun

log = logging.getLogger("zoo.training")


def train(
    recipe: str | Path,
    data: Any,
    output_dir: str | Path,
    *,
    stage: str | int | None = None,
    max_steps: int | None = None,
    epochs: float | None = None,
    overrides: dict | list[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    seed: int = 0,
    cache_features: bool = False,
    eval_data: Any = None,
    eval_metrics: tuple[str, ...] | list[str] = ("exact_match",),
    data_format: str | None = None,
    **options: Any,
) -> TrainReport:
    """Train ``recipe`` on ``data`` into ``output_dir``; returns the report (also in train_report.json).

    ``data``: a mixture YAML, a dataset file or folder (``data_format`` or guessed), a mixture mapping or
    ``Mixture``, or ``{stage name: data}`` for data per stage. ``overrides``: ``build()`` keyword overrides
    as a mapping, or ``--set`` strings (``["stages.0.lr=1e-3"]``). ``stage`` runs one stage (a later stage
    starts from the model the earlier ones left in ``output_dir``). ``max_steps`` / ``epochs`` replace each
    stage's length. Other options: ``save_steps``, ``keep_checkpoints``, ``num_workers``,
    ``max_failure_rate``, ``gradient_checkpointing``, ``fsdp``, ``fsdp_config``, ``deepspeed``,
    ``progress``, ``training_args`` (extra ``TrainingArguments`` fields). Raises ``ZooError`` subclasses
    naming the bad input before the first step; ``TrainingInterrupted`` after SIGINT/SIGTERM (a
    resumable checkpoint was saved); ``NonFiniteLossError`` when the loss stops being a number.
    """
    run_options = RunOptions(
        output_dir=Path(output_dir),
        stage=stage,
        max_steps=max_steps,
        epochs=epochs,
        seed=seed,
        resume=resume,
        overwrite=overwrite,
        cache_features=cache_features,
        eval_data=eval_data,
        eval_metrics=tuple(eval_metrics),
        **options,
    )
    return Run(recipe, data, run_options, overrides, data_format).execute()


class Run:
    """One call of ``train``: the checks, the model, and the stages in order."""

    def __init__(
        self, recipe: str | Path, data: Any, options: RunOptions, overrides: Any, data_format: str | None
    ) -> None:
        from zoo.recipes_api import load_recipe, validate_recipe

        self.options = options
        self.output = options.output_dir
        self.overrides = _as_overrides(recipe, overrides)
        self.recipe = load_recipe(recipe, **self.overrides)
        validate_recipe(self.recipe)
        if not self.recipe.stages:
            raise RecipeError(f"recipe {self.recipe.name!r} has no training stages")
        self.stage_indices = self._stages_to_run()
        self.data = _data_per_stage(data, self.recipe)
        self.stage_names = [s["name"] for s in self.recipe.stages]
        self.data_format = data_format
        self.recipe_arg = str(recipe)
        self._check_options()
        self.rank, self.world_size = world()  # from the launcher's environment until torch.distributed starts
        self.report = TrainReport(run=self._run_record(), output_dir=str(self.output))
        self.model: Any = None
        self.processor: Any = None

    # -- checks before anything is built ------------------------------------------------------------------
    def _stages_to_run(self) -> list[int]:
        if self.options.stage is None:
            return list(range(len(self.recipe.stages)))
        wanted = self.options.stage
        if isinstance(wanted, str) and wanted.isdigit():
            wanted = int(wanted)
        return [self.recipe.stage_index(wanted)]

    def _check_options(self) -> None:
        o = self.options
        if o.max_steps is not None and o.max_steps < 1:
            raise TrainingError(f"--max-steps must be a positive number of steps, got {o.max_steps}")
        if o.epochs is not None and o.epochs <= 0:
            raise TrainingError(f"--epochs must be positive, got {o.epochs}")
        if o.save_steps < 1:
            raise TrainingError(f"--save-steps must be at least 1, got {o.save_steps}")
        if o.resume and o.overwrite:
            raise TrainingError("--resume and --overwrite contradict each other: choose one")
        if o.eval_data is not None:
            evaluator()  # a clear error now rather than after training
        if o.cache_features:
            feature_cache_class()

    def _run_record(self) -> dict:
        return {
            "recipe": self.recipe.name,
            "recipe_source": self.recipe_arg,
            "overrides": self.overrides,
            "data": {self.recipe.stages[i]["name"]: _data_record(self.data[i]) for i in self.stage_indices},
            "seed": self.options.seed,
        }

    # -- the output folder ------------------------------------------------------------------------------
    def _prepare_output(self) -> TrainReport | None:
        """The earlier report when resuming; refuses a folder that holds another run (or anything else)."""
        previous = TrainReport.read(self.output) if self.output.is_dir() else None
        holds_run = self.output.is_dir() and any((self.output / m).exists() for m in RUN_MARKERS)
        if self.output.is_dir() and any(self.output.iterdir()) and not holds_run:
            raise TrainingError(
                f"output folder {self.output} is not empty and holds no zoo training run; "
                "choose a new or empty folder"
            )
        if holds_run and self.options.overwrite:
            if self.rank == 0:
                remove_run(self.output)
            return None
        if holds_run and not self.options.resume:
            what = f"a run of recipe {previous.run.get('recipe')!r}" if previous else "a zoo model or run"
            raise TrainingError(
                f"output folder {self.output} holds {what}; pass --resume to continue it or --overwrite to "
                "replace it (or choose another folder)"
            )
        if self.options.resume and not holds_run:
            log.warning("--resume: %s holds no run to resume; starting a new run", self.output)
        if previous is not None and self.options.resume:
            self._check_same_run(previous)
        return previous if self.options.resume else None

    def _check_same_run(self, previous: TrainReport) -> None:
        differences = [
            f"{key}: {previous.run.get(key)!r} before, {value!r} now"
            for key, value in self.report.run.items()
            if key not in ("data", "recipe_source") and previous.run.get(key) != value
        ]
        for name, label in self.report.run["data"].items():
            before = previous.run.get("data", {}).get(name)
            if before is not None and before != label:
                differences.append(f"data of stage {name}: {before!r} before, {label!r} now")
        if differences:
            raise TrainingError(
                f"--resume: {self.output} was trained with other settings ({'; '.join(differences)}); "
                "resume with the same recipe, overrides, data and seed, or use --overwrite"
            )

    # -- the run --------------------------------------------------------------------------------------------
    def execute(self) -> TrainReport:
        previous = self._prepare_output()
        if previous is not None:
            self.report.stages.update(previous.stages)
        todo = [i for i in self.stage_indices if not self._done(i)]
        if not todo:
            log.info("every stage of this run is done already: nothing to train")
            return self.report
        stages = [StageRun(self, index) for index in todo]
        for stage in stages:  # data, batch split and learning rates of every stage, before building
            stage.check()
        _init_distributed(self.options)
        barrier()  # every process has checked the output folder before anything is written to it
        self.output.mkdir(parents=True, exist_ok=True)
        self._build_model(todo[0])
        for stage in stages:
            stage.execute()
        log.info("training finished")
        return self.report

    def _done(self, index: int) -> bool:
        entry = self.report.stages.get(self.recipe.stages[index]["name"])
        return entry is not None and entry.status == "done" and self.options.resume

    def _build_model(self, first: int) -> None:
        """The model the first stage to run starts from: the recipe's (stage 0), or the saved one in DIR."""
        from transformers import set_seed

        from zoo.recipes_api import build
        from zoo.training_plan import applied_stages

        set_seed(self.options.seed)
        if first == 0:
            self.model = build(self.recipe.path, **self.overrides)
        else:
            self.model = self._load_previous_stage(first)
        self.model.recipe = self.recipe
        done = [s.get("name") for s in applied_stages(self.model)]
        log.info("model built; stages applied so far: %s", done)
        from zoo.processor import ZooProcessor

        self.processor = ZooProcessor.from_model(self.model)
        if self.options.cache_features:
            cache_class = feature_cache_class()
            self.model.use_feature_cache(cache_class(self.output / "feature_cache"))

    def _load_previous_stage(self, first: int) -> Any:
        from zoo.modeling import ZooModel
        from zoo.training_plan import applied_stages

        name = self.recipe.stages[first]["name"]
        before = [s["name"] for s in self.recipe.stages[:first]]
        needed = (
            f"stage {name!r} starts from the model trained by the stages before it ({', '.join(before)}), "
            f"which {self.output} does not hold"
        )
        how = (
            f"run those first (zoo train {self.recipe_arg} --data ... --output {self.output} --stage "
            f"{before[-1]}), or run every stage in order by leaving out --stage"
        )
        try:
            model = ZooModel.from_pretrained(self.output)
        except CheckpointError as error:
            raise TrainingError(f"{needed} ({error}); {how}") from None
        have = [s.get("name") for s in applied_stages(model)]
        if have != before or model.config.recipe != self.recipe.name:
            raise TrainingError(
                f"{needed}: its model is recipe {model.config.recipe!r} after stages {have}; {how}"
            )
        return model.train()

    def stage_data(self, index: int) -> Any:
        return as_mixture(self.data[index], self.data_format)

    def write_report(self) -> None:
        if self.rank == 0:
            self.report.write(self.output)


# --- helpers ---------------------------------------------------------------------------------------------


def _as_overrides(recipe: str | Path, overrides: Any) -> dict:
    from zoo.training.overrides import overrides_from_sets, recipe_data

    if overrides is None:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    if isinstance(overrides, (list, tuple)) and all(isinstance(x, str) for x in overrides):
        return overrides_from_sets(recipe_data(recipe), overrides)
    raise TrainingError(
        f"overrides {overrides!r}: give a mapping of build() overrides or a list of 'key=value' strings"
    )


def _data_record(data: Any) -> str:
    """The data as the report records it: a path made absolute, so a resume may spell it differently."""
    return str(Path(data).expanduser().resolve()) if isinstance(data, (str, Path)) else describe(data)


def _data_per_stage(data: Any, recipe: Any) -> list[Any]:
    """The data of each stage: one DATA for all, or a ``{stage name: DATA}`` mapping covering every stage."""
    names = [s["name"] for s in recipe.stages]
    if isinstance(data, dict) and "datasets" not in data:
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise TrainingError(
                f"data given for stages {unknown}, but recipe {recipe.name!r} has stages {names}"
            )
        return [data.get(name) for name in names]
    return [data] * len(names)


def _init_distributed(options: RunOptions) -> None:
    """Set up torch.distributed the way Trainer will (from torchrun / accelerate's environment), so the
    run can coordinate its processes before the first Trainer exists."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    from transformers import TrainingArguments

    arguments = TrainingArguments(
        output_dir=str(options.output_dir),
        use_cpu=not _has_cuda(),
        deepspeed=options.deepspeed,
        fsdp=options.fsdp or "",
        fsdp_config=options.fsdp_config,
        report_to="none",
    )
    _ = arguments.device  # initialises the process group


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
