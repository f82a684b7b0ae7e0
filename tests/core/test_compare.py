"""Compare mode's core (core/explorer/compare.py) on real models and a real fine-tuned run."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.compare import (
    CompareError,
    PairingKind,
    SpecKind,
    can_compare,
    difference_map,
    pair_layers,
    resolve_spec,
    weight_changes,
)
from cnn_explorer.core.layers import layer_table
from cnn_explorer.core.training import TrainConfig, fit, load_run_model, run_to_end

RUN_NAME = "20260101-120000_efficientnet_lite0_feature-extractor"
CLASSES = ["bird", "elephant", "giraffe"]  # tiny_folder's


@pytest.fixture(scope="module")
def feature_run(make_feature_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch feature-extractor run of the offline EfficientNet-Lite0 at 64×64 (a few seconds)."""
    return make_feature_run(tmp_path_factory.mktemp("compare") / RUN_NAME)


@pytest.fixture(scope="module")
def lite0() -> zoo.LoadedModel:
    return zoo.load_model("efficientnet_lite0", allow_download=False)


@pytest.fixture(scope="module")
def lenet() -> zoo.LoadedModel:
    return zoo.load_model("lenet5", allow_download=False)


def table_of(loaded: zoo.LoadedModel):
    return layer_table(loaded.model, loaded.preprocess.crop, in_channels=loaded.preprocess.channels)


