"""The Operations lab as plain PyTorch: :func:`lab_code` renders the lab's current pipeline with
``torch.nn.functional`` (and, for the backward view, its autograd version) on the lab's input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnn_explorer.core.codegen.templates import (
    LAB_ACTIVATION,
    LAB_BACKWARD,
    LAB_CONV,
    LAB_FILTERS,
    LAB_HEADER,
    LAB_IMAGE_IMPORTS,
    LAB_IMAGE_INPUT,
    LAB_MATRIX_INPUT,
    LAB_POOL,
)
from cnn_explorer.core.lab import LabSettings, lab_filters, run_lab
from cnn_explorer.core.ops import ACTIVATIONS, CHANNEL_MODES, image_to_input

__all__ = ["LabImageSource", "lab_code", "literal"]


@dataclass(frozen=True)
class LabImageSource:
    """An image file as the lab reads it (``ops.image_to_input``): shrunk, one or three channels, scaled."""

    path: Path
    channels: str = "gray"  # one of ops.CHANNEL_MODES
    size: int = 64
    scale: float = 255.0

    def array(self) -> np.ndarray:
        from cnn_explorer.core.images import open_image

        return image_to_input(open_image(self.path).pixels, self.channels, self.size, self.scale)


def _number(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def literal(a: np.ndarray) -> str:
    """A nested Python list of ``a``'s numbers, integers without a decimal point."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return _number(a)
    if a.ndim == 1:
        return "[" + ", ".join(_number(v) for v in a) + "]"
    return "[" + ", ".join(literal(row) for row in a) + "]"


def _activation_call(name: str, param: float | None) -> str:
    p = ACTIVATIONS[name].default if param is None else param
    return {
        "relu": "F.relu(conv)",
        "leaky_relu": f"F.leaky_relu(conv, negative_slope={_number(p)})",
        "elu": f"F.elu(conv, alpha={_number(p)})",
        "sigmoid": "torch.sigmoid(conv)",
        "tanh": "torch.tanh(conv)",
        "softmax": "F.softmax(conv, dim=0)  # across the channels at each position",
    }[name]


def _pool_call(s: LabSettings, source: str) -> str:
    k, stride, pad = s.pool_size, s.pool_stride or s.pool_size, s.pool_padding
    if s.pool_mode == "max":
        return f"F.max_pool2d({source}, {k}, stride={stride}, padding={pad})"
    avg = f"F.avg_pool2d({source}, {k}, stride={stride}, padding={pad}, count_include_pad=True)"
    if s.pool_mode == "avg":
        return avg
    return f"{avg} * {k * k}  # sum = average × window size"


def _input_code(source: np.ndarray | LabImageSource, grad: bool) -> tuple[str, str]:
    """(the import lines, the code that makes ``x`` (C, H, W))."""
    if isinstance(source, LabImageSource):
        if source.channels not in CHANNEL_MODES:
            raise ValueError(f"channels must be one of {', '.join(CHANNEL_MODES)}, got {source.channels!r}")
        if source.channels == "gray":
            line = (
                "# grey: ITU-R 601 luma, rounded, as Pillow\n"
                "luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)\n"
                "planes = luma.round().clip(0, 255)[None]"
            )
        elif source.channels == "rgb":
            line = "planes = pixels.transpose(2, 0, 1)  # (3, H, W): red, green, blue"
        else:
            index = "rgb".index(source.channels[0])
            line = f"planes = pixels[None, :, :, {index}]  # the {source.channels} channel"
        code = LAB_IMAGE_INPUT.substitute(
            path=Path(source.path).name,
            path_literal=repr(str(source.path)),
            size=int(source.size),
            channels=source.channels,
            scale=_number(source.scale),
            channel_line=line,
            grad=".requires_grad_()" if grad else "",
        )
        return LAB_IMAGE_IMPORTS, code
    x = np.asarray(source)
    x3 = x[None] if x.ndim == 2 else x
    description = f"{'×'.join(map(str, x.shape))}" + (", one channel" if x.ndim == 2 else "")
    code = LAB_MATRIX_INPUT.substitute(
        description=description, values=literal(x3), grad=", requires_grad=True" if grad else ""
    )
    return "", code


