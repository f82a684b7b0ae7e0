"""The compress subcommand, driven through a real argparse parser, on the trained LeNet-5 and real digits."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cnn_explorer import cli_compress
from cnn_explorer.core import zoo
from cnn_explorer.core.digits import write_digit_folder
from cnn_explorer.core.images import sample_images

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_compress.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """Real held-out UCI digits as labelled PNGs (DATA/<digit>/*.png), the way a user would have them."""
    return write_digit_folder(tmp_path_factory.mktemp("digits") / "digits", per_class=4)


def test_compress_writes_the_report_models_and_plots(tmp_path: Path, digits: Path, capsys):
    out = tmp_path / "out"
    code = run_cli(
        "compress", "--model", "lenet5", "--data", digits, "--prune", "0.5", "--quantize", "int8-static",
        "--latency-runs", "5", "--out", out, "--quiet",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "accuracy" and "accuracy" in text
    names = [v["name"] for v in report["variants"]]
    assert names[0] == "fp32" and "pruned-50" in names and "int8-static" in names
    for v in report["variants"]:
        assert v["size_bytes"] == (out / v["file"]).stat().st_size  # the real file sizes
        assert {"nonzero_params", "latency_ms_median", "accuracy"} <= v.keys()
        assert v["name"] in text
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["pruned-50"]["nonzero_params"] < 0.6 * by_name["fp32"]["nonzero_params"]
    assert by_name["fp32"]["size_bytes"] > 3 * by_name["int8-static"]["size_bytes"]
    assert f"Wrote {out / 'report.json'}" in text
    # Each variant reopens as a model (the explorer's loader).
    loaded = zoo.load_model_file(out / by_name["int8-static"]["file"])
    assert loaded.num_classes == 10


def test_without_labels_it_measures_agreement(tmp_path: Path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sample_images():
        (photos / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    code = run_cli(
        "compress", "--model", "lenet5", "--data", photos, "--quantize", "fp16", "--latency-runs", "3",
        "--out", out, "--quiet",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "agreement"
    fp16 = next(v for v in report["variants"] if v["name"] == "fp16")
    assert fp16["accuracy"] is None and fp16["agreement_top1"] is not None
    assert "agree top-1 / top-5" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "lenet5", "--structured"], "--structured needs --prune"),
        (["--model", "lenet5", "--finetune-epochs", "1"], "give --prune"),
        (["--model", "lenet5", "--prune", "1.5"], "1.5"),
        (["--model", "no_such_net"], "no_such_net"),
        ([], "either a run folder"),
        (["--weights", "w.pt"], "either a run folder"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys, argv, message):
    assert run_cli("compress", *argv, "--out", tmp_path / "out", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_missing_run_folder_is_named(tmp_path: Path, capsys):
    missing = tmp_path / "no-run"
    assert run_cli("compress", missing, "--out", tmp_path / "out", "--quiet") == 2
    assert str(missing.name) in capsys.readouterr().err
