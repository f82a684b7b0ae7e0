"""Activation capture, predictions, grids, statistics and receptive regions."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter

import numpy as np
import pytest
import torch

from cnn_explorer.core import features, zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.features import (
    apply_colormap,
    capture_activations,
    layer_stats,
    prepare_layer_view,
    receptive_region,
    render_grid,
    tile_channels,
    top_predictions,
)
from cnn_explorer.core.images import load_image
from cnn_explorer.core.layers import layer_table

ZOO_NAMES = [i.name for i in zoo.available_models()]
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return zoo._construct("resnet18", 1000).eval()


# --- capture -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_model_steps_through_all_layers(name):
    """Each model builds, and one pass captures every row of its layer table, shapes included."""
    info = zoo.get_info(name)
    torch.manual_seed(0)
    model = zoo._construct(name, 10 if name == "lenet5" else 1000).eval()
    size = 32 if name == "lenet5" else max(64, info.min_size)
    channels = 1 if name == "lenet5" else 3
    x = torch.randn(channels, size, size)
    table = layer_table(model, size, in_channels=channels)
    capture = capture_activations(model, x)  # every step copied
    assert capture.names() == table.names()
    assert len(capture) >= 12
    for act, row in zip(capture, table, strict=True):
        assert act.shape == row.out_shape, act.name
        assert act.data is not None and act.data.shape == row.out_shape, act.name
        assert act.data.dtype == np.float16 or (
            act.data.dtype == np.float32 and np.abs(act.data).max() > np.finfo(np.float16).max
        )
        assert np.isfinite(act.data).all()
    with torch.inference_mode():
        assert capture.logits.shape == (model(x[None]).shape[1],)
    kinds = {a.type for a in capture}
    assert {"Conv2d", "Linear"} & kinds or "Conv2dStaticSamePadding" in kinds
    assert not capture.skipped
    # With the table, element-wise steps are recomputed on demand: same names, same values.
    planned = capture_activations(model, x, table=table)
    assert planned.names() == capture.names()
    np.testing.assert_array_equal(planned.logits, capture.logits)
    for fast, full in zip(planned, capture, strict=True):
        ref = full.data.astype(np.float32)
        tol = 2e-3 * max(1.0, float(np.abs(ref).max()))  # float16 rounding of the source step
        np.testing.assert_allclose(fast.data.astype(np.float32), ref, rtol=0, atol=tol, err_msg=fast.name)


def test_captured_values_are_copies_taken_before_in_place_ops(resnet18):
    x = torch.randn(3, 64, 64)
    expected = {}
    hooks = [
        resnet18.bn1.register_forward_hook(lambda m, i, o: expected.__setitem__("bn1", o.detach().clone())),
        resnet18.layer1[0].bn2.register_forward_hook(
            lambda m, i, o: expected.__setitem__("layer1.0.bn2", o.detach().clone())
        ),
    ]
    with torch.no_grad():
        resnet18(x[None])
    for h in hooks:
        h.remove()
    capture = capture_activations(resnet18, x)
    for name, ref in expected.items():
        np.testing.assert_allclose(
            capture[name].data.astype(np.float32), ref[0].numpy(), rtol=2e-3, atol=2e-3
        )
    # bn1 has negative values; the (in-place) ReLU right after it does not, and was captured separately.
    assert capture["bn1"].data.min() < 0 and capture["relu"].data.min() >= 0
    np.testing.assert_array_equal(capture["relu"].data, np.maximum(capture["bn1"].data, 0))
    with torch.inference_mode():
        np.testing.assert_allclose(capture.logits, resnet18(x[None])[0].numpy(), rtol=1e-5, atol=1e-5)
    assert resnet18.training is False and not resnet18._forward_hooks and not resnet18.bn1._forward_hooks


def test_with_the_table_element_wise_steps_are_recomputed_not_copied(resnet18):
    x = torch.randn(3, 64, 64)
    table = layer_table(resnet18, 64)
    full = capture_activations(resnet18, x)
    fast = capture_activations(resnet18, x, table=table)
    assert fast.names() == full.names()
    # Nothing was copied during the pass: the steps that are not recomputed hold the pass's own outputs.
    kept = [a for a in fast if not a.derived]
    assert all(a.stored is None and a.tensor is not None for a in kept)
    assert fast.nbytes == sum(4 * math.prod(a.shape) for a in kept)
    relu = fast["layer1.0.relu"]
    assert relu.derived and relu.source is fast["layer1.0.bn1"] and relu.stored is None
    assert relu.data is not None and relu.stored is not None  # computed on first read, then kept
    np.testing.assert_array_equal(relu.data, full["layer1.0.relu"].data)  # the float16 of the true values
    # ... with its whole chain (conv → batch norm → ReLU), the batch norm from the conv's float32 values.
    assert fast["layer1.0.conv1"].tensor is None and fast["layer1.0.bn1"].stored is not None
    assert fast["layer1.0.conv2"].tensor is not None  # (another chain: not yet)
    for a in kept:  # reading compacts each one to float16, and computes the steps that follow it
        assert a.data.dtype == np.float16 and a.tensor is None
    computed = [a for a in fast if a.derived and a.stored is not None]
    assert {a.type for a in computed} == {"BatchNorm2d", "ReLU"}
    assert all(fast[a.name].data is not None for a in fast)
    assert fast.nbytes == sum(a.nbytes for a in kept + computed) < full.nbytes
    # "out += identity" runs between bn2 and the block's second ReLU: that one must be a real copy.
    assert not fast["layer1.0.relu#2"].derived
    np.testing.assert_array_equal(fast["layer1.0.relu#2"].data, full["layer1.0.relu#2"].data)
    block = fast["layer1.0"]
    assert block.derived and block.data is fast["layer1.0.relu#2"].data  # the block's output is that tensor
    assert not fast["conv1"].derived and fast["bn1"].derived


class _ChangesConvOutput(torch.nn.Module):
    """A conv whose output a later operation changes in place, after the pool has read it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.pool = torch.nn.MaxPool2d(2)
        self.passes = 0

    def forward(self, x):
        self.passes += 1
        a = self.conv(x)
        b = self.pool(a)
        a.mul_(-1.0)
        return b.flatten(1) + a.mean()


