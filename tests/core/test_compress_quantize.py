"""Quantizing real models: LeNet-5's int8 (static and dynamic) and fp16 variants read the real UCI digits as
the fp32 model does, they reopen through the explorer's loader with identical predictions and without
unpickling code, and EfficientNet-Lite0's same-padding convolutions are rewritten without changing a
single output."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.compress import (
    CompressError,
    choose_engine,
    quantize_dynamic_int8,
    quantize_static_int8,
    standardise_same_padding,
    to_fp16,
)
from cnn_explorer.core.compress.padding import same_padding_convs
from cnn_explorer.core.compress.quantize import engine
from cnn_explorer.core.compress.store import save_variant
from cnn_explorer.core.images import assets_dir

# reading a quantized checkpoint with plain torch.load: torch warns about its own storage classes
pytestmark = pytest.mark.filterwarnings("ignore:TypedStorage is deprecated:UserWarning")


@pytest.fixture(scope="module")
def lenet() -> zoo.LoadedModel:
    return zoo.load_model("lenet5", allow_download=False)


@pytest.fixture(scope="module")
def digits(lenet) -> tuple[torch.Tensor, torch.Tensor]:
    """(calibration, test) batches of real UCI digits, as the app feeds them to LeNet-5."""
    with np.load(assets_dir() / "uci_digits.npz") as d:
        images = (d["images"].astype(np.float32) * (255 / 16)).round().astype(np.uint8)
    x = torch.stack([lenet.preprocess(img) for img in images[:700]])
    return x[:64], x[100:700]


def _top1(model: nn.Module, x: torch.Tensor, engine_name: str | None = None) -> torch.Tensor:
    with engine(engine_name), torch.inference_mode():
        return model(x).argmax(1)


def test_the_engine_is_one_this_torch_has():
    assert choose_engine() in torch.backends.quantized.supported_engines


def test_int8_static_agrees_with_fp32_on_real_digits(lenet, digits):
    calibration, test = digits
    eng = choose_engine()
    q = quantize_static_int8(lenet.model, eng, [calibration[:32], calibration[32:]])
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in q.modules())
    agreement = float((_top1(q, test, eng) == _top1(lenet.model, test)).float().mean())
    assert agreement >= 0.9, agreement  # measured: 1.0 on these 600 digits


def test_int8_dynamic_and_fp16_agree_with_fp32(lenet, digits):
    _, test = digits
    dynamic = quantize_dynamic_int8(lenet.model, choose_engine())
    assert type(dynamic.f6).__name__ == "Linear" and type(dynamic.f6).__module__.endswith(
        "dynamic.modules.linear"
    )
    assert isinstance(dynamic.c5, nn.Conv2d)  # convolutions stay float
    stored, computed = to_fp16(lenet.model)
    assert stored.c1.weight.dtype == torch.float16 and computed.c1.weight.dtype == torch.float32
    assert torch.equal(computed.c1.weight, lenet.model.c1.weight.half().float())
    reference = _top1(lenet.model, test)
    for model in (dynamic, computed):
        assert float((_top1(model, test) == reference).float().mean()) >= 0.9


@pytest.mark.parametrize("mode", ["int8-static", "int8-dynamic", "fp16"])
def test_variants_reopen_with_the_same_predictions(lenet, digits, tmp_path: Path, mode):
    calibration, test = digits
    eng = choose_engine()
    if mode == "int8-static":
        model = stored = quantize_static_int8(lenet.model, eng, [calibration])
    elif mode == "int8-dynamic":
        model = stored = quantize_dynamic_int8(lenet.model, eng)
    else:
        stored, model = to_fp16(lenet.model)
    recipe = {
        "variant": mode,
        "quantize": mode,
        "engine": None if mode == "fp16" else eng,
        "standardised_same_padding": False,
        "sparsity": 0.0,
        "base": "zoo lenet5",
        "input_shape": [1, 1, 32, 32],
    }
    path = tmp_path / f"{mode}.pt"
    size = save_variant(
        path, stored, arch="lenet5", class_names=lenet.categories, preprocess=lenet.preprocess, recipe=recipe
    )
    assert size == path.stat().st_size
    raw = torch.load(path, weights_only=True)  # nothing but tensors, numbers and strings
    assert raw["compression"]["quantize"] == mode
    reopened = zoo.load_model_file(path)
    assert reopened.categories == lenet.categories and reopened.preprocess == lenet.preprocess
    assert mode.split("-")[0] in reopened.weights_detail and path.name in reopened.weights_detail
    with engine(recipe["engine"]), torch.inference_mode():
        assert torch.equal(reopened.model(test), model(test))
    if mode == "fp16":
        assert reopened.model.c1.weight.dtype == torch.float32
        assert "float32" in reopened.weights_detail


class _Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:  # data-dependent control flow: FX cannot trace it
            return x
        return -x


class _Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.gate = _Gate()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.gate(self.conv(x)).mean((2, 3)))


def test_static_int8_names_the_part_it_cannot_trace():
    with pytest.raises(CompressError, match=r"'gate' \(_Gate\)") as err:
        quantize_static_int8(_Gated().eval(), choose_engine(), [torch.randn(2, 1, 8, 8)])
    assert "int8-dynamic or fp16" in str(err.value)


@pytest.fixture(scope="module")
def lite0() -> nn.Module:
    loaded = zoo.load_model("efficientnet_lite0", allow_download=False)
    if loaded.weights == "untrained":
        pytest.skip("the EfficientNet-Lite0 weights package is not installed")
    return loaded.model


def test_lite0_same_padding_standardisation_keeps_the_outputs(lite0):
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    rewritten = copy.deepcopy(lite0)
    found = same_padding_convs(rewritten)
    assert len(found) == 49
    assert standardise_same_padding(rewritten) == 49
    assert same_padding_convs(rewritten) == []
    assert all(type(m) is nn.Conv2d for m in rewritten.modules() if isinstance(m, nn.Conv2d))
    with torch.inference_mode():
        assert torch.allclose(rewritten(x), lite0(x), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_lite0_int8_static_is_fused_small_and_reloads_safely(lite0, tmp_path: Path):
    eng = choose_engine()
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    q = quantize_static_int8(lite0, eng, [x])
    # conv + BatchNorm fused: no float convolution or BatchNorm is left
    assert not any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) for m in q.modules())
    recipe = {
        "variant": "int8-static",
        "quantize": "int8-static",
        "engine": eng,
        "standardised_same_padding": True,
        "sparsity": 0.0,
        "base": "zoo efficientnet_lite0",
        "input_shape": [1, 3, 224, 224],
    }
    fp32, int8 = tmp_path / "fp32.pt", tmp_path / "int8.pt"
    common = {
        "arch": "efficientnet_lite0",
        "class_names": zoo.imagenet_categories(),
        "preprocess": zoo.LITE0_PREPROCESS,
    }
    save_variant(fp32, lite0, recipe={**recipe, "quantize": None, "engine": None}, **common)
    save_variant(int8, q, recipe=recipe, **common)
    assert fp32.stat().st_size / int8.stat().st_size >= 3.5  # measured: 3.65×
    torch.load(int8, weights_only=True)
    reopened = zoo.load_model_file(int8)
    with engine(eng), torch.inference_mode():
        assert torch.equal(reopened.model(x), q(x))
