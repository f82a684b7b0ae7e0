"""The explorer page's model handling (a mixin of NetworkPage): choosing, running and showing each
side's model, failures and consent, compare mode on and off, and the weight-change chart."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from PySide6.QtCore import QTimer

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer
from cnn_explorer.core.explorer import text
from cnn_explorer.core.explorer.compare import weight_changes
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.core.explorer.tasks import ModelRun, ModelSource
from cnn_explorer.core.trust import TrustDecision
from cnn_explorer.qt import style
from cnn_explorer.qt.widgets.code_consent import CodeConsentDialog


class ModelBinding:
    # -- models -----------------------------------------------------------------------------------
    def _choose(self, side: Side, key: str) -> None:
        source = self._source_for(key)
        if source is not None:
            self.notice_label.setVisible(False)
            self.session.choose_source(side, source)

    def _source_for(self, key: str) -> ModelSource | None:
        if key.startswith("zoo:"):
            return ModelSource.zoo(key[4:])
        for state in self.session.sides:
            if state is not None and state.source is not None and state.source.key == key:
                return state.source
        return ModelSource.file(Path(key[5:])) if key.startswith("file:") else None

    def _on_source(self, side: Side) -> None:
        state = self.session.side(side)
        if state is not None and state.source is not None:
            (self.bar_a if side is Side.A else self.bar_b).select(state.source.key)
            self._before_source_runs(side, state.source)  # (DigitInput: a non-reader gets the picture)
            latest = self.sides[side].models.latest_key
            if latest is not None and latest[:2] == ("model", state.source.key) and latest[2] is None:
                return  # already being opened with its own picture (open_model_file with an image)
            self._run(side)

    def _run(self, side: Side, *, image_path: Path | None = None, allow_download: bool = True) -> None:
        state = self.session.side(side)
        if state is None or state.source is None or self._shut_down:
            return
        if image_path is None and self.session.image is None:
            return
        cached = self.sides[side].cached_result(state.source) if image_path is None else None
        if cached is not None:
            self.sides[side].models.cancel()  # whatever was running is stale now
            self.session.set_result(side, state.source, *cached)
            return
        if not self.isVisible() and image_path is None:
            self._stale = True  # nobody is looking: run when the page is shown
            return
        self.sides[side].run(state.source, image_path=image_path, allow_download=allow_download)

    def _on_model_ready(self, side: Side, run: ModelRun) -> None:
        if run.image is not None and self.session.set_image(run.image):
            # The job opened a picture of its own: every side shows that one now (this side's result is
            # kept for it, so it is shown at once).
            for each in self.session.active_sides():
                self._run(each)
        else:
            self.session.set_result(side, run.source, run.loaded, run.exploration)
        self.status_message.emit(text.loaded_message(run.loaded, run.exploration))

    def _on_model_event(self, side: Side) -> None:
        state = self.session.side(side)
        if state is None or state.loaded is None or state.source is None:
            return
        bar, loaded, source = self._bar(side), state.loaded, state.source
        if source.path is not None:
            label = text.file_label(source.path, loaded)
            for b in (self.bar_a, self.bar_b):
                b.add_file_entry(source.key, label, str(source.path))
        else:
            if not loaded.trained:
                status = text.PickerStatus.UNTRAINED
            elif zoo.imagenet_classes(loaded.info.name):
                status = text.PickerStatus.PRETRAINED
            else:  # LeNet-5's digits
                status = text.PickerStatus.TRAINED
            bar.set_entry(source.key, loaded.info.title, status, loaded.weights_detail)
        bar.select(source.key)
        bar.show_badge(text.weights_badge(loaded))
        self._cams.pop(side, None)
        ex = state.exploration
        if ex is None:
            if side is Side.A:
                self._show_nothing(f"{source.label} is loaded. Open an image to run it.")
            return
        untrained = loaded.weights is zoo.WeightsSource.UNTRAINED
        if side is Side.A:
            self.sides[Side.A].forget_views()
            too_large = {a.name for a in ex.capture if a.too_large}
            self.layer_panel.set_rows(self.session.rows, too_large)
            self.layer_panel.summary.setText(text.layer_summary(ex.table, len(too_large)))
            self.side_panel.show_predictions(ex.predictions, untrained)
            try:
                default = f"Last spatial layer ({default_cam_layer(ex.table)})"
            except ValueError:
                default = "Last spatial layer (none)"
            self.side_panel.cam_layer_combo.setItemText(0, default)
            if not self.session.rows:
                self.centre_a.clear(text.NO_LAYERS_TEXT)
                self._draw_input(Side.A)
        else:
            self.sides[Side.B].forget_views()
            self.compare_panel.b_predictions.set_predictions(ex.predictions)
            self.compare_panel.b_untrained.setVisible(untrained)
            if not state.rows:
                self.centre_b.clear(text.NO_LAYERS_TEXT)
        self._show_pairing()
        self._request_weight_changes()
        self._request_cams()

    def _show_pairing(self) -> None:
        label = self.layer_panel.pairing_label
        label.setVisible(self.session.comparing)
        if self.session.comparing:
            label.setText(self.session.pairing.label)

    def _on_compare(self) -> None:
        on = self.session.comparing
        self.bar_b.setVisible(on)
        self.centre_b.setVisible(on)
        self.compare_panel.setVisible(on)
        self.bar_a.title_label.setText("A" if on else "Model")
        self.centre_a.set_title(f"<span style='color:{style.SIDE_A}'>A</span>" if on else "")
        # Two models need the room: A's own details and statistics give way to the comparison.
        self.side_panel.set_compact(on)
        self.centre_a.set_narrow(on)
        self.layer_panel.setMinimumWidth(180 if on else 220)
        self._share_width()
        QTimer.singleShot(0, self._share_width)  # again once the new widgets have been laid out
        if not on:
            self.sides[Side.B].shutdown_work()
        self._show_pairing()
        self._on_layer()

    def _share_width(self) -> None:
        """A and B get equal halves of what the layer list and the side panel leave."""
        total = max(self.splitter.width(), 900)
        if self.session.comparing:
            half = (total - 190 - 300) // 2
            self.splitter.setSizes([190, half, half, 300])
        else:
            self.splitter.setSizes([265, total - 265 - 360, 0, 360])

    def _on_model_failed(self, side: Side, source: ModelSource, exc: BaseException) -> None:
        if isinstance(exc, zoo.UntrustedCodeError):
            self._ask_to_run_code(side, source, exc)
            return
        if isinstance(exc, zoo.ModelLoadError):
            message = str(exc)
        elif source.path is not None:
            message = f"Cannot open {source.path.name}: {type(exc).__name__}: {exc}"
        else:
            message = f"{source.label} could not run: {type(exc).__name__}: {exc}"
        self._fail(side, message)

    def _fail(self, side: Side, message: str) -> None:
        self.notice_label.setText(message)
        self.notice_label.setVisible(True)
        self.status_message.emit(message)
        self._revert(side)

    def _revert(self, side: Side) -> None:
        """The picker goes back to what is on screen."""
        self.session.revert_choice(side)
        state = self.session.side(side)
        if state is not None and state.shown is not None:
            self._bar(side).select(state.shown.key)

    def _ask_to_run_code(self, side: Side, source: ModelSource, exc: zoo.UntrustedCodeError) -> None:
        """TorchScript runs code: open it only with the user's (possibly remembered) consent, which holds
        for exactly these bytes (``exc.sha256``); changed bytes are asked about again."""
        decision = self.code_trust.decision(exc.sha256)
        if decision is TrustDecision.UNKNOWN:
            dialog = CodeConsentDialog(exc.path, exc.sha256, self)
            dialog.finished.connect(lambda _r: self._on_code_consent(side, dialog, source))
            dialog.open()
            return
        self._act_on_consent(side, source, exc.path, exc.sha256, decision)

    def _on_code_consent(self, side: Side, dialog: CodeConsentDialog, source: ModelSource) -> None:
        dialog.store(self.code_trust)
        dialog.deleteLater()
        self._act_on_consent(side, source, dialog.path, dialog.sha256, dialog.decided)

    def _act_on_consent(
        self, side: Side, source: ModelSource, path: Path, sha256: str, decision: TrustDecision
    ) -> None:
        if decision is TrustDecision.TRUSTED:
            trusted = dataclasses.replace(source, trusted_sha256=sha256)
            state = self.session.side(side)
            if state is not None:
                state.source = trusted
            self.sides[side].run(trusted)
            return
        self._fail(side, f"Did not open {path.name}: its code was not allowed to run.")

    def _on_model_cancelled(self, side: Side, source: ModelSource, downloading: bool) -> None:
        if downloading and source.name is not None:
            # The user stopped a weights download: the architecture can still be explored, untrained.
            self.sides[side].run(source, allow_download=False)
            self.notice_label.setText(
                f"Download of the {source.label} weights cancelled: showing it UNTRAINED (random weights)."
            )
            self.notice_label.setVisible(True)
            return
        self.status_message.emit(f"Stopped {source.label}.")
        self._revert(side)
        if not self.session.a.ready:
            self._show_nothing("Stopped. Choose a model to run it on the picture.")

    def _request_weight_changes(self) -> None:
        a, b = self.session.a, self.session.b
        if b is None or a.loaded is None or b.loaded is None or a.exploration is None:
            self.weight_chart.clear("")
            return
        if not self.session.pairing.by_name:
            self.weight_chart.clear(
                "Different architectures: their weights cannot be compared layer by layer."
            )
            return
        self.weights_runner.request(
            ("weights", a.source.key, b.source.key),
            weight_changes,
            a.loaded.model,
            b.loaded.model,
            a.exploration.table,
            on_result=self._on_weight_changes,
            on_failed=lambda exc: self.weight_chart.clear(f"Cannot compare the weights: {exc}"),
            name="weight change",
        )

    def _on_weight_changes(self, changes: list) -> None:
        self.weight_chart.set_changes(changes)
        self.weight_chart.mark(self.session.cursor.layer)


def run_start_model(path: Path) -> str | None:
    """The zoo model a fine-tuning run started from, when ``path`` is one of its checkpoints."""
    config = path.parent / "config.json"
    if path.suffix != ".pt" or not config.is_file():
        return None
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("model") if isinstance(data, dict) else None
    if not isinstance(name, str) or data.get("strategy") == "scratch":
        return None
    try:
        zoo.get_info(name)
    except zoo.ModelLoadError:
        return None
    return name
