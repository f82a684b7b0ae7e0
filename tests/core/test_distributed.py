"""``torchrun --nproc_per_node=2 -m cnn_explorer finetune`` on CPUs (gloo), on a tiny dataset.

Two processes must train the model one process would: the same global batches, split between them, with
the gradients averaged by DistributedDataParallel. These tests run the real launcher, as a user would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnn_explorer.core.data import Augmentation, write_animal_dataset
from cnn_explorer.core.distributed import merge_small_batches, rank_rows, rank_share
from cnn_explorer.core.runs import RunDir
from cnn_explorer.core.training import (
    TRACE_ENV,
    EpochEnd,
    TrainConfig,
    fit,
    load_run_model,
    predict_files,
    run_to_end,
)
from cnn_explorer.core.training_setup import batch_plan

SIZE = 48  # pixels: small enough for seconds per run
BATCH = 8
CLASSES = ["bird", "elephant", "giraffe"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


@pytest.fixture(scope="module")
def animals(tmp_path_factory) -> Path:
    # 10 per class: 24 training images in 3 batches of 8 (no batch is dropped), 6 validation images
    return write_animal_dataset(tmp_path_factory.mktemp("dist") / "animals", per_class=10, classes=CLASSES)


def _flags(*extra: str) -> list[str]:
    return [
        "--epochs",
        "2",
        "--batch-size",
        str(BATCH),
        "--image-size",
        str(SIZE),
        "--no-augment",
        "--offline",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CNN_EXPLORER_CACHE": str(tmp_path / "cache"), TRACE_ENV: str(tmp_path / "trace")}


def _torchrun(args: list[str], tmp_path: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [*TORCHRUN, "-m", "cnn_explorer", "finetune", *args]
    return subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=timeout)


def _single(data: Path, out: Path, **kw) -> list[EpochEnd]:
    config = TrainConfig(
        data=str(data),
        epochs=2,
        batch_size=BATCH,
        image_size=SIZE,
        augmentation=Augmentation.none(),
        allow_download=False,
        device="cpu",
        **kw,
    )
    events, summary = run_to_end(fit(config, out))
    assert summary.status == "finished"
    return [e for e in events if isinstance(e, EpochEnd)]


def _seen(trace: Path) -> dict[int, list[list[int]]]:
    """{epoch: [indices trained on by rank 0, by rank 1]} from the sample trace."""
    seen: dict[int, list[list[int]]] = {}
    for rank in (0, 1):
        for line in (trace / f"rank{rank}.txt").read_text().splitlines():
            epoch, *indices = (int(v) for v in line.split())
            seen.setdefault(epoch, [[], []])[rank] += indices
    return seen


@pytest.mark.parametrize("cache", [False, True], ids=["whole-network", "embedding-cache"])
def test_two_processes_train_the_model_one_process_would(animals: Path, tmp_path: Path, cache: bool):
    runs = tmp_path / "runs"
    extra = [] if cache else ["--no-cache"]
    done = _torchrun([str(animals), *_flags(*extra), "--out", str(runs / "two")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    # one run folder, written once, by rank 0
    assert [p.name for p in runs.iterdir()] == ["two"]
    run = RunDir(runs / "two")
    summary = run.read_summary()
    assert summary.status == "finished" and summary.processes == 2 and summary.epochs_done == 2
    assert [m.epoch for m in run.read_epochs()] == [1, 2]
    steps = run.read_steps()
    assert [s[2] for s in steps] == list(range(1, 7))  # 3 global steps per epoch, each logged once
    config = json.loads((runs / "two" / "config.json").read_text())
    assert config["runtime"]["processes"] == 2 and config["runtime"]["backend"] == "gloo"
    assert done.stdout.count("Run folder:") == 1  # rank 0 reports for both

    # the checkpoint loads and predicts
    loaded = load_run_model(runs / "two")
    assert loaded.categories == ["bird", "elephant", "giraffe"]
    image = next((animals / "bird").iterdir())
    [prediction] = predict_files(loaded, [image])
    assert prediction.error is None and len(prediction.top) == 3

    # the same validation results as one process with the same seed
    alone = _single(animals, tmp_path / "alone", cache_embeddings=cache)
    two = run.read_epochs()
    for a, b in zip(alone, two, strict=True):
        assert b.val_acc == pytest.approx(a.val_acc, abs=1e-6)
        assert b.val_loss == pytest.approx(a.val_loss, rel=2e-3, abs=1e-4)
        assert b.train_loss == pytest.approx(a.train_loss, rel=2e-3, abs=1e-4)

    # every training image once per epoch, across the two processes
    n_train = summary.n_train
    for epoch, (first, second) in _seen(tmp_path / "trace").items():
        assert first and second, f"epoch {epoch}: a process trained on nothing"
        assert sorted(first + second) == list(range(n_train)), f"epoch {epoch}"


def test_ctrl_c_stops_every_process_with_a_checkpoint_and_resume_continues(tmp_path: Path):
    data = write_animal_dataset(tmp_path / "animals", per_class=60, classes=CLASSES)  # slow enough to stop
    out = tmp_path / "run"
    args = [str(data), *_flags("--no-cache"), "--epochs", "50", "--image-size", "96", "--out", str(out)]
    cmd = [*TORCHRUN, "-m", "cnn_explorer", "finetune", *args]
    launcher = subprocess.Popen(cmd, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and launcher.poll() is None:
            steps = out / "steps.csv"
            if steps.is_file() and len(steps.read_text().splitlines()) > 1:  # steps are being logged
                break
            time.sleep(0.2)
        assert launcher.poll() is None, launcher.communicate()[1].decode()[-3000:]
        launcher.send_signal(signal.SIGINT)  # what Ctrl+C in the launcher's terminal sends
        launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.communicate()
    summary = RunDir(out).read_summary()
    assert summary.status == "stopped", summary.message
    from cnn_explorer.core import zoo

    last = zoo.read_checkpoint(out / "last.pt")
    stopped_at = (int(last["epoch"]), int(last["step"]))
    assert stopped_at < (50, 0) and stopped_at != (0, 0)

    done = _torchrun(["--resume", "--out", str(out), "--epochs", str(stopped_at[0] + 1), "--quiet"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = RunDir(out).read_summary()
    assert summary.status == "finished" and summary.epochs_done == stopped_at[0] + 1
    assert [m.epoch for m in RunDir(out).read_epochs()] == list(range(1, stopped_at[0] + 2))


# -- how the work is divided (the functions the trainer uses) ----------------------------------------------


@pytest.mark.parametrize("n, batch, world", [(24, 8, 2), (25, 8, 2), (103, 16, 3), (7, 4, 4), (50, 5, 2)])
def test_every_image_is_in_exactly_one_share_of_its_batch(n: int, batch: int, world: int):
    for epoch in range(3):
        plan = merge_small_batches(batch_plan(n, batch, seed=1, epoch=epoch), world)
        assert all(len(b) >= 2 * world for b in plan) or len(plan) == 1
        for by_index in (False, True):
            shares = [
                [i for b in plan for i in rank_share(b, r, world, by_index=by_index)] for r in range(world)
            ]
            flat = sorted(i for share in shares for i in share)
            assert flat == sorted(i for b in plan for i in b)  # each planned image once
    # the cache's shard never changes: rank r owns the images with index % world == r
    assert rank_rows(10, 1, 3).tolist() == [1, 4, 7]
    assert {i for b in batch_plan(30, 8, 0, 5) for i in rank_share(b, 1, 3, by_index=True)} <= set(
        rank_rows(30, 1, 3).tolist()
    )


def test_a_problem_found_before_training_stops_every_process_and_is_said_once(animals: Path, tmp_path: Path):
    done = _torchrun(
        [str(animals), *_flags("--no-cache", "--batch-size", "3"), "--out", str(tmp_path / "r")], tmp_path
    )
    assert (
        done.returncode != 0
    )  # torchrun itself exits 1 when a process fails; each one's code is in its report
    assert done.stderr.count("exitcode  : 2") == 2  # both processes: bad input
    assert done.stderr.count("error: ") == 1 and "batch size must be at least 4" in done.stderr


def test_a_run_in_use_is_refused_by_every_process(animals: Path, tmp_path: Path):
    out = tmp_path / "run"
    first = _torchrun([str(animals), *_flags("--epochs", "1"), "--out", str(out)], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "proc_start": None}
    (out / "run.lock").write_text(json.dumps(lock))  # this test's own process "trains" it
    started = time.monotonic()
    done = _torchrun(["--resume", "--out", str(out), "--epochs", "2", "--quiet"], tmp_path, timeout=120)
    assert done.returncode != 0 and time.monotonic() - started < 60  # nobody waits for rank 0
    assert done.stderr.count("exitcode  : 2") == 2
    assert done.stderr.count("error: ") == 1 and "is in use" in done.stderr