def lab_code(
    settings: LabSettings,
    source: np.ndarray | LabImageSource,
    *,
    backward: bool = False,
    upstream: str | np.ndarray = "ones",
) -> str:
    """Python that runs the lab's conv → activation → pool on ``source`` with ``torch.nn.functional`` and
    prints every stage's numbers, as :func:`cnn_explorer.core.lab.run_lab` computes them.

    ``source`` is the input array ((H, W) or (C, H, W), embedded as it is) or an image file the code opens
    and converts as the lab does. ``backward`` adds the autograd version: the same upstream gradient
    (``"ones"`` or an array of the output's shape, e.g. from ``upstream_gradient``) and the gradients
    :func:`cnn_explorer.core.lab.lab_backward` gives. Raises ValueError for settings the lab refuses.
    """
    x = source.array() if isinstance(source, LabImageSource) else np.asarray(source)
    result = run_lab(x, settings)  # the lab's own checks; its output shape sizes the upstream gradient
    s = settings
    on = s.stages_on
    imports, code = _input_code(source, backward)
    parts = [LAB_HEADER.substitute(stages=" → ".join(on) or "no stage on", image_imports=imports), code]
    kept: list[str] = []
    current = "x"
    if s.conv:
        weights, biases = lab_filters(x.shape, s)
        grad = ", requires_grad=True" if backward else ""
        parts.append(
            LAB_FILTERS.substitute(
                count=weights.shape[0],
                kernel_size=f"{weights.shape[2]}×{weights.shape[3]}",
                weights=literal(weights),
                biases=literal(biases),
                grad=grad,
            )
        )
        parts.append(LAB_CONV.substitute(stride=s.stride, padding=s.padding, dilation=s.dilation))
        current = "conv"
    else:
        parts.append("conv = x  # the convolution is off: the input goes on\n")
        current = "conv"
    if s.activation != "none":
        parts.append(LAB_ACTIVATION.substitute(call=_activation_call(s.activation, s.activation_param)))
        if s.conv:
            kept.append("conv")
        current = "activated"
    if s.pool_mode != "none":
        parts.append(LAB_POOL.substitute(call=_pool_call(s, current)))
        if current != "conv" or s.conv:
            kept.append(current)
        current = "pooled"
    if not on:
        parts.append('show("output", x)\n')
    if backward:
        if isinstance(upstream, str):
            if upstream != "ones":
                raise ValueError(
                    f"upstream must be 'ones' or an array of the output's shape, not {upstream!r}"
                )
            up = f"torch.ones_like({current})  # L is the sum of all outputs"
        else:
            g = np.asarray(upstream, dtype=np.float64)
            out3 = result.output[None] if result.output.ndim == 2 else result.output
            if g.shape not in (result.output.shape, out3.shape):
                raise ValueError(f"the upstream gradient must have the output's shape {result.output.shape}")
            up = f"torch.tensor({literal(g.reshape(out3.shape))}, dtype=x.dtype)"
        prints = []
        if "activated" in kept:
            prints.append('show("gradient at the pooling input", activated.grad)')
        if "conv" in kept:
            prints.append('show("gradient at the activation input", conv.grad)')
        prints.append('show("gradient at the input", x.grad)')
        if s.conv:
            prints.append(
                'show("kernel gradient", weight.grad.reshape(-1, *weight.shape[2:]))  # (F·C, kH, kW)'
            )
            prints.append('show("bias gradient", bias.grad[None, None])')
        parts.append(
            LAB_BACKWARD.substitute(
                kept="".join(f"\n{name}.retain_grad()  # keep this stage's gradient too" for name in kept),
                upstream=up,
                output=current if on else "x",
                prints="\n".join(prints) + "\n",
            )
        )
    return "".join(parts)
