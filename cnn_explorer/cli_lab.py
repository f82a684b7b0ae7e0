"""The ``lab`` subcommand: the operations lab without a window.

    cnn-explorer lab --matrix "1 2 3 4; 5 6 7 8; 9 10 11 12; 13 14 15 16" --conv "0 1; 1 0" \\
        --activation none --pool max --backward ones --json out.json --png pictures

runs convolution → activation → pooling (each can be ``none``) on a typed matrix, an image or one of the
course's worked examples (``--example``), and writes every stage's values, output size and size formula to
JSON; for a max pool also the winners; with ``--backward`` the gradient with respect to each stage's input
and the kernels'. ``--png`` writes one picture per stage. The numbers are those of the lab's page: both call
:func:`cnn_explorer.core.lab.run_lab` and :func:`cnn_explorer.core.lab.lab_backward`.

Exit codes as for the other commands: 0 success, 1 the disk failed, 2 unusable input (a malformed matrix
or kernel, an unreadable image, settings that give no output, an unusable output path), 130 Ctrl+C.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cnn_explorer.cli_explore import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, _err
from cnn_explorer.core.control import Cancelled
from cnn_explorer.core.images import ImageLoadError, open_image
from cnn_explorer.core.kernels import (
    COURSE_KERNEL,
    COURSE_MATRIX,
    KERNEL_PRESETS,
    input_preset,
    validate_kernel,
)
from cnn_explorer.core.lab import (
    COURSE_EXAMPLES,
    MAX_FILTERS,
    CourseExample,
    LabGradients,
    LabResult,
    LabSettings,
    course_example,
    default_filters,
    lab_backward,
    run_lab,
    upstream_gradient,
)
from cnn_explorer.core.ops import ACTIVATIONS, POOL_MODES, image_to_input, parse_matrix
from cnn_explorer.core.outdir import OutputDirError, is_disk_full, prepare_output_dir

MIN_PICTURE_WIDTH = 256  # px: small maps are enlarged by whole pixels to at least this width
DEFAULT_IMAGE_SIZE = 64

# The options that describe the computation; --example brings its own.
_SETTING_OPTIONS = (
    "matrix",
    "image",
    "size",
    "channels",
    "conv",
    "filters",
    "bias",
    "stride",
    "padding",
    "dilation",
    "activation",
    "activation_param",
    "pool",
    "pool_size",
    "pool_stride",
    "pool_padding",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``lab`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "lab",
        help="the operations lab without a window: conv → activation → pool, and backward, to JSON",
        description=(
            "Run the operations lab's stages on a typed matrix, an image or a course example and write each "
            "stage's values, output size and size formula to JSON (for a max pool also the winners; with "
            "--backward the gradients). Every stage can be 'none'. Without an input the course's 4×4 matrix "
            "1…16 is used."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--matrix", metavar="TEXT", help='the input, rows separated by ";": "1 2; 3 4"')
    src.add_argument("--image", type=Path, metavar="PATH", help="an image file as the input (values 0…255)")
    src.add_argument(
        "--example",
        metavar="KEY",
        help="a course example with its own input and settings: " + ", ".join(e.key for e in COURSE_EXAMPLES),
    )
    p.add_argument(
        "--size",
        type=int,
        metavar="N",
        help=f"with --image: shrink its longer side to N pixels (default {DEFAULT_IMAGE_SIZE})",
    )
    p.add_argument(
        "--channels", choices=("gray", "rgb"), help="with --image: 1 grey channel or 3 (RGB) (default gray)"
    )
    p.add_argument(
        "--conv",
        metavar="KERNEL",
        help=f'a kernel preset name ({", ".join(KERNEL_PRESETS)}), a matrix such as "0 1; 1 0", '
        f"or none (default: the course's [[0,1],[1,0]])",
    )
    p.add_argument(
        "--filters",
        type=int,
        metavar="N",
        help=f"1…{MAX_FILTERS} filters: the kernel, then other presets (default 1)",
    )
    p.add_argument("--bias", type=float, metavar="B", help="bias of every filter (default 0)")
    p.add_argument("--stride", type=int, metavar="S", help="convolution stride (default 1)")
    p.add_argument("--padding", type=int, metavar="P", help="convolution zero padding (default 0)")
    p.add_argument("--dilation", type=int, metavar="D", help="convolution dilation (default 1)")
    p.add_argument("--activation", choices=tuple(ACTIVATIONS), help="activation (default relu)")
    p.add_argument(
        "--activation-param",
        type=float,
        metavar="X",
        help="leaky ReLU's slope or ELU's alpha (default 0.01 / 1)",
    )
    p.add_argument("--pool", choices=(*POOL_MODES, "none"), help="pooling (default max)")
    p.add_argument("--pool-size", type=int, metavar="K", help="pooling window (default 2)")
    p.add_argument("--pool-stride", type=int, metavar="S", help="pooling stride (default: the window size)")
    p.add_argument("--pool-padding", type=int, metavar="P", help="pooling padding (default 0)")
    p.add_argument(
        "--backward",
        metavar="KIND",
        help="also the backward pass from an upstream gradient at the output: ones, random, "
        "ROW,COL (1 at that cell of every output map) or CHANNEL,ROW,COL",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for --backward random (default 0)")
    p.add_argument("--json", required=True, type=Path, metavar="OUT.json", help="where to write the numbers")
    p.add_argument("--png", type=Path, metavar="DIR", help="also write one picture per stage into DIR")
    p.set_defaults(func=run_lab_command)


class BadLabInput(Exception):
    """Input that cannot be used; the message says why."""


def _kernel(text: str) -> np.ndarray:
    by_name = {name.lower(): name for name in KERNEL_PRESETS}
    if text.lower() in by_name:
        return KERNEL_PRESETS[by_name[text.lower()]].array
    if not any(ch.isdigit() for ch in text):
        raise BadLabInput(
            f'unknown kernel {text!r}; give a matrix such as "0 1; 1 0", none, or a preset: '
            f"{', '.join(KERNEL_PRESETS)}"
        )
    try:
        return validate_kernel(parse_matrix(text))
    except ValueError as exc:
        raise BadLabInput(f"--conv: {exc}") from None


def lab_input(args: argparse.Namespace) -> tuple[np.ndarray, str]:
    if args.image is not None:
        try:
            image = open_image(args.image)
        except ImageLoadError as exc:
            raise BadLabInput(str(exc)) from None
        size = DEFAULT_IMAGE_SIZE if args.size is None else args.size
        try:
            return image_to_input(image.pixels, args.channels or "gray", size), str(image.path)
        except ValueError as exc:
            raise BadLabInput(f"--size: {exc}") from None
    if args.size is not None or args.channels is not None:
        raise BadLabInput("--size and --channels go with --image")
    if args.matrix is not None:
        try:
            return parse_matrix(args.matrix), "matrix"
        except ValueError as exc:
            raise BadLabInput(f"--matrix: {exc}") from None
    return input_preset(COURSE_MATRIX), COURSE_MATRIX


def lab_settings(args: argparse.Namespace, x: np.ndarray) -> tuple[LabSettings, tuple[str, ...]]:
    conv_text = COURSE_KERNEL if args.conv is None else args.conv
    conv_on = conv_text.strip().lower() != "none"
    kernel = _kernel(conv_text) if conv_on else np.ones((1, 1))
    filters = 1 if args.filters is None else args.filters
    if not 1 <= filters <= MAX_FILTERS:
        raise BadLabInput(f"--filters must be 1 to {MAX_FILTERS}, got {filters}")
    in_channels = 1 if x.ndim == 2 else x.shape[0]
    bank = default_filters(kernel, in_channels, filters)
    bias = 0.0 if args.bias is None else args.bias
    settings = LabSettings(
        kernel=kernel,
        bias=bias,
        stride=1 if args.stride is None else args.stride,
        padding=0 if args.padding is None else args.padding,
        dilation=1 if args.dilation is None else args.dilation,
        activation=args.activation or "relu",
        activation_param=args.activation_param,
        pool_mode=args.pool or "max",
        pool_size=2 if args.pool_size is None else args.pool_size,
        pool_stride=args.pool_stride,
        pool_padding=0 if args.pool_padding is None else args.pool_padding,
        conv=conv_on,
        weights=bank.weights,
        biases=np.full(filters, bias),
    )
    return settings, bank.names if conv_on else ()


def lab_upstream(text: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    kind = text.strip().lower()
    if kind in ("ones", "random"):
        return upstream_gradient(kind, shape, seed=seed)
    try:
        cell = [int(v) for v in kind.split(",")]
    except ValueError:
        raise BadLabInput(
            f"--backward must be ones, random, ROW,COL or CHANNEL,ROW,COL, not {text!r}"
        ) from None
    try:
        return upstream_gradient("cell", shape, cell=cell)
    except ValueError as exc:
        raise BadLabInput(f"--backward: {exc}") from None


def _values(a: np.ndarray) -> Any:
    return np.asarray(a, dtype=np.float64).tolist()


def _shape(a: np.ndarray) -> list[int]:
    return [int(v) for v in a.shape]


def lab_report(
    result: LabResult,
    source: str,
    names: tuple[str, ...],
    gradients: LabGradients | None = None,
    backward: str | None = None,
    example: CourseExample | None = None,
) -> dict[str, Any]:
    """Everything the JSON file holds, as plain lists and numbers."""
    s = result.settings
    conv: dict[str, Any] | None = None
    if result.filters is not None:
        assert result.biases is not None
        conv = {
            "filters": int(result.filters.shape[0]),
            "filter_names": list(names),
            "kernel_size": _shape(result.filters)[2:],
            "weights": _values(result.filters),
            "biases": _values(result.biases),
            "stride": s.stride,
            "padding": s.padding,
            "dilation": s.dilation,
        }
    report: dict[str, Any] = {
        "input": {"source": source, "shape": _shape(result.input), "values": _values(result.input)},
        "settings": {
            "conv": conv,
            "activation": {"name": s.activation, "param": s.activation_param},
            "pool": {
                "mode": s.pool_mode,
                "size": s.pool_size,
                "stride": s.pool_stride or s.pool_size,
                "padding": s.pool_padding,
            }
            if s.pool_mode != "none"
            else None,
        },
        "parameters": None,
        "stages": [],
        "output": {"shape": _shape(result.output), "values": _values(result.output)},
        "messages": list(result.messages),
    }
    if example is not None:
        report["example"] = {"key": example.key, "title": example.title, "caption": example.caption}
    cmp = (
        result.param_comparison(example.dense_outputs, example.dense_bias)
        if example is not None
        else result.param_comparison()
    )
    if cmp is not None:
        report["parameters"] = {
            "conv": cmp.conv,
            "conv_formula": cmp.conv_formula,
            "dense": cmp.dense,
            "dense_formula": cmp.dense_formula,
            "dense_outputs": cmp.out_features,
        }
    for stage in result.stages:
        entry: dict[str, Any] = {
            "name": stage.name,
            "title": stage.title,
            "input_shape": _shape(stage.input),
            "output_shape": _shape(stage.output),
            "size_formula": None
            if stage.size_formula is None
            else {"rows": stage.size_formula[0], "cols": stage.size_formula[1]},
            "values": _values(stage.output),
        }
        if stage.name == "pool" and result.winners is not None:
            width = stage.input.shape[-1]
            entry["winners"] = result.winners.tolist()
            entry["winner_cells"] = np.stack([result.winners // width, result.winners % width], -1).tolist()
        report["stages"].append(entry)
    if gradients is not None:
        report["backward"] = {
            "upstream": backward,
            "upstream_values": _values(gradients.upstream),
            "stages": [
                {"name": st.name, "input_gradient": _values(gradients.input_gradient(st.name))}
                for st in result.stages
            ],
            "input_gradient": _values(gradients.d_input),
            "weight_gradient": None if gradients.d_weight is None else _values(gradients.d_weight),
            "bias_gradient": None if gradients.d_bias is None else _values(gradients.d_bias),
        }
    return report


def _picture(maps: np.ndarray, signed: bool) -> np.ndarray:
    """(H, W) or (C, H, W) values as an RGB picture: the channels side by side, enlarged if small.
    Values in viridis over the whole stage's range; gradients in coolwarm with 0 in the middle."""
    from cnn_explorer.core.features import apply_colormap, tile_channels

    maps = np.asarray(maps, dtype=np.float64)
    maps = maps[None] if maps.ndim == 2 else maps
    if signed:
        scale = float(np.abs(maps).max()) or 1.0
        grid = tile_channels(maps / (2 * scale) + 0.5, normalize="none", columns=maps.shape[0])
        rgb = apply_colormap(grid.image, "coolwarm")
    else:
        grid = tile_channels(maps, normalize="layer", columns=maps.shape[0])
        rgb = apply_colormap(grid.image, "viridis")
    factor = max(1, math.ceil(MIN_PICTURE_WIDTH / rgb.shape[1]))
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def _write_pictures(folder: Path, result: LabResult, gradients: LabGradients | None) -> list[str]:
    from PIL import Image

    pictures = [("input.png", result.input, False)]
    for i, stage in enumerate(result.stages, 1):
        pictures.append((f"{i}_{stage.name}.png", stage.output, False))
        if gradients is not None:
            pictures.append(
                (f"{i}_{stage.name}_input_gradient.png", gradients.input_gradient(stage.name), True)
            )
    if gradients is not None and gradients.d_weight is not None:
        f, c, kh, kw = gradients.d_weight.shape
        pictures.append(("kernel_gradient.png", gradients.d_weight.reshape(f * c, kh, kw), True))
    written = []
    for name, values, signed in pictures:
        Image.fromarray(_picture(values, signed)).save(folder / name)
        written.append(name)
    return written


