"""Grad-CAM: shape, range, and the peak where the evidence is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer, grad_cam, overlay
from cnn_explorer.core.layers import layer_table

RED_BOX = (slice(8, 18), slice(6, 16))  # class 0's evidence, top left
BLUE_BOX = (slice(40, 54), slice(44, 58))  # class 1's evidence, bottom right


def two_colour_model() -> nn.Module:
    """Class 0 = "how much red", class 1 = "how much blue", through a strided conv and global pooling."""
    conv = nn.Conv2d(3, 2, kernel_size=3, stride=2, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 0] = 1 / 9  # channel 0 averages the red plane
        conv.weight[1, 2] = 1 / 9  # channel 1 averages the blue plane
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head).eval()


def two_colour_image() -> torch.Tensor:
    x = torch.zeros(3, 64, 64)
    x[0][RED_BOX] = 1.0
    x[2][BLUE_BOX] = 1.0
    return x


@pytest.mark.parametrize(("class_index", "box"), [(0, RED_BOX), (1, BLUE_BOX)])
def test_heatmap_peaks_where_the_class_evidence_is(class_index, box):
    result = grad_cam(two_colour_model(), two_colour_image(), "1", class_index)
    heat = result.heatmap
    assert heat.shape == (64, 64) and heat.dtype == np.float32
    assert heat.min() == 0.0 and heat.max() == pytest.approx(1.0)
    peak = np.unravel_index(heat.argmax(), heat.shape)
    assert box[0].start <= peak[0] < box[0].stop and box[1].start <= peak[1] < box[1].stop
    other = BLUE_BOX if box is RED_BOX else RED_BOX
    assert heat[other].max() < 0.05  # the other class's square gives no evidence for this one
    assert heat[box].mean() > 0.5
    assert result.raw.shape == (32, 32)  # the conv's resolution, before upsampling
    assert result.class_index == class_index and not result.empty


def test_default_class_is_the_top_prediction():
    x = two_colour_image()
    x[2][BLUE_BOX] = 3.0  # more blue than red
    result = grad_cam(two_colour_model(), x, "0")
    assert result.class_index == 1 and result.score > 0
    assert result.channel_weights.shape == (2,) and result.channel_weights[1] > 0 == result.channel_weights[0]


def test_resnet18_cam_on_layers_followed_by_in_place_ops():
    torch.manual_seed(0)
    model = zoo._construct("resnet18", 1000).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 64, 64)
    with torch.inference_mode():
        logits_before = model(x[None])
    table = layer_table(model, 64)
    assert default_cam_layer(table) == "layer4.1"
    for layer in ("bn1", "relu", "layer1.0.bn2", "layer1.0.relu#2", "layer4.1"):
        result = grad_cam(model, x, layer, 281)
        assert result.heatmap.shape == (64, 64), layer
        assert result.heatmap.min() == 0.0 and result.heatmap.max() == pytest.approx(1.0)
    with torch.inference_mode():
        torch.testing.assert_close(model(x[None]), logits_before)  # the model is left as it was
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert all(p.grad is None for p in model.parameters()) and not model.training


def test_bad_requests_are_clear_errors():
    model = two_colour_model()
    x = two_colour_image()
    with pytest.raises(KeyError, match="no layer named 'conv9'"):
        grad_cam(model, x, "conv9")
    with pytest.raises(ValueError, match="spatial map"):
        grad_cam(model, x, "4")  # the Linear head
    with pytest.raises(IndexError, match="class 7"):
        grad_cam(model, x, "1", 7)


def test_overlay_blends_heatmap_over_the_picture():
    pixels = np.full((64, 64, 3), 100, np.uint8)
    heat = np.zeros((64, 64), np.float32)
    heat[:8, :8] = 1.0
    out = overlay(pixels, heat, alpha=0.5, cmap="gray")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [178, 178, 178] and out[60, 60].tolist() == [50, 50, 50]
    with pytest.raises(ValueError, match="differ in size"):
        overlay(pixels, heat[:32])
