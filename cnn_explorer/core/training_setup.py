"""Everything a training loop needs before its first step, built the same way for a run (``core.training``)
and for the LR finder (``core.transfer.lr_find``): the model with its strategy applied and placed on its
device (``core.accel``: precision, channels-last), the preprocessing, the datasets and their DataLoaders
(worker processes that persist across epochs), the embedding cache (``core.embedding_cache``, on disk), the
optimizer with its parameter groups, the loss, DistributedDataParallel under torchrun
(``core.distributed``); and one optimisation step, split into smaller pieces when the device runs out of
memory.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cnn_explorer.core import zoo
from cnn_explorer.core.accel import Accel, chunks, is_out_of_memory
from cnn_explorer.core.control import Control
from cnn_explorer.core.data import (
    Augmentation,
    Batch,
    DatasetScan,
    EpochBatches,
    ImageSamples,
    close_loader,
    make_loader,
    make_transform,
    resolve_num_workers,
)
from cnn_explorer.core.distributed import SINGLE, DistContext, merge_small_batches, rank_rows, rank_share
from cnn_explorer.core.embedding_cache import (
    DEFAULT_MAX_BYTES,
    EmbeddingCacheError,
    EmbeddingStore,
    cache_key,
    cache_root,
    prune,
)
from cnn_explorer.core.train_config import ConfigError, TrainConfig, resolve_device
from cnn_explorer.core.transfer.strategies import make_strategy

# Where the disk cache cannot be made, embeddings up to this size are kept in memory instead.
MAX_MEMORY_CACHE_BYTES = 2 * 1024**3


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


@dataclass(frozen=True)
class StepResult:
    """One process's share of a training step, before the step is applied."""

    loss_sum: float  # summed over its images, as optimised (label smoothing included)
    correct: int
    count: int


