"""The ``compare`` subcommand: two models side by side on one image, A | B.

Typically a pretrained model against its fine-tuned run::

    cnn-explorer compare cat.jpg --a pretrained --b runs/first --out compare

writes one PNG per pair of layers (A's grid | B's grid), ``weight_change.csv`` (how far each layer's
weights moved from A to B; 0 for frozen layers) and ``top5.json`` (both sides' top-5, each with its own
class names, and how the layers were paired). Exit codes as for ``inspect``: 0 success, 1 the disk
failed, 2 unusable input (image, SPEC, layer name, output folder, two models that cannot be compared),
130 stopped with Ctrl+C.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from cnn_explorer.cli_explore import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    _err,
    _file_name,
    _progress_control,
    default_layers,
)
from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled
from cnn_explorer.core.explorer.compare import (
    PRETRAINED,
    CompareError,
    LayerPairing,
    ResolvedModel,
    WeightChange,
    can_compare,
    pair_layers,
    resolve_spec,
    weight_changes,
)
from cnn_explorer.core.features import COLORMAPS, Exploration, explore, render_grid
from cnn_explorer.core.images import ImageLoadError, open_image
from cnn_explorer.core.outdir import OutputDirError, is_disk_full, prepare_output_dir
from cnn_explorer.core.runs import RunDirError

WEIGHT_CHANGE_FILE = "weight_change.csv"
WEIGHT_CHANGE_COLUMNS = ("layer", "params", "relative_change")
REPORT_FILE = "top5.json"
SIDE_MIN_WIDTH = 640  # px: the narrowest a side's grid is drawn (enlarged by whole pixels)
GAP = 16  # px of white between A's grid and B's
MOST_CHANGED = 5  # layers listed in the summary

_SPEC_HELP = (
    "a zoo model name (its pretrained weights), a weights file (checkpoint, .pth/.pt state_dict, "
    f".safetensors, TorchScript), a run folder (its best.pt and class names), or '{PRETRAINED}': the model "
    "the other side's run started from"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``compare`` to the main parser's subcommands."""
    p = subparsers.add_parser(
        "compare",
        help="two models side by side on one image: feature-map grids A | B, weight changes, both top-5",
        description=(
            "Run two CNNs, A and B, on IMAGE (each with its own preprocessing) and write, into DIR: one PNG "
            "per pair of layers with A's channels on the left and B's on the right, "
            f"{WEIGHT_CHANGE_FILE} (per layer ||W_B - W_A|| / ||W_A||; 0 for frozen layers, empty where "
            f"the layers differ in shape, such as a new head), and {REPORT_FILE} (both top-5 and how the "
            "layers were paired: by name for the same architecture, else by relative depth)."
        ),
    )
    p.add_argument("image", metavar="IMAGE", help="the picture to run both networks on")
    p.add_argument("--a", required=True, metavar="SPEC", help=f"the left model: {_SPEC_HELP}")
    p.add_argument("--b", required=True, metavar="SPEC", help="the right model (same kinds of SPEC as --a)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (created if needed)")
    p.add_argument(
        "--layer",
        action="append",
        metavar="NAME",
        help="layer to draw, named as in A's or B's layer table (repeatable; 'all' for every layer of A). "
        "Default: A's first convolution and its last layer at each resolution, each with its partner in B",
    )
    p.add_argument("--cmap", choices=COLORMAPS, default="viridis", help="colormap (default viridis)")
    p.add_argument("--offline", action="store_true", help="never download weights")
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="allow TorchScript files: they are programs and run their own code when opened",
    )
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    try:
        return _compare(args)
    except (KeyboardInterrupt, Cancelled):
        print("cnn-explorer: stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # writing the outputs: the folder was checked, so the disk or the mount failed
        print(f"cnn-explorer: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED if is_disk_full(exc) else EXIT_BAD_INPUT


def _resolve(spec: str, partner: str, side: str, args: argparse.Namespace) -> ResolvedModel:
    control, bars = _progress_control()
    try:
        return resolve_spec(
            spec,
            partner=partner,
            allow_download=not args.offline,
            trust_code=args.trust_code,
            control=control,
        )
    except (CompareError, zoo.ModelLoadError, RunDirError) as exc:
        raise CompareError(f"--{side.lower()} {spec}: {exc}") from None
    except OSError as exc:  # a file or folder that cannot be read (permissions, a failing disk)
        raise CompareError(f"--{side.lower()} {spec}: cannot read it: {exc.strerror or exc}") from None
    finally:
        for bar in bars:
            bar.close()


def _compare(args: argparse.Namespace) -> int:
    from PIL import Image

    try:
        image = open_image(args.image)
    except ImageLoadError as exc:
        return _err(str(exc))
    try:
        prepare_output_dir(args.out)
    except OutputDirError as exc:
        return _err(str(exc))
    try:
        a = _resolve(args.a, args.b, "A", args)
        b = _resolve(args.b, args.a, "B", args)
    except CompareError as exc:
        return _err(str(exc))
    for side, resolved in (("A", a), ("B", b)):
        print(f"{resolved.titled(side)}: {resolved.loaded.weights_detail}", file=sys.stderr)
        for note in resolved.notes:
            print(f"cnn-explorer: note: {side}: {note}", file=sys.stderr)
    reason = can_compare(a.loaded, b.loaded)
    if reason is not None:
        return _err(f"cannot compare these two models: {reason}")

    result_a = explore(a.loaded, image.pixels)
    result_b = explore(b.loaded, image.pixels)
    pairing = pair_layers(result_a.table.names(), result_b.table.names())
    try:
        pairs = _pick_pairs(args.layer, pairing, result_a)
    except KeyError as exc:
        return _err(str(exc.args[0]))

    grids: list[dict[str, str]] = []
    too_large: list[str] = []
    for i, j in pairs:
        name_a, name_b = pairing.names_a[i], pairing.names_b[j]
        sides = []
        for side, result, name in (("A", result_a, name_a), ("B", result_b, name_b)):
            act = result.capture[name]
            if act.data is None:
                too_large.append(f"{side}: {name}")
                print(
                    f"cnn-explorer: {side}'s {name} is too large to keep ({act.nbytes / 2**20:.0f} MB); "
                    "its pair is skipped",
                    file=sys.stderr,
                )
                break
            data = act.data if act.data.ndim == 3 else act.data.reshape(-1, 1, 1)
            sides.append(render_grid(data, cmap=args.cmap))
        if len(sides) < 2:
            continue
        path = args.out / _pair_file_name(i, name_a, name_b)
        Image.fromarray(_side_by_side(*_similar_widths(sides[0], sides[1]))).save(path)
        grids.append({"file": path.name, "a": name_a, "b": name_b})

    changes = weight_changes(a.loaded.model, b.loaded.model, result_a.table)
    (args.out / WEIGHT_CHANGE_FILE).write_text(_weight_change_csv(changes), encoding="utf-8")
    report = {
        "image": str(image.path),
        "pairing": pairing.kind.value,
        "pairing_label": pairing.label,
        "a": _side_report("A", a, result_a),
        "b": _side_report("B", b, result_b),
        "grids": grids,
        "too_large": too_large,
        "weight_change": WEIGHT_CHANGE_FILE,
    }
    (args.out / REPORT_FILE).write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )

    _print_summary(a, b, result_a, result_b, pairing, changes)
    print(f"wrote {len(grids)} grid pair(s), {WEIGHT_CHANGE_FILE} and {REPORT_FILE} to {args.out}")
    return EXIT_OK


def _pick_pairs(
    requested: list[str] | None, pairing: LayerPairing, result_a: Exploration
) -> list[tuple[int, int]]:
    """(row of A, row of B) to draw: names of either side, 'all' (every row of A), or the default story."""
    if not requested:
        requested = default_layers(result_a.table)
    elif any(r.lower() == "all" for r in requested):
        return pairing.pairs()
    index_a = {n: i for i, n in enumerate(pairing.names_a)}
    index_b = {n: j for j, n in enumerate(pairing.names_b)}
    chosen: list[tuple[int, int]] = []
    unknown: list[str] = []
    for name in requested:
        if name in index_a:
            i = index_a[name]
            j = pairing.partner_of_a(i)
        elif name in index_b:
            j = index_b[name]
            i = pairing.partner_of_b(j)
        else:
            unknown.append(name)
            continue
        if i is not None and j is not None and (i, j) not in chosen:
            chosen.append((i, j))
    if unknown:
        names = list(dict.fromkeys([*pairing.names_a, *pairing.names_b]))
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, names, n=3, cutoff=0.5)
            hints.append(f"'{u}'" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        raise KeyError(
            f"no layer named {'; '.join(hints)} in A or B; `cnn-explorer inspect` lists a model's layers"
        )
    return chosen


def _pair_file_name(index: int, name_a: str, name_b: str) -> str:
    base = _file_name(index, name_a)
    if name_b == name_a:
        return base
    return f"{base.removesuffix('.png')}__vs__{_file_name(index, name_b).split('_', 1)[1]}"


def _similar_widths(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both grids enlarged (whole pixels, nearest neighbour) to about the wider one's width, at least
    ``SIDE_MIN_WIDTH``: a 64-pixel model's maps beside a 224-pixel model's are then readable alike."""
    target = max(SIDE_MIN_WIDTH, left.shape[1], right.shape[1])
    out = []
    for rgb in (left, right):
        width = max(1, rgb.shape[1])
        factor = max(1, round(target / width), math.ceil(SIDE_MIN_WIDTH / width))
        out.append(np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1) if factor > 1 else rgb)
    return out[0], out[1]


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """A's RGB grid | white gap | B's, top-aligned on a white canvas."""
    height = max(left.shape[0], right.shape[0])
    canvas = np.full((height, left.shape[1] + GAP + right.shape[1], 3), 255, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + GAP :] = right
    return canvas


def _weight_change_csv(changes: list[WeightChange]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(WEIGHT_CHANGE_COLUMNS)
    for c in changes:
        writer.writerow([c.layer, c.params, repr(c.relative_change) if c.measured else ""])
    return buf.getvalue()


def _side_report(side: str, resolved: ResolvedModel, result: Exploration) -> dict:
    loaded = resolved.loaded
    return {
        "spec": resolved.spec,
        "label": resolved.titled(side),
        "model": loaded.info.name,
        "title": loaded.info.title,
        "weights": loaded.weights,
        "weights_detail": loaded.weights_detail,
        "input_shape": list(result.table.input_shape),
        "predictions": [
            {"rank": k + 1, "index": p.index, "name": p.name, "probability": round(p.probability, 6)}
            for k, p in enumerate(result.predictions)
        ],
    }


def _print_summary(
    a: ResolvedModel,
    b: ResolvedModel,
    result_a: Exploration,
    result_b: Exploration,
    pairing: LayerPairing,
    changes: list[WeightChange],
) -> None:
    for side, resolved, result in (("A", a, result_a), ("B", b, result_b)):
        if not resolved.loaded.trained:
            print(
                f"cnn-explorer: note: {side} is UNTRAINED (random weights); its predictions mean nothing",
                file=sys.stderr,
            )
        top = result.predictions[0]
        print(f"{resolved.titled(side)}: {top.name} {100 * top.probability:.2f}%")
    print(pairing.label)
    measured = [c for c in changes if c.measured]
    moved = sorted((c for c in measured if not c.unchanged), key=lambda c: -c.relative_change)
    if moved:
        width = max(len(c.layer) for c in moved[:MOST_CHANGED])
        print(f"most changed layers (||W_B - W_A|| / ||W_A||), {len(moved)} changed in all:")
        for c in moved[:MOST_CHANGED]:
            print(f"  {c.layer:<{width}}  {c.relative_change:.4g}")
    if changes and not measured:
        print("weights not compared: no layer of A has a layer of the same name and shape in B")
        return
    frozen = len(measured) - len(moved)
    print(f"{frozen} of {len(changes)} layers with weights are unchanged (frozen)")
    unmeasured = [c for c in changes if not c.measured]
    for c in unmeasured[:MOST_CHANGED]:
        print(f"  {c.layer}: {c.note}")
    if len(unmeasured) > MOST_CHANGED:
        print(f"  ... and {len(unmeasured) - MOST_CHANGED} more not compared (see {WEIGHT_CHANGE_FILE})")
