"""Output folders that are files, unwritable or full: exit code 2 (or 1 for a full disk), one message."""

from __future__ import annotations

import errno

import pytest
from PIL import Image

from cnn_explorer.cli import main
from cnn_explorer.core import outdir
from cnn_explorer.core.outdir import OutputDirError, prepare_output_dir


def test_a_file_is_not_an_output_folder(tmp_path, capsys):
    target = tmp_path / "shots.png"
    target.write_bytes(b"x")
    assert main(["screenshot", str(target)]) == 2
    err = capsys.readouterr().err
    assert "shots.png" in err and "is a file, not a folder" in err and "Traceback" not in err
    assert target.read_bytes() == b"x"
    assert main(["screenshot", str(target / "below")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_an_unwritable_folder_is_refused_before_work_starts(tmp_path, monkeypatch, capsys, sample_cat):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(outdir.tempfile, "mkstemp", read_only)
    with pytest.raises(OutputDirError, match="read-only file system"):
        prepare_output_dir(tmp_path / "ro")
    assert main(["inspect", str(sample_cat), "--model", "lenet5", "--out", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and "Traceback" not in err
    assert main(["screenshot", str(tmp_path / "ro2")]) == 2
    assert "cannot be written" in capsys.readouterr().err


def test_a_disk_that_fills_while_inspect_writes_exits_1(tmp_path, monkeypatch, capsys, sample_cat):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full)
    assert main(["inspect", str(sample_cat), "--model", "lenet5", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
