"""The design calculators against numbers worked out by hand and the papers' own examples."""

from __future__ import annotations

import pytest

from cnn_explorer.core import design
from cnn_explorer.core.ops import conv_macs


def test_two_stacked_3x3_against_one_5x5_inception_v3():
    d = design.stacked_vs_single(64, 64, kernel=5, height=10)
    assert d.baseline.params == 25 * 64 * 64 == 102_400
    assert d.alternative.params == 2 * 9 * 64 * 64 == 73_728
    assert d.params_ratio == pytest.approx(18 / 25)  # Inception v3: "28% fewer"
    assert d.baseline.macs == 102_400 * 100 and d.alternative.macs == 73_728 * 100
    assert d.formula == (
        "one 5×5: 5·5·64·64 = 102,400 vs two 3×3: 3·3·64·64 + 3·3·64·64 = 73,728 (28% fewer parameters)"
    )
    assert "1 + 2·(3 − 1) = 5" in d.note


def test_stacked_3x3_with_different_channels_and_biases():
    d = design.stacked_vs_single(3, 16, kernel=7, height=4, width=5, bias=True)
    assert d.baseline.params == 7 * 7 * 3 * 16 + 16 == 2_368
    assert d.alternative.params == (9 * 3 * 16 + 16) + 2 * (9 * 16 * 16 + 16) == 5_088  # three layers
    assert d.alternative.name == "three 3×3" and d.params_saved < 0
    assert "more parameters" in d.formula
    assert d.baseline.macs == 7 * 7 * 3 * 16 * 20


def test_stacked_3x3_needs_an_odd_kernel():
    with pytest.raises(ValueError, match="odd sizes"):
        design.stacked_vs_single(8, 8, kernel=6)


def test_k_by_1_then_1_by_k():
    d = design.asymmetric_vs_square(32, 32, kernel=3, height=8)
    assert d.baseline.params == 9 * 32 * 32 and d.alternative.params == 6 * 32 * 32  # 33% fewer
    assert d.params_saved == pytest.approx(1 / 3)
    assert d.alternative.formula == "3·1·32·32 + 1·3·32·32 = 6,144"
    seven = design.asymmetric_vs_square(64, 64, kernel=7)
    assert seven.params_ratio == pytest.approx(14 / 49)


def test_depthwise_separable_mobilenet():
    d = design.depthwise_separable(32, 64, kernel=3, height=112)
    assert d.baseline.params == 3 * 3 * 32 * 64 == 18_432
    assert d.alternative.params == 3 * 3 * 32 + 32 * 64 == 2_336
    assert d.alternative.formula == "3·3·32 + 32·64 = 2,336"
    assert d.baseline.macs == 18_432 * 112 * 112
    assert d.alternative.macs == (3 * 3 * 32 + 32 * 64) * 112 * 112
    assert d.macs_ratio == pytest.approx(1 / 64 + 1 / 9)  # MobileNet's 1/N + 1/D_K²
    assert "1/64 + 1/9 = 0.127" in d.note


def test_one_by_one_bottleneck_the_notes_example():
    # 28×28×192 → 5×5, 32 filters: 120,422,400 multiply-adds; through 16 channels first: 12,443,648
    d = design.bottleneck(192, 32, kernel=5, mid_channels=16, height=28)
    assert d.baseline.macs == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert d.alternative.macs == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648
    assert d.baseline.params == 153_600 and d.alternative.params == 192 * 16 + 25 * 16 * 32 == 15_872
    assert design.bottleneck(256, 256).alternative.name == "1×1 bottleneck (64) + 3×3"  # C_in/4 by default


def test_receptive_field_of_stacked_layers():
    rf = design.receptive_field(3, kernel=3)
    assert rf.sizes == (3, 5, 7) and rf.size == 7 and rf.formula == "r = 1 + 3·(3 − 1) = 7"
    strided = design.receptive_field(3, kernel=3, stride=2)
    assert strided.sizes == (3, 7, 15) and strided.jumps == (2, 4, 8)
    assert strided.formula == "r = 1 + (3 − 1)·(1 + 2 + 4) = 15"
    dilated = design.receptive_field(2, kernel=3, dilation=2)
    assert dilated.sizes == (5, 9) and dilated.formula == "r = 1 + 2·(2·(3 − 1)) = 9"


@pytest.mark.parametrize(
    "call",
    [
        lambda: design.receptive_field(0),
        lambda: design.depthwise_separable(0, 8),
        lambda: design.bottleneck(8, 8, mid_channels=0),
        lambda: design.asymmetric_vs_square(8, 8, height=2.5),
    ],
)
def test_calculators_reject_nonsense_with_a_message(call):
    with pytest.raises(ValueError, match="must be a whole number"):
        call()


def test_conv_macs():
    assert conv_macs(3, 16, 32, (10, 12)) == 3 * 3 * 16 * 32 * 120
    assert conv_macs(3, 16, 16, 10, groups=16) == 3 * 3 * 16 * 100  # depthwise
    with pytest.raises(ValueError, match="do not split into 3 groups"):
        conv_macs(3, 16, 16, 10, groups=3)
