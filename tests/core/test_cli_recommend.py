"""The recommend subcommand, driven through a real argparse parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnn_explorer import cli_guide
from cnn_explorer.core import zoo
from cnn_explorer.core.transfer import similarity


def run_cli(*argv: object) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_guide.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["recommend", *(str(a) for a in argv)])
    return args.func(args)


def test_auto_estimates_the_similarity_and_recommends_case_3(tiny_folder: Path, capsys):
    assert run_cli(tiny_folder, "--offline") == 0
    out = capsys.readouterr().out
    assert "24 usable images in 3 classes" in out
    assert "Similarity: On 24 images" in out and "different from ImageNet" in out
    assert "Case 3: Small · different" in out and "Strategy: linear-probe" in out
    assert "Cut layer: _blocks." in out and "more generic" in out


def test_a_given_answer_skips_the_estimate(tiny_folder: Path, capsys, monkeypatch):
    monkeypatch.setattr(cli_guide, "estimate_similarity", None)  # would fail if called
    assert run_cli(tiny_folder, "--similar", "yes") == 0
    out = capsys.readouterr().out
    assert "Similarity:" not in out and "Case 1: Small · similar" in out
    assert "Strategy: feature-extractor" in out and "Cut layer" not in out
    assert "Why: 24 images is a small dataset" in out


def test_bad_input_exits_2_with_one_line(tmp_path: Path, tiny_folder: Path, capsys, make_image_folder):
    assert run_cli(tmp_path / "missing") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "missing" in err and "does not exist" in err

    one = make_image_folder(tmp_path / "one", per_class=6, classes=["cat"])
    assert run_cli(one, "--similar", "no") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(one) in err and "single class" in err

    assert run_cli(tiny_folder, "--model", "no-such-net") == 2
    assert "Unknown model 'no-such-net'" in capsys.readouterr().err


def test_no_pretrained_model_exits_2_naming_the_folder(tiny_folder: Path, capsys, monkeypatch):
    build = zoo.build_model
    monkeypatch.setattr(zoo, "build_model", lambda name, **kw: build(name, pretrained=False))
    assert run_cli(tiny_folder) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tiny_folder}: ") and "no ImageNet weights" in err


def test_ctrl_c_exits_130(tiny_folder: Path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(similarity, "_head_stats", interrupted)
    assert run_cli(tiny_folder) == 130
    assert "Stopped" in capsys.readouterr().err
