"""The explorer page's reactions to session events: what each change redraws (a mixin of NetworkPage).

Every method reads the session and pushes plain values and numpy arrays into the panels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import CamResult, default_cam_layer, has_spatial_map
from cnn_explorer.core.explorer import text
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.explorer.tasks import ModelSource
from cnn_explorer.core.features import LayerView, receptive_region
from cnn_explorer.core.layers import LayerRow
from cnn_explorer.qt.pages.network.centre import RF_COLOUR

# A layer worth a picture, per model: mid-network, where the sample cat's eyes, stripes and whiskers
# light up separate channels. Other models use the first activation at a quarter of the input size.
SCREENSHOT_LAYERS = {"efficientnet_lite0": "_blocks.3._swish", "resnet18": "layer1.1", "lenet5": "c1_tanh"}


class Drawing:
    # -- what is shown (read by tests and the screenshot) -------------------------------------------
    @property
    def loaded(self) -> zoo.LoadedModel | None:
        return self.session.a.loaded

    @property
    def exploration(self):
        return self.session.a.exploration

    @property
    def rows(self) -> list[LayerRow]:
        return self.session.rows

    @property
    def current_row(self) -> LayerRow | None:
        return self.session.current_row(Side.A)

    @property
    def layer_index(self) -> int:
        return self.session.layer_index

    @property
    def channel(self) -> int | None:
        return self.session.cursor.channel

    @property
    def unit(self) -> tuple[int, int] | None:
        return self.session.cursor.unit

    @property
    def view(self) -> LayerView | None:
        shown = self.sides[Side.A].shown
        return shown.view if shown is not None else None

    @property
    def cam(self) -> CamResult | None:
        return self.cam_for(Side.A)

    def cam_for(self, side: Side) -> CamResult | None:
        """The Grad-CAM drawn over ``side``'s picture now, if any."""
        cam = self._cams.get(side) if self.session.cam.enabled else None
        return cam if isinstance(cam, CamResult) else None

    @property
    def image(self):
        return self.session.image

    @property
    def shown_source(self) -> ModelSource | None:
        return self.session.a.source if self.session.a.ready else None

    def receptive_field(self) -> tuple[int, int, int, int] | None:
        rects = self.input_view.highlight_rects("rf")
        return rects[0] if rects else None

    # -- models -----------------------------------------------------------------------------------
    def _show_nothing(self, message: str) -> None:
        self.layer_panel.set_rows([], set())
        self.layer_panel.summary.setText("")
        self.centre_a.clear_all(message)
        self.side_panel.clear(message)
        self._cams.clear()

    def _bar(self, side: Side):
        return self.bar_a if side is Side.A else self.bar_b

    # -- layers -----------------------------------------------------------------------------------
    def _on_layer(self) -> None:
        row = self.current_row
        self.layer_panel.show_position(row.name if row is not None else None, self.session.layer_index)
        for side in self.session.active_sides():
            r = self.session.current_row(side)
            note = ""
            if side is Side.B and r is not None and not self.session.pairing.by_name:
                note = "(paired by relative depth)"
            self.sides[side].centre.show_header(r, note)
            self.sides[side].request_layer()
        shown = self.sides[Side.A].shown
        if row is not None and (shown is None or shown.facts.name != row.name):
            # At once from the table; the parameters' breakdown follows with the view. (A kept view
            # was shown within request_layer and wrote the details with its breakdown already.)
            children = sum(1 for r in self.rows if r.parent == row.name)
            self.details.set_layer(row, None, self.session.activation(Side.A, row.name), children)
        self.weight_chart.mark(row.name if row is not None else None)
        if self.session.cam.layer_mode == "current":
            self._request_cams()

    def _on_options(self) -> None:
        for side in self.session.active_sides():
            self.sides[side].request_layer()

    def _on_layer_ready(self, side: Side) -> None:
        prepared = self.sides[side].shown
        row = self.session.current_row(side)
        if prepared is None or row is None or prepared.facts.name != row.name:
            return
        centre = self.sides[side].centre
        view = prepared.view
        drawn = False
        if view is None:
            act = self.session.activation(side, row.name)
            centre.clear(text.not_captured_text(row, act, self.sides[side].max_layer_bytes))
        else:
            centre.show_view(view, text.grid_caption(view))
        if side is Side.A:
            children = sum(1 for r in self.rows if r.parent == row.name)
            self.details.set_layer(row, prepared.facts, self.session.activation(side, row.name), children)
            if view is not None:
                self._statistics_timer.start()  # (the maps are painted first; it says view_ready)
                before = self.session.cursor.channel
                if self.session.cursor.channel is None and self._telling_wanted:
                    self._telling_wanted = False
                    if view.spatial:
                        self.session.select_channel(_telling_channel(view.values))
                if self.session.cursor.channel is None:
                    self.session.select_channel(int(view.grid.order[0]), self.session.cursor.unit)
                drawn = self.session.cursor.channel != before  # its channel event drew the channels
            else:
                self._statistics_timer.stop()
                self.stats_view.clear("Not captured (too large to keep)." if prepared.view is None else "")
        if not drawn:
            self._draw_channels((side,))  # (the other side's maps are as they were)

    def _draw_statistics(self) -> None:
        """The shown layer's statistics, after its maps; then its view is all on screen."""
        view = self.view
        if view is None:
            return
        if self.stats_view.stats is not view.stats:
            self.stats_view.set_stats(view.stats)
        self.view_ready.emit(view.name)

    def _draw_channels(self, sides: tuple[Side, ...] | None = None) -> None:
        """The chosen channel and the picture with its field on ``sides`` (every active side by default),
        the filters, and in compare mode B − A once both sides show the layer."""
        diff: list[np.ndarray | None] = [None, None]
        if sides is None:
            sides = tuple(self.session.active_sides())
        for side in self.session.active_sides():
            sv = self.sides[side]
            prepared, row = sv.shown, self.session.current_row(side)
            channel = self.session.channel_for(side)
            drawing = side in sides
            if prepared is not None and prepared.view is not None and row is not None and channel is not None:
                if drawing:
                    unit = sv.centre.show_channel(prepared.view, channel, self.session.cursor.unit, row.type)
                    if side is Side.A and unit != self.session.cursor.unit:
                        self.session.cursor = dataclasses.replace(self.session.cursor, unit=unit)
                if prepared.view.spatial:
                    diff[side] = prepared.view.channel_map(channel)
            if drawing:
                self._draw_input(side)
        if Side.A in sides:
            self._draw_filters()
        if self.session.comparing:
            if any(
                self.sides[s].shown is None and self.sides[s].views.busy for s in self.session.active_sides()
            ):
                return  # a side's view is on its way: its arrival draws the difference (no "pick a channel")
            c = self.session.cursor.channel
            self.compare_panel.show_difference(
                diff[0],
                diff[1],
                f"Difference B − A, channel {c}",
                paired_by_name=self.session.pairing.by_name,
            )

    def _draw_filters(self) -> None:
        prepared = self.sides[Side.A].shown
        row = self.current_row
        if prepared is not None and row is not None and self.side_panel.filters_shown:
            self.filter_view.set_filters(
                prepared.facts, selected=self.session.cursor.channel, type_name=row.type
            )

    def _draw_input(self, side: Side) -> None:
        state = self.session.side(side)
        if state is None or state.exploration is None or state.loaded is None:
            return
        pixels = state.exploration.pixels
        h, w = pixels.shape[:2]
        cam = self._cams.get(side) if self.session.cam.enabled else None
        row, unit = self.session.current_row(side), self.session.cursor.unit
        field, caption = None, ""
        inside = (
            unit is not None
            and row is not None
            and row.spatial
            and all(0 <= u < n for u, n in zip(unit, row.out_shape[1:], strict=True))
        )
        if inside and side is Side.A:
            region = receptive_region(row, unit[0], unit[1], (h, w))
            field = (region.top, region.left, region.height, region.width)
            caption = text.receptive_field_caption(region, unit, RF_COLOUR)
        elif row is not None and not row.spatial:
            caption = "Every unit of this layer sees the whole picture."
        if isinstance(cam, CamResult):
            caption += "<br>" + text.cam_caption(cam, _class_name(state.loaded, cam.class_index))
        pre = state.loaded.preprocess
        how = f" (short side {pre.resize}, centre {pre.crop}×{pre.crop}{', grey' if pre.grayscale else ''})"
        self.sides[side].centre.show_input(
            pixels, cam if isinstance(cam, CamResult) else None, field, caption, how
        )

    def _on_input_clicked(self, side: Side, py: int, px: int) -> None:
        """A click on the picture picks the unit whose field is centred nearest to it."""
        row = self.session.current_row(side)
        if (
            row is None
            or self.channel is None
            or not row.spatial
            or row.rf_jump is None
            or row.rf_start is None
        ):
            return
        y = round((py - row.rf_start[0]) / row.rf_jump[0])
        x = round((px - row.rf_start[1]) / row.rf_jump[1])
        self.select_channel(self.channel, (y, x))

    # -- Grad-CAM ---------------------------------------------------------------------------------
    def _on_b_class(self, class_index: int) -> None:
        self.session.set_cam(class_index_b=class_index, enabled=True)
        self.cam_check.setChecked(True)

    def _request_cams(self) -> None:
        if not self.session.cam.enabled:
            self.cam_info.setText("")
            for side in self.session.active_sides():
                self._draw_input(side)
            return
        for side in self.session.active_sides():
            state = self.session.side(side)
            if state is None or state.exploration is None:
                continue
            if not state.rows:
                if side is Side.A:
                    self.cam_info.setText(text.NO_LAYERS_CAM_TEXT)
                continue
            if self.session.cam.layer_mode == "current":
                row = self.session.current_row(side)
                layer = row.name if row is not None else None
            else:
                try:
                    layer = default_cam_layer(state.exploration.table)
                except ValueError:
                    layer = None
            class_index = self.session.cam_class(side)
            if layer is None or class_index is None:
                continue
            row = state.exploration.table.row(layer)
            if not has_spatial_map(row):
                self._cams[side] = None
                if side is Side.A:
                    self.cam_info.setText(text.cam_no_map_text(layer, row))
                self._draw_input(side)
                continue
            kept = self.sides[side].request_cam(layer, class_index)
            if kept is not None:
                self._on_cam_ready(side, kept)
            elif side is Side.A:
                self.cam_info.setText(
                    f"Computing Grad-CAM for “{_class_name(state.loaded, class_index)}” at {layer}…"
                )

    def _on_cam_ready(self, side: Side, result: object) -> None:
        state = self.session.side(side)
        if state is None or state.loaded is None:
            return
        if not isinstance(result, CamResult):
            self._cams[side] = None
            if side is Side.A:
                self.cam_info.setText(f"Grad-CAM failed: {result}")
        else:
            self._cams[side] = result
            if side is Side.A:
                self.cam_info.setText(text.cam_summary(result, _class_name(state.loaded, result.class_index)))
        self._draw_input(side)

    # -- the screenshot ---------------------------------------------------------------------------
    def prepare_compare_screenshot(self) -> None:
        """Compare mode at the first layer fine-tuning changed, with a telling channel and Grad-CAM."""
        if not self.session.comparing or not self.rows:
            return
        changed = {c.layer for c in self.weight_chart.changes if c.relative_change > 0}
        index = _first_changed_activation(self.rows, changed)
        self.sort_combo.setCurrentIndex(self.sort_combo.findData("mean"))
        self.session.select_channel(None)
        self._telling_wanted = True
        self.set_layer(index if index is not None else _quarter_size_layer(self.rows))

    def prepare_screenshot(self) -> None:
        """Step into a mid-network layer, pick a channel that found part of the cat, show its field."""
        if self.exploration is None or not self.rows:
            return
        names = self.layer_names()
        wanted = SCREENSHOT_LAYERS.get(self.loaded.info.name if self.loaded is not None else "")
        index = names.index(wanted) if wanted in names else _quarter_size_layer(self.rows)
        self.sort_combo.setCurrentIndex(self.sort_combo.findData("mean"))
        self.session.select_channel(None)
        self._telling_wanted = True
        self.set_layer(index)
        view = self.view
        if view is not None and view.name == names[index] and view.spatial:
            self._telling_wanted = False
            self.session.select_channel(_telling_channel(view.values))


