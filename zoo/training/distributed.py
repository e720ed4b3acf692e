"""The few collective operations a run needs, which are no-ops in a single process."""

from __future__ import annotations

import os
from typing import Any


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def world() -> tuple[int, int]:
    """(rank, world size) of this process: from torch.distributed, or the launcher's environment."""
    if _active():
        import torch.distributed as dist

        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def barrier() -> None:
    if _active():
        import torch.distributed as dist

        dist.barrier()


def gather_objects(value: Any) -> list[Any]:
    """``value`` from every process, in rank order (``[value]`` in a single process)."""
    if not _active():
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def any_process(flag: bool, device: Any = None) -> bool:
    """Whether ``flag`` is set on any process (every process must call this at the same point)."""
    if not _active():
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
