"""The model zoo: registry, preprocessing, weights resolution order, model files, heads and embeddings."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.images import load_image

ZOO_NAMES = [
    "lenet5",
    "alexnet",
    "vgg11",
    "vgg16",
    "googlenet",
    "inception_v3",
    "resnet18",
    "resnet50",
    "densenet121",
    "squeezenet1_1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "efficientnet_lite0",
]
CAT_CLASSES = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx", "cougar"}


@pytest.fixture
def fake_hub(tmp_path, monkeypatch) -> Path:
    """An empty torchvision cache in a temp dir, and downloads allowed (conftest disables them)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CNN_EXPLORER_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case something called torch.hub.set_dir
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert zoo.cache_dir() == checkpoints
    return checkpoints


def _first_param(model: nn.Module) -> torch.Tensor:
    return next(model.parameters()).detach()


# --- registry ------------------------------------------------------------------------------------------


def test_zoo_lists_the_course_models_in_teaching_order():
    infos = zoo.available_models()
    assert [i.name for i in infos] == ZOO_NAMES
    by_name = {i.name: i for i in infos}
    assert by_name["inception_v3"].input_size == 299
    assert by_name["lenet5"].input_size == 32 and by_name["lenet5"].source == "course"
    assert by_name["efficientnet_lite0"].source == "package"
    assert by_name["resnet18"].title == "ResNet-18" and by_name["resnet18"].source == "torchvision"
    assert zoo.DEFAULT_MODEL == "efficientnet_lite0"


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(zoo.ModelLoadError, match=r"Unknown model 'resnet19'.*resnet18"):
        zoo.get_info("resnet19")
    with pytest.raises(zoo.ModelLoadError, match="resnet19"):
        zoo.load_model("resnet19")


def test_lenet5_has_the_course_shapes_and_parameter_count():
    model = zoo.LeNet5()
    x = torch.zeros(1, 1, 32, 32)
    shapes = {}
    for name in ("c1", "s2", "c3", "s4", "c5", "f6", "output"):
        getattr(model, name).register_forward_hook(
            lambda m, i, o, n=name: shapes.__setitem__(n, tuple(o.shape))
        )
    model(x)
    assert shapes == {
        "c1": (1, 6, 28, 28),
        "s2": (1, 6, 14, 14),
        "c3": (1, 16, 10, 10),
        "s4": (1, 16, 5, 5),
        "c5": (1, 120, 1, 1),
        "f6": (1, 84),
        "output": (1, 10),
    }
    # 6·(25+1) + 16·(6·25+1) + 120·(16·25+1) + 84·(120+1) + 10·(84+1)
    assert sum(p.numel() for p in model.parameters()) == 156 + 2416 + 48120 + 10164 + 850


# --- preprocessing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_b0", "inception_v3"])
def test_preprocess_matches_the_weights_own_transforms(name, sample_cat):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    pre = zoo.Preprocess.from_weights(weights)
    pixels = load_image(sample_cat)
    ours = pre(pixels)
    theirs = weights.transforms()(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
    assert ours.shape == theirs.shape == (3, pre.crop, pre.crop)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    assert pre.crop_pixels(pixels).shape == (pre.crop, pre.crop, 3)


def test_preprocess_handles_gray_and_colour_and_round_trips_through_a_dict():
    lenet = zoo.get_info("lenet5")
    pre = zoo.load_model(lenet.name).preprocess
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, 30:] = 255
    x = pre(rgb)
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) == pytest.approx(-1.0) and float(x.max()) == pytest.approx(1.0)
    gray = np.full((50, 50), 128, np.uint8)
    assert zoo.Preprocess.from_weights(torchvision.models.ResNet18_Weights.DEFAULT)(gray).shape == (
        3,
        224,
        224,
    )
    assert zoo.Preprocess.from_dict(pre.to_dict()) == pre


# --- the real pretrained default ------------------------------------------------------------------------


def test_efficientnet_lite0_offline_sees_a_cat_in_the_sample_photo(sample_cat):
    loaded = zoo.load_model("efficientnet_lite0", allow_download=False)
    assert loaded.weights == "package" and loaded.trained
    assert loaded.num_classes == 1000
    x = loaded.preprocess(load_image(sample_cat))
    with torch.inference_mode():
        probs = loaded.model(x[None]).softmax(1)[0]
    top5 = [loaded.categories[i] for i in probs.topk(5).indices.tolist()]
    assert CAT_CLASSES & set(top5[:3]), top5
    assert float(probs.max()) > 0.3


# --- weights resolution order --------------------------------------------------------------------------


