"""Each export format: turn a model into the bytes of a file, and open such a file again to run it.

Every writer returns the whole file as bytes, so the caller writes it in one atomic step (a temporary name
in the target folder, then a rename) and a failure never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cnn_explorer.core import zoo
from cnn_explorer.core.export.result import ONNX_OPSET, ExportError

Runner = Callable[[Tensor], np.ndarray]  # a batch (N, C, H, W) -> logits (N, classes) as float32 numpy
ALIASES_KEY = "cnn_explorer.aliases"  # safetensors metadata: {dropped name: the name that holds the tensor}


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _quantized(model: nn.Module) -> bool:
    return any(isinstance(v, Tensor) and v.is_quantized for v in model.state_dict().values()) or any(
        not isinstance(v, Tensor) for v in model.state_dict().values()
    )


# -- TorchScript ------------------------------------------------------------------------------------------


def torchscript_bytes(model: nn.Module, example: Tensor) -> tuple[bytes, dict[str, Any]]:
    """Trace on ``example`` (the faithful graph of an eval-mode CNN); if tracing fails, script."""
    errors = []
    for method in ("traced", "scripted"):
        try:
            with warnings.catch_warnings(record=True) as caught, torch.no_grad():
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("always", torch.jit.TracerWarning)
                if method == "traced":
                    program = torch.jit.trace(model, example, check_trace=False)
                else:
                    program = torch.jit.script(model)
                buf = io.BytesIO()
                torch.jit.save(program, buf)
        except Exception as exc:  # torch raises many kinds (RuntimeError, NotSupportedError, TypeError...)
            errors.append(f"{method[:-1] if method.endswith('d') else method}: {_why(exc)}")
            continue
        how: dict[str, Any] = {"method": method}
        tracer = sorted(
            {
                str(w.message).splitlines()[0][:160]
                for w in caught
                if issubclass(w.category, torch.jit.TracerWarning)
            }
        )
        if tracer:
            how["tracer_warnings"] = tracer
        if errors:
            how["fallback_because"] = errors
        return buf.getvalue(), how
    raise ExportError("TorchScript export failed: " + "; ".join(errors))


def torchscript_runner(path: Path) -> tuple[Runner, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated": it still is the format
        program = torch.jit.load(str(path), map_location="cpu")  # we wrote this file: it is our own code
    program.eval()
    return _torch_runner(program), f"torch.jit.load (torch {torch.__version__})"


# -- ONNX ---------------------------------------------------------------------------------------------


def onnx_bytes(model: nn.Module, example: Tensor, opset: int = ONNX_OPSET) -> tuple[bytes, dict[str, Any]]:
    """torch.onnx's dynamo exporter with a symbolic batch dimension; if that fails, the older one."""
    if _quantized(model):
        raise ExportError(
            "ONNX export of a quantized (int8) model is not supported here: its weights are packed "
            "quantized tensors that torch.onnx cannot translate; export the float model instead"
        )
    errors = []
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                None,
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
        data = program.model_proto.SerializeToString()
        return data, {"exporter": "dynamo", "opset": opset, "dynamic_batch": True}
    except Exception as exc:
        errors.append(f"dynamo exporter: {_why(exc)}")
    try:
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )
        how = {"exporter": "torchscript", "opset": opset, "dynamic_batch": True, "fallback_because": errors}
        return buf.getvalue(), how
    except Exception as exc:
        errors.append(f"TorchScript-based exporter: {_why(exc)}")
    raise ExportError("ONNX export failed: " + "; ".join(errors))


def onnx_runner(path: Path) -> tuple[Runner, str]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: Tensor) -> np.ndarray:
        return np.asarray(session.run(None, {name: batch.numpy()})[0], dtype=np.float32)

    return run, f"onnxruntime {ort.__version__} (CPU)"


# -- safetensors --------------------------------------------------------------------------------------


def _dedupe(sd: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors sharing storage (tied weights) are stored once; the other names become aliases."""
    kept: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple, str] = {}
    for name, value in sd.items():
        if not isinstance(value, Tensor) or value.is_quantized:
            raise ExportError(
                f"safetensors holds plain tensors only; '{name}' is "
                f"{'a quantized tensor' if isinstance(value, Tensor) else type(value).__name__} "
                "(an int8 quantized model cannot be saved as safetensors weights)"
            )
        t = value.detach().cpu()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        kept[name] = t.contiguous().clone() if _shares_storage(t, kept) else t.contiguous()
    return kept, aliases


def _shares_storage(t: Tensor, kept: dict[str, Tensor]) -> bool:
    ptr = t.untyped_storage().data_ptr()
    return t.numel() > 0 and any(k.untyped_storage().data_ptr() == ptr for k in kept.values())


def safetensors_bytes(model: nn.Module, metadata: dict[str, str]) -> tuple[bytes, dict[str, Any]]:
    from safetensors.torch import save

    tensors, aliases = _dedupe(model.state_dict())
    meta = {**metadata, ALIASES_KEY: json.dumps(aliases)}
    how: dict[str, Any] = {"content": "state_dict", "tensors": len(tensors)}
    if aliases:
        how["shared_tensors"] = aliases
    return save(tensors, metadata=meta), how


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """The state_dict again, aliases (shared tensors) restored."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    sd = load_file(str(path), device="cpu")
    for alias, name in json.loads(meta.get(ALIASES_KEY, "{}")).items():
        sd[alias] = sd[name]
    return sd


def safetensors_runner(path: Path, original: zoo.LoadedModel) -> tuple[Runner, str]:
    """Load the weights into a fresh model of the same architecture, as the app would open them.

    A plain zoo architecture goes through ``zoo.load_model_file`` (the skeleton built by the zoo, the file's
    weights assigned); anything else (a linear probe, a pruned variant) into a copy of the original's
    structure whose tensors are zeroed first, so every number that runs comes from the file.
    """
    sd = read_safetensors(path)
    how = "safetensors weights in a fresh model"
    if _fits_zoo(original.info.name, sd) and not json.loads(_meta(path).get(ALIASES_KEY, "{}")):
        try:
            model = zoo.load_model_file(path, arch=original.info.name).model
            return _torch_runner(model), f"{how} (zoo.load_model_file)"
        except zoo.ModelLoadError as exc:
            raise ExportError(f"the written weights do not open in the app: {exc}") from None
    model = copy.deepcopy(original.model)
    with torch.no_grad():
        for t in model.state_dict().values():
            t.zero_()
    model.load_state_dict(sd, strict=True)
    return _torch_runner(model.eval()), f"{how} (a zeroed copy of its structure)"


def _meta(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return f.metadata() or {}


def _fits_zoo(name: str, sd: dict[str, Tensor]) -> bool:
    """True when ``sd`` is ``name``'s own state_dict (any head size): the zoo can rebuild it from scratch."""
    try:
        skel = zoo.skeleton(name).state_dict()
    except zoo.ModelLoadError:
        return False
    if set(skel) != set(sd):
        return False
    differing = [k for k in skel if tuple(skel[k].shape) != tuple(sd[k].shape)]
    return all(k.rsplit(".", 1)[0] in _head_names(name) for k in differing)


def _head_names(name: str) -> set[str]:
    skel = zoo.skeleton(name)
    head = zoo.classifier_head(skel)
    return {n for n, m in skel.named_modules() if m is head}


def _torch_runner(model: Any) -> Runner:
    def run(batch: Tensor) -> np.ndarray:
        with torch.inference_mode():
            return model(batch).float().numpy()

    return run