def test_a_kept_output_changed_in_place_later_is_copied_during_the_pass():
    torch.manual_seed(0)
    model = _ChangesConvOutput().eval()
    x = torch.randn(3, 16, 16)
    with torch.no_grad():
        expected = model.conv(x[None])[0].numpy()
    table = layer_table(model, 16)
    model.passes = 0
    first = capture_activations(model, x, table=table)
    assert model.passes == 2  # the change was seen, and the pass run again copying "conv" as it went
    np.testing.assert_allclose(first["conv"].data.astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    assert first["conv"].tensor is None and first["pool"].tensor is not None
    model.passes = 0
    again = capture_activations(model, x, table=table)  # remembered: one pass
    assert model.passes == 1
    np.testing.assert_array_equal(again["conv"].data, first["conv"].data)
    np.testing.assert_array_equal(again["pool"].data, first["pool"].data)


def test_a_capture_leaves_every_module_as_it_found_it(resnet18):
    """The capture wraps the steps' forward for the pass (cheaper than forward hooks): afterwards no
    module keeps a forward of its own, one that had its own keeps it, hooks still run, and a pass that
    fails restores them too."""
    x = torch.randn(3, 64, 64)
    table = layer_table(resnet18, 64)
    own_calls = []
    original = resnet18.layer1[0].conv1.forward

    def own(*args):
        own_calls.append(1)
        return original(*args)

    resnet18.layer1[0].conv1.forward = own
    seen = []
    handle = resnet18.layer2.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    try:
        cap = capture_activations(resnet18, x, table=table)
        assert own_calls == [1] and seen == [torch.Size([1, 128, 8, 8])]
        assert resnet18.layer1[0].conv1.forward is own
        others = [m for m in resnet18.modules() if m is not resnet18.layer1[0].conv1]
        assert not any("forward" in m.__dict__ for m in others)

        def broken(*args):
            raise RuntimeError("a failing layer")

        resnet18.layer3[0].conv2.forward = broken
        with pytest.raises(RuntimeError, match="a failing layer"):
            capture_activations(resnet18, x, table=table)
        assert resnet18.layer3[0].conv2.forward is broken
        assert not any("forward" in m.__dict__ for m in others if m is not resnet18.layer3[0].conv2)
    finally:
        handle.remove()
        for m in (resnet18.layer1[0].conv1, resnet18.layer3[0].conv2):
            m.__dict__.pop("forward", None)
    again = capture_activations(resnet18, x, table=table)
    np.testing.assert_array_equal(again["layer2.1"].data, cap["layer2.1"].data)
    assert again.names() == cap.names() and not any("forward" in m.__dict__ for m in resnet18.modules())


def test_a_table_for_another_input_size_is_ignored(resnet18):
    x = torch.randn(3, 64, 64)
    capture = capture_activations(resnet18, x, table=layer_table(resnet18, 96))
    assert not any(a.derived for a in capture)
    squeezenet = zoo._construct("squeezenet1_1", 1000, meta=True)
    other = capture_activations(resnet18, x, table=layer_table(squeezenet, 64))  # another model's table
    assert not any(a.derived for a in other) and other.names() == capture.names()


def test_memory_is_bounded_and_large_layers_are_reported(resnet18):
    x = torch.randn(3, 64, 64)
    cap = capture_activations(resnet18, x, max_layer_bytes=2 * 64 * 32 * 32 - 1)
    assert "conv1" in cap.skipped and cap["conv1"].too_large and cap["conv1"].data is None
    assert cap["conv1"].shape == (64, 32, 32) and cap["conv1"].nbytes == 2 * 64 * 32 * 32
    assert cap["layer4.1"].data is not None  # small maps are kept
    assert cap.nbytes == sum(a.data.nbytes for a in cap if a.data is not None)
    everything = capture_activations(resnet18, x)
    budget = capture_activations(resnet18, x, max_total_bytes=everything.nbytes // 2)
    assert budget.skipped and budget.nbytes <= everything.nbytes // 2
    assert [a.shape for a in budget] == [a.shape for a in everything]  # shapes of skipped steps stay known
    assert {a.name for a in budget if a.data is None} == set(budget.skipped)


def test_capture_can_be_cancelled(resnet18):
    control = Control()
    control.cancel()
    with pytest.raises(Cancelled):
        capture_activations(resnet18, torch.randn(3, 64, 64), control=control)
    assert not resnet18.conv1._forward_hooks


def test_explore_on_the_cat_with_the_offline_default(sample_cat):
    loaded = zoo.load_model(zoo.DEFAULT_MODEL, allow_download=False)
    result = features.explore(loaded, load_image(sample_cat))
    assert len(result.predictions) == 5
    assert CAT_CLASSES & {p.name for p in result.predictions}
    probs = [p.probability for p in result.predictions]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
    assert result.capture.names() == result.table.names()
    assert any(a.derived for a in result.capture)
    full = capture_activations(loaded.model, loaded.preprocess(load_image(sample_cat)))
    for fast, ref in zip(result.capture, full, strict=True):  # trained weights: larger scales than random
        r = ref.data.astype(np.float32)
        tol = 3e-3 * max(1.0, float(np.abs(r).max()))
        np.testing.assert_allclose(fast.data.astype(np.float32), r, rtol=0, atol=tol, err_msg=fast.name)
    assert result.pixels.shape == (224, 224, 3) and result.pixels.dtype == np.uint8
    assert result.table.input_shape == (3, 224, 224)
    again = features.explore(loaded, load_image(sample_cat)[::-1].copy(), table=result.table)
    assert again.table is result.table  # reused: same model, same input size
    lenet_table = layer_table(zoo.LeNet5(), 32)
    assert features.explore(loaded, load_image(sample_cat), table=lenet_table).table is not lenet_table


def test_top_predictions_use_softmax_and_names():
    logits = np.array([0.0, 2.0, 1.0, -1.0])
    top = top_predictions(logits, ["a", "b", "c", "d"], k=3)
    assert [p.name for p in top] == ["b", "c", "a"] and [p.index for p in top] == [1, 2, 0]
    e = np.exp(logits)
    assert top[0].probability == pytest.approx(e[1] / e.sum())
    assert len(top_predictions(logits, ["a", "b", "c", "d"], k=10)) == 4


# --- grids ---------------------------------------------------------------------------------------------


def test_tiling_places_channels_row_by_row_with_gaps():
    fmap = np.stack([np.full((3, 4), float(c)) + np.arange(4)[None, :] for c in range(10)])
    grid = tile_channels(fmap, columns=4, normalize="none", gap=1)
    assert (grid.columns, grid.rows, grid.cell) == (4, 3, (3, 4))
    assert grid.image.shape == (3 * 4 - 1, 4 * 5 - 1)
    np.testing.assert_array_equal(grid.image[0:3, 5:9], fmap[1])  # row 0, column 1 is channel 1
    np.testing.assert_array_equal(grid.image[4:7, 0:4], fmap[4])  # row 1 starts with channel 4
    assert np.isnan(grid.image[3, 0]) and np.isnan(grid.image[0, 4])  # gaps
    assert np.isnan(grid.image[8:11, 10:14]).all()  # empty cells after the last channel
    assert grid.channel_at(1, 6) == 1 and grid.channel_at(9, 6) == 9
    assert grid.channel_at(3, 0) is None and grid.channel_at(9, 11) is None
    assert grid.cell_origin(5) == (4, 5)


def test_normalisation_and_sorting():
    fmap = np.stack([np.zeros((2, 2)), np.array([[0, 1], [2, 3]], float), np.full((2, 2), 7.0)])
    per_channel = tile_channels(fmap, columns=3, normalize="channel", gap=0).image
    np.testing.assert_allclose(per_channel[:, 2:4], [[0, 1 / 3], [2 / 3, 1]])
    assert (per_channel[:, 0:2] == 0).all() and (per_channel[:, 4:6] == 0).all()  # flat channels
    per_layer = tile_channels(fmap, columns=3, normalize="layer", gap=0)
    assert per_layer.value_range == (0.0, 7.0)
    np.testing.assert_allclose(per_layer.image[:, 4:6], 1.0)
    order = features.channel_order(fmap, "mean")
    assert order.tolist() == [2, 1, 0]
    sorted_grid = tile_channels(fmap, columns=3, order=order, normalize="none", gap=0)
    assert sorted_grid.channel_at(0, 0) == 2 and sorted_grid.image[0, 0] == 7.0


def test_render_a_512_channel_grid_to_rgb():
    fmap = np.random.default_rng(0).standard_normal((512, 7, 7)).astype(np.float16)
    rgb = render_grid(fmap, cmap="viridis", sort_by="mean")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[:2] == (23 * 8 - 1, 23 * 8 - 1)
    gray = features.apply_colormap(np.array([[0.0, 1.0, np.nan]]), "gray")
    assert gray.tolist() == [[[0, 0, 0], [255, 255, 255], [255, 255, 255]]]
    with pytest.raises(ValueError, match="colormap"):
        features.apply_colormap(np.zeros((2, 2)), "rainbow-ish")


# --- statistics ----------------------------------------------------------------------------------------


def test_layer_statistics():
    values = np.array([[0.0, 0.0, 1.0], [2.0, -1.0, 4.0]], dtype=np.float16)
    stats = layer_stats(values, bins=5)
    assert (stats.minimum, stats.maximum) == (-1.0, 4.0)
    assert stats.mean == pytest.approx(1.0) and stats.std == pytest.approx(np.std([0, 0, 1, 2, -1, 4]))
    assert stats.zero_fraction == pytest.approx(2 / 6) and stats.negative_fraction == pytest.approx(1 / 6)
    assert stats.hist_counts.sum() == 6 == stats.count and len(stats.hist_edges) == 6
    assert stats.hist_edges[0] == -1.0 and stats.hist_edges[-1] == 4.0


def test_relu_output_statistics_count_switched_off_units(resnet18):
    cap = capture_activations(resnet18, torch.randn(3, 64, 64))
    relu = layer_stats(cap["relu"].data)
    bn = layer_stats(cap["bn1"].data)
    assert relu.minimum == 0 and relu.negative_fraction == 0
    assert relu.zero_fraction == pytest.approx(bn.negative_fraction + bn.zero_fraction, abs=1e-9)


# --- receptive field of a clicked unit ------------------------------------------------------------------


def test_receptive_region_of_lenet_units_by_hand():
    table = layer_table(zoo.LeNet5(), 32)
    region = lambda name, y, x: receptive_region(table.row(name), y, x, (32, 32))  # noqa: E731
    r = region("c1", 0, 0)
    assert (r.top, r.left, r.bottom, r.right) == (0, 0, 4, 4) and not r.clipped
    r = region("c1", 3, 7)
    assert (r.top, r.left, r.bottom, r.right) == (3, 7, 7, 11)
    r = region("s2", 1, 2)  # centre 2.5 + 2·1 = 4.5 and 2.5 + 2·2 = 6.5, six pixels wide
    assert (r.top, r.left, r.bottom, r.right) == (2, 4, 7, 9) and r.height == r.width == 6
    r = region("c3", 0, 0)
    assert (r.top, r.left, r.bottom, r.right) == (0, 0, 13, 13)
    r = region("s4", 4, 4)  # centre 7.5 + 4·4 = 23.5, 16 wide
    assert (r.top, r.left, r.bottom, r.right) == (16, 16, 31, 31)
    r = region("c5", 0, 0)
    assert (r.top, r.left, r.bottom, r.right) == (0, 0, 31, 31) and r.height == 32
    r = region("f6", 0, 0)
    assert (r.top, r.left, r.bottom, r.right) == (0, 0, 31, 31)
    with pytest.raises(IndexError):
        region("c1", 28, 0)


def test_receptive_region_is_clipped_at_the_border():
    table = layer_table(zoo._construct("resnet18", 1000, meta=True), 224)
    r = receptive_region(table.row("conv1"), 0, 0, (224, 224))  # 7×7 centred on pixel 0 (padding 3)
    assert (r.top, r.left, r.bottom, r.right) == (0, 0, 3, 3)
    assert r.clipped and (r.full_height, r.full_width) == (7, 7)
    r = receptive_region(table.row("conv1"), 10, 20, (224, 224))
    assert (r.top, r.left, r.bottom, r.right) == (17, 37, 23, 43) and not r.clipped


# --- one step as the explorer shows it ------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_capture(resnet18):
    torch.manual_seed(1)
    x = torch.randn(3, 64, 64)
    return capture_activations(resnet18, x, table=layer_table(resnet18, 64))


def test_prepare_layer_view_is_the_grid_the_statistics_and_the_values(resnet_capture):
    cap = resnet_capture
    assert cap["relu"].derived and cap["relu"].stored is None  # (relu ← bn1 ← conv1: recomputed here)
    view = prepare_layer_view(cap, "relu", sort_by="mean", normalize="layer", cmap="gray", columns=8)
    data = cap["relu"].data
    assert view.name == "relu" and view.spatial and view.channels == 64
    np.testing.assert_array_equal(view.values, data)
    with pytest.raises(ValueError):
        view.values[0, 0, 0] = 1  # the capture's own copy: read-only
    order = features.channel_order(data, "mean")
    np.testing.assert_array_equal(view.grid.order, order)
    grid = tile_channels(data, columns=8, order=order, normalize="layer")
    assert (view.grid.columns, view.grid.rows, view.grid.cell) == (8, 8, (32, 32))
    np.testing.assert_array_equal(view.rgb, features.apply_colormap(grid.image, "gray"))
    assert view.scaling == "layer" and view.grid.value_range == grid.value_range
    expected = layer_stats(data)
    assert (view.stats.minimum, view.stats.maximum, view.stats.count) == (0.0, expected.maximum, 64 * 32 * 32)
    np.testing.assert_array_equal(view.stats.hist_counts, expected.hist_counts)
    np.testing.assert_array_equal(view.channel_map(5), data[5].astype(np.float32))
    # Statistics depend on the step only: another look at it reuses them.
    again = prepare_layer_view(cap, "relu", cmap="viridis", stats=view.stats)
    assert again.stats is view.stats and again.grid.columns == features.grid_columns((64, 32, 32)) == 8


def test_prepare_layer_view_of_a_vector_uses_one_range(resnet_capture):
    view = prepare_layer_view(resnet_capture, "fc", normalize="channel")
    assert not view.spatial and view.values.shape == (1000, 1, 1)
    assert view.scaling == "layer"  # a one-value cell stretched to its own range would be blank
    assert view.grid.cell == (1, 1) and view.grid.gap == 0
    assert view.grid.columns == features.grid_columns((1000,)) == 32  # near-square
    assert features.grid_columns((1000,), aspect=4.0) == 64  # a wide space, a wide grid
    assert view.rgb.shape == (32, 32, 3)


def test_prepare_layer_view_refuses_a_step_too_large_to_keep_and_can_be_cancelled(resnet18):
    x = torch.randn(3, 64, 64)
    cap = capture_activations(
        resnet18, x, table=layer_table(resnet18, 64), max_layer_bytes=2 * 64 * 32 * 32 - 1
    )
    with pytest.raises(ValueError, match=r"relu.*too large"):
        prepare_layer_view(cap, "relu")  # derived from conv1, which was not kept
    control = Control()
    control.cancel()
    with pytest.raises(Cancelled):
        prepare_layer_view(cap, "layer4.1", control=control)


def test_derived_steps_are_computed_once_when_threads_ask_at_once(resnet18):
    """The GUI thread and a worker may read the same capture: each derived step is computed once and
    every reader gets that one array."""
    x = torch.randn(3, 64, 64)
    cap = capture_activations(resnet18, x, table=layer_table(resnet18, 64))
    calls: Counter[str] = Counter()
    for act in cap:
        if act.recipe is not None:

            def counted(t, recipe=act.recipe, name=act.name):
                calls[name] += 1
                time.sleep(0.01)  # widen the window in which a second thread could start the same work
                return recipe(t)

            act.recipe = counted
    names = ["relu", "layer1.0.relu", "layer2.1.relu"]
    barrier = threading.Barrier(4)
    seen: list[list[np.ndarray]] = []

    def read() -> None:
        barrier.wait()
        seen.append([cap[n].data for n in names])

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4
    for i, name in enumerate(names):
        assert all(s[i] is seen[0][i] for s in seen), name
    assert calls["relu"] == calls["bn1"] == 1 and calls["layer1.0.relu"] == 1 and max(calls.values()) == 1


def _reference_tile_values(fmap: np.ndarray, order: np.ndarray, normalize: str) -> np.ndarray:
    """The grid's cell values the plain way (each step its own array), to pin the in-place version."""
    data = fmap[order].astype(np.float32)
    if normalize == "channel":
        lo = data.min(axis=(1, 2), keepdims=True)
        span = data.max(axis=(1, 2), keepdims=True) - lo
        with np.errstate(invalid="ignore"):  # (the infinite channel)
            return np.divide(data - lo, span, out=np.zeros_like(data), where=span > 0)
    if normalize == "layer":
        lo_all, hi_all = float(data.min()), float(data.max())
        span = hi_all - lo_all
        return (data - lo_all) / span if span > 0 else np.zeros_like(data)
    return data


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("normalize", ["channel", "layer", "none"])
def test_tiles_and_colours_equal_the_plain_computation(dtype, normalize):
    rng = np.random.default_rng(3)
    fmap = rng.normal(size=(7, 5, 6)).astype(dtype)
    fmap[1] = 2.5  # one value: a dark cell
    fmap[2, 0, 0] = np.nan  # a NaN channel
    fmap[3, 1, 1] = np.inf
    order = rng.permutation(7)
    grid = tile_channels(fmap, order=order, normalize=normalize, columns=3)
    want = _reference_tile_values(fmap, order, normalize)
    for i in range(7):
        y, x = grid.cell_origin(i)
        np.testing.assert_array_equal(grid.image[y : y + 5, x : x + 6], want[i])
    rgb = apply_colormap(grid.image, "viridis")
    lut = apply_colormap(np.linspace(0, 1, 256, dtype=np.float32)[None], "viridis")[0]
    finite = np.isfinite(grid.image)
    idx = (np.clip(np.where(finite, grid.image, 0) * 255 + 0.5, 0, 255)).astype(np.uint8)
    gaps = np.isnan(grid.image)
    np.testing.assert_array_equal(rgb[gaps], np.full((gaps.sum(), 3), 255, np.uint8))
    ok = finite
    np.testing.assert_array_equal(rgb[ok], lut[idx[ok]])
