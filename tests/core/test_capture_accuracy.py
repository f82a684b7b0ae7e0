"""Every captured step, copied or recomputed, is as close to the true float32 activation as a float16
copy of it would be.

The unit is float16's rounding at the step's scale: half the gap between float16 values around the
step's largest magnitude, the largest error that rounding any of its values to float16 can make. A copy
stays within 1 unit; a step recomputed from a rounded float16 copy through a batch norm can be several
units off (its scale multiplies the rounding). The bound here is 2 units, step by step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.capture import _first_tensor, capture_activations
from cnn_explorer.core.images import default_sample, load_image
from cnn_explorer.core.layers import layer_table, step_modules

BOUND = 2.0  # units of float16 rounding


def half_ulp16(largest: float) -> float:
    """Half the spacing of float16 values at ``largest``: the worst rounding error in [0, largest]."""
    if not largest > 2.0**-14:  # (also 0 and NaN) subnormal range: a fixed spacing of 2⁻²⁴
        return 2.0**-25
    _, exponent = math.frexp(largest)  # largest = f·2^exponent, 0.5 <= f < 1
    return 2.0 ** (exponent - 12)  # float16 has 10 fraction bits: spacing 2^(exponent − 1 − 10)


def true_activations(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every step's float32 output from plain forward hooks, named as the capture names them."""
    outputs: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module, _args, output) -> None:
            n = calls[name] = calls.get(name, 0) + 1
            outputs[name if n == 1 else f"{name}#{n}"] = _first_tensor(output)[0].detach().float().clone()

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m, _ in step_modules(model)]
    try:
        with torch.no_grad():
            model(x[None])
    finally:
        for h in handles:
            h.remove()
    return outputs


def worst_steps(capture, truth: dict[str, torch.Tensor]) -> list[tuple[float, str, str, str]]:
    """(error in units, step, its type, how it was kept) for every step, worst first."""
    rows = []
    for act in capture:
        true = truth[act.name].numpy().astype(np.float64)
        err = float(np.abs(act.data.astype(np.float64) - true).max()) if true.size else 0.0
        how = "recomputed" if act.derived else "copied"
        rows.append((err / half_ulp16(float(np.abs(true).max(initial=0.0))), act.name, act.type, how))
    return sorted(rows, reverse=True)


def _spread_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Untrained batch norms are the identity; give them statistics like a trained network's, so that
    scaling up the float16 rounding of their input would show."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) * 2 + 1e-3)
                m.weight.copy_(torch.randn(c, generator=g) * 0.5 + 1)
                m.bias.copy_(torch.randn(c, generator=g) * 0.5)
    return model


@pytest.fixture(scope="module")
def sample_pixels() -> np.ndarray:
    return load_image(default_sample())


@pytest.fixture(scope="module")
def lite0(sample_pixels):
    loaded = zoo.load_model("efficientnet_lite0", allow_download=False)  # ImageNet weights, offline
    return loaded.model.eval(), loaded.preprocess(sample_pixels)


@pytest.fixture(scope="module")
def resnet18(sample_pixels):
    torch.manual_seed(0)
    model = _spread_batch_norms(zoo._construct("resnet18", 1000)).eval()
    return model, zoo.load_model("efficientnet_lite0", allow_download=False).preprocess(sample_pixels)


@pytest.mark.parametrize("order", ["forward", "backward"])
@pytest.mark.parametrize("which", ["lite0", "resnet18"])
def test_every_step_is_within_twice_float16_rounding_of_the_true_activation(which, order, request):
    model, x = request.getfixturevalue(which)
    truth = true_activations(model, x)
    capture = capture_activations(model, x, table=layer_table(model, tuple(x.shape[1:])))
    assert capture.names() == list(truth)
    assert any(a.derived for a in capture)  # (the recomputed steps are what this is about)
    for act in capture if order == "forward" else reversed(capture.activations):  # order of reading
        assert act.data is not None, act.name
    worst = worst_steps(capture, truth)
    report = "\n".join(f"  {r:6.2f}  {name} ({kind}, {how})" for r, name, kind, how in worst[:15])
    print(f"{which}: worst step {worst[0][0]:.2f} units of float16 rounding\n{report}")
    assert worst[0][0] <= BOUND, f"steps beyond {BOUND} units of float16 rounding:\n{report}"


def test_the_unit_is_float16_rounding():
    for v in (1.0, 1.5, 3.0, 1000.0, 2.0**-10, 65504.0):  # float16 values
        rounded = float(np.float16(v + half_ulp16(v) * 0.99))  # less than half a spacing up: rounds back
        assert rounded == float(np.float16(v)), v
    assert half_ulp16(1.0) == 2.0**-11 and half_ulp16(0.0) == 2.0**-25


def test_a_dropped_capture_is_freed_at_once_without_a_garbage_collection():
    """An explorer cache evicts captures unread: their float32 outputs must go when the capture goes."""
    import gc
    import weakref

    from cnn_explorer.core import zoo
    from cnn_explorer.core.layers import layer_table

    loaded = zoo.load_model("resnet18", allow_download=False)
    x = torch.randn(3, 64, 64)
    table = layer_table(loaded.model, (64, 64), in_channels=3)
    gc.disable()
    try:
        cap = capture_activations(loaded.model, x, table=table)
        assert any(a.chain for a in cap.activations)  # (there are chains to break)
        refs = [weakref.ref(a) for a in cap.activations]
        del cap
        assert sum(r() is not None for r in refs) == 0
    finally:
        gc.enable()
