"""``cnn-explorer live``: a video end to end, and one clear message (exit 2) for each bad input."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import pytest

from cnn_explorer import cli_live

pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnn_explorer.core.live import write_demo_video

    return write_demo_video(tmp_path_factory.mktemp("cli-live") / "cat.avi", frames=20, size=(96, 72), fps=30)


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_live.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_a_video_end_to_end_writes_the_csv_and_pictures(video: Path, tmp_path: Path, capsys):
    out = tmp_path / "live"
    assert run_cli("live", video, "--model", "lenet5", "--out", out, "--no-pace") == 0
    text = capsys.readouterr().out
    assert sum(line.startswith("frame ") for line in text.splitlines()) == 20  # one line per frame
    assert "20 frames in" in text and "fps; latency median" in text and "p95" in text
    assert "0 of 20 captured frames dropped" in text
    with (out / "frames.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(cli_live.CSV_COLUMNS)
    assert [int(r["frame"]) for r in rows] == list(range(20))
    assert all(float(r["latency_ms"]) > 0 and 0 <= float(r["probability"]) <= 1 for r in rows)
    assert all(r["dropped"] == "0" for r in rows)
    grids = sorted(p.name for p in out.glob("grid_*.png"))
    assert grids == ["grid_0.png", "grid_10.png", "grid_19.png"]  # first, middle, last
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_0.png", "frame_10.png", "frame_19.png"]
    assert not list(out.glob(".*"))  # no temporary file left


def test_paced_with_a_frame_limit_and_gradcam(video: Path, tmp_path: Path, capsys):
    out = tmp_path / "cam"
    code = run_cli("live", video, "--model", "lenet5", "--frames", "3", "--gradcam", "--out", out)
    assert code == 0
    assert "3 frames in" in capsys.readouterr().out
    assert len(list(out.glob("gradcam_*.png"))) == 3
    with (out / "frames.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and int(rows[-1]["dropped"]) == int(rows[-1]["frame"]) + 1 - 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--camera", "9"), "No camera 9: OpenCV could not open it"),
        (("{bad}",), "cannot decode video"),
        (("{missing}",), "no such file"),
        ((), "needs a video file or --camera N"),
        (("{video}", "--camera", "0"), "needs a video file or --camera N"),
        (("{video}", "--model", "resnet9000"), "Unknown model 'resnet9000'"),
        (("{video}", "--model", "lenet5", "--layer", "conv99"), "no layer named 'conv99'"),
        (("{video}", "--model", "lenet5", "--frames", "0"), "--frames must be at least 1"),
    ],
)
def test_bad_input_exits_2_with_one_message(video: Path, tmp_path: Path, capsys, argv, message):
    bad = tmp_path / "holiday.mp4"
    bad.write_text("not a video\n")
    names = {"bad": bad, "missing": tmp_path / "gone.mkv", "video": video}
    assert run_cli("live", *(a.format(**names) for a in argv)) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_an_output_folder_that_is_a_file_exits_2(video: Path, tmp_path: Path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_cli("live", video, "--model", "lenet5", "--out", blocker) == 2
    assert "Cannot write to" in capsys.readouterr().err
