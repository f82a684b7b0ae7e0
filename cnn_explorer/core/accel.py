"""How a run uses its device: mixed precision (autocast, with a GradScaler for fp16), the channels-last
memory layout, pinned memory, and what counts as running out of memory.

Only CUDA gets mixed precision by default: there bf16 (where the GPU has it, Ampere and later) or fp16 with
loss scaling roughly halves the memory of activations and runs convolutions on tensor cores. On a CPU fp32
is the default; bf16 can be asked for (fast only on CPUs with bf16 units). fp16 needs CUDA's loss scaling.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from cnn_explorer.core.train_config import PRECISIONS, ConfigError

__all__ = ["PRECISIONS", "Accel", "is_out_of_memory", "resolve_precision"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_TITLES = {"fp32": "fp32", "bf16": "bf16 mixed precision", "fp16": "fp16 mixed precision"}


def _bf16_on_cuda() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):
        return False


def resolve_precision(setting: str, device: torch.device) -> str:
    """ "fp32", "bf16" or "fp16" for the setting ("auto" or one of those) on ``device``; ConfigError for a
    precision this device cannot run."""
    if setting not in PRECISIONS:
        raise ConfigError(f"Invalid setting: precision must be one of {', '.join(PRECISIONS)}.")
    kind = device.type
    if setting == "auto":
        if kind == "cuda":
            return "bf16" if _bf16_on_cuda() else "fp16"
        return "fp32"
    if setting == "fp16" and kind != "cuda":
        raise ConfigError(
            f"Invalid setting: fp16 mixed precision needs a CUDA GPU (its loss scaling is CUDA's); on {kind} "
            "choose bf16 or fp32."
        )
    if setting == "bf16" and kind == "cuda" and not _bf16_on_cuda():
        raise ConfigError("Invalid setting: this GPU has no bf16 arithmetic; choose fp16 or fp32.")
    return setting


@dataclass(frozen=True)
class Accel:
    """The resolved device settings of one training process."""

    device: torch.device
    precision: str = "fp32"  # "fp32", "bf16" or "fp16"
    channels_last: bool = False

    @classmethod
    def create(cls, device: torch.device, precision: str = "auto", channels_last: bool = True) -> Accel:
        last = bool(channels_last) and device.type == "cuda"
        return cls(device, resolve_precision(precision, device), last)

    @property
    def title(self) -> str:
        """For a status line: "bf16 mixed precision", "fp32"."""
        return _TITLES[self.precision]

    @property
    def pin_memory(self) -> bool:
        """Page-locked batches copy to a CUDA GPU asynchronously (``non_blocking``)."""
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's context: ``torch.autocast`` in bf16/fp16, nothing in fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision])

    def scaler(self) -> torch.amp.GradScaler | None:
        """A GradScaler for fp16 (its small exponent range underflows gradients without one), else None."""
        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(self.device.type)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of images on the device, in the run's memory layout."""
        if self.channels_last and x.dim() == 4:
            return x.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        return x.to(self.device, non_blocking=self.pin_memory)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model on the device (channels-last when set): in place, returned for chaining."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def free_memory(self) -> None:
        """Give cached GPU blocks back after an out-of-memory error, so a smaller batch can fit."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps" and hasattr(torch, "mps"):
            with contextlib.suppress(RuntimeError, AttributeError):
                torch.mps.empty_cache()


def is_out_of_memory(exc: BaseException) -> bool:
    """A device allocation failed (CUDA's OutOfMemoryError, or MPS's RuntimeError saying so)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def chunks(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` with at most ``size`` items (the micro-batches of a batch), except that a
    last piece of one image joins the one before: BatchNorm cannot train on a single 1×1 map."""
    size = max(1, size)
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1 and size > 1:
        starts.pop()
    for k, start in enumerate(starts):
        yield slice(start, starts[k + 1] if k + 1 < len(starts) else n)
