"""Line charts as PNG files, drawn with Pillow alone: for reports the CLI writes next to its CSV files
(probe accuracy by depth, the LR finder's loss curve), where a plotting library would be a heavy import.

:func:`line_chart_png` draws axes with "nice" tick labels (powers of ten on a log axis), one line per
series (dots on its points when there are few), a legend above the plot when there is more than one
series, and an optional highlighted point with its label. Non-finite values (and non-positive ones on a
log axis) break a line rather than spoil the scale. The file is written to a temporary name and renamed.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from cnn_explorer.core.runs import write_bytes_atomic

__all__ = ["line_chart_png", "nice_ticks"]

Series = tuple[Sequence[float], Sequence[float], str]

# Colours that stay apart for colour-blind readers (Okabe & Ito, 2008), then greys.
_PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#666666"]
_MARKER_COLOUR = "#D62728"
_AXIS, _GRID, _TEXT = "#333333", "#E3E3E3", "#222222"
_DOTS_UP_TO = 40  # points per series below which each point gets a dot
_PAD = 12  # pixels between text blocks and the plot


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1)
    except TypeError:  # older Pillow: the small bitmap font, still legible
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi], about ``target`` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, target - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * 0.999)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten inside [lo, hi] (every n-th one over many decades); 1-2-5 steps over few decades."""
    e_lo, e_hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = e_hi - e_lo
    mantissas = (1, 2, 5) if decades <= 2 else (1,)
    every = max(1, math.ceil(decades / 8))
    ticks = [m * 10.0**e for e in range(e_lo, e_hi + 1) if (e - e_lo) % every == 0 for m in mantissas]
    inside = [t for t in ticks if lo * (1 - 1e-9) <= t <= hi * (1 + 1e-9)]
    return inside if len(inside) >= 2 else [lo, hi]


def _format_tick(value: float, step: float, log: bool) -> str:
    if log:
        exponent = math.floor(math.log10(value) + 1e-9)
        mantissa = value / 10.0**exponent
        if -3 <= exponent <= 3:
            return f"{value:g}"
        return f"{mantissa:.2g}e{exponent}" if abs(mantissa - 1) > 1e-6 else f"1e{exponent}"
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.2g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 2
    return f"{value:.{min(decimals, 6)}f}"


def _finite_points(xs: Sequence[float], ys: Sequence[float], log_x: bool) -> list[tuple[float, float] | None]:
    """The points to draw, with None where a line must break (a missing or unplottable value)."""
    out: list[tuple[float, float] | None] = []
    for x, y in zip(xs, ys, strict=True):
        x, y = float(x), float(y)
        ok = math.isfinite(x) and math.isfinite(y) and (x > 0 or not log_x)
        out.append((x, y) if ok else None)
    return out


