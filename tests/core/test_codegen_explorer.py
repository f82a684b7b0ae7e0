"""The explorer's generated PyTorch, executed: the same feature-map shape and top-1 as the app's core."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.codegen import explorer_code
from cnn_explorer.core.codegen.explorer import split_layer
from cnn_explorer.core.features import explore
from cnn_explorer.core.images import open_image

CHELSEA = Path(__file__).resolve().parents[2] / "assets" / "chelsea.png"


def execute(code: str, tmp_path: Path) -> str:
    script = tmp_path / "explore_code.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def app_view(name: str, layer: str, pretrained: bool) -> tuple[tuple[int, ...], str]:
    if pretrained:
        loaded = zoo.load_model(name, allow_download=False)
        assert loaded.weights != "untrained", loaded.weights_detail
    else:
        torch.manual_seed(0)  # what the generated code does before building an untrained model
        loaded = zoo.build_model(name, pretrained=False)
    exploration = explore(loaded, open_image(CHELSEA).pixels)
    return tuple(exploration.capture[layer].shape), exploration.predictions[0].name


@pytest.mark.parametrize(
    ("name", "layer", "pretrained"),
    [("lenet5", "c3", True), ("resnet18", "layer2.0", False), ("efficientnet_lite0", "_blocks.3", True)],
)
def test_the_code_prints_the_apps_feature_map_shape_and_top_1(name, layer, pretrained, tmp_path):
    shape, top1 = app_view(name, layer, pretrained)
    out = execute(
        explorer_code(name, layer=layer, image_path=CHELSEA, pretrained=pretrained, gradcam=True), tmp_path
    )
    printed_shape = re.search(rf"feature map {re.escape(layer)}: \(([\d, ]+)\)", out)
    assert printed_shape is not None, out
    assert tuple(int(v) for v in printed_shape.group(1).split(",")) == shape
    first = re.search(r"^1\. (.+) [\d.]+%$", out, re.M)
    assert first is not None and first.group(1) == top1, out
    assert re.search(r"^5\. ", out, re.M)
    assert f"Grad-CAM of {top1}:" in out


def test_a_second_call_of_a_module_is_hooked_there():
    assert split_layer("features.3#2") == ("features.3", 2)
    assert "outputs[1][0]" in explorer_code("lenet5", layer="c1#2", image_path=CHELSEA)
    with pytest.raises(ValueError, match="#N"):
        split_layer("c1#two")


def test_an_unknown_layer_is_named():
    with pytest.raises(ValueError, match="no layer 'nope'"):
        explorer_code("resnet18", layer="nope", image_path=CHELSEA, pretrained=False)
