"""How a run uses its device: precision, channels-last, out-of-memory retries; and the CUDA paths, which
skip cleanly on a machine without a GPU."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.accel import Accel, is_out_of_memory, resolve_precision
from cnn_explorer.core.data import Augmentation, scan_dataset, write_animal_dataset
from cnn_explorer.core.distributed import DistContext
from cnn_explorer.core.train_config import ConfigError, TrainConfig
from cnn_explorer.core.training import Notice, RunStarted, fit, run_to_end
from cnn_explorer.core.training_setup import TrainingSetup, prepare_training

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
CLASSES = ["bird", "elephant", "giraffe"]


@pytest.fixture(scope="module")
def animals(tmp_path_factory) -> Path:
    return write_animal_dataset(tmp_path_factory.mktemp("accel") / "animals", per_class=8, classes=CLASSES)


def quick(data: Path, **kw) -> TrainConfig:
    settings = dict(
        data=str(data),
        epochs=1,
        batch_size=8,
        image_size=48,
        augmentation=Augmentation.none(),
        allow_download=False,
        cache_embeddings=False,
    )
    return TrainConfig(**{**settings, **kw})


# -- precision ------------------------------------------------------------------------------------------


def test_precision_is_resolved_for_the_device():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"  # CPUs have bf16 autocast
    assert resolve_precision("fp32", cpu) == "fp32"
    with pytest.raises(ConfigError, match="fp16 mixed precision needs a CUDA GPU"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ConfigError, match="precision must be one of"):
        resolve_precision("fp8", cpu)
    accel = Accel.create(cpu, "auto", channels_last=True)
    assert accel.precision == "fp32" and not accel.channels_last and not accel.pin_memory  # CUDA only
    assert accel.scaler() is None and accel.title == "fp32"


def test_cuda_auto_precision_is_bf16_where_the_gpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"  # older GPUs: fp16 with loss scaling
    with pytest.raises(ConfigError, match="no bf16"):
        resolve_precision("bf16", torch.device("cuda"))


def test_a_bf16_run_trains_with_autocast_on_the_cpu(animals: Path, tmp_path: Path):
    config = quick(animals, precision="bf16", strategy="fine-tune-top", top_blocks=1)
    setup = prepare_training(config, scan_dataset(animals))
    batch = next(iter(setup.train_batches(0)))
    seen: list[torch.dtype] = []
    handle = setup.model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    setup.set_train_mode()
    loss = setup.step(batch, 0.01)
    handle.remove()
    setup.close()
    assert seen == [torch.bfloat16] and loss == loss  # computed in bf16, a finite loss
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.precision == "bf16" and summary.precision == "bf16" and summary.status == "finished"


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


# -- out of memory: half as many images at a time, the same step --------------------------------------


def _run_out_of_memory_above(setup: TrainingSetup, limit: int) -> list[int]:
    """Make the trained model fail like a full GPU when given more than ``limit`` images; the sizes asked."""
    asked: list[int] = []

    def hook(module, args):
        asked.append(int(args[0].shape[0]))
        if args[0].shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB (injected)")

    setup.trained.register_forward_pre_hook(hook)
    return asked


def test_an_out_of_memory_step_is_taken_in_smaller_pieces_with_the_same_result(animals: Path):
    scan = scan_dataset(animals)
    config = quick(animals)  # feature extractor on the whole network: BatchNorm frozen, pieces add up exactly
    torch.manual_seed(0)
    plain = prepare_training(config, scan)
    torch.manual_seed(0)
    tight = prepare_training(config, scan)
    asked = _run_out_of_memory_above(tight, limit=3)
    batch = next(iter(plain.train_batches(0)))
    for setup in (plain, tight):
        setup.set_train_mode()
    loss_plain, loss_tight = plain.step(batch, 0.05), tight.step(batch, 0.05)
    assert asked[:3] == [8, 4, 2] and tight.micro_batch == 2  # halved twice, then it fits
    assert loss_tight == pytest.approx(loss_plain, rel=1e-5)
    head_plain, head_tight = zoo.classifier_head(plain.model), zoo.classifier_head(tight.model)
    assert torch.allclose(head_plain.weight, head_tight.weight, atol=1e-6)  # the same update
    notes = tight.take_notices()
    assert len(notes) == 2 and "8 images at a time" in notes[0] and "now takes 2" in notes[1]
    assert "whole batch of 8" in notes[1] and tight.take_notices() == []
    plain.close()
    tight.close()


def test_a_run_that_runs_out_of_memory_says_so_and_finishes(animals: Path, tmp_path: Path, monkeypatch):
    made: list[TrainingSetup] = []
    real_init = TrainingSetup.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        _run_out_of_memory_above(self, limit=4)
        made.append(self)

    monkeypatch.setattr(TrainingSetup, "__init__", init)
    events, summary = run_to_end(fit(quick(animals, epochs=2), tmp_path / "run"))
    assert summary.status == "finished" and made[0].micro_batch == 4
    notes = [e.message for e in events if isinstance(e, Notice) and "ran out of memory" in e.message]
    assert len(notes) == 1  # said once, when it happened


def test_one_image_that_does_not_fit_is_an_error(animals: Path):
    setup = prepare_training(quick(animals), scan_dataset(animals))
    _run_out_of_memory_above(setup, limit=0)
    setup.set_train_mode()
    with pytest.raises(RuntimeError, match="ran out of memory with a single image"):
        setup.step(next(iter(setup.train_batches(0))), 0.01)
    setup.close()


# -- the same under DistributedDataParallel: one process redoes its forward pass alone -------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_step(rank: int, port: int, data: str, out: str) -> None:
    """A child process: one step of the first global batch on 2 gloo processes; rank 1 runs out of memory
    above 2 images. Writes the head's weights and rank 1's piece size."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        ctx = DistContext(
            rank=rank, world_size=2, local_rank=rank, backend="gloo", device=torch.device("cpu")
        )
        torch.manual_seed(0)
        setup = TrainingSetup(quick(Path(data)), scan_dataset(data), dist=ctx)
        if rank == 1:
            _run_out_of_memory_above(setup, limit=2)
        setup.set_train_mode()
        batch = next(iter(setup.train_batches(0)))
        total = 8
        setup.set_lr(0.05)
        setup.forward_backward(batch, 2 / total)
        setup.apply_step()
        head = zoo.classifier_head(setup.model)
        torch.save({"weight": head.weight.detach(), "micro": setup.micro_batch}, f"{out}/rank{rank}.pt")
        setup.close()
    finally:
        dist.destroy_process_group()


