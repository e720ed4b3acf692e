"""``ZooTrainer``: transformers' ``Trainer`` with the recipe stage's optimisation and zoo's data and checkpoints.

Only what must differ is overridden:

- ``create_optimizer`` / ``create_scheduler``: ``training_plan.make_optimizer`` (per-part learning rates,
  no decay on biases and norms) and ``make_scheduler`` (the stage's schedule and warmup);
- ``get_train_dataloader``: the project's loader (``zoo.training.data.TrainBatches``), already sharded per
  process and positioned at the resumed step, so accelerate neither re-shards nor skips batches;
- ``training_step``: takes the batch's sample ids off the batch (for the NaN report) and checks the loss;
- ``log``: stops the run on a NaN/inf loss, naming the step, the samples and the last good checkpoint;
- ``_save_checkpoint``: written into a staging folder and renamed when complete (atomic), with the data
  state and skip list; ``_save`` writes the model with ``save_pretrained`` (the delta);
- the optimizer / scheduler / scaler / RNG state save and load: safetensors + JSON instead of pickle, and
  ``_load_from_checkpoint`` loads the delta strictly. Under DeepSpeed or FSDP the engines' own checkpoint
  files are used for the optimizer.
"""

from __future__ import annotations

import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from zoo.errors import NonFiniteLossError
from zoo.training import checkpoints as ckpt
from zoo.training.distributed import gather_objects
from zoo.training_plan import make_optimizer, make_scheduler

log = logging.getLogger("zoo.training")

SAMPLE_IDS = "sample_ids"


