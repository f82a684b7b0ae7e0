"""Live input's drawing (a mixin of NetworkPage, through :class:`LiveInput`): each result painted into the
explorer's own widgets, and the explorer's reactions while live.

While live, the session keeps the still picture and the cursor: stepping layers, picking channels,
Grad-CAM and the grid's options change the pipeline for the next frame instead of preparing the still's
views, and the frame on screen is redrawn at once where it holds what is asked (another channel). These
overrides come before Drawing's in the page's bases; without live they hand over to Drawing.
"""

from __future__ import annotations

import dataclasses

from cnn_explorer.core.explorer import text
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.live import LiveResult
from cnn_explorer.core.live.pipeline import KEEP
from cnn_explorer.qt.pages.network.live_work import LiveCam, LiveRun, class_name


class LiveDrawing:
    """Painting live results: pictures and labels only (each result holds every array drawn)."""

    def _paint_live(self, result: LiveResult) -> None:
        """One result on screen: pictures and labels only (the result holds every array drawn)."""
        row = self.current_row
        if row is not None and row.name == result.layer:  # (not a frame begun before a step of layer)
            self.centre_a.show_view(result.view, text.grid_caption(result.view))
            channel = self.session.channel_for(Side.A)
            if channel is None or channel >= result.view.channels:
                self.session.select_channel(int(result.view.grid.order[0]))  # its event draws it
            else:
                self._draw_live_channel(result)
        self.predictions.set_predictions(result.top, selected=result.cam_class)
        if result.top:
            self.side_panel.show_live_class(result.top[0].name)
        self._draw_live_input(result)

    def _draw_live_channel(self, result: LiveResult) -> None:
        channel = self.session.channel_for(Side.A)
        row = self.current_row
        if channel is None or channel >= result.view.channels or row is None:
            return
        unit = self.centre_a.show_channel(result.view, channel, self.session.cursor.unit, row.type)
        if unit != self.session.cursor.unit and self.session.cursor.unit is not None:
            self.session.cursor = dataclasses.replace(self.session.cursor, unit=unit)

    def _draw_live_input(self, result: LiveResult) -> None:
        frame = result.frame
        label = self._live.source.label if self._live is not None else "live"
        caption = f"Live: {label}, frame {frame.index} · {1000 * result.seconds:.0f} ms a pass"
        cam = LiveCam(result.cam) if result.cam is not None else None
        if cam is not None and result.cam_class is not None and self.session.a.loaded is not None:
            name = class_name(self.session.a.loaded, result.cam_class)
            self.cam_info.setText(f"Grad-CAM follows the live top-1, “{name}”, at {result.cam_layer}.")
        pre = self.session.a.loaded.preprocess if self.session.a.loaded is not None else None
        how = f" (short side {pre.resize}, centre {pre.crop}×{pre.crop})" if pre is not None else ""
        self.centre_a.show_input(result.seen, cam, None, caption, how)  # type: ignore[arg-type]

    def _show_live_stats(self) -> None:
        run = self._live
        if run is None or not run.frames:
            return
        s = run.stats
        self.live_bar.show_stats(
            f"{run.source.label}: {s.recent_fps:.1f} fps · latency {s.latency_ms:.0f} ms "
            f"(p95 {s.latency_p95_ms:.0f}) · {s.dropped} of {s.captured} frames dropped"
        )
        if run.last is not None and self.stats_view.stats is not run.last.view.stats:
            self.stats_view.set_stats(run.last.view.stats)  # (a histogram: at this pace, not every frame)

    # -- the explorer's reactions while live (these come before Drawing's in the page's bases) ------------
    def _on_layer(self) -> None:
        run = self._live
        if run is None:
            super()._on_layer()
            return
        row = self.current_row
        self.layer_panel.show_position(row.name if row is not None else None, self.session.layer_index)
        self.centre_a.show_header(row, "live")
        if row is None:
            return
        children = sum(1 for r in self.rows if r.parent == row.name)
        self.details.set_layer(row, None, self.session.activation(Side.A, row.name), children)
        self.weight_chart.mark(row.name)
        # The still's view of this layer, as without live (kept for Pause; a layer seen before is at
        # hand): its weights' facts fill the details and the Filters tab while the frames fill the rest.
        self.sides[Side.A].request_layer()
        try:  # for the next frame; the session's rows and the pipeline's are one model's table
            run.pipeline.set_layer(row.name)
        except ValueError as exc:
            self.live_bar.show_message(str(exc))
            return
        run.pipeline.set_view(columns=self.grid.columns_for(row.out_shape))
        self._sync_live_channel(run)

    def _on_layer_ready(self, side: Side) -> None:
        if self._live is None:
            super()._on_layer_ready(side)
            return
        # Live: of the still's view only what the weights decide (the frames paint the maps).
        prepared, row = self.sides[side].shown, self.session.current_row(side)
        if side is not Side.A or prepared is None or row is None or prepared.facts.name != row.name:
            return
        children = sum(1 for r in self.rows if r.parent == row.name)
        self.details.set_layer(row, prepared.facts, self.session.activation(side, row.name), children)
        self._draw_filters()

    def _draw_channels(self, sides: tuple[Side, ...] | None = None) -> None:
        run = self._live
        if run is None:
            super()._draw_channels(sides)
            return
        self._sync_live_channel(run)
        if run.last is not None and run.last.layer == run.pipeline.layer:
            self._draw_live_channel(run.last)  # at once, from the frame on screen (it holds every channel)
        self._draw_filters()  # the chosen channel's filter

    def _sync_live_channel(self, run: LiveRun) -> None:
        channel = self.session.channel_for(Side.A)
        try:
            run.pipeline.set_channel(
                channel if channel is not None and channel < run.pipeline.channels else None
            )
        except ValueError:
            run.pipeline.set_channel(None)

    def _draw_input(self, side: Side) -> None:
        if self._live is None or side is not Side.A:
            super()._draw_input(side)

    def _request_cams(self) -> None:
        run = self._live
        if run is None:
            super()._request_cams()
            return
        cam = self.session.cam
        try:
            run.pipeline.set_gradcam(cam.enabled, at="current" if cam.layer_mode == "current" else "last")
        except ValueError as exc:
            self.cam_info.setText(str(exc))
            return
        self.cam_info.setText("Grad-CAM follows the live top-1 class." if cam.enabled else "")

    def _on_options(self) -> None:
        run = self._live
        if run is None:
            super()._on_options()
            return
        o = self.session.options
        row = self.current_row
        columns = self.grid.columns_for(row.out_shape) if row is not None else KEEP
        run.pipeline.set_view(cmap=o.cmap, sort_by=o.sort_by, normalize=o.normalize, columns=columns)
