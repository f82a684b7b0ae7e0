"""Everything a training loop needs before its first step, built the same way for a run (``core.training``)
and for the LR finder (``core.transfer.lr_find``): the model with its strategy applied, the preprocessing,
the datasets, the embedding cache, the optimizer with its parameter groups, the loss; and one
optimisation step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Control
from cnn_explorer.core.data import (
    Augmentation,
    Batch,
    DatasetScan,
    ImageSamples,
    collate_skipping_bad,
    make_transform,
)
from cnn_explorer.core.train_config import ConfigError, TrainConfig, resolve_device
from cnn_explorer.core.transfer.strategies import make_strategy

MAX_CACHE_BYTES = 2 * 1024**3  # embeddings beyond this are not kept in memory


def run_preprocess(base: zoo.Preprocess, image_size: int | None) -> zoo.Preprocess:
    """The model's preprocessing at a run's input size (resize keeps the model's crop ratio)."""
    import dataclasses

    if image_size is None or image_size == base.crop:
        return base
    ratio = base.resize / base.crop
    return dataclasses.replace(base, crop=image_size, resize=max(image_size, round(image_size * ratio)))


def batch_plan(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The shuffled batches of one epoch; a function of (seed, epoch) only, so a resumed epoch repeats it."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches.pop()  # BatchNorm cannot train on a batch of one; that image is seen in other epochs
    return batches


class TrainingSetup:
    """The model, data and optimizer of a run, ready to step. ``notices`` are messages for the user.

    ``state`` is a last.pt to resume from: its weights (and preprocessing) replace the starting ones.
    """

    def __init__(
        self,
        config: TrainConfig,
        scan: DatasetScan,
        *,
        state: dict[str, Any] | None = None,
        control: Control | None = None,
    ) -> None:
        cfg = self.config = config
        self.scan = scan
        self.class_names = list(scan.class_names)
        self.notices: list[str] = []
        self.device = resolve_device(cfg.device)
        strategy = self.strategy = make_strategy(
            cfg.strategy,
            top_blocks=cfg.top_blocks,
            cut_layer=cfg.cut_layer,
            lr_mult=cfg.lr_mult,
            dropout=cfg.dropout,
        )
        pretrained = strategy.pretrained and state is None
        loaded = zoo.build_model(
            cfg.model,
            class_names=self.class_names,
            pretrained=pretrained,
            allow_download=cfg.allow_download,
            control=control,
        )
        self.info = loaded.info
        self.weights_detail = loaded.weights_detail
        if pretrained and loaded.weights == "untrained":
            self.notices.append(
                f"No pretrained weights for {loaded.info.title} are available ({loaded.weights_detail}); "
                "it starts from random weights, so this run is in effect training from scratch. "
                f"{zoo.get_info(zoo.DEFAULT_MODEL).title} has weights that work offline."
            )
        try:
            prepared = strategy.prepare(loaded.model, len(self.class_names))
        except (ValueError, RuntimeError) as exc:  # a cut layer the model lacks, or cannot be cut at
            where = f" at layer {cfg.cut_layer!r}" if cfg.cut_layer else ""
            raise ConfigError(f"Invalid setting: cannot cut {loaded.info.title}{where}: {exc}.") from None
        self.model = prepared.model
        if prepared.note:
            self.notices.append(prepared.note)
        if state is not None:
            self.model.load_state_dict(state["state_dict"])
            self.preprocess = zoo.Preprocess.from_dict(state["preprocess"])
        else:
            self.preprocess = run_preprocess(loaded.preprocess, cfg.image_size)
        self.model.to(self.device)
        self.set_train_mode = prepared.set_train_mode
        self.trainable = prepared.trainable
        self.param_groups = prepared.param_groups

        self.embed: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.head: nn.Module | None = None
        if strategy.cacheable and cfg.cache_embeddings:
            self._set_up_cache(loaded.info.title)
        augment: Augmentation | None = cfg.augmentation
        if self.cached and cfg.augmentation.enabled:
            augment = None
            self.notices.append(
                "Augmentation is off for this run: the embedding cache holds the frozen layers' output for "
                "the plain images, so epochs after the first only train the head. Turn the cache off to "
                "train with augmentation (every epoch then runs the whole network)."
            )
        gray = self.preprocess.grayscale
        self.train_set = ImageSamples(scan.train, make_transform(self.preprocess, augment), gray=gray)
        self.val_set = ImageSamples(scan.val, self.preprocess, gray=gray)
        n_train, n_val = len(self.train_set), len(self.val_set)
        self.train_labels = torch.tensor([y for _, y in scan.train], dtype=torch.long)
        self.val_labels = torch.tensor([y for _, y in scan.val], dtype=torch.long)
        self.train_cache: torch.Tensor | None = None
        self.train_cached = torch.zeros(n_train, dtype=torch.bool)
        self.val_cache: torch.Tensor | None = None
        self.val_cached = torch.zeros(n_val, dtype=torch.bool)
        self.train_bad = torch.zeros(n_train, dtype=torch.bool)
        self.val_bad = torch.zeros(n_val, dtype=torch.bool)

        groups = [{"params": g["params"], "lr_scale": g["lr_scale"]} for g in self.param_groups]
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=cfg.effective_lr(), momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=cfg.effective_lr(), weight_decay=cfg.weight_decay)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def _set_up_cache(self, title: str) -> None:
        split = zoo.embedding_split(self.model)
        if split is None:
            self.notices.append(
                f"{title}'s layers do not separate into a backbone and a head, so its embeddings cannot be "
                "cached: every epoch runs the whole network."
            )
            return
        self.embed, self.head = split
        with torch.no_grad():
            x = self.preprocess(np.zeros((self.preprocess.crop, self.preprocess.crop, 3), np.uint8))
            self.model.eval()
            per_image = self.embed(x[None].to(self.device)).numel() * 4
        if per_image * (len(self.scan.train) + len(self.scan.val)) > MAX_CACHE_BYTES:
            self.embed = self.head = None
            self.notices.append(
                "The embeddings are too large to cache in memory; every epoch runs the whole network."
            )

    # -- facts ------------------------------------------------------------------------------------
    @property
    def cached(self) -> bool:
        return self.embed is not None

    @property
    def n_train(self) -> int:
        return len(self.train_set)

    @property
    def n_val(self) -> int:
        return len(self.val_set)

    def plan(self, epoch: int) -> list[list[int]]:
        return batch_plan(self.n_train, self.config.batch_size, self.config.seed, epoch)

    # -- batches ----------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The training batches of ``epoch`` (0-based) from batch ``start``: from the embedding cache once
        every image has been embedded, else loaded (and augmented) from the files."""
        plan = self.plan(epoch)[start:]
        if self.cached and bool((self.train_cached | self.train_bad).all()):
            yield from _from_cache(plan, self.train_labels, self.train_bad)
            return
        yield from DataLoader(
            self.train_set,
            batch_sampler=plan,
            collate_fn=collate_skipping_bad,
            num_workers=self.config.num_workers,
        )

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        n = self.n_val
        plan = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
        if self.cached and bool((self.val_cached | self.val_bad).all()):
            yield from _from_cache(plan, self.val_labels, self.val_bad)
            return
        yield from DataLoader(
            self.val_set,
            batch_sampler=plan,
            collate_fn=collate_skipping_bad,
            num_workers=self.config.num_workers,
        )

    def val_steps(self, batch_size: int) -> int:
        return -(-self.n_val // batch_size)

    # -- the computation --------------------------------------------------------------------------
    def logits(self, batch: Batch, part: str) -> torch.Tensor:
        """The model's output for a batch of ``part`` ("train" or "val"), through the cache when there is one.
        A batch without images is one the cache serves (callers skip batches without labels)."""
        if not self.cached:
            return self.model(batch.images.to(self.device))
        cache = self.train_cache if part == "train" else self.val_cache
        if batch.images.numel() == 0 and cache is not None:  # a batch served from the cache
            features = cache[batch.indices.to(self.device)]
        else:
            with torch.no_grad():
                features = self.embed(batch.images.to(self.device))
            self._store(features, batch.indices, part)
        return self.head(features)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def backward_step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def step(self, batch: Batch, lr: float) -> float:
        """One optimisation step at base learning rate ``lr``; the batch's loss (possibly not finite). A batch
        whose every image was unreadable (no labels) takes no step and gives NaN."""
        if batch.labels.numel() == 0:
            return float("nan")
        self.set_lr(lr)
        logits = self.logits(batch, "train")
        loss = self.criterion(logits, batch.labels.to(self.device))
        value = float(loss.detach())
        if np.isfinite(value):
            self.backward_step(loss)
        return value

    def _store(self, features: torch.Tensor, indices: torch.Tensor, part: str) -> None:
        cache = self.train_cache if part == "train" else self.val_cache
        flags = self.train_cached if part == "train" else self.val_cached
        if cache is None:
            n = self.n_train if part == "train" else self.n_val
            cache = torch.zeros((n, *features.shape[1:]), dtype=features.dtype, device=features.device)
            if part == "train":
                self.train_cache = cache
            else:
                self.val_cache = cache
        cache[indices.to(cache.device)] = features.detach()
        flags[indices] = True


def _from_cache(plan: list[list[int]], labels: torch.Tensor, bad: torch.Tensor) -> Iterator[Batch]:
    """Batches without images (the cache holds their features) of the readable images of ``plan``."""
    for idx in plan:
        keep = torch.tensor([i for i in idx if not bad[i]], dtype=torch.long)
        yield Batch(images=torch.empty(0), labels=labels[keep], indices=keep, failures=[])


def prepare_training(
    config: TrainConfig, scan: DatasetScan, *, control: Control | None = None
) -> TrainingSetup:
    """A :class:`TrainingSetup` for a fresh start (pretrained weights as the strategy wants them)."""
    config.validate()
    return TrainingSetup(config, scan, control=control)
