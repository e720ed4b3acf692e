"""One training stage of a run: its checks, its ``ZooTrainer``, checkpoints, and what the stage leaves in
the output folder (the model, the loss curve, the report entry, the skip list, evaluation scores)."""

from __future__ import annotations

import logging
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from zoo.errors import RecipeError, TrainingError, TrainingInterrupted, ZooError
from zoo.training import checkpoints as ckpt
from zoo.training.arguments import BatchPlan, batch_plan, steps_for, training_arguments
from zoo.training.data import EpochStream, TrainBatches, describe, probe_sample, scan_data
from zoo.training.distributed import barrier, gather_objects
from zoo.training.extras import evaluator
from zoo.training.outputs import LEDGER, MODEL_STAGING, publish_model, read_ledger, write_ledger
from zoo.training.report import StageReport, plot_losses, stage_losses

log = logging.getLogger("zoo.training")


class StageRun:
    """One stage: its data check, batch split, trainer, checkpoints, final save, report and evaluation."""

    def __init__(self, run: Any, index: int) -> None:
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
        # set by check(), before the model is built
        self.label = ""
        self.stream: EpochStream | None = None
        self.data_check: Any = None
        self.plan: BatchPlan | None = None
        self.steps = 0

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
        if run.data[self.index] is None:
            raise TrainingError(
                f"no data for stage {self.name!r}: give it with --data {self.name}=DATA (data was given for "
                f"{', '.join(n for n, d in zip(run.stage_names, run.data, strict=True) if d is not None)})"
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

        from zoo.training.arguments import bf16_supported, precision_flags

        device = "cuda" if torch.cuda.is_available() else "cpu"
        bf16 = bf16_supported(device)
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
            self.earlier_ledger = read_ledger(latest / ckpt.LEDGER_SNAPSHOT)
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
            if resume_from is not None and self.restored.get("global_step", 0) >= self.steps:
                self._restore_finished(resume_from)  # every step was done: nothing to train again
            else:
                self.trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        except BaseException as error:
            self._finish_failed(error)
            raise
        self._account()
        if stop.signal is not None:
            self._finish_interrupted(stop.signal)
        self._finish_done()

    def _restore_finished(self, checkpoint: Path) -> None:
        """The model and state of a checkpoint saved after the stage's last step (the run stopped while it
        was finishing the stage): Trainer would otherwise train one step more."""
        from transformers import TrainerState
        from transformers.trainer import TRAINER_STATE_NAME

        log.info("stage %s: every step was done before the stop; finishing it from %s", self.name, checkpoint)
        self.trainer._load_from_checkpoint(str(checkpoint))
        self.trainer.state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE_NAME))

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
        write_ledger(folder / ckpt.LEDGER_SNAPSHOT, all_entries)
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
        other_stages = [e for e in read_ledger(self.run.output / LEDGER) if e.get("train_stage") != self.name]
        if gathered:
            mine = [e for rank_entries in gather_objects(self._stage_entries()) for e in rank_entries]
            if self.run.rank == 0:
                write_ledger(self.run.output / LEDGER, other_stages + mine)
                for path in self.run.output.glob("skipped_samples.rank*.jsonl"):
                    path.unlink()
            return len(mine)
        mine = self._stage_entries()
        keep = other_stages if self.run.rank == 0 or self.run.world_size == 1 else []
        write_ledger(self._rank_ledger_path(), keep + mine)
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
            publish_model(staging, self.run.output)
        barrier()

    def _evaluate(self) -> None:
        run = self.run
        if run.options.eval_data is None:
            return
        if run.rank == 0:
            evaluate = evaluator()
            result = evaluate(
                run.model,
                run.options.eval_data,
                list(run.options.eval_metrics),
                output_dir=run.output / "eval" / self.name,
            )
            self.report.eval = dict(result.scores)
            run.model.train()
        barrier()
