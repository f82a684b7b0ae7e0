"""The ``models`` and ``inspect`` subcommands: the network explorer's core, for people who want pictures.

``cli.py`` calls :func:`register` with its subparsers; each command sets ``func`` to a function that takes
the parsed arguments and returns the exit code: 0 success, 2 unusable input (image, model, weights file,
layer name, output folder), 130 stopped with Ctrl+C.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.features import COLORMAPS, Exploration, explore, render_grid
from cnn_explorer.core.images import ImageLoadError, open_image
from cnn_explorer.core.layers import LayerTable
from cnn_explorer.core.outdir import OutputDirError, is_disk_full, prepare_output_dir

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``models`` and ``inspect`` to the main parser's subcommands."""
    m = subparsers.add_parser(
        "models",
        help="list the model zoo with each model's weights status",
        description="List the models of the network explorer and where each one's weights would come from.",
    )
    m.set_defaults(func=run_models)

    p = subparsers.add_parser(
        "inspect",
        help="write feature-map grids (PNG), the layer table (CSV) and the top-5 (JSON) for an image",
        description=(
            "Run a CNN on IMAGE and write, into DIR: one PNG per chosen layer with all its channels as a "
            "grid, layers.csv (shapes, parameters, multiply-adds, receptive fields), top5.json, and "
            "input.png (the picture as the network saw it)."
        ),
    )
    p.add_argument("image", metavar="IMAGE", help="the picture to run the network on")
    p.add_argument(
        "--model", default=zoo.DEFAULT_MODEL, help=f"model name (default {zoo.DEFAULT_MODEL}; see `models`)"
    )
    p.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        help="layer to draw (repeatable; names as in layers.csv; 'all' for every layer). "
        "Default: the first convolution and the last layer at each resolution",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if needed)")
    p.add_argument(
        "--weights",
        type=Path,
        metavar="FILE",
        help="weights file (.pth/.pt state_dict, .safetensors, "
        "a CNN Explorer checkpoint or TorchScript) instead of the pretrained ones",
    )
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="allow a TorchScript --weights file: it is a program and runs its own code when opened",
    )
    p.add_argument("--cmap", choices=COLORMAPS, default="viridis", help="colormap (default viridis)")
    p.add_argument(
        "--normalize",
        choices=("channel", "layer"),
        default="channel",
        help="scale each channel to its own range, or the whole layer to one range (default channel)",
    )
    p.add_argument(
        "--sort", choices=("index", "mean", "max"), default="index", help="channel order in the grid"
    )
    p.add_argument(
        "--min-width",
        type=int,
        default=800,
        metavar="PX",
        help="enlarge small grids (nearest neighbour) to at least this width (default 800)",
    )
    p.add_argument("--gradcam", action="store_true", help="also write gradcam.png for the top class")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.set_defaults(func=run_inspect)


