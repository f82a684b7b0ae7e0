"""The Fine-tune page's transfer-learning tools (a mixin of FineTunePage): the similarity estimate and
its override, the guide's recommendation, probing every block, the LR finder, the sample dataset and
the watched image.

State lives in the page's :class:`~cnn_explorer.core.transfer.session.FineTuneSession`; this mixin maps
clicks to session calls, runs the slow work through one "latest request wins" runner per kind
(``qt.workers.LatestRunner``: a new request supersedes the old one's result), and redraws widgets when
session events say something changed.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QFileDialog

from cnn_explorer.core.appdirs import user_cache_dir
from cnn_explorer.core.data import write_animal_dataset
from cnn_explorer.core.train_config import ConfigError
from cnn_explorer.core.transfer.lr_find import LRFindProgress, lr_find
from cnn_explorer.core.transfer.probe import ProbeProgress, probe_every_block
from cnn_explorer.core.transfer.session import FineTuneSession
from cnn_explorer.core.transfer.similarity import estimate_similarity
from cnn_explorer.qt.pages.finetune.jobs import scan_with_thumbnails
from cnn_explorer.qt.widgets.thumbnails import load_thumbnail
from cnn_explorer.qt.workers import LatestRunner

SIMILARITY_IMAGES = 32  # the page's estimate looks at this many images (a few seconds on a CPU)
SAMPLE_PER_CLASS = 40
SAMPLE_IMAGE_SIZE = 64  # the silhouettes are 28 px: a small input trains them in seconds


def sample_dataset_folder() -> Path:
    return user_cache_dir() / "samples" / "animal_silhouettes"


def sample_scan(root: Path, *, val_fraction: float, seed: int, control=None):
    """Write the bundled silhouettes to ``root`` unless they are there already, then scan them (split
    with the form's validation share and seed)."""
    marker = root / ".complete"
    if not marker.is_file():
        write_animal_dataset(root, per_class=SAMPLE_PER_CLASS)
        marker.write_text("written by CNN Explorer: the bundled animal silhouettes\n")
    return scan_with_thumbnails(root, val_fraction=val_fraction, seed=seed, control=control)


def _watch_thumbnail(path: Path, *, control=None):
    pixels = load_thumbnail(path, 192)
    if pixels is None:
        raise ValueError(f"{path.name} cannot be read as an image")
    return pixels


class TransferBinding:
    def _init_transfer(self) -> None:
        self.session = FineTuneSession()
        self._watch_chosen = False  # the user picked the watched image (else it follows the current one)
        self._similarity_runner = LatestRunner(self)
        self._probe_runner = LatestRunner(self)
        self._lr_runner = LatestRunner(self)
        self._watch_runner = LatestRunner(self)
        ev = self.session.events
        ev.similarity.connect(self._show_similarity)
        ev.recommendation.connect(self._show_recommendation)
        ev.probe.connect(self._show_probe)
        ev.cut_layer.connect(self._show_cut_layer)
        ev.lr.connect(self._show_lr)
        ev.watch.connect(self._show_watch_image)
        ev.watch_frames.connect(self._show_watch_frames)
        ev.dataset.connect(self._show_dataset_tools)
        grid = self.guide_panel.grid
        grid.similarity_override.connect(self.session.set_override)
        grid.estimate_requested.connect(self.estimate_similarity)
        self.guide_panel.probe_requested.connect(self.probe_blocks)
        self.guide_panel.chart.layer_chosen.connect(self.use_cut_layer)
        self.form.model_changed.connect(self._on_model_changed)
        self.form.cut_layer_changed.connect(self._on_form_cut_layer)
        self.lr_panel.find_requested.connect(self.find_lr)
        self.lr_panel.plot.lr_chosen.connect(self._use_lr)
        self.lr_panel.use_requested.connect(self._use_suggestion)
        self.watch_panel.choose_requested.connect(self.choose_watch_image)
        self.watch_panel.dataset_image_requested.connect(self.watch_dataset_image)
        self.dataset_panel.sample_requested.connect(self.open_sample_dataset)
        self._show_dataset_tools()
        self._show_recommendation()

    def _on_model_changed(self, name: str) -> None:
        self.cancel_dataset_tools()  # a probe or sweep of the previous model would land on this one
        self.session.set_model(name)

    def cancel_dataset_tools(self) -> None:
        """Stop a probe or LR sweep under way: the dataset or the model it was asked for changes."""
        self._probe_runner.cancel()
        self._lr_runner.cancel()

    @property
    def _transfer_runners(self) -> tuple[LatestRunner, ...]:
        return (self._similarity_runner, self._probe_runner, self._lr_runner, self._watch_runner)

    # -- the sample dataset -------------------------------------------------------------------------
    @Slot()
    def open_sample_dataset(self) -> None:
        """The bundled animal silhouettes as a dataset (written once into the app's cache folder), with
        a small input size so that a first run takes seconds."""
        folder = sample_dataset_folder()
        self.cancel_dataset_tools()
        self._scan_folder = folder
        self._scan = None
        self.dataset_panel.show_checking(folder)
        self.dataset_view.show_scanning(folder)
        self._update_buttons()
        self.form.choose_size(SAMPLE_IMAGE_SIZE)
        self._start_scan(
            sample_scan, folder, val_fraction=self.form.val_spin.value(), seed=self.form.seed_spin.value()
        )
        self.status_message.emit(
            f"Sample dataset: the bundled animal silhouettes, input {SAMPLE_IMAGE_SIZE} px"
        )

    # -- similarity and the guide ---------------------------------------------------------------------
    @Slot()
    def estimate_similarity(self) -> None:
        scan = self.session.scan
        if scan is None or self._shut_down:
            return
        self.guide_panel.grid.busy(f"Estimating from {SIMILARITY_IMAGES} of the images…")
        self._similarity_runner.request(
            ("similarity", str(scan.root), len(scan.train), len(scan.val)),
            estimate_similarity,
            scan,
            max_images=SIMILARITY_IMAGES,
            on_result=self.session.set_estimate,
            on_failed=lambda exc: self._transfer_failed("The similarity estimate failed", exc),
            name="similarity estimate",
        )

    def _show_similarity(self) -> None:
        s = self.session
        self.guide_panel.grid.set_similarity(s.estimate, s.override is not None)
        self.guide_panel.grid.set_estimate_enabled(s.scan is not None)

    def _similarity_text(self) -> str:
        s = self.session
        if s.scan is None:
            return ""
        if s.override is not None:
            return f"Similar to ImageNet: <b>{'yes' if s.override else 'no'}</b> (your answer, Guide tab)."
        if s.estimate is None:
            return "Similar to ImageNet: <i>estimating from the images…</i> (Guide tab)"
        e = s.estimate
        return (
            f"Similar to ImageNet: <b>{'yes' if e.similar else 'no'}</b>, estimated (score {e.score:.2f}); "
            "change it in the Guide tab."
        )

    def _show_recommendation(self) -> None:
        s = self.session
        rec = s.recommendation()
        self.form.set_recommendation(rec, self._similarity_text())
        self.guide_panel.grid.set_placement(s.n_images, s.similar, rec)

    def _dataset_and_settings(self):
        """(the scan, the form's settings for it), or (scan, None) when there is no dataset, the page has
        shut down, or a setting is bad (said on the banner)."""
        scan = self.session.scan
        if scan is None or self._shut_down:
            return scan, None
        try:
            return scan, self.form.config(str(scan.root))
        except ConfigError as exc:
            self._set_banner(html.escape(str(exc)), "error")
            return scan, None

    # -- probing every block ------------------------------------------------------------------------
    @Slot()
    def probe_blocks(self) -> None:
        scan, config = self._dataset_and_settings()
        if config is None:
            return
        self.guide_panel.chart.busy("Reading every block's features: one pass over the images…")
        self.guide_panel.set_probe_enabled(False)
        self._probe_runner.request(
            ("probe", str(scan.root), config.model, config.image_size, config.device),
            probe_every_block,
            scan,
            config.model,
            image_size=config.image_size,
            batch_size=config.batch_size,
            device=config.device,
            allow_download=config.allow_download,
            seed=config.seed,
            on_events=self._on_probe_events,
            on_result=self._on_probe_result,
            on_failed=self._on_probe_failed,
            on_cancelled=self._on_probe_cancelled,
            name="probe every block",
        )

    def _on_probe_events(self, events: list) -> None:
        progress = [e for e in events if isinstance(e, ProbeProgress)]
        if progress:
            p = progress[-1]
            what = "Reading the features" if p.phase == "features" else "Training a linear probe per block"
            self.guide_panel.probe_status.setText(f"{what}: {p.done}/{p.total}")

    def _on_probe_result(self, report) -> None:
        self.guide_panel.set_probe_enabled(self.session.scan is not None)
        self.session.set_probe(report)

    def _on_probe_cancelled(self) -> None:
        self.guide_panel.set_probe_enabled(self.session.scan is not None)
        self._show_probe()

    def _on_probe_failed(self, exc: BaseException) -> None:
        self.guide_panel.set_probe_enabled(self.session.scan is not None)
        self.guide_panel.chart.set_report(self.session.probe)
        self._transfer_failed("Probing every block failed", exc)

    def _show_probe(self) -> None:
        report = self.session.probe
        self.guide_panel.chart.set_report(report)
        self.guide_panel.chart.set_cut_layer(self.session.cut_layer)
        if report is None:
            self.guide_panel.probe_status.setText("")
            return
        best = report.best
        self.guide_panel.probe_status.setText(
            f"Features read in {report.feature_seconds:.1f} s, probes trained in {report.probe_seconds:.1f} s"
            + (f"; best: {best.layer} ({best.val_accuracy:.0%})" if best else "")
            + ". Click a point to cut there."
        )

    @Slot(str)
    def use_cut_layer(self, layer: str) -> None:
        """A probe point was clicked: train a linear classifier on that layer's features."""
        try:
            self.session.choose_cut_layer(layer)
        except ValueError as exc:
            self._set_banner(html.escape(str(exc)), "error")
            return
        self.form.strategy_combo.setCurrentIndex(self.form.strategy_combo.findData("linear-probe"))
        self.form.set_cut_layer(layer)
        self.status_message.emit(f"Strategy: a linear classifier on {layer}'s features")

    def _on_form_cut_layer(self, layer: str) -> None:
        if self.form.strategy_combo.currentData() == "linear-probe":
            self.session.choose_cut_layer(layer)

    def _show_cut_layer(self) -> None:
        self.guide_panel.chart.set_cut_layer(self.session.cut_layer)
        if self.session.cut_layer:
            self.form.set_cut_layer(self.session.cut_layer)

    # -- the LR finder ---------------------------------------------------------------------------
    @Slot()
    def find_lr(self) -> None:
        scan, config = self._dataset_and_settings()
        if config is None:
            return
        steps = self.lr_panel.steps_spin.value()
        self.lr_panel.plot.clear()
        self.lr_panel.find_button.setEnabled(False)
        self.lr_panel.status.setText(f"Sweeping the learning rate over {steps} steps…")
        self._lr_runner.request(
            ("lr", str(scan.root), repr(config.to_dict()), steps),
            lr_find,
            config,
            scan,
            steps=steps,
            on_events=self._on_lr_events,
            on_result=self._on_lr_result,
            on_failed=self._on_lr_failed,
            on_cancelled=self._on_lr_cancelled,
            name="LR finder",
        )

    def _on_lr_events(self, events: list) -> None:
        for e in events:
            if isinstance(e, LRFindProgress):
                self.lr_panel.plot.add_point(e.lr, e.loss)

    def _on_lr_result(self, result) -> None:
        self.lr_panel.find_button.setEnabled(self.session.scan is not None)
        self.session.set_lr_result(result)

    def _on_lr_cancelled(self) -> None:
        self.lr_panel.find_button.setEnabled(self.session.scan is not None)
        self._show_lr()
        if self.session.lr_result is None:
            self.lr_panel.status.setText("The sweep was stopped: the dataset or the model changed.")

    def _on_lr_failed(self, exc: BaseException) -> None:
        self.lr_panel.find_button.setEnabled(self.session.scan is not None)
        self.lr_panel.status.setText(f"The sweep failed: {exc}")
        self._transfer_failed("The LR finder failed", exc)

    def _show_lr(self) -> None:
        result = self.session.lr_result
        self.lr_panel.plot.set_result(result)
        self.lr_panel.use_button.setEnabled(result is not None)
        if result is not None:
            self.lr_panel.status.setText(  # how it was chosen is written under the curve
                f"Suggested learning rate: <b>{result.suggestion:.3g}</b>. Click the curve to use another."
            )

    def _use_lr(self, lr: float) -> None:
        self.form.set_lr(lr)
        self.status_message.emit(f"Learning rate set to {lr:.3g} (from the LR finder's curve)")

    def _use_suggestion(self) -> None:
        if self.session.lr_result is not None:
            self._use_lr(self.session.lr_result.suggestion)

    # -- the watched image -----------------------------------------------------------------------
    def _follow_current_image(self, path: Path) -> None:
        if not self._watch_chosen:
            self.session.set_watch_image(path)

    @Slot()
    def choose_watch_image(self) -> None:
        start = str(self.session.watch_image or Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Image to watch while the model learns", start)
        if path:
            self._watch_chosen = True
            self.session.set_watch_image(path)

    @Slot()
    def watch_dataset_image(self) -> None:
        scan = self.session.scan
        if scan is not None and (scan.val or scan.train):
            self._watch_chosen = True
            self.session.set_watch_image((scan.val or scan.train)[0][0])

    def _show_watch_image(self) -> None:
        path = self.session.watch_image
        self.watch_panel.image_label.setText("")
        if path is None:
            self.watch_panel.strip.set_image(None, "")
            return
        self._watch_runner.request(
            ("watch", str(path)),
            _watch_thumbnail,
            path,
            on_result=lambda pixels, path=path: self.watch_panel.strip.set_image(pixels, path.name),
            on_failed=lambda exc: self.watch_panel.image_label.setText(html.escape(str(exc))),
            name="watched image",
        )

    def _show_watch_frames(self) -> None:
        strip = self.watch_panel.strip
        for frame in self.session.progress.watch[strip.frame_count() :]:
            strip.add_frame(frame)

    # -- shared ----------------------------------------------------------------------------------
    def _show_dataset_tools(self) -> None:
        has = self.session.scan is not None
        self.guide_panel.set_probe_enabled(has)
        self.lr_panel.find_button.setEnabled(has)
        self.watch_panel.set_enabled_choices(has, self.is_training())

    def _transfer_failed(self, what: str, exc: BaseException) -> None:
        self._add_banner(f"<b>{html.escape(what)}:</b> {html.escape(str(exc))}", "error")
        self.status_message.emit(f"{what}: {exc}")
