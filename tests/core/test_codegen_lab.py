"""The lab's generated PyTorch, executed: it prints the numbers run_lab and lab_backward compute."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnn_explorer.core.codegen import LabImageSource, lab_code
from cnn_explorer.core.lab import (
    LabSettings,
    course_example,
    default_filters,
    lab_backward,
    run_lab,
    upstream_gradient,
)

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def execute(code: str, tmp_path: Path) -> str:
    script = tmp_path / "lab_code.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def printed(stdout: str) -> dict[str, np.ndarray]:
    """The blocks ``name (shape)`` followed by rows of numbers, as arrays of that shape."""
    blocks: dict[str, np.ndarray] = {}
    name, shape, rows = None, None, []
    for line in [*stdout.splitlines(), "end ()"]:
        if line.startswith("  "):
            rows.append([float(v) for v in line.split()])
            continue
        if name is not None:
            blocks[name] = np.array(rows).reshape(shape)
        head, _, rest = line.rpartition(" (")
        name, shape, rows = head, ast.literal_eval("(" + rest), []
    return blocks


@pytest.mark.parametrize("key", ["conv-4x4", "max-pool-4x4", "avg-pool-4x4", "sum-pool-4x4", "edges-6x6"])
def test_the_course_examples_print_the_labs_numbers(key, tmp_path):
    example = course_example(key)
    result = example.run()
    out = printed(execute(lab_code(example.settings, example.input), tmp_path))
    assert set(out) == {stage.name for stage in result.stages}
    for stage in result.stages:
        assert out[stage.name].shape == stage.output.shape
        assert np.allclose(out[stage.name], stage.output)
    assert np.allclose(out[result.stages[-1].name], example.expected_output)


@pytest.mark.parametrize("key", ["conv-4x4", "max-pool-4x4", "avg-pool-4x4"])
def test_the_backward_code_prints_lab_backwards_gradients(key, tmp_path):
    example = course_example(key)
    result = example.run()
    grads = lab_backward(result, upstream_gradient("ones", result.output.shape))
    out = printed(execute(lab_code(example.settings, example.input, backward=True), tmp_path))
    assert np.allclose(out["gradient at the input"], grads.d_input)
    if grads.d_weight is not None:
        assert np.allclose(out["kernel gradient"].reshape(grads.d_weight.shape), grads.d_weight)
        assert np.allclose(out["bias gradient"].ravel(), grads.d_bias)


def test_a_whole_pipeline_with_a_random_upstream_gradient(tmp_path):
    x = np.arange(36, dtype=np.float64).reshape(6, 6) % 7 - 3
    bank = default_filters(np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]), 1, 3)
    settings = LabSettings(
        kernel=bank.weights[0, 0], padding=1, activation="leaky_relu", activation_param=0.1, pool_mode="max"
    ).with_filters(bank)
    result = run_lab(x, settings)
    up = upstream_gradient("random", result.output.shape, seed=3)
    grads = lab_backward(result, up)
    out = printed(execute(lab_code(settings, x, backward=True, upstream=up), tmp_path))
    assert np.allclose(out["conv"], result.conv)
    assert np.allclose(out["activation"], result.activated)
    assert np.allclose(out["pool"], result.pooled)
    assert np.allclose(out["gradient at the pooling input"], grads.d_activated, atol=1e-5)
    assert np.allclose(out["gradient at the activation input"], grads.d_conv, atol=1e-5)
    assert np.allclose(out["gradient at the input"], grads.d_input, atol=1e-5)
    assert np.allclose(out["kernel gradient"].reshape(grads.d_weight.shape), grads.d_weight, atol=1e-4)


@pytest.mark.parametrize("channels", ["gray", "rgb", "green"])
def test_an_image_is_opened_and_shrunk_as_the_lab_does(channels, tmp_path):
    source = LabImageSource(ASSETS / "chelsea.png", channels, 24)
    settings = LabSettings(kernel=np.array([[0.0, 1], [1, 0]]), activation="tanh", pool_mode="avg")
    result = run_lab(source.array(), settings)
    out = printed(execute(lab_code(settings, source), tmp_path))
    assert np.allclose(out["conv"], result.conv, rtol=1e-5, atol=1e-3)
    assert np.allclose(out["pool"], result.pooled, rtol=1e-5, atol=1e-5)


def test_settings_the_lab_refuses_are_refused_here():
    with pytest.raises(ValueError):
        lab_code(LabSettings(kernel=np.ones((5, 5))), np.ones((3, 3)))
    example = course_example("conv-4x4")
    with pytest.raises(ValueError, match="shape"):
        lab_code(example.settings, example.input, backward=True, upstream=np.ones((2, 2)))