def test_cache_is_used_before_downloading(fake_hub, monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_EXPLORER_CACHE", str(tmp_path / "own-cache"))
    reference = zoo._construct("resnet18", 1000)
    fake_hub.mkdir(parents=True)
    torch.save(reference.state_dict(), fake_hub / "resnet18-f37072fd.pth")
    monkeypatch.setattr(zoo, "download_weights", _must_not_download)
    loaded = zoo.load_model("resnet18")
    assert loaded.weights == "cache"
    assert "resnet18-f37072fd.pth" in loaded.weights_detail
    torch.testing.assert_close(_first_param(loaded.model), _first_param(reference))
    assert zoo.weights_status("resnet18")[0] == "cache"
    assert loaded.preprocess.resize == 256 and loaded.categories[281] == "tabby"
    assert not (tmp_path / "own-cache").exists()  # torchvision's cache file is read as it is, not copied


def test_a_chosen_weights_file_beats_the_cache(fake_hub, tmp_path):
    fake_hub.mkdir(parents=True)
    torch.save(zoo._construct("resnet18", 1000).state_dict(), fake_hub / "resnet18-f37072fd.pth")
    mine = zoo._construct("resnet18", 1000)
    torch.save(mine.state_dict(), tmp_path / "mine.pth")
    loaded = zoo.load_model("resnet18", weights_file=tmp_path / "mine.pth")
    assert loaded.weights == "file" and "mine.pth" in loaded.weights_detail
    torch.testing.assert_close(_first_param(loaded.model), _first_param(mine))


def _must_not_download(*args, **kwargs):
    raise AssertionError("tried to download")


def test_unreachable_download_fails_fast_and_falls_through_to_untrained(fake_hub, monkeypatch):
    monkeypatch.setattr(zoo, "_download_url", lambda weights: "http://127.0.0.1:9/resnet18-f37072fd.pth")
    events: list = []
    start = time.perf_counter()
    loaded = zoo.load_model("resnet18", control=Control(report=events.append))
    elapsed = time.perf_counter() - start
    assert elapsed < 4.0
    assert loaded.weights == "untrained" and not loaded.trained
    assert "UNTRAINED" in loaded.weights_detail and "download failed" in loaded.weights_detail
    assert "127.0.0.1" in loaded.weights_detail
    assert loaded.badge == "UNTRAINED"
    assert not list(fake_hub.glob("*"))  # no partial file left behind


def test_offline_setting_and_allow_download_skip_the_download(fake_hub, monkeypatch):
    monkeypatch.setattr(zoo, "download_weights", _must_not_download)
    assert zoo.load_model("squeezenet1_1", allow_download=False).weights == "untrained"
    monkeypatch.setenv("CNN_EXPLORER_OFFLINE", "1")
    loaded = zoo.load_model("squeezenet1_1")
    assert loaded.weights == "untrained" and "CNN_EXPLORER_OFFLINE" in loaded.weights_detail
    assert zoo.weights_status("squeezenet1_1")[0] == "untrained"


def test_package_weights_come_after_a_chosen_file(tmp_path):
    model = zoo._construct("efficientnet_lite0", 1000)
    torch.save(model.state_dict(), tmp_path / "lite.pt")
    assert zoo.load_model("efficientnet_lite0", weights_file=tmp_path / "lite.pt").weights == "file"
    assert zoo.load_model("efficientnet_lite0").weights == "package"


def test_package_weights_are_read_through_a_safetensors_copy(tmp_path, monkeypatch):
    """The Lite0 package's legacy .pth is converted once; later loads read the copy, which is remade
    when the package file changes or the copy is damaged, and is optional when the cache is read-only."""
    monkeypatch.setenv("CNN_EXPLORER_CACHE", str(tmp_path / "cache"))
    source = zoo._lite0_weights_path()
    reference = torch.load(source, map_location="cpu", weights_only=True)
    copy = tmp_path / "cache" / "weights" / f"{source.stem}.safetensors"

    first = zoo._package_state_dict(source)
    assert copy.is_file()
    reads = []
    real_read = zoo._read_state_dict
    monkeypatch.setattr(zoo, "_read_state_dict", lambda path: reads.append(path) or real_read(path))
    again = zoo._package_state_dict(source)
    assert reads == []  # served from the copy
    assert first.keys() == again.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(again[key], value), key

    copy.write_bytes(b"not a safetensors file")  # damaged: made again
    zoo._package_state_dict(source)
    assert reads == [source] and copy.stat().st_size > 1_000_000

    from safetensors.torch import save_file  # another version of the package file: made again

    save_file({"x": torch.zeros(1)}, copy, metadata={"source": str(source), "size": "1", "mtime_ns": "1"})
    assert zoo._package_state_dict(source).keys() == reference.keys()
    assert len(reads) == 2

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CNN_EXPLORER_CACHE", str(blocked))
    assert zoo._package_state_dict(source).keys() == reference.keys()  # read from the package itself
    assert len(reads) == 3


def test_user_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_EXPLORER_CACHE", str(tmp_path / "mine"))
    assert zoo.user_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("CNN_EXPLORER_CACHE")
    if os.name == "posix" and sys.platform != "darwin":
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert zoo.user_cache_dir() == tmp_path / "xdg" / "cnn-explorer"


def test_lenet5_ships_trained_on_digits_and_random_when_asked(tmp_path):
    loaded = zoo.load_model("lenet5")
    assert loaded.weights == "package" and "held-out test digits" in loaded.weights_detail
    assert loaded.categories == [str(d) for d in range(10)] and loaded.preprocess.digit
    fresh = zoo.build_model("lenet5", pretrained=False)  # what "scratch" trains
    assert fresh.weights == "untrained" and not fresh.preprocess.digit


# --- downloading through a real HTTP server -------------------------------------------------------------


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server serving tmp_path/'www'; yields (root dir, base url)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a cancelled download hangs up mid-file: a broken pipe here is expected


def _hashed_file(root: Path, stem: str, payload: bytes) -> str:
    name = f"{stem}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    (root / name).write_bytes(payload)
    return name


def test_download_reports_progress_and_lands_in_the_cache(http_root, fake_hub, monkeypatch):
    root, base = http_root
    model = zoo._construct("squeezenet1_1", 1000)
    buf = root / "tmp.pth"
    torch.save(model.state_dict(), buf)
    name = _hashed_file(root, "squeezenet1_1", buf.read_bytes())
    monkeypatch.setattr(zoo, "_download_url", lambda weights: f"{base}/{name}")
    events: list = []
    loaded = zoo.load_model("squeezenet1_1", control=Control(report=events.append))
    assert loaded.weights == "download"
    torch.testing.assert_close(_first_param(loaded.model), _first_param(model))
    assert (fake_hub / name).is_file() and [p.name for p in fake_hub.iterdir()] == [name]
    progress = [e for e in events if isinstance(e, zoo.DownloadProgress)]
    assert progress and progress[-1].done_bytes == progress[-1].total_bytes == buf.stat().st_size
    assert all(e.name == "squeezenet1_1" for e in progress)


def test_download_with_a_wrong_hash_is_rejected_and_removed(http_root, tmp_path):
    root, base = http_root
    (root / "w-deadbeef.pth").write_bytes(b"not the promised bytes" * 100)
    with pytest.raises(OSError, match="corrupt"):
        zoo.download_weights(f"{base}/w-deadbeef.pth", tmp_path / "dest")
    assert not list((tmp_path / "dest").iterdir())


def test_download_can_be_cancelled(http_root, tmp_path):
    root, base = http_root
    name = _hashed_file(root, "big", bytes(3_000_000))
    control = Control()

    def cancel_on_first_progress(event):
        control.cancel()

    control._report = cancel_on_first_progress
    with pytest.raises(Cancelled):
        zoo.download_weights(f"{base}/{name}", tmp_path / "dest", control=control)
    assert not list((tmp_path / "dest").iterdir())


# --- model files ---------------------------------------------------------------------------------------


def test_a_pickled_full_model_is_refused_with_an_explanation(tmp_path):
    torch.save(zoo.LeNet5(), tmp_path / "whole.pt")
    with pytest.raises(zoo.ModelLoadError) as err:
        zoo.load_model_file(tmp_path / "whole.pt")
    text = str(err.value)
    assert "whole.pt" in text and "could run code" in text and "state_dict()" in text
    with pytest.raises(zoo.ModelLoadError, match="could run code"):
        zoo.load_model("lenet5", weights_file=tmp_path / "whole.pt")


def test_bad_files_give_clear_errors(tmp_path):
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(zoo.ModelLoadError, match=r"notes\.pth"):
        zoo.load_model_file(tmp_path / "notes.pth")
    with pytest.raises(zoo.ModelLoadError, match="does not exist"):
        zoo.load_model_file(tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "odd.pth")
    with pytest.raises(zoo.ModelLoadError, match=r"odd\.pth.*ResNet-18"):
        zoo.load_model_file(tmp_path / "odd.pth", arch="resnet18")
    with pytest.raises(zoo.ModelLoadError, match=r"odd\.pth.*none of the zoo"):
        zoo.load_model_file(tmp_path / "odd.pth")


def test_weights_for_another_architecture_open_as_that_architecture(tmp_path):
    torch.save(zoo.LeNet5().state_dict(), tmp_path / "lenet.pth")
    loaded = zoo.load_model("resnet18", weights_file=tmp_path / "lenet.pth")
    assert loaded.info.name == "lenet5"
    assert "not ResNet-18" in loaded.weights_detail


def test_state_dict_with_another_number_of_classes_loads(tmp_path):
    model = zoo._construct("resnet18", 7)
    torch.save(model.state_dict(), tmp_path / "seven.pth")
    for arch in ("resnet18", None):  # named, and recognised from the parameter names
        loaded = zoo.load_model_file(tmp_path / "seven.pth", arch=arch)
        assert loaded.info.name == "resnet18" and loaded.num_classes == 7
        assert loaded.categories == [f"class {i}" for i in range(7)]
        x = torch.randn(1, 3, 64, 64)
        with torch.inference_mode():
            torch.testing.assert_close(loaded.model(x), model.eval()(x))


def test_safetensors_state_dict_loads(tmp_path):
    from safetensors.torch import save_file

    model = zoo.LeNet5(num_classes=5)
    save_file(model.state_dict(), str(tmp_path / "lenet.safetensors"))
    loaded = zoo.load_model_file(tmp_path / "lenet.safetensors", arch="lenet5")
    assert loaded.weights == "file" and loaded.num_classes == 5
    torch.testing.assert_close(_first_param(loaded.model), _first_param(model))


def test_torchscript_file_loads(tmp_path):
    import warnings

    model = zoo._construct("squeezenet1_1", 3).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(model, torch.zeros(1, 3, 64, 64)).save(str(tmp_path / "traced.pt"))
    loaded = zoo.load_model_file(tmp_path / "traced.pt", trust_code=True)
    assert loaded.weights == "file" and loaded.info.source == "file" and loaded.num_classes == 3
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), model(x))


