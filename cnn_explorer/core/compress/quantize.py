"""Quantization: dynamic int8 of the Linear layers, static post-training int8 of the whole CNN (torch.ao
FX graph mode: ``prepare_fx`` / ``convert_fx``, calibrated on the user's images), and fp16 weights.

torch.ao.quantization is deprecated upstream in favour of torchao's PT2E flow; torchao is not installed
here, and FX graph mode is what runs on the installed torch (2.14 on the CPU), so its deprecation warnings
are silenced locally (:func:`quiet`), not for the whole program.

The engine is chosen, not defaulted: measured on this torch (CPU, batch 1, after the same-padding fix of
:mod:`.padding`), int8 over fp32 latency was EfficientNet-Lite0 0.38–0.56× with "onednn" but 1.64× with
"x86"; ResNet-18 0.15× (onednn) / 0.15× (x86) / 0.30× (fbgemm); MobileNet V2 0.41× / 0.43× / 0.45×;
qnnpack was slower than fp32 on all of them. So onednn first, then x86, fbgemm, qnnpack — whichever this
torch has. Weights are packed for the engine that is active while a model is converted or loaded, so both
happen inside :func:`engine` (the global setting is restored afterwards).
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn

from cnn_explorer.core.compress.spec import CompressError
from cnn_explorer.core.compress.tracing import first_line, graph_ready, untraceable_part

__all__ = [
    "ENGINE_PREFERENCE",
    "check_static",
    "choose_engine",
    "convert_static",
    "engine",
    "flow_text",
    "prepare_static",
    "quantize_dynamic_int8",
    "quantize_static_int8",
    "quiet",
    "to_fp16",
]

ENGINE_PREFERENCE = ("onednn", "x86", "fbgemm", "qnnpack")


def choose_engine() -> str:
    """The fastest quantized engine (by the measurements above) that this torch supports."""
    supported = torch.backends.quantized.supported_engines
    for name in ENGINE_PREFERENCE:
        if name in supported:
            return name
    raise CompressError(
        "This PyTorch build has no quantized CPU engine (supported: "
        f"{', '.join(supported) or 'none'}); int8 quantization is not available."
    )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation warnings (see the module's docstring) for the calls inside."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.ao\..*")
        # rebuilding a saved model converts observers that never ran; its qparams come from the file
        warnings.filterwarnings("ignore", message=r".*must run observer before calling calculate_qparams.*")
        yield


@contextlib.contextmanager
def engine(name: str | None) -> Iterator[None]:
    """Run with ``torch.backends.quantized.engine = name`` (None: as it is), restored afterwards."""
    if name is None:
        yield
        return
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        with quiet():
            yield
    finally:
        torch.backends.quantized.engine = before


def flow_text(mode: str, engine_name: str | None) -> str:
    """How a quantize mode was done, for the report's ``quantization_flow``."""
    if mode == "int8-static":
        return f"torch.ao FX graph mode (prepare_fx/convert_fx), {engine_name} backend"
    if mode == "int8-dynamic":
        return f"torch.ao dynamic quantization (quantize_dynamic) of the Linear layers, {engine_name} backend"
    if mode == "fp16":
        return "fp16 weights (stored as float16, computed in float32 on the CPU)"
    return ""


# -- dynamic ------------------------------------------------------------------------------------------


def quantize_dynamic_int8(model: nn.Module, engine_name: str) -> nn.Module:
    """A copy with every nn.Linear replaced by a dynamically quantized one (int8 weights; activations are
    quantized on the fly, per batch). Convolutions stay float."""
    with engine(engine_name):
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8
        )


# -- static -------------------------------------------------------------------------------------------


def _qconfig_mapping(engine_name: str, float_layers: Sequence[str] = ()):  # -> QConfigMapping
    from torch.ao.quantization import get_default_qconfig_mapping

    mapping = get_default_qconfig_mapping(engine_name)
    for name in float_layers:
        mapping = mapping.set_module_name(name, None)
    return mapping


def first_conv(model: nn.Module) -> str | None:
    """The first convolution's name: static int8 keeps it float32. It sees the raw pixels and holds few
    weights (Lite0's stem: 864 of 3.4 M), and quantizing it cost EfficientNet-Lite0 on the silhouettes one
    more point of accuracy (92 % against 93 %, fp32 95 %) for a file 3 KB smaller."""
    return next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def _refuse_untraceable(model: nn.Module) -> None:
    why = untraceable_part(model)
    if why is not None:
        raise CompressError(
            f"Static int8 quantization cannot trace this model: {why}. Use int8-dynamic or fp16 instead."
        )


def check_static(model: nn.Module) -> None:
    """CompressError now, before any work, if static int8 cannot trace ``model`` (a copy is examined)."""
    _refuse_untraceable(graph_ready(copy.deepcopy(model)))


def prepare_static(
    model: nn.Module, engine_name: str, example: Tensor, float_layers: Sequence[str] = ()
) -> nn.Module:
    """``model`` (changed: see ``tracing.graph_ready``) with observers inserted, ready to calibrate;
    ``float_layers`` stay float32. CompressError naming the part FX cannot handle."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    model = graph_ready(model)
    _refuse_untraceable(model)
    with engine(engine_name):
        try:
            mapping = _qconfig_mapping(engine_name, float_layers)
            return prepare_fx(model, mapping, example_inputs=(example,))
        except Exception as exc:
            raise CompressError(
                f"Static int8 quantization cannot handle this model ({first_line(exc)}). "
                "Use int8-dynamic or fp16 instead."
            ) from exc


def convert_static(prepared: nn.Module, engine_name: str) -> nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    with engine(engine_name):
        try:
            return convert_fx(prepared)
        except Exception as exc:
            raise CompressError(
                f"Static int8 quantization could not convert this model ({first_line(exc)}). "
                "Use int8-dynamic or fp16 instead."
            ) from exc


def quantize_static_int8(
    model: nn.Module,
    engine_name: str,
    calibration: Iterable[Tensor],
    *,
    on_batch: Callable[[], None] | None = None,
    float_layers: Sequence[str] = (),
) -> nn.Module:
    """A static int8 copy of ``model``: same-padding convolutions standardised, conv+BN(+ReLU) fused,
    observers calibrated on the ``calibration`` batches (``on_batch`` is called before each: a cancel
    check), then converted. Input and output stay float tensors."""
    batches = iter(calibration)
    first = next(batches, None)
    if first is None:
        raise CompressError("Static int8 quantization needs at least one image to calibrate on.")
    prepared = prepare_static(copy.deepcopy(model), engine_name, first[:1], float_layers)
    with engine(engine_name), torch.no_grad():  # observers update their buffers: not inference mode
        for batch in (first, *batches):
            if on_batch is not None:
                on_batch()
            prepared(batch)
    return convert_static(prepared, engine_name)


# -- fp16 ---------------------------------------------------------------------------------------------


def to_fp16(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(stored, computed): the weights as float16 (what is saved), and the same values upcast to float32
    (what runs: the CPU computes in float32, so the gain is the file's size, not speed)."""
    stored = copy.deepcopy(model).half()
    return stored, copy.deepcopy(stored).float()
