"""Training on several processes with PyTorch's own engine: ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m cnn_explorer finetune DATA …`` starts N copies of the CLI with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their environment; :func:`from_environment`
joins them into one process group (NCCL between CUDA GPUs, gloo on CPUs) and gives a :class:`DistContext`.
Without those variables (or with one process) it gives :data:`SINGLE`, and everything runs as before.

How a run divides the work (the design that makes N processes train the model one process would):

- The **global** batches are the single-process run's (``training_setup.batch_plan``: same seed, same
  order); each process takes a share of every batch (:func:`rank_share`), DistributedDataParallel
  averages the gradients, and each process weights its loss by its share of the batch's images, so
  the averaged gradient is the whole batch's mean. ``--batch-size`` is the global batch: the same
  settings give the same model on 1 or N processes.
- Every image is in exactly one process's share of its batch: each is seen once per epoch across ranks.
- With the embedding cache, a process always takes the images whose index ``% world == rank``: its shard
  never changes, so each process embeds (and caches) only its own images.
- Validation is split the same way and the predictions, losses and counts are all-reduced, so every
  process holds the whole confusion matrix. Only rank 0 writes the run folder.
- Before each step the processes agree on stopping (Ctrl+C reaches every rank from torchrun) and on the
  batch's size; after it, on its loss. A stop therefore happens at the same step everywhere, and rank 0
  keeps a checkpoint at that step.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from cnn_explorer.core.train_config import ConfigError, resolve_device

__all__ = ["SINGLE", "DistContext", "from_environment", "merge_small_batches", "rank_rows", "rank_share"]

T = TypeVar("T")
# Rank 0 scans a big dataset while the others wait at the first broadcast: be patient.
_TIMEOUT = datetime.timedelta(minutes=60)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""  # "gloo" or "nccl"; "" for a single process
    local_world_size: int = 1  # the processes on this machine (they share its CPUs)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    # -- collectives (each a no-op for a single process) ---------------------------------------------------
    def all_sum(self, values: Sequence[float]) -> list[float]:
        """The sum over processes of each value (float64)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def all_reduce_(self, array: np.ndarray, op: str = "sum") -> np.ndarray:
        """``array`` replaced by its element-wise sum (or "max") over processes, in place; returned."""
        if not self.enabled:
            return array
        t = torch.from_numpy(np.ascontiguousarray(array)).to(self._comm_device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        array[...] = t.cpu().numpy()
        return array

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on every process."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result (or the exception it raised) on every process.

        For what must happen once: scanning the dataset, creating the run folder, reading a checkpoint.
        """
        if not self.enabled:
            return fn()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", fn())
            except Exception as exc:  # every rank raises it, so all stop with the same message
                box[0] = ("error", exc)
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            value.shared_by_ranks = True  # every process raises it: whoever reports it may say it once
            raise value
        return value

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


SINGLE = DistContext()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def from_environment(device_setting: str = "auto") -> DistContext:
    """Join the process group torchrun describes in the environment; :data:`SINGLE` without one.

    CUDA processes each take the GPU of their ``LOCAL_RANK`` and talk over NCCL; CPU processes over gloo.
    ConfigError for a device the group cannot use (Apple's MPS has no multi-process backend).
    """
    if not launched_by_torchrun():
        return SINGLE
    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting)
    if world <= 1:
        return DistContext(rank=0, world_size=1, local_rank=local_rank, device=device)
    if device.type == "mps":
        raise ConfigError(
            "Invalid setting: Apple's MPS cannot train across processes; use --device cpu under torchrun, "
            "or one process on the GPU."
        )
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"Invalid setting: process {rank} wants GPU {local_rank} but this machine has "
                f"{torch.cuda.device_count()}; give --nproc_per_node at most the number of GPUs."
            )
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": _TIMEOUT}
        if backend == "nccl":
            kwargs["device_id"] = device
        dist.init_process_group(**kwargs)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return DistContext(
        rank=rank,
        world_size=world,
        local_rank=local_rank,
        backend=backend,
        device=device,
        local_world_size=local_world,
    )


# -- dividing the work ---------------------------------------------------------------------------------


def merge_small_batches(plan: list[list[int]], world: int) -> list[list[int]]:
    """The plan with a last batch too small to give every process two images merged into the one before.

    BatchNorm cannot train on a single image, and under DistributedDataParallel every process must take
    every step, so no process may be left with fewer than two.
    """
    if world <= 1 or len(plan) < 2 or len(plan[-1]) >= 2 * world:
        return plan
    return [*plan[:-2], plan[-2] + plan[-1]]


def rank_share(batch: Sequence[int], rank: int, world: int, *, by_index: bool = False) -> list[int]:
    """This process's images of a global batch: every ``world``-th by position (equal shares), or, with
    ``by_index``, those whose dataset index ``% world == rank`` (a fixed shard: the embedding cache's)."""
    if world <= 1:
        return list(batch)
    if by_index:
        return [i for i in batch if i % world == rank]
    return list(batch[rank::world])


def rank_rows(n: int, rank: int, world: int) -> np.ndarray:
    """The dataset indices this process owns (``i % world == rank``): its validation and cache shard."""
    return np.arange(rank, n, max(1, world), dtype=np.int64)