def _first_changed_activation(rows: list[LayerRow], changed: set[str]) -> int | None:
    """The first activation after the first layer whose weights changed (where fine-tuning shows)."""
    seen = False
    for i, row in enumerate(rows):
        seen = seen or row.name in changed
        if seen and row.spatial and row.kind == "layer" and ("ReLU" in row.type or "SiLU" in row.type):
            return i
    return None


def _class_name(loaded: zoo.LoadedModel, index: int) -> str:
    cats = loaded.categories
    return cats[index] if 0 <= index < len(cats) else f"class {index}"


def _quarter_size_layer(rows: list[LayerRow]) -> int:
    size = rows[0].in_shape[-1] if rows and rows[0].in_shape else 224
    for i, row in enumerate(rows):
        if row.spatial and row.out_shape[-1] <= size // 4 and "ReLU" in row.type:
            return i
    return min(len(rows) - 1, len(rows) // 4)


def _telling_channel(fmap: np.ndarray) -> int:
    """A channel that fires on a small part of the picture (an eye, a stripe), not everywhere."""
    flat = fmap.reshape(fmap.shape[0], -1).astype(np.float32)
    peak = flat.max(axis=1)
    mean = np.abs(flat).mean(axis=1) + 1e-6
    score = peak / mean * (peak >= np.quantile(peak, 0.5))
    return int(np.argmax(score))
