"""Grad-CAM: shape, range, and the peak where the evidence is."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnn_explorer.core import cam, zoo
from cnn_explorer.core.cam import default_cam_layer, grad_cam, overlay
from cnn_explorer.core.images import default_sample, load_image
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

    class SideBranch(nn.Module):  # a layer the scores do not depend on
        def __init__(self) -> None:
            super().__init__()
            self.side = nn.Conv2d(3, 2, 3)
            self.main = two_colour_model()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.side(x)
            return self.main(x)

    with pytest.raises(ValueError, match="does not depend on layer 'side'"):
        grad_cam(SideBranch(), x, "side")


def test_overlay_blends_heatmap_over_the_picture():
    pixels = np.full((64, 64, 3), 100, np.uint8)
    heat = np.zeros((64, 64), np.float32)
    heat[:8, :8] = 1.0
    out = overlay(pixels, heat, alpha=0.5, cmap="gray")
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [178, 178, 178] and out[60, 60].tolist() == [50, 50, 50]
    with pytest.raises(ValueError, match="differ in size"):
        overlay(pixels, heat[:32])


def reference_cam(model: nn.Module, x: torch.Tensor, layer: str, class_index: int | None) -> tuple:
    """Grad-CAM the plain way: the whole forward pass with autograd on, a hook keeping (a copy behind)
    the layer's output, autograd.grad of the score with respect to it. Returns (heatmap, raw, α, class)."""
    base, _, call = layer.partition("#")
    module = model.get_submodule(base)
    kept: list[torch.Tensor] = []
    seen = 0

    def hook(_m, _args, output):
        nonlocal seen
        seen += 1
        if seen == int(call or 1):
            kept.append(output)
            return output.clone()
        return None

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x[None].clone().requires_grad_(True))
            index = int(logits[0].argmax()) if class_index is None else class_index
            (grads,) = torch.autograd.grad(logits[0, index], kept[0])
    finally:
        handle.remove()
    acts = kept[0].detach()
    weights = grads[0].mean(dim=(1, 2))
    raw = torch.relu((weights[:, None, None] * acts[0]).sum(0))
    up = torch.nn.functional.interpolate(raw[None, None], size=x.shape[-2:], mode="bilinear")[0, 0]
    lo, hi = up.min(), up.max()
    heat = (up - lo) / (hi - lo) if hi > lo else torch.zeros_like(up)  # an empty map stays all zeros
    return heat.numpy(), raw.numpy(), weights.numpy(), index