def run_lab_command(args: argparse.Namespace) -> int:
    try:
        return _lab(args)
    except (KeyboardInterrupt, Cancelled):
        print("cnn-explorer: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED


def _lab(args: argparse.Namespace) -> int:
    from cnn_explorer.core.runs import write_json_atomic

    example = None
    try:
        if args.example is not None:
            given = [f"--{o.replace('_', '-')}" for o in _SETTING_OPTIONS if getattr(args, o) is not None]
            if given:
                left = ", ".join(given)
                raise BadLabInput(f"--example brings its own input and settings; leave out {left}")
            try:
                example = course_example(args.example)
            except ValueError as exc:
                raise BadLabInput(str(exc)) from None
            x, settings, names, source = (
                example.input,
                example.settings,
                example.names,
                f"example {example.key}",
            )
        else:
            x, source = lab_input(args)
            settings, names = lab_settings(args, x)
        try:
            result = run_lab(x, settings)
        except ValueError as exc:
            raise BadLabInput(str(exc)) from None
        gradients = None
        if args.backward is not None:
            gradients = lab_backward(result, lab_upstream(args.backward, result.output.shape, args.seed))
        if args.json.is_dir():
            raise BadLabInput(f"--json {args.json} is a folder; name a file such as {args.json / 'lab.json'}")
        try:
            prepare_output_dir(args.json.parent)
            if args.png is not None:
                prepare_output_dir(args.png)
        except OutputDirError as exc:
            raise BadLabInput(str(exc)) from None
    except BadLabInput as exc:
        return _err(str(exc))

    report = lab_report(result, source, names, gradients, args.backward, example)
    target = args.json
    try:
        write_json_atomic(args.json, report)
        pictures = []
        if args.png is not None:
            target = args.png
            pictures = _write_pictures(args.png, result, gradients)
    except OSError as exc:  # the folders were checked, so the disk or the mount failed
        print(f"cnn-explorer: cannot write to {target}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED if is_disk_full(exc) else EXIT_BAD_INPUT

    for message in result.messages:
        print(f"note: {message}", file=sys.stderr)
    print(f"input {'×'.join(map(str, result.input.shape))} ({source})")
    for stage in result.stages:
        size = "×".join(map(str, stage.output.shape))
        formula = "" if stage.size_formula is None else f"   rows {stage.size_formula[0]}"
        print(f"  {stage.title}: {size}{formula}")
    if report["parameters"] is not None:
        print(f"parameters: {report['parameters']['conv_formula']}")
    print(f"wrote {args.json}" + (f" and {len(pictures)} picture(s) to {args.png}" if pictures else ""))
    return EXIT_OK
