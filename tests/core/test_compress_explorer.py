"""A compressed model in the explorer: an int8 LeNet-5 reopens with its layers, its parameters and
multiply-adds (packed int8 weights counted), float activations and its filters shown dequantized."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_explorer.core import zoo
from cnn_explorer.core.compress import CompressSource, CompressSpec, run_compression
from cnn_explorer.core.explorer.layer_facts import FilterKind, layer_facts
from cnn_explorer.core.explorer.tasks import ModelSource, run_model
from cnn_explorer.core.images import default_sample, open_image


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("int8")
    report = run_compression(
        CompressSource(model="lenet5"), CompressSpec(quantize="int8-static", latency_runs=2), out
    )
    return out / report.variant("int8-static").file


def test_an_int8_model_opens_with_its_layers(int8_file: Path):
    picture = open_image(default_sample()).pixels
    fp32 = run_model(ModelSource.zoo("lenet5"), None, picture, allow_download=False)
    int8 = run_model(ModelSource.file(int8_file), None, picture, allow_download=False)
    assert "dequantized" in int8.loaded.weights_detail
    a, b = fp32.exploration, int8.exploration
    assert b.table.names() == a.table.names()
    assert (b.table.total_params, b.table.total_macs) == (a.table.total_params, a.table.total_macs)
    assert [r.kernel for r in b.table.rows] == [r.kernel for r in a.table.rows]
    for row in b.table.rows:  # every step's map is there, as float values
        act = b.capture[row.name]
        assert act.data is not None and act.data.dtype in (np.float16, np.float32)
    c1_a, c1_b = a.capture["c1"].data.astype(np.float32), b.capture["c1"].data.astype(np.float32)
    assert np.corrcoef(c1_a.ravel(), c1_b.ravel())[0, 1] > 0.99  # int8 C1 sees what fp32 C1 sees

    # The first convolution stays float32 (it sees the raw pixels): its filters are fp32's own.
    c1 = layer_facts(int8.loaded.model, b.table.row("c1"))
    np.testing.assert_array_equal(c1.weights, layer_facts(fp32.loaded.model, a.table.row("c1")).weights)
    facts = layer_facts(int8.loaded.model, b.table.row("c3"))
    assert facts.filter_kind is FilterKind.CONV and facts.weights.shape == (16, 6, 5, 5)
    assert "int8" in facts.params_text and "dequantized" in facts.caption and not facts.note
    reference = layer_facts(fp32.loaded.model, a.table.row("c3")).weights
    step = np.abs(reference).max(axis=(1, 2, 3)) / 127  # per-channel int8 step, at worst
    assert (np.abs(facts.weights - reference).max(axis=(1, 2, 3)) <= step + 1e-6).all()
    assert zoo.load_model_file(int8_file).num_classes == 10