class TrainingSetup:
    """The model, data and optimizer of a run, ready to step. ``notices`` are messages for the user.

    ``state`` is a last.pt to resume from: its weights (and preprocessing) replace the starting ones.
    ``dist`` is this process's place among torchrun's processes (see ``core.distributed``).
    """

    def __init__(
        self,
        config: TrainConfig,
        scan: DatasetScan,
        *,
        state: dict[str, Any] | None = None,
        control: Control | None = None,
        dist: DistContext = SINGLE,
    ) -> None:
        cfg = self.config = config
        self.scan = scan
        self.dist = dist
        self.class_names = list(scan.class_names)
        self.notices: list[str] = []
        self._later_notices: list[str] = []  # said while training (an out-of-memory retry)
        self.device = dist.device if dist.enabled else resolve_device(cfg.device)
        self.accel = Accel.create(self.device, cfg.precision, cfg.channels_last)
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
        self.accel.prepare_model(self.model)
        self.set_train_mode = prepared.set_train_mode
        self.trainable = prepared.trainable
        self.param_groups = prepared.param_groups
        with torch.no_grad():  # one input image, for shapes
            self._blank = self.preprocess(np.zeros((self.preprocess.crop, self.preprocess.crop, 3), np.uint8))

        self.embed: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.head: nn.Module | None = None
        self.train_store: EmbeddingStore | None = None
        self.val_store: EmbeddingStore | None = None
        self.cache_path = ""  # the cache's folder on disk
        self._loaders: dict[str, tuple[DataLoader, EpochBatches]] = {}
        if strategy.cacheable and cfg.cache_embeddings:
            self._set_up_cache(loaded.info.title)
        world = dist.world_size
        if world > 1 and not self.cached and cfg.batch_size < 2 * world:
            self.close()
            error = ConfigError(
                f"Invalid setting: with {world} processes the batch size must be at least {2 * world}: each "
                "process trains on its share of every batch, and BatchNorm needs two images."
            )
            error.shared_by_ranks = True  # type: ignore[attr-defined]  # every process finds it: said once
            raise error
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
        self.train_labels = torch.as_tensor(_labels(scan.train), dtype=torch.long)
        self.val_labels = torch.as_tensor(_labels(scan.val), dtype=torch.long)
        self.train_bad = torch.zeros(n_train, dtype=torch.bool)
        self.val_bad = torch.zeros(n_val, dtype=torch.bool)
        self.num_workers = resolve_num_workers(
            cfg.num_workers, n_train + n_val, processes=dist.local_world_size
        )
        self.micro_batch: int | None = None  # images per forward pass, once the device ran out of memory

        groups = [{"params": g["params"], "lr_scale": g["lr_scale"]} for g in self.param_groups]
        if cfg.optimizer == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                groups, lr=cfg.effective_lr(), momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=cfg.effective_lr(), weight_decay=cfg.weight_decay)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self._summed_loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing, reduction="sum")
        self.scaler = self.accel.scaler()
        # What trains: the head alone on cached embeddings, else the whole model (frozen parts included,
        # they simply have no gradient). Under torchrun it is wrapped in DistributedDataParallel.
        self.trained: nn.Module = self.head if self.head is not None else self.model
        self.ddp: nn.Module | None = None
        if dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # No buffer broadcast in each forward pass: a forward then holds no collective, so a process
            # that runs out of memory in one can redo it in smaller pieces while the others wait in the
            # step's gradient all-reduce. The BatchNorm statistics are made rank 0's before validating.
            self.ddp = DistributedDataParallel(self.trained, device_ids=ids, broadcast_buffers=False)
        self._in_all_reduce = False  # inside the backward pass whose gradients are all-reduced

    def _set_up_cache(self, title: str) -> None:
        split = zoo.embedding_split(self.model)
        if split is None:
            self.notices.append(
                f"{title}'s layers do not separate into a backbone and a head, so its embeddings cannot be "
                "cached: every epoch runs the whole network."
            )
            return
        embed, head = split
        cfg, scan = self.config, self.scan
        with torch.no_grad():
            self.model.eval()
            shape = tuple(embed(self.accel.images(self._blank[None])).shape[1:])
        parts = {"train": scan.train, "val": scan.val}
        root = cache_root(cfg.cache_dir)
        # What the rows were computed with. Processes on several machines each keep their machine's rows in
        # an entry of its own: a cache folder shared between machines (a network home) must not have two
        # machines writing the same pages of one file.
        computed = f"{cfg.model}|{cfg.strategy}|{cfg.cut_layer}|{self.accel.precision}"
        hosts = sorted(set(self.dist.gather_objects(socket.gethostname())))
        if len(hosts) > 1:
            computed += f"|host={socket.gethostname()}"
        stores: dict[str, EmbeddingStore] = {}
        problem = ""
        try:
            preprocess = self.preprocess.to_dict()
            for part, samples in parts.items():
                if not len(samples):
                    stores[part] = EmbeddingStore.in_memory(0, shape)
                    continue
                key = cache_key(
                    model=computed,
                    embed=self.model,
                    head=head,  # a new head is random in every run, and not part of the embedding
                    preprocess=preprocess,
                    samples=samples,
                    part=part,
                )
                meta = {"model": cfg.model, "strategy": cfg.strategy, "data": str(scan.root), "part": part}
                stores[part] = EmbeddingStore.open(root, key, len(samples), shape, meta)
            prune(root, DEFAULT_MAX_BYTES, keep={s.path.name for s in stores.values() if s.path is not None})
        except EmbeddingCacheError as exc:
            problem = str(exc)
        # Every process must choose alike (the cached head and the whole network train differently):
        # if one cannot keep its cache on disk, none does.
        (failed,) = self.dist.all_sum([bool(problem)])
        if failed:
            for store in stores.values():
                store.close()
            why = problem or "another process could not create its cache"
            per_image = 2 * int(np.prod(shape))
            if per_image * sum(len(s) for s in parts.values()) > MAX_MEMORY_CACHE_BYTES:
                self.notices.append(
                    f"The embeddings cannot be cached: {why}. They are too many to keep in memory, so every "
                    "epoch runs the whole network."
                )
                return
            self.notices.append(f"The embedding cache cannot be kept on disk ({why}); it is kept in memory.")
            stores = {part: EmbeddingStore.in_memory(len(s), shape) for part, s in parts.items()}
        self.embed, self.head = embed, head
        self.train_store, self.val_store = stores["train"], stores["val"]
        on_disk = stores["train"].path or stores["val"].path
        self.cache_path = str(on_disk.parent) if on_disk is not None else ""
        reused, total = self.dist.all_sum(
            [
                sum(int(self._owned_done(part).sum()) for part in parts),
                sum(len(self._owned(part)) for part in parts),
            ]
        )
        if reused:
            self.notices.append(
                f"The embeddings of {int(reused)} of {int(total)} images are taken from the cache ({root}): "
                "computed before, by a run on the same files with the same model, weights and preprocessing."
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
        """The global batches of ``epoch``: a single process's, so 1 and N processes train alike."""
        plan = batch_plan(self.n_train, self.config.batch_size, self.config.seed, epoch)
        return plan if self.cached else merge_small_batches(plan, self.dist.world_size)

    def local_plan(self, epoch: int, start: int = 0) -> list[list[int]]:
        """This process's share of each global batch of ``epoch`` from batch ``start``."""
        d = self.dist
        return [rank_share(b, d.rank, d.world_size, by_index=self.cached) for b in self.plan(epoch)[start:]]

    def _owned(self, part: str) -> np.ndarray:
        n = len(self.scan.train if part == "train" else self.scan.val)
        return rank_rows(n, self.dist.rank, self.dist.world_size)

    def _owned_done(self, part: str) -> np.ndarray:
        store = self.train_store if part == "train" else self.val_store
        if store is None:
            return np.zeros(0, dtype=bool)
        return np.asarray(store.done)[self._owned(part)]

    def take_notices(self) -> list[str]:
        """Messages that arose while training (once each)."""
        said, self._later_notices = self._later_notices, []
        return said

    # -- batches ----------------------------------------------------------------------------------
    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """This process's training batches of ``epoch`` (0-based) from batch ``start``: loaded (and augmented)
        from the files, or, with the embedding cache, index-only batches whose features are in the cache
        (images not cached yet are loaded and embedded first)."""
        plan = self.local_plan(epoch, start)
        if self.cached:
            yield from self._cached_batches(plan, "train")
        else:
            yield from self._loaded(plan, "train")

    def val_plan(self, batch_size: int) -> list[list[int]]:
        rows = self._owned("val").tolist()
        return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]

    def val_batches(self, batch_size: int) -> Iterator[Batch]:
        """This process's validation batches (all of them for a single process)."""
        plan = self.val_plan(batch_size)
        if self.cached:
            yield from self._cached_batches(plan, "val")
        else:
            yield from self._loaded(plan, "val")

    def val_steps(self, batch_size: int) -> int:
        return len(self.val_plan(batch_size))

    def _loader(self, part: str) -> tuple[DataLoader, EpochBatches]:
        """The part's DataLoader, made once: its worker processes persist from epoch to epoch."""
        if part not in self._loaders:
            batches = EpochBatches([])
            dataset = self.train_set if part == "train" else self.val_set
            # validation decodes once an epoch, without augmentation: half the workers, idle meanwhile
            workers = self.num_workers if part == "train" else (self.num_workers + 1) // 2
            loader = make_loader(dataset, batches, num_workers=workers, pin_memory=self.accel.pin_memory)
            self._loaders[part] = (loader, batches)
        return self._loaders[part]

    def _loaded(self, plan: list[list[int]], part: str) -> Iterator[Batch]:
        if not plan:
            return
        loader, batches = self._loader(part)
        batches.plan = plan
        yield from loader

    def _cached_batches(self, plan: list[list[int]], part: str) -> Iterator[Batch]:
        store = self.train_store if part == "train" else self.val_store
        assert store is not None
        bad = self.train_bad if part == "train" else self.val_bad
        labels = self.train_labels if part == "train" else self.val_labels
        done = np.asarray(store.done)
        missing = [[i for i in idx if not done[i] and not bad[i]] for idx in plan]
        loaded = self._loaded([m for m in missing if m], part)
        for idx, todo in zip(plan, missing, strict=True):
            failures: list[tuple[int, str]] = []
            if todo:
                batch = next(loaded)
                failures = batch.failures
                if batch.images.numel():
                    store.write(batch.indices, self._embed(batch.images))
                done = np.asarray(store.done)
            keep = torch.tensor([i for i in idx if done[i]], dtype=torch.long)
            yield Batch(images=torch.empty(0), labels=labels[keep], indices=keep, failures=failures)

    # -- the computation --------------------------------------------------------------------------
    def _pieces(self, n: int) -> list[slice]:
        return list(chunks(n, self.micro_batch or n))

    def _out_of_memory(self, n: int, exc: str) -> None:
        """After the device ran out of memory with ``n`` images at a time: half as many from now on (the
        pieces' gradients add up to the same step), or the error, if one image did not fit."""
        current = min(self.micro_batch or n, n)
        self.optimizer.zero_grad(set_to_none=True)
        self.accel.free_memory()
        where = f"{self.device}" + (f" (process {self.dist.rank})" if self.dist.enabled else "")
        if current <= 1:
            raise RuntimeError(f"{where} ran out of memory with a single image: {exc}")
        if self._in_all_reduce:
            self._in_all_reduce = False
            # Part of this step's gradients were already exchanged with the other processes: the step
            # cannot be redone by this process alone, so it stops (the others with it) and says what to do.
            raise RuntimeError(
                f"{where} ran out of memory with {current} images at a time. Under torchrun each process "
                f"takes its share of the batch of {self.config.batch_size}; resume with a smaller "
                "--batch-size."
            )
        self.micro_batch = current // 2
        self._later_notices.append(
            f"The {self.device.type.upper()} device ran out of memory with {current} images at a time; it "
            f"now takes {self.micro_batch} at a time and adds up their gradients, so each step still learns "
            f"from the whole batch of {self.config.batch_size}."
        )

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """The frozen layers' output for a batch of images, in pieces that fit the device."""
        assert self.embed is not None
        embed = self.embed

        def attempt() -> torch.Tensor:
            outs = []
            for piece in self._pieces(len(images)):
                with torch.no_grad(), self.accel.autocast():
                    outs.append(embed(self.accel.images(images[piece])).float())
            return torch.cat(outs)

        return self._fitting(len(images), attempt)

    def _fitting(self, n: int, attempt: Callable[[], Any]) -> Any:
        """``attempt()``, again in smaller pieces each time the device runs out of memory with ``n``
        images (see :meth:`_out_of_memory`)."""
        while True:
            try:
                return attempt()
            except (RuntimeError, torch.OutOfMemoryError) as exc:
                if not is_out_of_memory(exc):
                    raise
                failure = str(exc)
            self._out_of_memory(n, failure)  # out of the except: its traceback held the tensors

    def _input(self, batch: Batch, rows: slice, part: str) -> torch.Tensor:
        if not self.cached:
            return self.accel.images(batch.images[rows])
        store = self.train_store if part == "train" else self.val_store
        assert store is not None
        return store.read(batch.indices[rows]).to(self.device, non_blocking=self.accel.pin_memory)

    def logits(self, batch: Batch, part: str) -> torch.Tensor:
        """The model's output (float32) for a batch of ``part`` ("train" or "val"), from the cache when
        there is one; in pieces that fit the device. The caller chooses grad mode and the model's mode."""
        module = self.head if self.cached else self.model
        assert module is not None
        n = int(batch.labels.numel())

        def attempt() -> torch.Tensor:
            outs = []
            for piece in self._pieces(n):
                with self.accel.autocast():
                    outs.append(module(self._input(batch, piece, part)).float())
            return torch.cat(outs) if outs else torch.zeros(0, len(self.class_names), device=self.device)

        return self._fitting(n, attempt)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def forward_backward(self, batch: Batch, weight: float) -> StepResult:
        """Gradients of ``weight`` × this process's summed loss over ``batch``; nothing is applied yet.

        ``weight`` is 1/(images in the batch) for a single process and world/(images in the global batch)
        under DistributedDataParallel (which averages over processes): either way the gradient of the
        batch's mean loss. Pieces that fit the device add up their gradients (only the last one is
        all-reduced). A process with no image takes part with zero gradients.
        """
        n = int(batch.labels.numel())
        return self._fitting(n, lambda: self._forward_backward(batch, n, weight))

    def _forward_backward(self, batch: Batch, n: int, weight: float) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        if n == 0:
            self._no_images_step()
            return StepResult(0.0, 0, 0)
        module = self.ddp if self.ddp is not None else self.trained
        y_all = batch.labels.to(self.device, non_blocking=self.accel.pin_memory)
        loss_sum, correct = 0.0, 0
        pieces = self._pieces(n)
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            quiet = self.ddp.no_sync() if self.ddp is not None and not last else contextlib.nullcontext()
            with quiet:
                x = self._input(batch, piece, "train")
                y = y_all[piece]
                with self.accel.autocast():
                    logits = module(x)
                loss = self._summed_loss(logits.float(), y)
                scaled = loss * weight
                self._in_all_reduce = self.ddp is not None and last
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                self._in_all_reduce = False
            loss_sum += float(loss.detach())
            correct += int((logits.detach().argmax(1) == y).sum())
        return StepResult(loss_sum, correct, n)

    def _no_images_step(self) -> None:
        """Under DistributedDataParallel a process without a readable image still joins the gradient
        all-reduce: a forward pass that contributes zero (BatchNorm statistics it touches are put back)."""
        if self.ddp is None:
            return
        if self.cached:
            assert self.train_store is not None
            x = torch.zeros((0, *self.train_store.feature_shape), device=self.device)
        else:
            x = self.accel.images(torch.stack([self._blank, self._blank]))
        saved = [b.detach().clone() for b in self.trained.buffers()]
        with self.accel.autocast():
            out = self.ddp(x)
        (out.float().sum() * 0.0).backward()
        with torch.no_grad():
            for b, old in zip(self.trained.buffers(), saved, strict=True):
                b.copy_(old)

    def sync_buffers(self) -> None:
        """Under torchrun: every process's BatchNorm statistics made rank 0's (the ones its checkpoint
        keeps), so each validates its shard with the same model."""
        if not self.dist.enabled:
            return
        import torch.distributed as torch_dist

        for buffer in self.model.buffers():
            torch_dist.broadcast(buffer.data, src=0)

    def apply_step(self) -> None:
        """The optimizer's step with the gradients of :meth:`forward_backward` (through the GradScaler in
        fp16, which skips a step whose gradients overflowed)."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def step(self, batch: Batch, lr: float) -> float:
        """One optimisation step at base learning rate ``lr``; the batch's mean loss (possibly not finite,
        then no step is applied). A batch whose every image was unreadable (no labels) takes no step and
        gives NaN. Single process (the LR finder)."""
        n = int(batch.labels.numel())
        if n == 0:
            return float("nan")
        self.set_lr(lr)
        result = self.forward_backward(batch, 1.0 / n)
        value = result.loss_sum / n
        if np.isfinite(value):
            self.apply_step()
        return value

    def flush(self) -> None:
        """The embedding cache on disk, up to date (at the end of an epoch, and when stopping)."""
        for store in (self.train_store, self.val_store):
            if store is not None:
                store.flush()

    def close(self) -> None:
        """Stop the DataLoader worker processes and close the cache; idempotent."""
        for loader, _ in self._loaders.values():
            close_loader(loader)
        self._loaders.clear()
        for store in (self.train_store, self.val_store):
            if store is not None:
                store.close()


def _labels(samples: Any) -> np.ndarray:
    labels = getattr(samples, "labels", None)
    if labels is not None:
        return np.asarray(labels, dtype=np.int64)
    return np.asarray([y for _, y in samples], dtype=np.int64)


def prepare_training(
    config: TrainConfig, scan: DatasetScan, *, control: Control | None = None
) -> TrainingSetup:
    """A :class:`TrainingSetup` for a fresh start (pretrained weights as the strategy wants them)."""
    config.validate()
    return TrainingSetup(config, scan, control=control)
