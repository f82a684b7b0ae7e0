"""Run folders under stress: unwritable or full disks, divergence with few steps, logs without a terminal,
runs killed outright, checkpoints without class names, file permissions."""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import pickle
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from cnn_explorer import cli_train
from cnn_explorer.core import zoo
from cnn_explorer.core.data import ScanProgress
from cnn_explorer.core.runs import (
    LOCK_FILE,
    EpochMetrics,
    RunDir,
    RunDirError,
    RunWriteError,
    WriteProblem,
    list_runs,
    load_run,
)
from cnn_explorer.core.training import (
    EpochEnd,
    StepEnd,
    TrainConfig,
    fit,
    load_run_model,
    resume,
    run_to_end,
)

LENET = ["--model", "lenet5", "--strategy", "scratch", "--batch-size", "8", "--offline"]
KILL_WAIT_S = 120  # starting Python and importing torch, then one epoch of LeNet on 24 images
CHOOSE = "choose a folder you can write to."


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_train.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def lenet(data: Path, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(data=str(data), model="lenet5", strategy="scratch", batch_size=8), **kw})


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


def refuse_creating_files_in(monkeypatch, folder: Path, code: int) -> None:
    """The operating system refuses new files in ``folder`` (as on a read-only disk), even for root."""
    real_open = os.open

    def fake_open(path, flags, mode=0o777, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).resolve().parent == folder.resolve():
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def fail_checkpoint_saves(monkeypatch, name: str, nth: int, error: BaseException) -> list[Path]:
    """torch.save raises ``error`` from the ``nth`` save of ``name`` on, after writing part of the file."""
    real_save = torch.save
    saves: list[Path] = []

    def fake_save(obj, f, *args, **kwargs):
        path = Path(f)
        if path.name.startswith(f".{name}."):
            saves.append(path)
            if len(saves) >= nth:
                path.write_bytes(b"half a checkpoint")  # what a full disk leaves of the temporary file
                raise error
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fake_save)
    return saves


# -- A: unwritable or full destinations ---------------------------------------------------------------


def test_a_read_only_run_folder_is_refused_before_the_scan(
    tiny_folder: Path, tmp_path: Path, capsys, monkeypatch
):
    out = tmp_path / "run"
    out.mkdir()
    refuse_creating_files_in(monkeypatch, out, errno.EROFS)
    assert run_cli("finetune", tiny_folder, "--epochs", "1", "--out", out, *LENET) == 2
    text = capsys.readouterr()
    assert error_lines(text.err) == [
        f"error: Cannot write in the run folder {out} (Read-only file system); " + CHOOSE
    ]
    assert "training" not in text.out  # failed fast: the dataset was not even scanned
    assert list(out.iterdir()) == []