def relative_change(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """‖B − A‖ / ‖A‖ of the concatenated tensors, straight from torch."""
    va = torch.cat([t.detach().reshape(-1).double() for t in a])
    vb = torch.cat([t.detach().reshape(-1).double() for t in b])
    return float(torch.linalg.vector_norm(vb - va) / torch.linalg.vector_norm(va))


def scripted_classifier(path: Path) -> Path:
    """A TorchScript model that takes ImageNet-sized batches and gives 4 class scores."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript; people still have it
        model = torch.jit.script(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4)))
    model.save(str(path))
    return path


# -- pairing layers --------------------------------------------------------------------------------------


def test_a_fine_tuned_model_pairs_with_its_start_by_name(feature_run: Path, lite0: zoo.LoadedModel):
    tuned = load_run_model(feature_run)
    names_a, names_b = table_of(lite0).names(), table_of(tuned).names()  # 224 px and 64 px, heads differ
    pairing = pair_layers(names_a, names_b)
    assert pairing.kind is PairingKind.BY_NAME and pairing.by_name
    assert pairing.label == "layers paired by name"
    assert all(pairing.partner_of_a(i) == i for i in range(len(names_a)))
    assert all(pairing.partner_of_b(j) == j for j in range(len(names_b)))
    assert pairing.pairs() == [(i, i) for i in range(len(names_a))]


def test_different_architectures_pair_by_relative_depth(lenet: zoo.LoadedModel, lite0: zoo.LoadedModel):
    names_a, names_b = table_of(lenet).names(), table_of(lite0).names()
    n_a, n_b = len(names_a), len(names_b)
    pairing = pair_layers(names_a, names_b)
    assert pairing.kind is PairingKind.BY_DEPTH and not pairing.by_name
    assert pairing.label == "different architectures: layers paired by relative depth"
    partners = [pairing.partner_of_a(i) for i in range(n_a)]
    assert partners[0] == 0 and partners[-1] == n_b - 1  # first with first, last with last
    assert partners == [round(i * (n_b - 1) / (n_a - 1)) for i in range(n_a)]
    assert partners == sorted(partners)
    # back from B: the nearest A layer in relative depth, and a round trip returns to where it started
    for j in range(n_b):
        i = pairing.partner_of_b(j)
        assert abs(i / (n_a - 1) - j / (n_b - 1)) <= 0.5 / (n_a - 1) + 1e-12
    assert all(pairing.partner_of_b(partners[i]) == i for i in range(n_a))
    # short lists, worked by hand: 3 layers against 5
    assert pair_layers(["a", "b", "c"], ["v", "w", "x", "y", "z"]).pairs() == [(0, 0), (1, 2), (2, 4)]
    five_to_three = pair_layers(["v", "w", "x", "y", "z"], ["a", "b", "c"])
    assert [five_to_three.partner_of_a(i) for i in range(5)] == [0, 1, 1, 2, 2]  # halves round up
    assert [five_to_three.partner_of_b(j) for j in range(3)] == [0, 2, 4]


def test_layers_without_a_table_pair_with_nothing(tmp_path: Path):
    script = zoo.load_model_file(scripted_classifier(tmp_path / "net.pt"), trust_code=True)
    assert layer_table(script.model, 224).names() == []  # TorchScript shows no layers
    both = pair_layers([], [])
    assert both.kind is PairingKind.NONE and not both.by_name
    assert both.pairs() == [] and "no layers" in both.label
    one = pair_layers(["c1", "s2"], [])
    assert one.kind is PairingKind.NONE
    assert one.partner_of_a(0) is None and one.pairs() == []
    assert pair_layers([], ["x"]).partner_of_b(0) is None
    with pytest.raises(IndexError):
        one.partner_of_a(2)
    with pytest.raises(IndexError):
        pair_layers(["a"], ["a"]).partner_of_b(-1)


# -- weight changes --------------------------------------------------------------------------------------


def test_identical_models_change_nothing(lite0: zoo.LoadedModel):
    table = table_of(lite0)
    changes = weight_changes(lite0.model, copy.deepcopy(lite0.model), table)
    assert changes and all(c.relative_change == 0.0 and c.note == "" for c in changes)
    expected = [r.name for r in table if r.kind == "layer" and r.call == 1 and r.params > 0]
    assert [c.layer for c in changes] == expected  # no blocks, no repeated calls ("#2")
    assert sum(c.params for c in changes) == sum(p.numel() for p in lite0.model.parameters())


def test_a_feature_extractor_run_changes_only_its_head(feature_run: Path, lite0: zoo.LoadedModel):
    tuned = load_run_model(feature_run)
    changes = weight_changes(lite0.model, tuned.model, table_of(lite0))
    head = [c for c in changes if c.layer == "_fc"]
    assert len(head) == 1 and math.isnan(head[0].relative_change)
    assert head[0].note == "new head: 1000→3 outputs" and not head[0].measured
    backbone = [c for c in changes if c.layer != "_fc"]
    assert len(backbone) > 90
    assert all(c.relative_change == 0.0 and c.unchanged for c in backbone)  # exactly: they were frozen


def test_changed_layers_measure_what_torch_measures(lenet: zoo.LoadedModel):
    tuned = copy.deepcopy(lenet.model)
    with torch.no_grad():
        tuned.c3.weight.mul_(1.1)
        tuned.f6.bias.add_(0.5)
    changes = {c.layer: c for c in weight_changes(lenet.model, tuned, table_of(lenet))}
    assert list(changes) == ["c1", "c3", "c5", "f6", "output"]
    a, b = lenet.model, tuned
    assert changes["c3"].relative_change == pytest.approx(
        relative_change([a.c3.weight, a.c3.bias], [b.c3.weight, b.c3.bias]), rel=1e-12
    )
    assert changes["f6"].relative_change == pytest.approx(
        relative_change([a.f6.weight, a.f6.bias], [b.f6.weight, b.f6.bias]), rel=1e-12
    )
    assert changes["f6"].relative_change > 0 and 0.09 < changes["c3"].relative_change < 0.1
    assert changes["c3"].params == a.c3.weight.numel() + a.c3.bias.numel()
    assert [changes[n].relative_change for n in ("c1", "c5", "output")] == [0.0, 0.0, 0.0]


def test_layers_missing_or_reshaped_in_b_are_not_measured(lenet: zoo.LoadedModel, lite0: zoo.LoadedModel):
    table = table_of(lenet)
    across = weight_changes(lenet.model, lite0.model, table)
    assert [c.note for c in across][:2] == ["no layer 'c1' in B", "no layer 'c3' in B"]
    assert all(math.isnan(c.relative_change) for c in across)

    reshaped = copy.deepcopy(lenet.model)
    reshaped.c3 = nn.Conv2d(6, 16, 3)
    notes = {c.layer: c.note for c in weight_changes(lenet.model, reshaped, table)}
    assert notes["c3"] == "other shape in B: weight 16×6×5×5 → 16×6×3×3"
    assert notes["c1"] == ""

    with pytest.raises(ValueError, match="does not belong to model A"):
        weight_changes(lite0.model, lenet.model, table)


def test_difference_map_is_b_minus_a():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(7, 9)).astype(np.float16)
    b = rng.normal(size=(7, 9)).astype(np.float16)
    diff = difference_map(a, b)
    assert diff.dtype == np.float32 and diff.shape == (7, 9)
    np.testing.assert_array_equal(diff, b.astype(np.float32) - a.astype(np.float32))
    assert not difference_map(a, a).any()
    with pytest.raises(ValueError, match=r"\(7, 9\).*\(8, 8\)"):
        difference_map(a, np.zeros((8, 8), np.float16))


# -- SPECs -------------------------------------------------------------------------------------------------


def test_a_zoo_name_gives_its_pretrained_or_untrained_model():
    lite = resolve_spec("efficientnet_lite0", allow_download=False, trust_code=False)
    assert lite.kind is SpecKind.ZOO and lite.loaded.weights == "package"
    assert lite.titled("A") == "A: EfficientNet-Lite0 (pretrained)"
    lenet = resolve_spec("lenet5", allow_download=False, trust_code=False)
    assert lenet.label == "LeNet-5 (pretrained)" and lenet.loaded.trained  # shipped, trained on digits
    squeeze = resolve_spec("squeezenet1_1", allow_download=False, trust_code=False)
    assert squeeze.label == "SqueezeNet 1.1 (untrained)" and not squeeze.loaded.trained


def test_a_run_folder_and_pretrained_its_start(feature_run: Path):
    tuned = resolve_spec(str(feature_run), partner="pretrained", allow_download=False, trust_code=False)
    assert tuned.kind is SpecKind.RUN
    assert tuned.titled("B") == f"B: run {RUN_NAME}"
    assert tuned.loaded.categories == CLASSES and tuned.loaded.preprocess.crop == 64

    start = resolve_spec("pretrained", partner=str(feature_run), allow_download=False, trust_code=False)
    assert start.kind is SpecKind.PRETRAINED and start.notes == ()
    assert start.titled("A") == "A: EfficientNet-Lite0 (pretrained)"
    assert start.loaded.info.name == "efficientnet_lite0" and start.loaded.num_classes == 1000


def test_pretrained_needs_a_run_folder_on_the_other_side(tmp_path: Path, feature_run: Path):
    for partner in (None, "lenet5", "pretrained", str(tmp_path), str(feature_run / "best.pt")):
        with pytest.raises(CompareError, match="not a run folder"):
            resolve_spec("pretrained", partner=partner, allow_download=False, trust_code=False)


def test_pretrained_says_when_the_start_was_random(tiny_folder: Path, tmp_path: Path):
    run = tmp_path / "lenet-run"
    config = TrainConfig(
        data=str(tiny_folder),
        model="lenet5",
        strategy="scratch",
        epochs=1,
        batch_size=8,
        allow_download=False,
    )
    run_to_end(fit(config, run))
    start = resolve_spec("pretrained", partner=str(run), allow_download=False, trust_code=False)
    assert start.label == "LeNet-5 (pretrained)"  # the shipped digits model, but the run did not start there
    assert len(start.notes) == 1 and "trained from scratch" in start.notes[0]


def test_weights_files_of_every_kind(tmp_path: Path, feature_run: Path, lenet: zoo.LoadedModel):
    pth = tmp_path / "lenet.pth"
    torch.save(lenet.model.state_dict(), pth)
    from_pth = resolve_spec(str(pth), allow_download=False, trust_code=False)
    assert from_pth.kind is SpecKind.FILE and from_pth.label == "LeNet-5 from lenet.pth"
    assert from_pth.loaded.info.name == "lenet5"

    st = tmp_path / "lenet.safetensors"
    save_file({k: v.contiguous() for k, v in lenet.model.state_dict().items()}, str(st))
    assert resolve_spec(str(st), allow_download=False, trust_code=False).loaded.info.name == "lenet5"

    ckpt = resolve_spec(str(feature_run / "best.pt"), allow_download=False, trust_code=False)
    assert ckpt.kind is SpecKind.FILE and ckpt.loaded.categories == CLASSES
    assert ckpt.label == "EfficientNet-Lite0 from best.pt"


def test_bad_specs_say_what_is_wrong(tmp_path: Path):
    def resolve(spec: str):
        return resolve_spec(spec, allow_download=False, trust_code=False)

    with pytest.raises(CompareError, match=r"'no_such_net' is neither a model name.*lenet5"):
        resolve("no_such_net")
    with pytest.raises(CompareError, match=r"missing\.pt: no such file"):
        resolve(str(tmp_path / "missing.pt"))
    with pytest.raises(CompareError, match="empty"):
        resolve("  ")
    photos = tmp_path / "photos"
    photos.mkdir()
    with pytest.raises(CompareError, match="photos is a folder but not a run folder"):
        resolve(str(photos))
    notes = tmp_path / "notes.pt"
    notes.write_text("not weights\n")
    with pytest.raises(zoo.ModelLoadError, match=r"notes\.pt.*text file"):
        resolve(str(notes))


def test_torchscript_needs_trust_and_cannot_stand_beside_layers(tmp_path: Path, lite0: zoo.LoadedModel):
    path = scripted_classifier(tmp_path / "net.pt")
    with pytest.raises(zoo.UntrustedCodeError):
        resolve_spec(str(path), allow_download=False, trust_code=False)
    script = resolve_spec(str(path), allow_download=False, trust_code=True)
    assert script.kind is SpecKind.FILE and script.loaded.num_classes == 4

    reason = can_compare(script.loaded, lite0)
    assert reason is not None and reason.startswith("A (net) is a TorchScript program")
    reason = can_compare(lite0, script.loaded)
    assert reason is not None and reason.startswith("B (net) is a TorchScript program")
    reason = can_compare(script.loaded, script.loaded)
    assert reason is not None and reason.startswith("Neither model shows its layers")


def test_grayscale_and_rgb_models_and_a_fine_tuned_head_can_be_compared(
    lenet: zoo.LoadedModel, lite0: zoo.LoadedModel, feature_run: Path
):
    assert lenet.preprocess.channels == 1 and lite0.preprocess.channels == 3
    assert can_compare(lenet, lite0) is None  # each side preprocesses the image for itself
    assert can_compare(lite0, load_run_model(feature_run)) is None


def test_pretrained_of_a_model_without_weights_here_says_it_is_another_random_model(tmp_path: Path):
    import json

    run = tmp_path / "squeeze-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "squeezenet1_1", "strategy": "fine-tune-all"}))
    start = resolve_spec("pretrained", partner=str(run), allow_download=False, trust_code=False)
    assert start.label == "SqueezeNet 1.1 (untrained)"
    assert len(start.notes) == 1 and "another random model" in start.notes[0]
