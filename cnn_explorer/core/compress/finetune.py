"""A short fine-tune after pruning, with the app's own training loop and its events, that keeps the pruned
weights at zero.

``training.fit`` builds its model from a config, so the pruned model reaches it the way a stopped run
does: a run folder in a temporary directory whose last.pt holds the pruned weights at epoch 0 (with a
fresh optimizer state made by the same ``TrainingSetup``), continued by ``training.resume``. Its events
(RunStarted, StepEnd, EpochEnd, ...) go to ``control.report`` unchanged, so the page's live loss plot
draws them as it draws a run. While it trains, an optimizer step hook puts the masks back after every
step — a weight that was pruned stays exactly zero, as ``torch.nn.utils.prune`` keeps it with its mask.
The hook is registered for all optimizers (torch has no other way to reach one built inside ``fit``) but
acts only on this thread and only on parameters whose values matched a pruned layer when first seen.
The result is the last epoch's weights (not the best epoch's: that choice would be made on the very
images the variants are measured on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress.base import Base
from cnn_explorer.core.compress.prune import Masks
from cnn_explorer.core.compress.spec import CompressError, CompressSpec
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.data import Augmentation
from cnn_explorer.core.runs import RunDir
from cnn_explorer.core.train_config import ConfigError, TrainConfig
from cnn_explorer.core.training_setup import TrainingSetup

__all__ = ["finetune_config", "finetune_pruned", "keep_pruned_zeros"]


class _ZeroKeeper:
    """After each optimizer step on this thread: weight *= mask for the parameters that are pruned layers."""

    def __init__(self, model: nn.Module, masks: Masks) -> None:
        weights = dict(model.named_parameters())
        self.pruned = [(weights[f"{name}.weight"].detach(), mask) for name, mask in masks.items()]
        self.thread = threading.get_ident()
        self.seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.matched: set[int] = set()  # indices of self.pruned found among trained parameters

    def _pairs(self, optimizer: torch.optim.Optimizer) -> list[tuple[Tensor, Tensor]]:
        pairs = []
        for group in optimizer.param_groups:
            for p in group["params"]:
                for i, (weight, mask) in enumerate(self.pruned):
                    if p.shape == weight.shape and torch.equal(p.detach().cpu(), weight):
                        pairs.append((p, mask.to(p.device)))
                        self.matched.add(i)
                        break
        return pairs

    def before(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        # first step of an optimizer: its parameters still hold the pruned weights exactly
        if threading.get_ident() == self.thread and optimizer not in self.seen:
            self.seen[optimizer] = self._pairs(optimizer)

    def after(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if threading.get_ident() != self.thread:
            return
        with torch.no_grad():
            for p, mask in self.seen.get(optimizer, ()):
                p.mul_(mask)


@contextlib.contextmanager
def keep_pruned_zeros(model: nn.Module, masks: Masks) -> Iterator[_ZeroKeeper]:
    """While inside, a model trained on this thread from ``model``'s weights keeps ``masks``' zeros."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    keeper = _ZeroKeeper(model, masks)
    pre = register_optimizer_step_pre_hook(keeper.before)
    post = register_optimizer_step_post_hook(keeper.after)
    try:
        yield keeper
    finally:
        pre.remove()
        post.remove()


def finetune_config(base: Base, spec: CompressSpec, data_root: Path) -> TrainConfig:
    """The fine-tune's settings. A run goes on the way it was trained (its strategy, learning rate,
    optimizer, augmentation and device): a feature extractor's head learns the pruned features, a
    fine-tuned network retrains its surviving weights. Measured on a Lite0 feature-extractor run on the
    silhouettes (50% pruned), one epoch of the run's own head-only training recovered more (42.5% → 65%
    after three) than one of "fine-tune-all" (37.5%), whose BatchNorm statistics lag behind the pruned
    weights. A zoo model has no run: everything trains ("fine-tune-all") at that strategy's default rate."""
    common = {
        "data": str(data_root),
        "model": base.arch,
        "epochs": spec.finetune_epochs,
        "batch_size": spec.batch_size,
        "seed": spec.seed,
        "allow_download": False,
        "watch_image": "",
        "num_workers": 0,
    }
    if base.run_config is not None:
        return dataclasses.replace(base.run_config, **common)
    probe = base.probe_layer
    return TrainConfig(
        **common,
        strategy="linear-probe" if probe else "fine-tune-all",
        cut_layer=probe or "",
        augmentation=Augmentation.none(),
    )


def finetune_pruned(
    model: nn.Module, masks: Masks, base: Base, spec: CompressSpec, *, control: Control | None = None
) -> tuple[nn.Module, str | None]:
    """``model`` (pruned) trained for ``spec.finetune_epochs`` epochs on the base's training images with its
    zeros kept, and what went wrong if the training did not finish normally (it diverged: the last good
    epoch's weights are returned); fit()'s events are reported to ``control``. Cancelled when cancelled
    (nothing is left)."""
    from cnn_explorer.core.training import Finished, resume

    scan = base.train_scan
    if scan is None or not scan.train:
        raise CompressError("A fine-tune needs labelled training images; there are none.")
    config = finetune_config(base, spec, scan.root)
    try:
        config.validate()
    except ConfigError as exc:
        raise CompressError(f"The fine-tune cannot start: {exc}") from None
    tmp = Path(tempfile.mkdtemp(prefix="cnn-explorer-finetune-"))
    try:
        run = RunDir.create(tmp / "run", config.to_dict(), scan.to_dict())
        state = {
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "preprocess": base.preprocess.to_dict(),
        }
        fresh = TrainingSetup(config, scan, state=state, control=control)  # its optimizer's empty state
        extra = {"epoch": 0, "step": 0, "global_step": 0, "optimizer": fresh.optimizer.state_dict()}
        fresh.close()
        del fresh
        zoo.save_checkpoint(
            run.last_checkpoint,
            model,
            arch=base.arch,
            class_names=scan.class_names,
            preprocess=base.preprocess,
            extra={**extra, "config": config.to_dict()},
        )
        problem = None
        with keep_pruned_zeros(model, masks):
            events = resume(run.path, control=control)
            try:
                for event in events:
                    report(control, event)
                    if isinstance(event, Finished) and event.status != "finished":
                        problem = event.message
                    checkpoint(control)
            finally:
                events.close()
        return zoo.load_model_file(run.last_checkpoint).model.eval().float().cpu(), problem
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