def test_an_unwritable_run_folder_is_refused_on_resume(
    tiny_folder: Path, tmp_path: Path, capsys, monkeypatch
):
    out = tmp_path / "run"
    run_to_end(fit(lenet(tiny_folder, epochs=1), out))
    before = sorted(p.name for p in out.iterdir())
    refuse_creating_files_in(monkeypatch, out, errno.EACCES)
    assert run_cli("finetune", "--resume", "--out", out, "--epochs", "2", "--quiet") == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "Cannot write in the run folder" in err[0] and "Permission denied" in err[0]
    assert sorted(p.name for p in out.iterdir()) == before
    assert load_run(out).summary.status == "finished"


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_a_folder_without_write_permission_is_refused(tiny_folder: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    out.chmod(0o555)
    try:
        try:
            (out / "probe").touch()
        except PermissionError:
            pass
        else:  # root (with CAP_DAC_OVERRIDE) writes anyway: the EROFS/EACCES tests above cover that case
            pytest.skip("this user can write into a folder without write permission")
        assert run_cli("finetune", tiny_folder, "--epochs", "1", "--out", out, *LENET) == 2
    finally:
        out.chmod(0o755)
    err = error_lines(capsys.readouterr().err)
    assert err == [f"error: Cannot write in the run folder {out} (Permission denied); " + CHOOSE]


def test_disk_full_while_saving_a_checkpoint_fails_the_run_and_keeps_the_last_one(
    tiny_folder: Path, tmp_path: Path, capsys, monkeypatch
):
    out = tmp_path / "run"
    saves = fail_checkpoint_saves(monkeypatch, "last.pt", 2, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert run_cli("finetune", tiny_folder, "--epochs", "3", "--out", out, *LENET) == 1
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith(f"error: Disk full: cannot write last.pt in {out} (No space left on device).")
    assert "checkpoint (epoch 1)" in err[0] and "Free some space, then resume the run." in err[0]
    assert len(saves) == 2
    assert zoo.read_checkpoint(out / "last.pt")["epoch"] == 1  # the previous checkpoint, intact
    assert temp_files(out) == [] and not (out / LOCK_FILE).exists()
    summary = load_run(out).summary
    assert summary.status == "failed" and summary.failure == WriteProblem.DISK_FULL.value
    assert summary.message.startswith("Disk full:") and summary.epochs_done == 1

    monkeypatch.undo()  # space was freed: the run goes on from epoch 1
    _, again = run_to_end(resume(out))
    assert again.status == "finished" and again.epochs_done == 3


def test_disk_full_reported_by_torch_without_errno_is_still_disk_full(
    tiny_folder: Path, tmp_path: Path, monkeypatch
):
    # torch's zip writer turns ENOSPC into a RuntimeError ("unexpected pos ..."): the free space decides
    fail_checkpoint_saves(monkeypatch, "best.pt", 1, RuntimeError("[enforce fail] unexpected pos 704 vs 598"))
    free = {"bytes": 10**12}
    monkeypatch.setattr(shutil, "disk_usage", lambda p: SimpleNamespace(free=free["bytes"]))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # room enough: not blamed on the disk
        run_to_end(fit(lenet(tiny_folder, epochs=2), tmp_path / "roomy"))
    free["bytes"] = 0
    with pytest.raises(RunWriteError, match=r"^Disk full: cannot write best\.pt") as caught:
        run_to_end(fit(lenet(tiny_folder, epochs=2), tmp_path / "full"))
    assert caught.value.problem is WriteProblem.DISK_FULL
    assert RunDir(tmp_path / "full").read_summary().failure == "disk-full"
    assert temp_files(tmp_path / "full") == []


def test_disk_full_while_writing_the_summary_still_records_the_failure(
    tiny_folder: Path, tmp_path: Path, monkeypatch
):
    out = tmp_path / "run"
    real_fsync = os.fsync
    full = {"on": False}

    def fake_fsync(fd):
        if full["on"]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # where a full disk shows up
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fake_fsync)
    events = fit(lenet(tiny_folder, epochs=3), out)
    with pytest.raises(RunWriteError) as caught:
        for ev in events:
            if isinstance(ev, EpochEnd) and ev.epoch == 1:
                full["on"] = True  # from now on nothing can be written through a temporary file
    assert caught.value.problem is WriteProblem.DISK_FULL
    assert str(caught.value).startswith("Disk full: cannot write summary.json")
    full["on"] = False
    summary = json.loads((out / "summary.json").read_text())  # rewritten in place
    assert summary["status"] == "failed" and summary["failure"] == "disk-full"
    assert summary["message"] == str(caught.value)
    assert temp_files(out) == [] and not (out / LOCK_FILE).exists()


def test_a_log_file_that_cannot_be_appended_is_a_write_error(tmp_path: Path):
    run = RunDir.create(tmp_path / "r", {"model": "lenet5"}, {"class_names": ["a", "b"]})
    (run.path / "metrics.csv").unlink()
    (run.path / "metrics.csv").mkdir()  # something in the way of the log
    with pytest.raises(RunWriteError, match=r"^Cannot write metrics\.csv in") as caught:
        run.append_epoch(EpochMetrics(1, 1.0, 0.5, 1.0, 0.5, 0.01, 10.0, 1.0))
    assert caught.value.problem is WriteProblem.OTHER


def test_write_errors_cross_to_the_window_process_with_their_problem():
    """The GUI trains in a child process: the failure reaches the window pickled."""
    err = RunWriteError(
        "Disk full: cannot write last.pt in /r (No space left on device).", WriteProblem.DISK_FULL
    )
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is RunWriteError and isinstance(back, RunDirError)
    assert str(back) == str(err) and back.problem is WriteProblem.DISK_FULL
    plain = pickle.loads(pickle.dumps(RunDirError("no run here")))
    assert str(plain) == "no run here" and plain.problem is None


# -- B: divergence with few steps -----------------------------------------------------------------------


def test_a_huge_learning_rate_with_one_step_per_epoch_stops_as_diverged(
    tiny_folder: Path, tmp_path: Path, capsys
):
    out = tmp_path / "run"
    # 18 training images in one batch: one step per epoch, so the loss never gets the steps to overflow
    rc = run_cli("finetune", tiny_folder, "--out", out, "--model", "lenet5", "--strategy", "scratch",
                 "--batch-size", "64", "--epochs", "3", "--lr", "1e9", "--offline", "--quiet")  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert "the loss became" in err and "on the validation images after epoch 1" in err
    assert "try a lower learning rate, for example 1e+08" in err
    summary = load_run(out).summary
    assert summary.status == "diverged" and summary.epochs_done == 0
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()  # no diverged weights kept


def test_a_loss_that_explodes_without_overflowing_stops_within_a_few_steps(tiny_folder: Path, tmp_path: Path):
    events, summary = run_to_end(fit(lenet(tiny_folder, epochs=3, lr=1e9, batch_size=4), tmp_path / "run"))
    steps = [e for e in events if isinstance(e, StepEnd)]
    assert summary.status == "diverged" and "3 steps in a row above 1000" in summary.message
    assert len(steps) == 3  # step 1 is normal; steps 2-4 explode (still finite), and step 4 stops it
    assert all(torch.isfinite(torch.tensor(s.loss)) for s in steps)


def test_a_normal_run_with_one_step_per_epoch_is_not_stopped(tiny_folder: Path, tmp_path: Path):
    _, summary = run_to_end(fit(lenet(tiny_folder, epochs=4, batch_size=64), tmp_path / "run"))
    assert summary.status == "finished" and summary.epochs_done == 4


def test_resumed_diverging_run_keeps_the_checkpoint_it_resumed_from(tiny_folder: Path, tmp_path: Path):
    out = tmp_path / "run"
    run_to_end(fit(lenet(tiny_folder, epochs=1, batch_size=64), out))
    _, summary = run_to_end(resume(out, epochs=3, lr=1e9))
    assert summary.status == "diverged" and "The last good checkpoint (epoch 1)" in summary.message
    assert zoo.read_checkpoint(out / "last.pt")["epoch"] == 1


# -- C: progress in logs -----------------------------------------------------------------------------


def test_finetune_into_a_log_writes_one_line_per_epoch_and_no_carriage_returns(
    tiny_folder: Path, tmp_path: Path, capsys
):
    assert run_cli("finetune", tiny_folder, "--epochs", "3", "--out", tmp_path / "run", *LENET) == 0
    text = capsys.readouterr()
    assert "\r" not in text.out + text.err
    assert len(re.findall(r"^epoch \d/3 \| train loss", text.out, flags=re.M)) == 3
    assert "Finished 3 epochs" in text.out


def test_slow_runs_in_a_log_get_plain_progress_lines(tiny_folder: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setattr(cli_train, "PLAIN_PROGRESS_EVERY_S", 0.0)  # every report is "slow enough" for a line
    real_scan = cli_train.scan_dataset

    def scan_with_listing(root, *, control, **kwargs):
        control.report(ScanProgress(7, 0, "listing"))  # the folder walk: no total yet
        return real_scan(root, control=control, **kwargs)

    monkeypatch.setattr(cli_train, "scan_dataset", scan_with_listing)
    assert run_cli("finetune", tiny_folder, "--epochs", "2", "--out", tmp_path / "run", *LENET) == 0
    text = capsys.readouterr()
    assert "\r" not in text.out + text.err
    err = text.err.splitlines()
    assert "Listing folders: 7 entries" in err
    assert "Checking images: 24/24" in err
    progress = [line for line in err if line.startswith("epoch ")]
    assert len(progress) == 2 * 3  # 18 training images in batches of 8: 3 steps per epoch (the last of 2)
    assert all(re.fullmatch(r"epoch [12]: step [123]/3, loss [\d.]+, \d+ img/s, about \d+:\d\d left", p)
               for p in progress)  # fmt: skip


def test_on_a_terminal_the_progress_bar_stays(tiny_folder: Path, tmp_path: Path, monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert run_cli("finetune", tiny_folder, "--epochs", "1", "--out", tmp_path / "run", *LENET) == 0
    assert "\r" in term.getvalue() and "step" in term.getvalue()  # tqdm redraws its bar in place
    assert "Checking images" in term.getvalue()


# -- D: runs killed outright -------------------------------------------------------------------------


def start_and_kill_after_first_checkpoint(data: Path, out: Path) -> int:
    """A real `python -m cnn_explorer finetune`, SIGKILLed once last.pt exists. Returns its PID."""
    cmd = [sys.executable, "-m", "cnn_explorer", "finetune", str(data), "--out", str(out),
           "--epochs", "100000", "--quiet", *LENET]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + KILL_WAIT_S
        while not (out / "last.pt").is_file():
            if proc.poll() is not None:
                raise AssertionError(f"the run ended early: {proc.stderr.read().decode()}")
            assert time.monotonic() < deadline, "no checkpoint in time"
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)  # returns at once if it ends
        assert load_run(out).summary.status == "running"  # alive: believed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    return proc.pid


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_run_reads_as_interrupted_and_resumes(tiny_folder: Path, tmp_path: Path):
    out = tmp_path / "runs" / "killed"
    pid = start_and_kill_after_first_checkpoint(tiny_folder, out)
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == pid  # the dead process's lock is left
    assert json.loads((out / "summary.json").read_text())["status"] == "running"
    # what a checkpoint write cut short leaves, and one of a process that is still alive
    (out / f".last.pt.{pid}.tmp").write_bytes(b"half")
    (out / f".summary.json.{pid}.a1b2c3d4.tmp").write_text("{")
    live = out / f".best.pt.{os.getppid()}.tmp"
    live.write_bytes(b"someone else's")

    record = load_run(out)
    assert record.summary.status == "interrupted" and "Resume" in record.summary.message
    assert record.has_checkpoint
    assert [r.summary.status for r in list_runs(out.parent)] == ["interrupted"]

    done = zoo.read_checkpoint(out / "last.pt")["epoch"]
    _, summary = run_to_end(resume(out, epochs=done + 1))
    assert summary.status == "finished" and summary.epochs_done == done + 1
    assert temp_files(out) == [live.name]  # the dead writer's temporary files are gone
    assert not (out / LOCK_FILE).exists() and load_run(out).summary.status == "finished"


def test_a_run_held_by_a_live_process_is_running_and_cannot_be_resumed(
    tiny_folder: Path, tmp_path: Path, capsys
):
    out = tmp_path / "run"
    run_to_end(fit(lenet(tiny_folder, epochs=1), out))
    run = RunDir(out)
    summary = run.read_summary()
    summary.status = "running"
    run.write_summary(summary)
    other = {"pid": os.getppid(), "host": socket.gethostname(), "started": time.time()}  # alive, not us
    (out / LOCK_FILE).write_text(json.dumps(other))
    assert load_run(out).summary.status == "running"
    with pytest.raises(RunDirError, match=rf"is in use: process {os.getppid()}"):
        run_to_end(resume(out, epochs=2))
    assert run_cli("finetune", "--resume", "--out", out, "--epochs", "2", "--quiet") == 2
    assert "is in use" in capsys.readouterr().err
    assert json.loads((out / LOCK_FILE).read_text()) == other  # not taken over


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times come from /proc")
def test_a_lock_whose_pid_was_reused_is_stale(tiny_folder: Path, tmp_path: Path):
    out = tmp_path / "run"
    run_to_end(fit(lenet(tiny_folder, epochs=1), out))
    run = RunDir(out)
    summary = run.read_summary()
    summary.status = "running"
    run.write_summary(summary)
    reused = {"pid": os.getppid(), "host": socket.gethostname(), "started": 0.0, "proc_start": 1}
    (out / LOCK_FILE).write_text(json.dumps(reused))
    assert load_run(out).summary.status == "interrupted"  # the PID now belongs to another process
    _, again = run_to_end(resume(out, epochs=2))
    assert again.status == "finished"


# -- E: checkpoints without class names -------------------------------------------------------------


NAMES = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen", "ibis", "jay"]


def bare_run(tmp_path: Path, names: list[str], outputs: int) -> Path:
    run = RunDir.create(tmp_path / "run", {"model": "lenet5", "image_size": None}, {"class_names": names})
    model = zoo.build_model("lenet5", class_names=[f"c{i}" for i in range(outputs)], pretrained=False).model
    torch.save(model.state_dict(), run.best_checkpoint)  # saved by hand: weights only, no names
    return run.path


def test_a_bare_state_dict_gets_the_run_class_names(tmp_path: Path):
    loaded = load_run_model(bare_run(tmp_path, NAMES, 10))
    assert loaded.categories == NAMES  # not the digits 0-9 LeNet-5 was made for
    assert any("holds no class names" in n and "dataset.json" in n for n in loaded.notes)


def test_a_bare_state_dict_with_a_different_number_of_classes_says_the_names_are_missing(tmp_path: Path):
    loaded = load_run_model(bare_run(tmp_path, NAMES[:3], 10))
    assert len(loaded.categories) == 10 and loaded.categories != NAMES[:3]
    (note,) = [n for n in loaded.notes if "holds no class names" in n]
    assert "10 outputs" in note and "lists 3" in note


def test_predict_says_when_the_class_names_are_missing(tmp_path: Path, capsys, sample_cat):
    from cnn_explorer.cli import main

    assert main(["predict", str(bare_run(tmp_path, NAMES[:3], 10)), str(sample_cat)]) == 0
    assert "holds no class names" in capsys.readouterr().err


def test_a_proper_checkpoint_keeps_its_own_names_without_a_note(tiny_folder: Path, tmp_path: Path):
    run_to_end(fit(lenet(tiny_folder, epochs=1), tmp_path / "run"))
    loaded = load_run_model(tmp_path / "run")
    assert loaded.categories == ["bird", "elephant", "giraffe"]
    assert not any("class names" in n for n in loaded.notes)


# -- F: permissions ---------------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_every_file_of_a_run_gets_the_same_permissions_from_the_umask(tiny_folder: Path, tmp_path: Path):
    out = tmp_path / "run"
    old = os.umask(0o027)
    try:
        run_to_end(fit(lenet(tiny_folder, epochs=1), out))
        run_to_end(resume(out, epochs=2))  # rewrites the logs and checkpoints
        reference = tmp_path / "plain.txt"
        reference.write_text("made by open()")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert len(modes) == 10
    assert set(modes.values()) == {stat.S_IMODE(reference.stat().st_mode)} == {0o640}, modes


def test_a_live_writers_temp_file_with_a_numeric_random_part_is_kept(tmp_path: Path):
    """.<name>.<pid>.<8 hex>.tmp: an all-digit random part must not be read as the PID."""
    run = RunDir(tmp_path)
    live = tmp_path / f".summary.json.{os.getpid()}.12345678.tmp"
    dead = tmp_path / ".summary.json.999999999.tmp"
    live.write_text("{}")
    dead.write_text("{}")
    assert run.remove_stale_temp_files() == [dead]
    assert live.exists() and not dead.exists()