def test_under_ddp_a_process_out_of_memory_retries_without_breaking_the_all_reduce(
    animals: Path, tmp_path: Path
):
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [context.Process(target=_ddp_step, args=(r, port, str(animals), str(tmp_path))) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    first, second = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert first["micro"] is None and second["micro"] == 2  # only rank 1 ran short, and took pieces
    assert torch.equal(first["weight"], second["weight"])  # one model: the gradients were all-reduced
    torch.manual_seed(0)
    alone = prepare_training(quick(animals), scan_dataset(animals))
    alone.set_train_mode()
    alone.step(next(iter(alone.train_batches(0))), 0.05)
    assert torch.allclose(zoo.classifier_head(alone.model).weight, first["weight"], atol=1e-6)  # = 1 process
    alone.close()


# -- CUDA ------------------------------------------------------------------------------------------------


@needs_cuda
def test_cuda_runs_in_mixed_precision_and_channels_last(animals: Path, tmp_path: Path):
    config = quick(animals, device="cuda", strategy="fine-tune-top", top_blocks=1)
    setup = prepare_training(config, scan_dataset(animals))
    assert setup.accel.precision in ("bf16", "fp16") and setup.accel.channels_last
    conv = next(m for m in setup.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert (setup.scaler is not None) == (setup.accel.precision == "fp16")
    setup.close()
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.device.startswith("cuda") and started.channels_last and summary.status == "finished"


@needs_cuda
def test_fp16_trains_through_a_grad_scaler(animals: Path, tmp_path: Path):
    config = quick(animals, device="cuda", precision="fp16", strategy="fine-tune-top", top_blocks=1)
    setup = prepare_training(config, scan_dataset(animals))
    assert isinstance(setup.scaler, torch.amp.GradScaler)
    setup.set_train_mode()
    loss = setup.step(next(iter(setup.train_batches(0))), 0.01)
    assert loss == loss and setup.scaler.get_scale() > 0  # a finite loss; the scaler is scaling
    setup.close()
    _, summary = run_to_end(fit(config, tmp_path / "run"))
    assert summary.status == "finished" and summary.precision == "fp16"


@pytest.mark.skipif(not CUDA or torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_torchrun_on_two_gpus_uses_nccl(animals: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    cmd += [
        "cnn_explorer",
        "finetune",
        str(animals),
        "--epochs",
        "1",
        "--image-size",
        "48",
        "--device",
        "cuda",
    ]
    cmd += ["--offline", "--quiet", "--out", str(tmp_path / "run")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    import json

    runtime = json.loads((tmp_path / "run" / "config.json").read_text())["runtime"]
    assert runtime["backend"] == "nccl" and runtime["processes"] == 2


def test_pieces_never_leave_a_single_image_behind():
    from cnn_explorer.core.accel import chunks

    def sizes(n: int, size: int) -> list[int]:
        return [s.stop - s.start for s in chunks(n, size)]

    assert sizes(8, 4) == [4, 4] and sizes(5, 2) == [2, 3] and sizes(9, 4) == [4, 5] and sizes(7, 8) == [7]
    assert sizes(3, 1) == [1, 1, 1]  # one at a time was asked for
    assert sum(sizes(1001, 16)) == 1001