def _err(message: str) -> int:
    print(f"cnn-explorer: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run_models(args: argparse.Namespace) -> int:
    """Print the zoo: name, title, input size and weights status."""
    infos = zoo.available_models()
    rows = []
    for info in infos:
        kind, detail = zoo.weights_status(info.name)
        mark = "*" if info.name == zoo.DEFAULT_MODEL else " "
        rows.append((f"{info.name}{mark}", info.title, f"{info.input_size}", kind, detail))
    header = ("NAME", "MODEL", "INPUT", "WEIGHTS", "DETAIL")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    for name, title, size, kind, detail in [header, *rows]:
        print(
            f"{name:<{widths[0]}}  {title:<{widths[1]}}  {size:>{widths[2]}}  {kind:<{widths[3]}}  {detail}"
        )
    print("\n* default. Your own weights: cnn-explorer inspect IMAGE --model NAME --weights FILE --out DIR")
    return EXIT_OK


def default_layers(table: LayerTable) -> list[str]:
    """The first convolution, then the last step at each spatial resolution: a short story for slides."""
    chosen: list[str] = []
    first_conv = next((r.name for r in table if "Conv" in r.type and r.kind == "layer"), None)
    if first_conv:
        chosen.append(first_conv)
    spatial = [r for r in table if r.spatial and r.out_shape[1] * r.out_shape[2] > 1]
    for i, row in enumerate(spatial):
        last_at_size = i + 1 == len(spatial) or spatial[i + 1].out_shape[1:] != row.out_shape[1:]
        if last_at_size and row.name not in chosen:
            chosen.append(row.name)
    return chosen


def _pick_layers(requested: list[str] | None, table: LayerTable) -> list[str]:
    if not requested:
        return default_layers(table)
    if any(r.lower() == "all" for r in requested):
        return table.names()
    names = table.names()
    unknown = [r for r in requested if r not in names]
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, names, n=3, cutoff=0.5)
            hints.append(f"'{u}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise KeyError(f"no layer named {'; '.join(hints)}; layers.csv lists them all")
    return list(dict.fromkeys(requested))


def _file_name(index: int, layer: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", layer.replace("#", "-call"))
    return f"{index:03d}_{safe}.png"


def _enlarge(rgb: np.ndarray, min_width: int) -> np.ndarray:
    factor = max(1, math.ceil(min_width / max(1, rgb.shape[1]))) if min_width > 0 else 1
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb


def _progress_control() -> tuple[Control, list]:
    """A Control that shows weight downloads as a tqdm bar on stderr."""
    bars: list = []

    def show(event: object) -> None:
        if isinstance(event, zoo.DownloadProgress):
            if not bars:
                from tqdm import tqdm

                bars.append(
                    tqdm(total=event.total_bytes, unit="B", unit_scale=True, desc=f"{event.name} weights")
                )
            bar = bars[0]
            bar.update(event.done_bytes - bar.n)

    return Control(report=show), bars


def run_inspect(args: argparse.Namespace) -> int:
    try:
        return _inspect(args)
    except OSError as exc:  # writing the outputs: the folder was checked, so the disk or the mount failed
        print(f"cnn-explorer: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED if is_disk_full(exc) else EXIT_BAD_INPUT


def _inspect(args: argparse.Namespace) -> int:
    from PIL import Image

    try:
        image = open_image(args.image)
    except ImageLoadError as exc:
        return _err(str(exc))
    try:
        prepare_output_dir(args.out)
    except OutputDirError as exc:
        return _err(str(exc))
    control, bars = _progress_control()
    try:
        if args.weights is not None:
            loaded = zoo.load_model(
                args.model, weights_file=args.weights, control=control, trust_code=args.trust_code
            )
        else:
            loaded = zoo.load_model(args.model, allow_download=not args.offline, control=control)
    except zoo.ModelLoadError as exc:
        return _err(str(exc))
    except (KeyboardInterrupt, Cancelled):
        print("cnn-explorer: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for bar in bars:
            bar.close()
    print(f"{loaded.info.title}: {loaded.weights_detail}", file=sys.stderr)

    try:
        result: Exploration = explore(loaded, image.pixels)
        layers = _pick_layers(args.layer, result.table)
    except KeyError as exc:
        return _err(str(exc.args[0]))
    except KeyboardInterrupt:
        print("cnn-explorer: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED

    written: list[str] = []
    too_large: list[str] = []
    for name in layers:
        act = result.capture[name]
        if act.data is None:
            too_large.append(name)
            print(
                f"cnn-explorer: {name} is too large to keep ({act.nbytes / 2**20:.0f} MB); skipped",
                file=sys.stderr,
            )
            continue
        data = act.data if act.data.ndim == 3 else act.data.reshape(-1, 1, 1)
        rgb = render_grid(data, cmap=args.cmap, normalize=args.normalize, sort_by=args.sort)
        path = args.out / _file_name(result.table.names().index(name), name)
        Image.fromarray(_enlarge(rgb, args.min_width)).save(path)
        written.append(path.name)

    Image.fromarray(result.pixels).save(args.out / "input.png")
    result.table.to_csv(args.out / "layers.csv")
    report = {
        "image": str(image.path),
        "model": loaded.info.name,
        "title": loaded.info.title,
        "weights": loaded.weights,
        "weights_detail": loaded.weights_detail,
        "input_shape": list(result.table.input_shape),
        "predictions": [
            {"rank": k + 1, "index": p.index, "name": p.name, "probability": round(p.probability, 6)}
            for k, p in enumerate(result.predictions)
        ],
        "grids": written,
        "too_large": too_large,
    }
    if args.gradcam:
        from cnn_explorer.core.cam import default_cam_layer, grad_cam, overlay

        layer = default_cam_layer(result.table)
        cam = grad_cam(loaded.model, loaded.preprocess(image.pixels), layer, result.predictions[0].index)
        Image.fromarray(overlay(result.pixels, cam.heatmap)).save(args.out / "gradcam.png")
        report["gradcam"] = {"file": "gradcam.png", "layer": layer, "class": result.predictions[0].name}
    (args.out / "top5.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )

    if not loaded.trained:
        print(
            "cnn-explorer: note: this model is UNTRAINED (random weights); its predictions mean nothing",
            file=sys.stderr,
        )
    for k, p in enumerate(result.predictions, 1):
        print(f"{k}. {p.name:<30} {100 * p.probability:6.2f}%")
    print(f"wrote {len(written)} grid(s), layers.csv, top5.json and input.png to {args.out}")
    return EXIT_OK
