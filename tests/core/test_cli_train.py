"""The finetune / predict subcommands, driven through a real argparse parser."""

from __future__ import annotations

import argparse
import os
import re
import signal
from pathlib import Path

import pytest

from cnn_explorer import cli_train
from cnn_explorer.core.control import Control
from cnn_explorer.core.runs import RunDir


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_train.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_finetune_then_resume_then_predict(tiny_folder: Path, tmp_path: Path, capsys, sample_cat: Path):
    out = tmp_path / "run"
    common = ["--image-size", "64", "--batch-size", "8", "--offline"]
    rc = run_cli("finetune", tiny_folder, "--model", "efficientnet_lite0", "--strategy", "feature-extractor",
                 "--epochs", "1", "--out", out, *common)  # fmt: skip
    text = capsys.readouterr()
    assert rc == 0, text.err
    assert "18 training and 6 validation images in 3 classes" in text.out  # the scan report comes first
    assert re.search(r"epoch 1/1 \| train loss [\d.]+ acc [\d.]+% \| val loss", text.out)
    assert "Best model:" in text.out and (out / "best.pt").is_file()

    assert run_cli("finetune", "--resume", "--out", out, "--epochs", "2", "--quiet") == 0
    assert [m.epoch for m in RunDir(out).read_epochs()] == [1, 2]
    capsys.readouterr()

    assert run_cli("predict", out, sample_cat, tiny_folder / "giraffe", "--top-k", "2") == 1  # a folder
    text = capsys.readouterr()
    lines = text.out.splitlines()
    assert lines[0].endswith("chelsea.png")
    probs = [float(m) for m in re.findall(r"^\s+\d\. \w+\s+([\d.]+)%$", text.out, flags=re.M)]
    assert len(probs) == 2 and probs[0] >= probs[1] and 0 < sum(probs) <= 100.05
    assert "giraffe" in text.err and "folder" in text.err


def test_bad_data_exits_with_a_clear_message(tmp_path: Path, capsys, make_image_folder):
    root = make_image_folder(tmp_path / "one", per_class=6, classes=["cat"])
    assert run_cli("finetune", root, "--epochs", "1", "--out", tmp_path / "run", "--quiet") == 2
    err = capsys.readouterr().err
    assert "single class ('cat')" in err
    assert not (tmp_path / "run").exists()  # nothing created for a dataset that cannot train
    assert run_cli("finetune", tmp_path / "missing", "--quiet") == 2
    assert "does not exist" in capsys.readouterr().err
    assert run_cli("finetune", "--quiet") == 2
    assert "DATA" in capsys.readouterr().err


def test_bad_settings_and_run_folders_exit_2(tiny_folder: Path, tmp_path: Path, capsys):
    assert run_cli("finetune", tiny_folder, "--epochs", "0", "--quiet") == 2
    assert "epochs must be at least 1" in capsys.readouterr().err
    assert run_cli("finetune", tiny_folder, "--model", "no_such_net", "--out", tmp_path / "r", "--quiet") == 2
    assert "no_such_net" in capsys.readouterr().err
    assert run_cli("finetune", "--resume", "--out", tmp_path / "nothing", "--quiet") == 2
    assert "not a run directory" in capsys.readouterr().err
    assert run_cli("predict", tmp_path / "nothing", tiny_folder / "bird" / "x.png") == 2
    assert "does not exist" in capsys.readouterr().err


def test_ctrl_c_asks_the_run_to_stop_instead_of_killing_it():
    control = Control()
    before = signal.getsignal(signal.SIGINT)
    with cli_train.ctrl_c_cancels(control):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs at the interpreter's next check
            if control.cancelled:
                break
        assert control.cancelled
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl+C aborts
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    assert signal.getsignal(signal.SIGINT) is before


def test_finetune_linear_probe_at_a_layer_with_the_notes_settings(tiny_folder: Path, tmp_path: Path, capsys):
    import json

    out = tmp_path / "run"
    watched = sorted((tiny_folder / "bird").glob("*.png"))[0]
    rc = run_cli(
        "finetune",
        tiny_folder,
        "--strategy",
        "linear-probe",
        "--layer",
        "_blocks.4",
        "--epochs",
        "2",
        "--momentum",
        "0.8",
        "--weight-decay",
        "0.001",
        "--dropout",
        "0.25",
        "--label-smoothing",
        "0.1",
        "--watch",
        watched,
        "--image-size",
        "48",
        "--batch-size",
        "8",
        "--offline",
        "--out",
        out,
    )
    text = capsys.readouterr()
    assert rc == 0, text.err
    config = json.loads((out / "config.json").read_text())
    assert (config["strategy"], config["cut_layer"]) == ("linear-probe", "_blocks.4")
    assert (config["momentum"], config["weight_decay"], config["dropout"]) == (0.8, 0.001, 0.25)
    assert config["label_smoothing"] == 0.1 and config["watch_image"] == str(watched.resolve())
    assert re.findall(r"^watch: epoch (\d): ", text.out, flags=re.M) == ["1", "2"]

    assert (
        run_cli(
            "finetune",
            tiny_folder,
            "--strategy",
            "fine-tune-all",
            "--lr-mult",
            "0.1",
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--batch-size",
            "8",
            "--offline",
            "--quiet",
            "--out",
            tmp_path / "all",
        )
        == 0
    )
    assert json.loads((tmp_path / "all" / "config.json").read_text())["lr_mult"] == 0.1
    capsys.readouterr()
    assert (
        run_cli(
            "finetune",
            tiny_folder,
            "--strategy",
            "linear-probe",
            "--layer",
            "layer3",
            "--epochs",
            "1",
            "--offline",
            "--quiet",
            "--out",
            tmp_path / "bad",
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "layer3" in err and "_blocks.7" in err  # names the valid layers
    assert run_cli("finetune", tiny_folder, "--lr-mult", "2", "--quiet", "--out", tmp_path / "bad2") == 2
    assert "LR factor" in capsys.readouterr().err


class _Group:
    """A torchrun process's view of its group, without one: rank and size, and barriers counted."""

    def __init__(self, rank: int) -> None:
        self.enabled, self.rank, self.is_main, self.barriers = True, rank, rank == 0, 0

    def barrier(self) -> None:
        self.barriers += 1


@pytest.mark.parametrize("rank", [0, 1])
def test_an_error_every_process_shares_ends_them_together_with_their_own_exit_code(rank, capsys):
    """They wait for each other, rank 0 alone says it, and from then on torchrun's SIGTERM (sent to
    whoever is still running once one has ended) cannot turn a process's exit code 2 into "killed"."""
    error = ValueError("batch size must be at least 4")
    error.shared_by_ranks = True
    group = _Group(rank)
    before = signal.getsignal(signal.SIGTERM)
    try:
        cli_train._say_error(error, group)
        assert group.barriers == 1 and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
    said = capsys.readouterr().err
    assert said == ("error: batch size must be at least 4\n" if rank == 0 else "")


def test_an_error_of_one_process_is_said_by_it_and_leaves_sigterm_alone(capsys):
    group = _Group(1)
    before = signal.getsignal(signal.SIGTERM)
    cli_train._say_error(OSError("disk full"), group)
    assert group.barriers == 0 and signal.getsignal(signal.SIGTERM) is before
    assert capsys.readouterr().err == "error: [process 1] disk full\n"
