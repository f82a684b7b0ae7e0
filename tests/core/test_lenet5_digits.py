"""The bundled LeNet-5 reads digits: its weights load offline, it scores >= 97% on the held-out UCI digits,
and a digit of any size and either polarity reaches it through one preprocessing function."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnn_explorer import cli_explore
from cnn_explorer.core import zoo
from cnn_explorer.core.digits import digit_to_input, is_dark_on_light

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("train_lenet5", ROOT / "scripts" / "train_lenet5.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("train_lenet5", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _script()


@pytest.fixture(scope="module")
def held_out(script):
    images, labels = script.load_digits()
    _, test_idx = script.stratified_split(labels)
    return images[test_idx], labels[test_idx]


@pytest.fixture(scope="module")
def lenet():
    return zoo.load_model("lenet5", allow_download=False)


def _render(digit: np.ndarray, size: int, *, dark_on_light: bool) -> np.ndarray:
    """A UCI 8×8 digit (0..16) drawn as a size×size uint8 picture, light on dark or inverted."""
    plane = Image.fromarray((digit.astype(np.float32) * (255 / 16)).round().astype(np.uint8))
    big = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
    return 255 - big if dark_on_light else big


def _top1(loaded: zoo.LoadedModel, pixels: np.ndarray) -> int:
    with torch.no_grad():
        return int(loaded.model(loaded.preprocess(pixels)[None]).argmax(1))


def test_bundled_weights_load_offline_as_a_trained_digit_reader(monkeypatch):
    monkeypatch.setenv(zoo.OFFLINE_ENV, "1")
    loaded = zoo.load_model("lenet5", allow_download=False)
    assert loaded.weights == "package" and loaded.trained and loaded.badge == "pretrained · package"
    assert loaded.categories == [str(d) for d in range(10)]
    assert loaded.preprocess == zoo.LENET5_DIGITS_PREPROCESS and loaded.preprocess.digit
    assert "lenet5_digits.safetensors" in loaded.weights_detail and "%" in loaded.weights_detail
    assert zoo.weights_status("lenet5")[0] == "package"
    assert zoo.Preprocess.from_dict(loaded.preprocess.to_dict()) == loaded.preprocess


def test_from_scratch_stays_random_with_the_plain_preprocessing():
    built = zoo.build_model("lenet5", class_names=["bird", "cat"], pretrained=False)
    assert built.weights == "untrained" and built.preprocess == zoo.LENET5_PREPROCESS
    assert built.categories == ["bird", "cat"]


def test_held_out_accuracy_is_at_least_97_percent(lenet, held_out, script):
    images, labels = held_out
    x = script.to_inputs(images)
    with torch.no_grad():
        pred = lenet.model(x).argmax(1).numpy()
    acc = float((pred == labels).mean())
    assert acc >= 0.97
    report = zoo.lenet5_report()
    assert report["test_accuracy"] == pytest.approx(acc, abs=1e-4)
    assert report["split_seed"] == script.SPLIT_SEED and report["test_size"] == len(labels)


def test_split_is_stratified_and_fixed(script):
    _, labels = script.load_digits()
    train, test = script.stratified_split(labels)
    assert len(set(train) & set(test)) == 0 and len(train) + len(test) == len(labels)
    assert np.array_equal(test, script.stratified_split(labels)[1])
    per_class = np.bincount(labels[test], minlength=10) / np.bincount(labels, minlength=10)
    assert np.allclose(per_class, 0.2, atol=0.01)


def test_digit_to_input_gives_light_strokes_on_black_whatever_the_polarity(held_out):
    digit = held_out[0][0]
    light = digit_to_input(_render(digit, 28, dark_on_light=False))
    dark = digit_to_input(_render(digit, 200, dark_on_light=True))
    for plane in (light, dark, digit_to_input(digit)):
        assert plane.shape == (32, 32) and plane.dtype == np.float32
        assert 0.8 < plane.max() <= 1.0 and plane.min() == 0.0
        assert plane[0].max() == plane[-1].max() == plane[:, 0].max() == plane[:, -1].max() == 0.0
    assert is_dark_on_light(_render(digit, 200, dark_on_light=True)) and not is_dark_on_light(digit)
    assert float(np.abs(light - dark).mean()) < 0.05  # the same picture, up to resampling
    assert not digit_to_input(np.full((50, 70), 200, np.uint8)).any()  # blank: nothing to read


def test_a_big_dark_on_light_digit_reads_like_a_small_light_on_dark_one(lenet, held_out):
    images, labels = held_out
    n = len(labels)
    small = [_top1(lenet, _render(d, 28, dark_on_light=False)) for d in images[:n]]
    rgb = [np.repeat(_render(d, 200, dark_on_light=True)[:, :, None], 3, axis=2) for d in images[:n]]
    big = [_top1(lenet, p) for p in rgb]
    assert small == big
    assert np.mean(np.array(big) == labels[:n]) >= 0.97


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cnn-explorer")
    cli_explore.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_inspect_reads_a_digit_png(lenet, held_out, tmp_path, capsys):
    images, labels = held_out
    i = next(k for k in range(len(labels)) if _top1(lenet, images[k]) == labels[k] and labels[k] == 7)
    path = tmp_path / "seven.png"
    Image.fromarray(_render(images[i], 200, dark_on_light=True)).convert("RGB").save(path)
    out = tmp_path / "out"
    assert _cli(["inspect", str(path), "--model", "lenet5", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads((out / "top5.json").read_text())
    assert report["weights"] == "package" and report["predictions"][0]["name"] == "7"
    assert "UNTRAINED" not in captured.err
    seen = np.asarray(Image.open(out / "input.png"))
    assert seen.shape[:2] == (32, 32) and seen[0].max() == 0  # the centred, light-on-dark plane


def test_models_lists_lenet5_as_trained(capsys):
    assert _cli(["models"]) == 0
    line = next(s for s in capsys.readouterr().out.splitlines() if s.startswith("lenet5"))
    assert " package " in line and " untrained " not in line and "UCI" in line


def test_augmented_fine_tuning_sees_digits_as_the_model_was_trained():
    """The augmented training transform centres and scales a digit first, as the plain one does."""
    from cnn_explorer.core.data import Augmentation, make_transform
    from cnn_explorer.core.digits import digit_to_input

    pixels = np.full((200, 160), 255, np.uint8)
    pixels[40:160, 70:90] = 0  # a dark "1" on white paper
    plain = zoo.LENET5_DIGITS_PREPROCESS(pixels)
    augmented = make_transform(zoo.LENET5_DIGITS_PREPROCESS, Augmentation.none())(pixels)
    assert torch.equal(augmented, plain)  # no augmentation: the model's own preprocessing
    still = Augmentation(random_resized_crop=False, flip=False)
    still.rotation = 0.001  # "on", but it moves nothing: the output must be the digit's input
    out = make_transform(zoo.LENET5_DIGITS_PREPROCESS, still)(pixels)
    assert out.shape == plain.shape
    expected = torch.from_numpy(np.round(digit_to_input(pixels) * 255) / 255).float()
    assert torch.allclose(
        out[0],
        (expected - zoo.LENET5_DIGITS_PREPROCESS.mean[0]) / zoo.LENET5_DIGITS_PREPROCESS.std[0],
        atol=0.05,
    )


def test_the_held_out_digit_folder_is_what_lenet5_never_trained_on(tmp_path):
    from cnn_explorer.core.digits import held_out_digits, stratified_split, write_digit_folder
    from cnn_explorer.core.images import open_image

    images, labels = held_out_digits()
    assert len(labels) == len(images) == 359  # the shipped weights' stated test size
    train, test = stratified_split(np.arange(10).repeat(50))
    assert len(test) == 100 and not set(train) & set(test)
    root = write_digit_folder(tmp_path / "digits", per_class=3)
    files = sorted(root.glob("*/*.png"))
    assert len(files) == 30 and {f.parent.name for f in files} == {str(d) for d in range(10)}
    loaded = zoo.load_model("lenet5")
    right = 0
    for f in files:
        x = loaded.preprocess(open_image(f).pixels)[None]
        right += int(loaded.model(x).argmax()) == int(f.parent.name)
    assert right >= 28
