"""``cnn-explorer lab``: the course's examples through the command line, the backward pass against torch
autograd, one picture per stage, and one clear message (exit 2) for input that cannot work."""

from __future__ import annotations

import argparse
import errno
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cnn_explorer import cli_lab
from cnn_explorer.cli import main
from cnn_explorer.core.lab import COURSE_EXAMPLES

COURSE = "1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16"
EDGE = "; ".join(["10 10 10 0 0 0"] * 6)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    sub = parser.add_subparsers(dest="command")
    cli_lab.register(sub)
    args = parser.parse_args(["lab", *argv])
    return args.func(args)


def lab_json(tmp_path: Path, *argv: str) -> dict:
    out = tmp_path / "lab.json"
    assert run([*argv, "--json", str(out)]) == 0
    return json.loads(out.read_text(encoding="utf-8"))


def t(a, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


# ------------------------------------------------------------------ the course's examples
def test_the_course_convolution_through_the_flags(tmp_path):
    report = lab_json(
        tmp_path, "--matrix", COURSE, "--conv", "0 1; 1 0", "--activation", "none", "--pool", "none"
    )
    (conv,) = report["stages"]
    assert conv["name"] == "conv" and conv["values"] == [[7, 9, 11], [15, 17, 19], [23, 25, 27]]
    assert conv["input_shape"] == [4, 4] and conv["output_shape"] == [3, 3]
    assert conv["size_formula"] == {"rows": "⌊(4 + 2·0 − 2)/1⌋ + 1 = 3", "cols": "⌊(4 + 2·0 − 2)/1⌋ + 1 = 3"}
    assert report["parameters"]["conv"] == 5 and report["parameters"]["conv_formula"] == "2·2·1·1 + 1 = 5"
    assert report["output"]["values"] == conv["values"]


@pytest.mark.parametrize(
    ("mode", "values"),
    [("max", [[6, 8], [14, 16]]), ("avg", [[3.5, 5.5], [11.5, 13.5]]), ("sum", [[14, 22], [46, 54]])],
)
def test_pooling_the_course_matrix_without_a_convolution(tmp_path, mode, values):
    report = lab_json(tmp_path, "--matrix", COURSE, "--conv", "none", "--activation", "none", "--pool", mode)
    (pool,) = report["stages"]
    assert pool["values"] == values and pool["size_formula"]["rows"] == "⌊(4 + 2·0 − 2)/2⌋ + 1 = 2"
    assert report["parameters"] is None and report["settings"]["conv"] is None
    if mode == "max":
        assert pool["winners"] == [[5, 7], [13, 15]]
        assert pool["winner_cells"] == [[[1, 1], [1, 3]], [[3, 1], [3, 3]]]
    else:
        assert "winners" not in pool


@pytest.mark.parametrize(
    ("kernel", "expected"), [("vertical edge", [[0, 30, 30, 0]] * 4), ("horizontal edge", [[0] * 4] * 4)]
)
def test_edge_kernels_on_the_vertical_edge(tmp_path, kernel, expected):
    report = lab_json(tmp_path, "--matrix", EDGE, "--conv", kernel, "--activation", "none", "--pool", "none")
    assert report["output"]["values"] == expected


@pytest.mark.parametrize("example", COURSE_EXAMPLES, ids=lambda e: e.key)
def test_every_course_example_by_its_key(tmp_path, example):
    report = lab_json(tmp_path, "--example", example.key)
    assert report["example"]["key"] == example.key
    assert tuple(report["output"]["shape"]) == example.expected_shape
    if example.expected_output is not None:
        assert np.array_equal(report["output"]["values"], example.expected_output)
    if example.expected_params is not None:
        assert report["parameters"]["conv"] == example.expected_params
    if example.expected_dense_params is not None:
        assert report["parameters"]["dense"] == example.expected_dense_params


def test_lenet_and_the_conv_versus_dense_numbers(tmp_path):
    lenet = lab_json(tmp_path, "--example", "lenet-layer-1")
    assert (
        lenet["output"]["shape"] == [6, 28, 28] and lenet["parameters"]["conv_formula"] == "5·5·1·6 + 6 = 156"
    )
    assert len(lenet["settings"]["conv"]["filter_names"]) == 6
    layer = lab_json(tmp_path, "--example", "conv-vs-dense")
    assert layer["parameters"]["conv_formula"] == "5·5·3·16 + 16 = 1,216"
    assert layer["parameters"]["dense_formula"] == "3,072·500 = 1,536,000"


# ------------------------------------------------------------------ backward
def test_backward_from_one_cell_of_the_course_convolution(tmp_path):
    report = lab_json(
        tmp_path,
        "--matrix",
        COURSE,
        "--conv",
        "0 1; 1 0",
        "--activation",
        "none",
        "--pool",
        "none",
        "--backward",
        "0,0",
    )
    back = report["backward"]
    assert back["upstream"] == "0,0" and back["upstream_values"] == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    # output (0, 0) = x[0,1] + x[1,0]: its gradient reaches exactly those two inputs
    assert back["input_gradient"] == [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert back["weight_gradient"] == [[[[1, 2], [5, 6]]]] and back["bias_gradient"] == [1]
    assert [s["name"] for s in back["stages"]] == ["conv"]


def _torch_gradients(report: dict, upstream: np.ndarray) -> dict[str, np.ndarray]:
    s = report["settings"]
    x = np.asarray(report["input"]["values"], dtype=np.float64)
    xt = t(x[None, None], grad=True)
    conv = s["conv"]
    wt, bt = t(conv["weights"], grad=True), t(conv["biases"], grad=True)
    y = F.conv2d(xt, wt, bt, conv["stride"], conv["padding"], conv["dilation"])
    y.retain_grad()
    name = s["activation"]["name"]
    a = {
        "none": lambda v: v,
        "relu": F.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "softmax": lambda v: F.softmax(v, dim=1),
    }[name](y)
    pool = s["pool"]
    if pool is None:
        out = a
    elif pool["mode"] == "max":
        out = F.max_pool2d(a, pool["size"], pool["stride"], pool["padding"])
    else:
        out = F.avg_pool2d(
            a,
            pool["size"],
            pool["stride"],
            pool["padding"],
            count_include_pad=True,
            divisor_override=None if pool["mode"] == "avg" else 1,
        )
    np.testing.assert_allclose(
        np.asarray(report["output"]["values"]).ravel(), out.detach().numpy().ravel(), rtol=1e-9, atol=1e-12
    )
    (out * t(upstream).reshape(out.shape)).sum().backward()
    return {
        "input": xt.grad.numpy(),
        "weight": wt.grad.numpy(),
        "bias": bt.grad.numpy(),
        "conv": y.grad.numpy(),
    }


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.integers(-9, 9), min_size=36, max_size=36),
    kernel=st.sampled_from(["Sobel x", "Laplacian", "1 -2; 3 0.5", "course example [[0,1],[1,0]]"]),
    filters=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 1),
    activation=st.sampled_from(["none", "relu", "tanh", "sigmoid", "softmax"]),
    pool=st.sampled_from(["max", "avg", "sum", "none"]),
    backward=st.sampled_from(["ones", "random", "0,0"]),
)
def test_backward_through_the_cli_equals_torch_autograd(
    values, kernel, filters, stride, padding, activation, pool, backward
):
    matrix = "; ".join(" ".join(str(v / 2) for v in values[r * 6 : r * 6 + 6]) for r in range(6))
    argv = [
        "--matrix",
        matrix,
        "--conv",
        kernel,
        "--filters",
        str(filters),
        "--stride",
        str(stride),
        "--padding",
        str(padding),
        "--activation",
        activation,
        "--pool",
        pool,
        "--pool-size",
        "2",
        "--backward",
        backward,
        "--seed",
        "3",
    ]
    with tempfile.TemporaryDirectory() as folder:
        report = lab_json(Path(folder), *argv)
    back = report["backward"]
    ref = _torch_gradients(report, np.asarray(back["upstream_values"]))
    tight = {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(np.asarray(back["input_gradient"]).ravel(), ref["input"].ravel(), **tight)
    np.testing.assert_allclose(back["weight_gradient"], ref["weight"], **tight)
    np.testing.assert_allclose(back["bias_gradient"], ref["bias"], **tight)
    conv_stage = next(s for s in back["stages"] if s["name"] == "conv")
    np.testing.assert_allclose(
        np.asarray(conv_stage["input_gradient"]).ravel(), ref["input"].ravel(), **tight
    )
    if activation != "none":
        act_stage = next(s for s in back["stages"] if s["name"] == "activation")
        np.testing.assert_allclose(
            np.asarray(act_stage["input_gradient"]).ravel(), ref["conv"].ravel(), **tight
        )


# ------------------------------------------------------------------ images and pictures
def test_an_rgb_image_with_several_filters_and_one_picture_per_stage(tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(photo)
    pictures = tmp_path / "pictures"
    report = lab_json(
        tmp_path,
        "--image",
        str(photo),
        "--size",
        "20",
        "--channels",
        "rgb",
        "--conv",
        "Sobel x",
        "--filters",
        "4",
        "--padding",
        "1",
        "--backward",
        "random",
        "--png",
        str(pictures),
    )
    assert report["input"]["shape"] == [3, 20, 15]
    assert [s["output_shape"] for s in report["stages"]] == [[4, 20, 15], [4, 20, 15], [4, 10, 7]]
    assert report["parameters"]["conv_formula"] == "3·3·3·4 + 4 = 112"
    assert report["settings"]["conv"]["filter_names"][:2] == ["Sobel x", "Sobel y"]
    assert np.asarray(report["backward"]["weight_gradient"]).shape == (4, 3, 3, 3)
    names = sorted(p.name for p in pictures.iterdir())
    assert names == sorted(
        [
            "input.png",
            "1_conv.png",
            "2_activation.png",
            "3_pool.png",
            "kernel_gradient.png",
            "1_conv_input_gradient.png",
            "2_activation_input_gradient.png",
            "3_pool_input_gradient.png",
        ]
    )
    conv = np.asarray(Image.open(pictures / "1_conv.png"))
    assert conv.ndim == 3 and conv.shape[2] == 3 and conv.shape[1] >= cli_lab.MIN_PICTURE_WIDTH


def test_softmax_on_one_channel_is_noted(tmp_path, capsys):
    report = lab_json(tmp_path, "--matrix", COURSE, "--activation", "softmax", "--pool", "none")
    assert report["output"]["values"] == [[1, 1, 1]] * 3
    assert "single channel" in report["messages"][0] and "single channel" in capsys.readouterr().err


def test_lab_is_a_command_of_the_main_parser(tmp_path, capsys):
    out = tmp_path / "lab.json"
    assert main(["lab", "--json", str(out)]) == 0  # the course matrix and kernel by default
    assert json.loads(out.read_text())["input"]["source"] == "4×4 matrix 1…16"
    assert "wrote" in capsys.readouterr().out


# ------------------------------------------------------------------ bad input: exit 2, one message
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--matrix", "1 2; 3"], "row 2 has 1 numbers but row 1 has 2"),
        (["--matrix", "1 x; 3 4"], "“x” in row 1 is not a number"),
        (["--conv", "Gaussian blur 5×5"], "larger than the padded input"),
        (["--conv", "sobel"], "unknown kernel 'sobel'"),
        (["--conv", "1 2 3 4 5 6 7 8"], "a kernel is 1×1 to 7×7"),
        (["--filters", "9"], "--filters must be 1 to 8"),
        (["--stride", "0"], "stride must be at least 1"),
        (["--pool-size", "3", "--pool-padding", "2"], "pool padding"),
        (["--backward", "5,5"], "outside the 1×1 output"),
        (["--backward", "up"], "--backward must be ones, random"),
        (["--example", "conv-4x4", "--conv", "none"], "leave out --conv"),
        (["--example", "lenet"], "unknown example 'lenet'"),
        (["--image", "missing.png"], "missing.png"),
        (["--size", "10"], "--size and --channels go with --image"),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(tmp_path, capsys, argv, message):
    out = tmp_path / "lab.json"
    assert run([*argv, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnn-explorer: ") and message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_json_into_a_folder_or_a_file_path_is_refused(tmp_path, capsys):
    assert run(["--json", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run(["--json", str(blocker / "lab.json")]) == 2
    assert "it is a file, not a folder" in capsys.readouterr().err


def test_a_full_disk_exits_1_and_ctrl_c_130(tmp_path, monkeypatch, capsys):
    from cnn_explorer.core import runs

    def full(*_args, **_kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runs, "write_json_atomic", full)
    assert run(["--json", str(tmp_path / "lab.json")]) == 1
    assert "No space left" in capsys.readouterr().err

    def interrupted(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_lab, "run_lab", interrupted)
    assert run(["--json", str(tmp_path / "lab.json")]) == 130