def test_checkpoint_round_trip(tmp_path):
    built = zoo.build_model("lenet5", class_names=["bird", "cat", "horse"], pretrained=False)
    assert built.categories == ["bird", "cat", "horse"] and zoo.classifier_head(built.model).out_features == 3
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    zoo.save_checkpoint(
        path,
        built.model,
        arch="lenet5",
        class_names=built.categories,
        preprocess=built.preprocess,
        extra={"epoch": 3},
    )
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temp file left
    ckpt = zoo.read_checkpoint(path)
    assert ckpt["format"] == zoo.CHECKPOINT_FORMAT and ckpt["epoch"] == 3 and ckpt["arch"] == "lenet5"
    assert torch.load(path, weights_only=True)["class_names"] == ["bird", "cat", "horse"]
    loaded = zoo.load_model_file(path)
    assert loaded.weights == "file" and loaded.categories == ["bird", "cat", "horse"]
    assert loaded.preprocess == built.preprocess
    x = torch.randn(2, 1, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(x), built.model(x))
    with pytest.raises(zoo.ModelLoadError, match="not a CNN Explorer checkpoint"):
        torch.save({"a": torch.zeros(1)}, tmp_path / "plain.pt")
        zoo.read_checkpoint(tmp_path / "plain.pt")


def test_build_model_keeps_the_head_when_names_match():
    loaded = zoo.build_model("efficientnet_lite0", allow_download=False)
    assert loaded.weights == "package" and loaded.num_classes == 1000
    same = zoo.build_model("lenet5", class_names=[str(d) for d in range(10)], pretrained=False)
    assert zoo.classifier_head(same.model) is same.model.output