def _range(values: list[float], log: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if log:
        if hi <= lo:
            lo, hi = lo / 10**0.5, hi * 10**0.5
        return lo, hi
    if hi <= lo:
        half = abs(lo) * 0.1 or 0.5
        return lo - half, hi + half
    margin = (hi - lo) * 0.05
    return lo - margin, hi + margin


def line_chart_png(
    path: str | os.PathLike[str],
    series: list[tuple[Sequence[float], Sequence[float], str]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    marker: tuple[float, float, str] | None = None,
    x_ticks: list[tuple[float, str]] | None = None,
    size: tuple[int, int] = (800, 500),
) -> Path:
    """Draw ``series`` — (xs, ys, label) each — as lines into the PNG file ``path``; returns the path.

    ``marker`` (x, y, label) is highlighted with a dot, a guide line down to the x axis and its label.
    ``x_ticks`` replaces the automatic x ticks with (value, label) pairs. ValueError when there is
    nothing to draw or a series' xs and ys differ in length.
    """
    path = Path(path)
    width, height = int(size[0]), int(size[1])
    if width < 200 or height < 150:
        raise ValueError(f"chart size {width}×{height} is too small; use at least 200×150 pixels")
    prepared: list[tuple[list[tuple[float, float] | None], str]] = []
    for xs, ys, label in series:
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r} has {len(xs)} x values but {len(ys)} y values")
        prepared.append((_finite_points(xs, ys, log_x), label))
    points = [p for pts, _ in prepared for p in pts if p is not None]
    if marker is not None and math.isfinite(marker[0]) and math.isfinite(marker[1]):
        if marker[0] > 0 or not log_x:
            points.append((float(marker[0]), float(marker[1])))
        else:
            marker = None
    else:
        marker = None
    if not points:
        raise ValueError(f"nothing to plot in {path.name}: no series has a finite point")

    x_lo, x_hi = _range([p[0] for p in points], log_x)
    y_lo, y_hi = _range([p[1] for p in points], False)
    if x_ticks is not None:
        ticks_x = [(float(v), str(t)) for v, t in x_ticks if math.isfinite(v) and (v > 0 or not log_x)]
        if ticks_x:
            x_lo = min(x_lo, *(v for v, _ in ticks_x))
            x_hi = max(x_hi, *(v for v, _ in ticks_x))
    elif log_x:
        ticks_x = [(v, _format_tick(v, 0.0, True)) for v in _log_ticks(x_lo, x_hi)]
    else:
        values = nice_ticks(x_lo, x_hi)
        step = values[1] - values[0] if len(values) > 1 else 0.0
        ticks_x = [(v, _format_tick(v, step, False)) for v in values]
    y_values = nice_ticks(y_lo, y_hi)
    y_step = y_values[1] - y_values[0] if len(y_values) > 1 else 0.0
    ticks_y = [(v, _format_tick(v, y_step, False)) for v in y_values]

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font, title_font = _font(14), _font(17)
    line_h = _text_size(draw, "Ag", font)[1]

    # Layout: title, then the legend row (several series), the plot, tick labels and the x label.
    top = _PAD
    title_w, title_h = _text_size(draw, title, title_font)
    draw.text(((width - title_w) / 2, top), title, fill=_TEXT, font=title_font)
    top += title_h + _PAD
    colours = [_PALETTE[i % len(_PALETTE)] for i in range(len(prepared))]
    if len(prepared) > 1:
        top = _legend(draw, [label for _, label in prepared], colours, top, width, font, line_h)
    y_tick_w = max((_text_size(draw, t, font)[0] for _, t in ticks_y), default=0)
    left = _PAD + line_h + _PAD + y_tick_w + 8
    right = width - _PAD - max(20, _text_size(draw, ticks_x[-1][1], font)[0] // 2 if ticks_x else 20)
    bottom = height - _PAD - line_h - _PAD - line_h - 8
    if right - left < 50 or bottom - top < 50:
        raise ValueError(f"chart size {width}×{height} leaves no room for the plot")

    def px(x: float) -> float:
        if log_x:
            return left + (math.log10(x) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo)) * (
                right - left
            )
        return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

    def py(y: float) -> float:
        return bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top)

    # grid and ticks
    for v, text in ticks_y:
        if not y_lo <= v <= y_hi:
            continue
        y = py(v)
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.line([(left - 5, y), (left, y)], fill=_AXIS)
        tw, th = _text_size(draw, text, font)
        draw.text((left - 8 - tw, y - th / 2 - 2), text, fill=_TEXT, font=font)
    last_label_end = -math.inf
    for v, text in ticks_x:
        if not x_lo <= v <= x_hi:
            continue
        x = px(v)
        draw.line([(x, top), (x, bottom)], fill=_GRID)
        draw.line([(x, bottom), (x, bottom + 5)], fill=_AXIS)
        tw, _ = _text_size(draw, text, font)
        if x - tw / 2 > last_label_end + 4:  # crowded labels: skip rather than overlap
            draw.text((x - tw / 2, bottom + 8), text, fill=_TEXT, font=font)
            last_label_end = x + tw / 2
    draw.rectangle([left, top, right, bottom], outline=_AXIS)

    # axis labels
    xw, _ = _text_size(draw, x_label, font)
    draw.text(((left + right - xw) / 2, height - _PAD - line_h - 2), x_label, fill=_TEXT, font=font)
    _vertical_text(image, y_label, font, _PAD, (top + bottom) / 2)

    # the series
    for (pts, _), colour in zip(prepared, colours, strict=True):
        run: list[tuple[float, float]] = []
        for p in [*pts, None]:
            if p is None:
                if len(run) > 1:
                    draw.line(run, fill=colour, width=2, joint="curve")
                run = []
            else:
                run.append((px(p[0]), py(p[1])))
        shown = [p for p in pts if p is not None]
        if len(shown) <= _DOTS_UP_TO:
            for x, y in shown:
                cx, cy = px(x), py(y)
                draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)

    if marker is not None:
        _draw_marker(draw, (px(marker[0]), py(marker[1])), marker[2], (left, top, right, bottom), font)

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
    return path


def _legend(draw, labels: list[str], colours: list[str], top: int, width: int, font, line_h: int) -> int:
    """One centred row of "— label" entries (wrapped when long); returns the y below it."""
    entries = [
        (label, colour, _text_size(draw, label, font)[0] + 34)
        for label, colour in zip(labels, colours, strict=True)
    ]
    rows: list[list[tuple[str, str, int]]] = [[]]
    used = 0
    for entry in entries:
        if rows[-1] and used + entry[2] > width - 2 * _PAD:
            rows.append([])
            used = 0
        rows[-1].append(entry)
        used += entry[2]
    for row in rows:
        x = (width - sum(e[2] for e in row)) / 2
        y_mid = top + line_h / 2 + 2
        for label, colour, w in row:
            draw.line([(x, y_mid), (x + 22, y_mid)], fill=colour, width=3)
            draw.text((x + 27, top - 1), label, fill=_TEXT, font=font)
            x += w
        top += line_h + 8
    return top + _PAD // 2


def _vertical_text(image: Image.Image, text: str, font, x: float, y_centre: float) -> None:
    probe = ImageDraw.Draw(image)
    w, h = _text_size(probe, text, font)
    label = Image.new("RGBA", (w + 4, h + 8), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((2, 0), text, fill=_TEXT, font=font)
    rotated = label.rotate(90, expand=True)
    image.paste(rotated, (int(x), int(y_centre - rotated.height / 2)), rotated)


def _draw_marker(
    draw, at: tuple[float, float], text: str, box: tuple[float, float, float, float], font
) -> None:
    (cx, cy), (left, top, right, bottom) = at, box
    for y in range(int(cy) + 8, int(bottom), 8):  # a dotted guide down to the x axis
        draw.line([(cx, y), (cx, min(y + 4, bottom))], fill=_MARKER_COLOUR, width=1)
    draw.ellipse([cx - 7, cy - 7, cx + 7, cy + 7], outline=_MARKER_COLOUR, width=3)
    draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=_MARKER_COLOUR)
    if not text:
        return
    tw, th = _text_size(draw, text, font)
    # beside the point, on whichever side keeps the label inside the plot
    tx = cx + 12 if cx + 12 + tw + 6 <= right else cx - 12 - tw
    ty = cy - th - 14 if cy - th - 14 >= top + 4 else cy + 12
    tx = min(max(tx, left + 4), right - tw - 4)
    draw.rectangle([tx - 4, ty - 2, tx + tw + 4, ty + th + 6], fill="white", outline=_MARKER_COLOUR)
    draw.text((tx, ty), text, fill=_MARKER_COLOUR, font=font)
