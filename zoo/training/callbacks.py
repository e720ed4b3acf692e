"""Trainer callbacks: the progress bar, stopping on SIGINT/SIGTERM with a checkpoint, TensorBoard logs.

``ProgressBar`` replaces Trainer's own bar: steps done, with the latest loss, learning rate and samples
per second (stream positions read per second, skipped samples included). ``StopOnSignal`` turns the first
SIGINT or SIGTERM into "save a checkpoint at the end of this step and stop" (every process agrees on the
step); a second signal interrupts at once. ``tensorboard_callback`` gives transformers' own
``TensorBoardCallback`` writing into the run's folder, or None when TensorBoard is not installed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from zoo.training.distributed import any_process

log = logging.getLogger("zoo.training")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ProgressBar(TrainerCallback):
    """A tqdm bar over the stage's steps with loss, learning rate and samples/s (main process only)."""

    def __init__(self, stage: str, global_batch: int, enabled: bool = True) -> None:
        self.stage = stage
        self.global_batch = global_batch
        self.enabled = enabled
        self.bar: Any = None
        self.start: tuple[float, int] = (0.0, 0)
        self.postfix: dict[str, str] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not (self.enabled and state.is_world_process_zero):
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.max_steps, initial=state.global_step, desc=f"stage {self.stage}", unit="step"
        )
        self.start = (time.perf_counter(), state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
            elapsed = time.perf_counter() - self.start[0]
            steps = state.global_step - self.start[1]
            if elapsed > 0 and steps > 0:
                self.postfix["samples/s"] = f"{steps * self.global_batch / elapsed:.2f}"
            self.bar.set_postfix(self.postfix, refresh=False)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if self.bar is not None and logs:
            if "loss" in logs:
                self.postfix["loss"] = f"{logs['loss']:.4f}"
            if "learning_rate" in logs:
                self.postfix["lr"] = f"{logs['learning_rate']:.3g}"
            self.bar.set_postfix(self.postfix)  # the step's own loss (logged after its step ended)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StopOnSignal(TrainerCallback):
    """On SIGINT/SIGTERM: save a checkpoint after the current step and stop; ``.signal`` says which came."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number: int, frame: Any) -> None:
        if self.received is not None:  # a second signal: stop now
            self.restore()
            raise KeyboardInterrupt
        self.received = number
        log.warning(
            "%s received: saving a checkpoint at the end of this step, then stopping (send it again to "
            "stop at once, without saving)",
            signal.Signals(number).name,
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if any_process(self.received is not None, args.device):
            self.signal = self.received or signal.SIGTERM
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.restore()

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}


def tensorboard_callback(log_dir: Path) -> Any:
    """transformers' ``TensorBoardCallback`` writing to ``log_dir``, or None without TensorBoard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("TensorBoard is not installed (pip install tensorboard): no TensorBoard logs")
        return None
    from transformers.integrations import TensorBoardCallback

    return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(log_dir)))