def assert_same_cam(result, expected) -> None:
    heat, raw, weights, index = expected
    assert result.class_index == index
    np.testing.assert_allclose(result.channel_weights, weights, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.raw, raw, rtol=0, atol=1e-6)
    np.testing.assert_allclose(result.heatmap, heat, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def lite0_and_photo() -> tuple[nn.Module, torch.Tensor]:
    """The pretrained EfficientNet-Lite0 on the sample photo at 112 px (real, non-empty maps; quick)."""
    loaded = zoo.load_model("efficientnet_lite0", allow_download=False)
    x = loaded.preprocess(load_image(default_sample()))
    return loaded.model.eval(), torch.nn.functional.interpolate(x[None], size=(112, 112))[0]


@pytest.mark.parametrize("class_index", [None, 7])
def test_maps_match_the_plain_full_graph_grad_cam(class_index, lite0_and_photo):
    torch.manual_seed(0)
    resnet = zoo._construct("resnet18", 1000).eval()
    cases = [
        # bn1 and layer1.0.bn2 are followed by in-place ops (ReLU(inplace=True), "out += identity");
        # relu is in place itself; layer1.0.relu is called twice per block.
        (resnet, torch.randn(3, 64, 64), ("bn1", "relu", "layer1.0.bn2", "layer1.0.relu#2", "layer4.1")),
        # _swish is called twice: after the stem and after the head conv (the default CAM layer).
        (*lite0_and_photo, ("_swish", "_swish#2", "_blocks.1._swish", "_blocks.5")),
    ]
    for model, x, layers in cases:
        for layer in layers:
            expected = reference_cam(model, x, layer, class_index)
            for _ in range(2):  # the second pass knows whether the rest of the network needs a copy
                result = grad_cam(model, x, layer, class_index)
                assert_same_cam(result, expected)
            assert model is resnet or not result.empty, layer  # the pretrained model's maps say something


def test_frozen_weights_no_grad_caller_and_grad_mode_left_alone():
    torch.manual_seed(0)
    model = zoo._construct("resnet18", 10).eval()
    x = torch.randn(3, 48, 48)
    expected = reference_cam(model, x, "layer3.0.bn1", None)
    for p in model.parameters():
        p.requires_grad_(False)  # a frozen backbone: the graph still starts at the layer
    with torch.no_grad():
        result = grad_cam(model, x, "layer3.0.bn1")
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    assert_same_cam(result, expected)
    model.layer2.train()  # a part in training mode is switched to eval for the CAM and back after
    assert_same_cam(grad_cam(model, x, "layer3.0.bn1"), expected)
    assert model.layer2.training and model.layer2[0].bn1.training and not model.layer3.training


def test_a_swapped_or_removed_layer_is_found_again():
    torch.manual_seed(0)
    model = zoo._construct("resnet18", 10).eval()
    x = torch.randn(3, 48, 48)
    grad_cam(model, x, "layer4.1")  # the lookup is cached now
    model.layer4[1] = type(model.layer4[1])(512, 512).eval()  # e.g. a fine-tune replacing a block
    assert_same_cam(grad_cam(model, x, "layer4.1", 3), reference_cam(model, x, "layer4.1", 3))
    model.extra = nn.Identity()  # a new step the cache has not seen
    model.layer4[1].relu = nn.ReLU()  # replaced by a new module under the same name
    assert_same_cam(grad_cam(model, x, "layer4.1.relu#2", 3), reference_cam(model, x, "layer4.1.relu#2", 3))
    del model.layer4[1].conv2
    with pytest.raises(KeyError, match=r"no layer named 'layer4\.1\.conv2'"):
        grad_cam(model, x, "layer4.1.conv2")


class SometimesInPlace(nn.Module):
    """A network that, once switched, changes its conv's output in place (with or without autograd)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        self.mode = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.mode == "autograd":
            y.mul_(-2.0)
        elif self.mode == "no_grad":
            with torch.no_grad():
                y.mul_(-2.0)
        return self.head(y)


@pytest.mark.parametrize("mode", ["autograd", "no_grad"])
def test_a_layer_first_left_alone_then_changed_in_place_still_gets_its_own_map(mode, monkeypatch):
    torch.manual_seed(0)
    model = SometimesInPlace().eval()
    x = torch.randn(3, 16, 16)
    copies: list[bool] = []  # per forward pass: did the network get a copy of the layer's output?
    gradient = cam._layer_gradient
    monkeypatch.setattr(cam, "_layer_gradient", lambda *args: copies.append(args[-1]) or gradient(*args))
    before = grad_cam(model, x, "conv", 1)
    assert_same_cam(before, reference_cam(model, x, "conv", 1))
    assert_same_cam(grad_cam(model, x, "conv", 1), reference_cam(model, x, "conv", 1))
    assert copies == [True, False]  # nothing changed it in place: the second pass needs no copy
    model.mode = mode
    expected = reference_cam(model, x, "conv", 1)
    if mode == "autograd":  # the gradient goes through the in-place op
        np.testing.assert_allclose(expected[2], -2 * before.channel_weights, rtol=1e-6)
    for _ in range(2):
        assert_same_cam(grad_cam(model, x, "conv", 1), expected)
    assert copies == [True, False, False, True, True]  # found out, ran again with a copy; copies from now on
