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

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from zoo.errors import CheckpointError, RecipeError, TrainingError, TrainingInterrupted, ZooError
from zoo.training import checkpoints as ckpt
from zoo.training.arguments import BatchPlan, RunOptions, batch_plan, steps_for, training_arguments
from zoo.training.data import EpochStream, TrainBatches, as_mixture, describe, probe_sample, scan_data
from zoo.training.distributed import barrier, gather_objects, world
from zoo.training.report import StageReport, TrainReport, plot_losses, stage_losses

log = logging.getLogger("zoo.training")

LEDGER = "skipped_samples.jsonl"
RUN_MARKERS = ("train_report.json", "zoo_checkpoint.json", "checkpoints")
MODEL_STAGING = ".model-staging"


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
            _evaluator()  # a clear error now rather than after training
        if o.cache_features:
            _feature_cache_class()

    def _run_record(self) -> dict:
        return {
            "recipe": self.recipe.name,
            "recipe_source": self.recipe_arg,
            "overrides": self.overrides,
            "data": {self.recipe.stages[i]["name"]: describe(self.data[i]) for i in self.stage_indices},
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
                _remove_run(self.output)
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
            cache_class = _feature_cache_class()
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


class StageRun:
    """One stage: its data check, batch split, trainer, checkpoints, final save, report and evaluation."""

    def __init__(self, run: Run, index: int) -> None:
        self.run = run
        self.index = index
        self.stage = dict(run.recipe.stages[index])
        if run.options.epochs is not None:
            self.stage["epochs"] = run.options.epochs
        self.name = self.stage["name"]
        self.dir = run.output / "checkpoints" / self.name
        self.report: StageReport = run.report.stage(self.name)
        self.trainer: Any = None
        self.loader: Any = None
        self.restored: dict = {}
        self.earlier_ledger: list[dict] = []
        self.started = time.perf_counter()

    # -- before the first step -------------------------------------------------------------------------------
    def check(self) -> None:
        """What can be checked without the model: learning rates, the data, the batch split, the steps."""
        from zoo.training_plan import learning_rates

        run = self.run
        if not learning_rates(self.stage):
            raise RecipeError(
                f"stage {self.name!r} of recipe {run.recipe.name!r} gives no learning rate; add `lr:` to the "
                f"recipe or pass --set stages.{self.name}.lr=1e-4"
            )
        self.label = describe(run.data[self.index])
        self.stream = EpochStream(run.stage_data(self.index), run.options.seed)
        self.data_check = scan_data(self.stream, list(run.recipe.encoders), self.label)
        self.plan = batch_plan(self.stage, run.world_size)
        self.steps = steps_for(self.stage, self.data_check.positions, self.plan, run.options.max_steps)

    def prepare(self) -> Path | None:
        """The stage applied to the model, a sample the processor encodes, the resume point, the loader."""
        from zoo.training_plan import applied_stages, apply_stage, optimizer_groups

        run = self.run
        model = run.model
        if [s.get("name") for s in applied_stages(model)][-1:] != [self.name]:
            apply_stage(model, self.stage)
        optimizer_groups(model, self.stage)  # every trained parameter has a learning rate
        probe = probe_sample(self.data_check.first, run.processor, self.label)
        positions = self.data_check.positions
        resume_from = self._resume_point(positions, self.plan) if run.options.resume else None
        self._fill_report(self.plan, self.steps, positions, model)
        start_step = int(self.restored.get("global_step", 0))
        self.loader = self._loader(self.stream, probe, self.plan, start_step)
        log.info(
            "stage %s: %d steps, %s; %d samples per epoch (%d skipped when read)%s",
            self.name,
            self.steps,
            self.plan.describe(),
            positions,
            self.data_check.skipped,
            f"; resuming from {resume_from}" if resume_from else "",
        )
        return resume_from

    def _fill_report(self, plan: BatchPlan, steps: int, positions: int, model: Any) -> None:
        import torch

        from zoo.training.arguments import precision_flags

        device = "cuda" if torch.cuda.is_available() else "cpu"
        bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
        self.report.status = "running"
        self.report.error = None
        self.report.max_steps = steps
        self.report.global_batch = plan.size
        self.report.per_device_batch = plan.per_device
        self.report.accumulation = plan.accumulation
        self.report.processes = plan.world_size
        self.report.precision = precision_flags(self.stage, device, bf16)[1]
        self.report.samples_per_epoch = positions
        self.report.trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def _resume_point(self, positions: int, plan: BatchPlan) -> Path | None:
        latest = ckpt.latest_checkpoint(self.dir)
        if latest is None:
            return None
        state = ckpt.read_json(latest / ckpt.DATA_STATE)
        if state.get("global_batch") != plan.size or state.get("positions_per_epoch") != positions:
            raise TrainingError(
                f"--resume: {latest} was saved with a global batch of {state.get('global_batch')} and "
                f"{state.get('positions_per_epoch')} samples per epoch; now they are {plan.size} and "
                f"{positions}: the data or the batch changed, so the run cannot continue where it stopped"
            )
        self.restored = state
        if self.run.rank == 0:
            self.earlier_ledger = _read_ledger(latest / ckpt.LEDGER_SNAPSHOT)
        return latest

    def _loader(self, stream: EpochStream, probe: Any, plan: BatchPlan, start_step: int) -> TrainBatches:
        from zoo.data.pipeline import EncodedDataset

        run = self.run
        dataset = EncodedDataset(
            run.processor,
            stream,
            batch_size=plan.per_device,
            max_length=run.processor.max_length,
            rank=run.rank,
            world_size=run.world_size,
            start_batch=start_step * plan.accumulation,
        )
        return TrainBatches(
            dataset,
            probe=probe,
            seed=run.options.seed,
            num_workers=run.options.num_workers,
            ledger_path=self._rank_ledger_path(),
            max_failure_rate=run.options.max_failure_rate,
        )

    # -- the stage ------------------------------------------------------------------------------------------
    def execute(self) -> None:
        run = self.run
        if run.rank == 0:
            ckpt.remove_partial_saves(self.dir)
        resume_from = self.prepare()
        self.trainer, stop = self._trainer(self.plan, self.steps)
        run.write_report()
        self.started = time.perf_counter()
        try:
            self.trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        except BaseException as error:
            self._finish_failed(error)
            raise
        self._account()
        if stop.signal is not None:
            self._finish_interrupted(stop.signal)
        self._finish_done()

    def _trainer(self, plan: BatchPlan, steps: int) -> tuple[Any, Any]:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from zoo.training.callbacks import ProgressBar, StopOnSignal, tensorboard_callback
        from zoo.training.trainer import ZooTrainer

        run = self.run
        args = training_arguments(run.options, self.stage, plan, steps, self.dir)
        stop = StopOnSignal()
        callbacks = [ProgressBar(self.name, plan.size, enabled=run.options.progress), stop]
        if run.rank == 0:
            board = tensorboard_callback(run.output / "runs" / self.name)
            callbacks += [board] if board is not None else []
        if run.options.gradient_checkpointing:
            run.model.backbone.model.gradient_checkpointing_enable({"use_reentrant": False})
        trainer = ZooTrainer(
            model=run.model,
            args=args,
            stage=self.stage,
            train_batches=self.loader,
            save_data_state=self.save_data_state,
            callbacks=callbacks,
        )
        for default in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(default)
        return trainer, stop

    def save_data_state(self, folder: Path) -> None:
        """Every process: the data position and skip list of this checkpoint (rank 0 writes them)."""
        entries = gather_objects(self._stage_entries())
        used = sum(gather_objects(self.loader.used))
        if self.run.rank != 0:
            return
        all_entries = [e for rank_entries in entries for e in rank_entries]
        _write_ledger(folder / ckpt.LEDGER_SNAPSHOT, all_entries)
        step = self.trainer.state.global_step
        ckpt.write_json(
            folder / ckpt.DATA_STATE,
            {
                "stage": self.name,
                "global_step": step,
                "global_batch": self.report.global_batch,
                "positions": step * self.report.global_batch,
                "positions_per_epoch": self.report.samples_per_epoch,
                "seed": self.run.options.seed,
                "samples_used": used + int(self.restored.get("samples_used", 0)),
                "samples_skipped": len(all_entries),
                "wall_time_s": self.report.wall_time_s + (time.perf_counter() - self.started),
            },
        )

    # -- skipped samples -----------------------------------------------------------------------------------
    def _stage_entries(self) -> list[dict]:
        """This process's skipped samples of this stage (with the resumed checkpoint's, on rank 0)."""
        fresh = [{**s.to_dict(), "train_stage": self.name} for s in self.loader.ledger.entries]
        return self.earlier_ledger + fresh

    def _rank_ledger_path(self) -> Path:
        if self.run.world_size == 1:
            return self.run.output / LEDGER
        return self.run.output / f"skipped_samples.rank{self.run.rank}.jsonl"

    def _write_ledger(self, gathered: bool) -> int:
        """Write the skip list: merged over processes by rank 0 when ``gathered``, else this process's."""
        other_stages = [
            e for e in _read_ledger(self.run.output / LEDGER) if e.get("train_stage") != self.name
        ]
        if gathered:
            mine = [e for rank_entries in gather_objects(self._stage_entries()) for e in rank_entries]
            if self.run.rank == 0:
                _write_ledger(self.run.output / LEDGER, other_stages + mine)
                for path in self.run.output.glob("skipped_samples.rank*.jsonl"):
                    path.unlink()
            return len(mine)
        mine = self._stage_entries()
        keep = other_stages if self.run.rank == 0 or self.run.world_size == 1 else []
        _write_ledger(self._rank_ledger_path(), keep + mine)
        return len(mine)

    # -- the end of a stage -----------------------------------------------------------------------------------
    def _account(self) -> None:
        elapsed = time.perf_counter() - self.started
        self.report.wall_time_s = float(self.restored.get("wall_time_s", 0.0)) + elapsed
        state = self.trainer.state
        self.report.steps = state.global_step
        losses = stage_losses(state.log_history)
        self.report.losses = losses
        if losses:
            self.report.first_loss, self.report.last_loss = losses[0][1], losses[-1][1]
        if self.report.wall_time_s > 0:
            self.report.samples_per_s = state.global_step * self.report.global_batch / self.report.wall_time_s
        latest = ckpt.latest_checkpoint(self.dir)
        self.report.checkpoint = str(latest) if latest else None

    def _finish_failed(self, error: BaseException) -> None:
        self.report.status = "failed"
        self.report.error = str(error) if isinstance(error, ZooError) else f"{type(error).__name__}: {error}"
        if isinstance(error, KeyboardInterrupt):
            self.report.status, self.report.error = "interrupted", "interrupted without a checkpoint"
        try:
            self._account()
            self.report.samples_skipped = self._write_ledger(gathered=False)
            self.report.samples_used = self.loader.used + int(self.restored.get("samples_used", 0))
            self.run.write_report()
        except Exception as secondary:  # never hide the error that stopped the run
            log.error("could not record the failed stage: %s", secondary)

    def _finish_interrupted(self, number: int) -> None:
        import signal

        self.report.status = "interrupted"
        self._count_samples()
        self.run.write_report()
        name = signal.Signals(number).name
        raise TrainingInterrupted(
            f"{name}: stage {self.name!r} stopped at step {self.report.steps}; checkpoint saved in "
            f"{self.report.checkpoint}. Continue with the same command and --resume",
            signal=number,
        )

    def _count_samples(self) -> None:
        self.report.samples_skipped = self._write_ledger(gathered=True)
        used = sum(gather_objects(self.loader.used))
        self.report.samples_used = used + int(self.restored.get("samples_used", 0))

    def _finish_done(self) -> None:
        run = self.run
        self._count_samples()
        self._save_model()
        self.report.status = "done"
        if run.rank == 0:
            png = plot_losses(self.report.losses, run.output / f"loss_{self.name}.png", f"stage {self.name}")
            self.report.loss_curve = str(png) if png else None
        self._evaluate()
        run.write_report()
        barrier()

    def _save_model(self) -> None:
        """The model after this stage, into the output folder itself (staged, manifest last)."""
        staging = self.run.output / MODEL_STAGING
        if self.run.rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
        barrier()
        self.trainer.save_model(str(staging))
        if self.run.rank == 0:
            _publish_model(staging, self.run.output)
        barrier()

    def _evaluate(self) -> None:
        run = self.run
        if run.options.eval_data is None:
            return
        if run.rank == 0:
            evaluate = _evaluator()
            result = evaluate(
                run.model,
                run.options.eval_data,
                list(run.options.eval_metrics),
                output_dir=run.output / "eval" / self.name,
            )
            self.report.eval = dict(result.scores)
            run.model.train()
        barrier()


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


def _evaluator() -> Any:
    try:
        from zoo.evaluation import evaluate
    except ImportError as error:
        raise TrainingError(
            f"--eval-data needs zoo.evaluation, which this installation does not have ({error})"
        ) from None
    return evaluate


def _feature_cache_class() -> Any:
    try:
        from zoo.training.feature_cache import FeatureCache
    except ImportError:
        raise TrainingError(
            "--cache-features: the frozen-encoder feature cache (zoo.training.feature_cache) is not "
            "available in this version of zoo yet; train without --cache-features"
        ) from None
    return FeatureCache


def _remove_run(folder: Path) -> None:
    """Delete a run's files from ``folder``: its markers last, so that while this runs another process
    sees either a run or an empty folder."""
    paths = sorted(folder.iterdir(), key=lambda p: p.name in RUN_MARKERS)
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _publish_model(staging: Path, folder: Path) -> None:
    """Move a saved model from ``staging`` into ``folder``: the old manifest goes first, the new one last,
    so a crash in between leaves a folder that loading refuses as incomplete."""
    from zoo.checkpoint import MANIFEST

    ckpt.fsync_tree(staging)
    (folder / MANIFEST).unlink(missing_ok=True)
    for path in sorted(staging.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            target = folder / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    ckpt.fsync_dir(folder)
    os.replace(staging / MANIFEST, folder / MANIFEST)
    ckpt.fsync_dir(folder)
    shutil.rmtree(staging, ignore_errors=True)


def _read_ledger(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_ledger(path: Path, entries: list[dict]) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    with staging.open("w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    os.replace(staging, path)