# --- heads, blocks and embeddings for every zoo model ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ZOO_NAMES)
def test_head_blocks_and_embedding_split(name):
    info = zoo.get_info(name)
    model = zoo._construct(name, 1000 if name != "lenet5" else 10).eval()
    head = zoo.classifier_head(model)
    size = max(info.min_size, 64) if name != "lenet5" else 32
    x = torch.randn(2, 1 if name == "lenet5" else 3, size, size)
    blocks = zoo.backbone_blocks(model)
    assert len(blocks) >= 4
    assert all(head not in list(b.modules()) for b in blocks)
    assert all(sum(p.numel() for p in b.parameters()) > 0 for b in blocks)
    # blocks plus head own every parameter exactly once
    owned = [id(p) for b in [*blocks, head] for p in b.parameters()]
    assert len(owned) == len(set(owned)) == len(list(model.parameters()))
    split = zoo.embedding_split(model)
    with torch.inference_mode():
        expected = model(x)
        if name == "squeezenet1_1":
            assert split is None
        else:
            embed, split_head = split
            assert split_head is head
            features = embed(x)
            assert features.ndim == 2 and features.shape[0] == 2
            torch.testing.assert_close(split_head(features), expected)
    new_head = zoo.replace_head(model, 4)
    assert zoo.classifier_head(model) is new_head
    with torch.inference_mode():
        assert model(x).shape == (2, 4)
