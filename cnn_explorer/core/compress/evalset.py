"""The images every variant is judged on, preprocessed once with the model's own preprocessing.

The tensors are kept in memory when they fit :data:`MAX_CACHE_BYTES` (a validation split of a few hundred
images: every variant, the sweep and the calibration reuse them); a larger set is read again for each pass.
An unreadable image is left out of every pass alike, and said so once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from cnn_explorer.core import zoo
from cnn_explorer.core.compress.spec import CompressError
from cnn_explorer.core.control import Control, checkpoint
from cnn_explorer.core.data import ImageSamples, collate_skipping_bad

__all__ = ["MAX_CACHE_BYTES", "EvalImages"]

MAX_CACHE_BYTES = 1 << 30


class EvalImages:
    """``samples``: (path, label) pairs, label -1 when there are no labels; ``labelled``: whether the
    labels are the model's output indices (accuracy) or absent (agreement)."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        preprocess: zoo.Preprocess,
        *,
        labelled: bool,
        where: str,
        batch_size: int = 16,
        control: Control | None = None,
    ) -> None:
        self.preprocess = preprocess
        self.labelled = labelled
        self.where = where  # "the 40 validation images of runs/first", for messages and the report
        self.batch_size = max(1, int(batch_size))
        self.skipped: list[tuple[Path, str]] = []
        data = ImageSamples(list(samples), preprocess, gray=preprocess.grayscale)
        keep: list[int] = []
        cached: list[Tensor] = []
        per_image = 4 * preprocess.channels * preprocess.crop * preprocess.crop
        cache = per_image * len(data) <= MAX_CACHE_BYTES
        for batch in self._loader(data, list(range(len(data)))):
            checkpoint(control)
            for index, reason in batch.failures:
                self.skipped.append((Path(data.samples[index][0]), reason))
            keep += batch.indices.tolist()
            if cache and batch.images.numel():
                cached.append(batch.images)
        if not keep:
            raise CompressError(f"None of {where} can be read, so nothing can be measured.")
        self._data = data
        self._keep = keep
        self._cache = torch.cat(cached) if cache else None
        labels = [data.samples[i][1] for i in keep]
        self.labels = torch.tensor(labels, dtype=torch.long) if labelled else None

    def _loader(self, data: ImageSamples, indices: list[int]) -> DataLoader:
        plan = [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        return DataLoader(data, batch_sampler=plan, collate_fn=collate_skipping_bad)

    def __len__(self) -> int:
        return len(self._keep)

    @property
    def paths(self) -> list[Path]:
        return [Path(self._data.samples[i][0]) for i in self._keep]

    def batches(self, control: Control | None = None) -> Iterator[Tensor]:
        """The readable images in batches, always in the same order."""
        if self._cache is not None:
            for start in range(0, len(self._cache), self.batch_size):
                checkpoint(control)
                yield self._cache[start : start + self.batch_size]
            return
        for batch in self._loader(self._data, self._keep):
            checkpoint(control)
            yield batch.images

    def first(self) -> Tensor:
        """One image as a batch of one (for the latency runs)."""
        return next(self.batches())[:1]

    def calibration(self, n_batches: int) -> list[Tensor]:
        """The first ``n_batches`` batches (fewer when there are fewer images)."""
        out: list[Tensor] = []
        for batch in self.batches():
            if len(out) >= n_batches:
                break
            out.append(batch)
        return out