class ZooTrainer(Trainer):
    """A ``Trainer`` for one recipe stage of a ``ZooModel`` (see the module docstring).

    ``train_batches`` is the loader of this process; ``save_data_state(folder)`` is called on every
    process while a checkpoint is written, to add the data position and skip list to it.
    """

    def __init__(
        self,
        *args: Any,
        stage: dict,
        train_batches: Any,
        save_data_state: Callable[[Path], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage
        self.train_batches = train_batches
        self.save_data_state = save_data_state
        self.step_sample_ids: list[str] = []

    # -- optimisation from the recipe stage --------------------------------------------------------------
    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = self.accelerator.unwrap_model(self.model if model is None else model)
            self.optimizer = make_optimizer(target, self.stage)
        return self.optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        if self.lr_scheduler is None:
            self.lr_scheduler = make_scheduler(optimizer or self.optimizer, self.stage, num_training_steps)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # -- data ------------------------------------------------------------------------------------------
    def get_train_dataloader(self) -> Any:
        return self.train_batches

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> Any:
        """Trainer's count of label tokens, never zero: a step whose samples were all skipped trains on
        nothing instead of dividing by zero."""
        count = super()._get_num_items_in_batch(batch_samples, device)
        return count.clamp(min=1) if isinstance(count, torch.Tensor) else count

    def training_step(self, model: Any, inputs: dict, num_items_in_batch: Any = None) -> torch.Tensor:
        if self.state.global_step != getattr(self, "_ids_step", None):
            self._ids_step, self.step_sample_ids = self.state.global_step, []
        self.step_sample_ids += inputs.pop(SAMPLE_IDS, [])
        return super().training_step(model, inputs, num_items_in_batch)

    # -- a loss that is not a number stops the run ------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        super().log(logs, start_time)
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop_on_bad_loss(loss)

    def _stop_on_bad_loss(self, loss: float) -> None:
        ids = [i for rank_ids in gather_objects(self.step_sample_ids) for i in rank_ids]
        last = ckpt.latest_checkpoint(Path(self.args.output_dir))
        shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
        saved = f"the last good checkpoint is {last}" if last else "no checkpoint of this stage was saved yet"
        raise NonFiniteLossError(
            f"stage {self.stage.get('name')!r}: the loss is {loss} at step {self.state.global_step}; "
            f"the batch held samples {shown}; {saved}. The weights after this step are not saved."
        )

    # -- checkpoints: atomic, pickle-free -------------------------------------------------------------------
    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        stage_dir = Path(self.args.output_dir)
        final = stage_dir / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staging = ckpt.staging_dir(stage_dir, self.state.global_step)
        if self.args.should_save:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.store_flos()
        # The training state first and the model last: save_pretrained's manifest, written at its very end,
        # then lists every file of the folder.
        self._save_optimizer_and_scheduler(str(staging))
        self._save_scaler(str(staging))
        self._save_rng_state(str(staging))
        self.save_data_state(staging)
        if self.args.should_save:
            self._save_trainer_state(staging)
            (staging / "training_args.json").write_text(self.args.to_json_string(), encoding="utf-8")
        self.accelerator.wait_for_everyone()
        self.save_model(str(staging), _internal_call=True)
        if self.args.should_save:
            ckpt.publish(staging, final)
            self._rotate(stage_dir)
            log.info("checkpoint saved: %s", final)
        self.accelerator.wait_for_everyone()

    def _save_trainer_state(self, folder: Path) -> None:
        from transformers.trainer import TRAINER_STATE_NAME
        from transformers.trainer_callback import ExportableState

        for callback in [*self.callback_handler.callbacks, self.control]:
            if isinstance(callback, ExportableState):
                self.state.stateful_callbacks[callback.__class__.__name__] = callback.state()
        self.state.save_to_json(str(folder / TRAINER_STATE_NAME))

    def _rotate(self, stage_dir: Path) -> None:
        limit = self.args.save_total_limit
        if limit:
            for old in ckpt.complete_checkpoints(stage_dir)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """The model as ``save_pretrained`` writes it (config, delta weights, tokenizer, manifest last)."""
        if not self.args.should_save:
            return
        folder = Path(output_dir or self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        model.save_pretrained(folder, state_dict=state_dict)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super()._save_optimizer_and_scheduler(output_dir)
            return
        if self.args.should_save:
            folder = Path(output_dir)
            ckpt.save_state(folder, "optimizer", self.optimizer.state_dict())
            ckpt.write_json(folder / "scheduler.json", self.lr_scheduler.state_dict())

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            ckpt.write_json(Path(output_dir) / "scaler.json", scaler.state_dict())

    def _save_rng_state(self, output_dir: str) -> None:
        ckpt.save_state(Path(output_dir), self._rng_name(), ckpt.rng_state())

    def _rng_name(self) -> str:
        return "rng_state" if self.args.world_size <= 1 else f"rng_state_{self.args.process_index}"

    # -- resuming --------------------------------------------------------------------------------------
    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        if self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        from zoo.checkpoint import WEIGHTS, read_manifest, read_tensors

        folder = Path(resume_from_checkpoint)
        read_manifest(folder)  # every file present and intact
        target = self.accelerator.unwrap_model(model if model is not None else self.model)
        target.load_checkpoint_weights(read_tensors(folder / WEIGHTS), folder / WEIGHTS)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super()._load_optimizer_and_scheduler(checkpoint)
            return
        folder = Path(checkpoint)
        state = ckpt.optimizer_state(ckpt.load_state(folder, "optimizer"))
        self.optimizer.load_state_dict(state)  # torch moves the state onto each parameter's device
        self.lr_scheduler.load_state_dict(ckpt.read_json(folder / "scheduler.json"))

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        path = Path(checkpoint) / "scaler.json" if checkpoint else None
        if scaler is not None and path is not None and path.is_file():
            scaler.load_state_dict(ckpt.read_json(path))

    def _load_rng_state(self, checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        folder = Path(checkpoint)
        if not (folder / f"{self._rng_name()}.json").is_file():
            log.warning(
                "%s has no random state for process %d (saved with another number of processes): "
                "dropout and other random draws will differ from the uninterrupted run",
                folder,
                self.args.process_index,
            )
            return
        ckpt.set_rng_state(ckpt.load_state(folder, self._rng_name()))
