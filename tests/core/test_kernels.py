"""Kernel presets do what their names promise, and custom kernels are checked."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_explorer.core import kernels
from cnn_explorer.core.ops import conv2d

# A dark left half and a bright right half: one vertical edge, brighter to the right.
STEP_LR = np.array([[0, 0, 0, 9, 9, 9]] * 6, dtype=float)


def test_issue_presets_are_all_there():
    wanted = [
        "identity", "box blur", "Gaussian blur", "sharpen", "Sobel x", "Sobel y", "Prewitt x", "Prewitt y",
        "Laplacian", "emboss", "vertical edge", "horizontal edge", kernels.COURSE_KERNEL,
    ]  # fmt: skip
    for name in wanted:
        assert name in kernels.KERNEL_PRESETS


def test_every_preset_is_a_valid_kernel_with_a_description():
    for name, preset in kernels.KERNEL_PRESETS.items():
        k = kernels.validate_kernel(kernels.kernel_preset(name))
        assert min(k.shape) >= 1 and max(k.shape) <= 7
        assert preset.description


def test_identity_returns_the_input():
    x = np.random.default_rng(0).normal(size=(6, 7))
    assert np.array_equal(conv2d(x, kernels.kernel_preset("identity"), padding=1), x)


@pytest.mark.parametrize("name", ["box blur", "Gaussian blur", "Gaussian blur 5×5"])
def test_blurs_keep_a_flat_image_flat(name):
    k = kernels.kernel_preset(name)
    assert k.sum() == pytest.approx(1.0)
    out = conv2d(np.full((8, 8), 5.0), k)
    np.testing.assert_allclose(out, 5.0)


@pytest.mark.parametrize("name", ["Sobel x", "Prewitt x"])
def test_x_derivatives_are_positive_where_it_gets_brighter_to_the_right(name):
    out = conv2d(STEP_LR, kernels.kernel_preset(name))
    assert out[:, 1:3].min() > 0  # the windows straddling the edge
    assert np.all(out[:, [0, 3]] == 0)  # flat areas give nothing


@pytest.mark.parametrize("name", ["Sobel y", "Prewitt y"])
def test_y_derivatives_see_horizontal_edges_only(name):
    k = kernels.kernel_preset(name)
    assert np.all(conv2d(STEP_LR, k) == 0)
    assert conv2d(STEP_LR.T, k)[1:3].min() > 0


def test_vertical_and_horizontal_edge_kernels():
    edge = kernels.input_preset("6×6 vertical edge")  # bright left, dark right
    v = conv2d(edge, kernels.kernel_preset("vertical edge"))
    assert np.array_equal(v, [[0, 30, 30, 0]] * 4)  # the classic course result
    assert np.all(conv2d(edge, kernels.kernel_preset("horizontal edge")) == 0)
    assert np.array_equal(
        conv2d(edge.T, kernels.kernel_preset("horizontal edge")), np.transpose([[0, 30, 30, 0]] * 4)
    )


def test_laplacian_and_sharpen_on_flat_areas():
    flat = np.full((5, 5), 3.0)
    assert np.all(conv2d(flat, kernels.kernel_preset("Laplacian")) == 0)
    assert np.all(conv2d(flat, kernels.kernel_preset("sharpen")) == 3)


def test_preset_arrays_are_copies():
    k = kernels.kernel_preset("Sobel x")
    k[:] = 0
    assert kernels.kernel_preset("Sobel x")[0, 0] == -1


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="Sobel x"):
        kernels.kernel_preset("Sobel z")
    with pytest.raises(ValueError, match="4×4 matrix"):
        kernels.input_preset("nope")


@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (1, 7), (3, 5)])
def test_custom_kernels_from_1x1_to_7x7(shape):
    k = kernels.validate_kernel(np.ones(shape, dtype=int).tolist())
    assert k.shape == shape and k.dtype == np.float64


@pytest.mark.parametrize(
    ("values", "words"),
    [
        (np.ones((8, 8)), "got 8×8"),
        (np.ones((0, 3)), "got 0×3"),
        (np.ones((3, 3, 3)), "2-D grid"),
        ([[1.0, np.nan]], "finite"),
    ],
)
def test_validate_kernel_rejects(values, words):
    with pytest.raises(ValueError, match=words):
        kernels.validate_kernel(values)


def test_input_presets():
    assert np.array_equal(kernels.input_preset(kernels.COURSE_MATRIX), np.arange(1, 17).reshape(4, 4))
    for name in kernels.INPUT_PRESETS:
        a = kernels.input_preset(name)
        assert a.ndim == 2 and max(a.shape) <= 16  # small enough to show numbers in every cell
