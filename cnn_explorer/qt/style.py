"""One palette for the window: the colours that carry meaning, named once (napari keeps its theme in one
place). Widgets and pages use these names instead of writing hex colours inline."""

from __future__ import annotations

from cnn_explorer.core.explorer.text import BadgeKind

MUTED = "#555"  # secondary text
FAINT = "#777"  # hints
ACCENT = "#06c"  # shapes and sizes in headers
SIDE_A = "#1f77b4"
SIDE_B = "#d62728"

# (foreground, background) of a model's weights badge.
BADGE_COLOURS = {
    BadgeKind.UNTRAINED: ("#a61b14", "#fde0de"),
    BadgeKind.YOURS: ("#1f4f99", "#e2ebfa"),
    BadgeKind.PRETRAINED: ("#1d6b2c", "#e0f2e4"),
}
PICKER_DOTS = {
    "ImageNet weights": "#2e9a48",
    "trained weights": "#2e9a48",
    "downloads weights": "#e0a020",
    "untrained": "#c8372d",
}
FILE_DOT = "#2f6fd0"

NOTICE_STYLE = (
    "color: #8a1c14; background: #fdecea; border: 1px solid #f3c1bc; border-radius: 4px; padding: 4px;"
)
TITLE_STYLE = "font-weight: 600; font-size: 14px;"
SMALL_MUTED_STYLE = f"color: {MUTED}; font-size: 11px;"


def badge_style(kind: BadgeKind) -> str:
    fg, bg = BADGE_COLOURS[kind]
    return (
        f"color: {fg}; background: {bg}; border: 1px solid {fg}; border-radius: 9px; padding: 2px 9px; "
        "font-weight: 700;"
    )
