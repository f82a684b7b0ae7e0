"""``cnn-explorer architectures``: the gallery table and its JSON."""

from __future__ import annotations

import argparse
import json

import torchvision

from cnn_explorer import cli_architectures
from cnn_explorer.core import zoo


def _run(*argv: str) -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    cli_architectures.register(sub)
    args = p.parse_args(["architectures", *argv])
    return args.func(args)


def test_table_lists_every_model_with_sources(capsys):
    assert _run() == 0
    out = capsys.readouterr().out
    for info in zoo.available_models():
        assert info.title in out
    assert "138.36 M" in out  # VGG-16
    assert "1.81 G" in out  # ResNet-18's multiply-adds
    assert "56.5 %" in out  # AlexNet's top-1
    assert "torchvision IMAGENET1K_V1 metadata" in out
    assert "not an ImageNet model" in out
    assert "residual connections" in out
    assert (
        out.index("LeNet-5") < out.index("AlexNet") < out.index("ResNet-18") < out.index("EfficientNet-Lite0")
    )


def test_json_has_every_fact(tmp_path, capsys):
    path = tmp_path / "facts.json"
    assert _run("--json", str(path)) == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == cli_architectures.JSON_FORMAT
    by_name = {a["name"]: a for a in data["architectures"]}
    assert set(by_name) == {info.name for info in zoo.available_models()}
    vgg = by_name["vgg16"]
    assert vgg["params"] == 138_357_544 and vgg["fc_share"] > 0.85
    assert by_name["resnet18"]["signature_block"] == "layer1.0"
    top1 = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert by_name["alexnet"]["top1"] == top1
    assert by_name["lenet5"]["top1"] is None
    for key in ("year", "authors", "paper", "depth", "macs", "conv_params", "key_ideas", "differs"):
        assert key in vgg
    assert not [p for p in tmp_path.iterdir() if p.name != "facts.json"]  # no temporary file left
    assert str(path) in capsys.readouterr().out


def test_bad_json_path_exits_2(tmp_path, capsys):
    bad = tmp_path / "missing" / "facts.json"
    assert _run("--json", str(bad)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:") and str(bad) in err[0]
    assert not bad.exists()


def test_json_path_that_is_a_folder_exits_2(tmp_path, capsys):
    assert _run("--json", str(tmp_path)) == 2
    assert "error:" in capsys.readouterr().err
