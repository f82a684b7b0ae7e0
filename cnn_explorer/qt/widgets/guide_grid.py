"""The course's transfer-learning guide as a 2×2 grid, with the user's dataset placed in it.

Rows: similar to / different from ImageNet; columns: small / large dataset. Each cell holds its case's
strategy in the notes' words (``core.transfer.guide.GUIDE_GRID``, the one source of those words).

``GuideGrid.set_placement(n_images, similar, recommendation)`` highlights the dataset's cell and writes
"your dataset: 312 images" in it (with a recommendation, its case and reason win; with only the size or
only the similarity known, the two cells still possible get a dashed frame). Below the grid,
``set_similarity(estimate, overridden)`` shows the similarity estimate (score, verdict, reason); the combo
"Similar to ImageNet: estimated (…) / yes / no" emits ``similarity_override(True | False | None)`` (None:
use the estimate) and "Estimate from the images" emits ``estimate_requested()``. ``busy(text)`` shows the
estimate's progress and disables the button until the next ``set_similarity``.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QTextDocumentFragment
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from cnn_explorer.core.explorer.text import BadgeKind
from cnn_explorer.core.transfer.guide import GUIDE_GRID, SMALL_DATASET_IMAGES, guide_case
from cnn_explorer.core.transfer.results import GuideCase, Recommendation, SimilarityEstimate
from cnn_explorer.qt.style import ACCENT, BADGE_COLOURS, FAINT, MUTED, TITLE_STYLE

YOURS_BACKGROUND = BADGE_COLOURS[BadgeKind.YOURS][1]  # light blue
ROWS = (True, False)  # similar, different
COLUMNS = (True, False)  # small, large
OVERRIDE_CHOICES = (None, True, False)  # the combo's items: estimated, yes, no


def _case_at(similar: bool, small: bool) -> GuideCase:
    return next(c for c in GuideCase if c.similar == similar and c.small == small)


def _images(n: int) -> str:
    return f"{n:,} image{'' if n == 1 else 's'}"


class _Cell(QFrame):
    def __init__(self, case: GuideCase, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.case = case
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.label)
        self.setObjectName("guideCell")
        self.mark = ""  # "yours", "possible" or ""
        self.show_placement("", None)

    def show_placement(self, mark: str, extra: str | None) -> None:
        self.mark = mark
        cell = GUIDE_GRID[self.case]
        parts = [
            f"<b>{int(self.case)}. {html.escape(cell.title)}</b>",
            html.escape(cell.text),
            f"<span style='color:{FAINT}; font-size: 11px;'>strategy: {html.escape(cell.strategy)}</span>",
        ]
        if extra:
            parts.append(f"<b style='color:{ACCENT}'>{extra}</b>")
        self.label.setText("<br>".join(parts))
        border = {"yours": f"2px solid {ACCENT}", "possible": f"2px dashed {ACCENT}"}.get(
            mark, f"1px solid {FAINT}"
        )
        background = YOURS_BACKGROUND if mark == "yours" else "white"
        self.setStyleSheet(
            f"#guideCell {{ border: {border}; border-radius: 4px; background: {background}; }}"
        )


class GuideGrid(QWidget):
    similarity_override = Signal(object)  # True, False, or None (use the estimate)
    estimate_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *, show_reason: bool = True) -> None:
        super().__init__(parent)
        self._show_reason = show_reason  # False where the reason is written elsewhere on the page
        self.recommendation: Recommendation | None = None
        self.estimate: SimilarityEstimate | None = None
        self.title_label = QLabel("Which strategy? The transfer-learning guide")
        self.title_label.setStyleSheet(TITLE_STYLE)
        self.title_label.setWordWrap(True)

        grid = QGridLayout()
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(6)
        for col, small in enumerate(COLUMNS, start=1):
            size = (
                f"small dataset (fewer than {SMALL_DATASET_IMAGES:,} images)"
                if small
                else f"large dataset ({SMALL_DATASET_IMAGES:,} images or more)"
            )
            header = QLabel(f"<b>{size}</b>")
            header.setWordWrap(True)
            header.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(header, 0, col)
            grid.setColumnStretch(col, 1)
        self.cells: dict[GuideCase, _Cell] = {}
        for row, similar in enumerate(ROWS, start=1):
            header = QLabel(f"<b>{'similar to' if similar else 'different from'}<br>ImageNet</b>")
            header.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            grid.addWidget(header, row, 0)
            for col, small in enumerate(COLUMNS, start=1):
                case = _case_at(similar, small)
                self.cells[case] = _Cell(case)
                grid.addWidget(self.cells[case], row, col)

        self.reason_label = QLabel()
        self.reason_label.setWordWrap(True)
        self.reason_label.setStyleSheet(f"color: {MUTED};")

        self.similarity_label = QLabel()
        self.similarity_label.setWordWrap(True)
        self.similarity_label.setTextFormat(Qt.TextFormat.RichText)
        self.override_combo = QComboBox()
        for value in OVERRIDE_CHOICES:
            self.override_combo.addItem({None: "estimated", True: "yes", False: "no"}[value], value)
        self.override_combo.setToolTip(
            "The estimate is rough (a portrait or a screenshot can fool it): overrule it if you know better."
        )
        self.override_combo.currentIndexChanged.connect(self._on_override)
        self.estimate_button = QPushButton("Estimate from the images")
        self.estimate_button.setToolTip(
            "Run the pretrained ImageNet classifier on a sample of the dataset: a confident head means "
            "pictures like ImageNet's."
        )
        self.estimate_button.clicked.connect(self.estimate_requested)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Similar to ImageNet:"))
        controls.addWidget(self.override_combo)
        controls.addWidget(self.estimate_button)
        controls.addStretch(1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title_label)
        layout.addLayout(grid)
        layout.addWidget(self.reason_label)
        layout.addSpacing(4)
        layout.addWidget(self.similarity_label)
        layout.addLayout(controls)
        layout.addStretch(1)
        self.set_placement(None, None, None)
        self.set_similarity(None, False)

    # -- the grid ---------------------------------------------------------------------------------
    def set_placement(
        self, n_images: int | None, similar: bool | None, recommendation: Recommendation | None
    ) -> None:
        """Place the dataset: its cell when both facts (or a recommendation) are known, the cells still
        possible when one is."""
        self.recommendation = recommendation
        if recommendation is not None:
            n_images = recommendation.n_images if n_images is None else n_images
            yours = {recommendation.case}
        elif n_images is not None and similar is not None:
            yours = {guide_case(n_images, similar)}
        else:
            yours = set()
        possible = {
            c
            for c in GuideCase
            if not yours
            and (n_images is not None or similar is not None)
            and (n_images is None or c.small == (n_images < SMALL_DATASET_IMAGES))
            and (similar is None or c.similar == similar)
        }
        for case, cell in self.cells.items():
            extra = None
            if case in yours or case in possible:
                extra = f"your dataset: {_images(n_images)}" if n_images is not None else "your dataset?"
                if case in possible:
                    extra += " — similar to ImageNet?" if similar is None else " — how many images?"
                if recommendation is not None and recommendation.cut_layer:
                    extra += f"<br>cut at {html.escape(recommendation.cut_layer)}"
                if recommendation is not None and recommendation.alternative:
                    extra += f" (alternative: {html.escape(recommendation.alternative)})"
            cell.show_placement("yours" if case in yours else "possible" if case in possible else "", extra)
        self.reason_label.setText(recommendation.reason if recommendation is not None else "")
        self.reason_label.setVisible(recommendation is not None and self._show_reason)

    def highlighted_case(self) -> GuideCase | None:
        """The dataset's cell, or None while it is not placed."""
        return next((c for c, cell in self.cells.items() if cell.mark == "yours"), None)

    def possible_cases(self) -> set[GuideCase]:
        return {c for c, cell in self.cells.items() if cell.mark == "possible"}

    def cell_text(self, case: GuideCase) -> str:
        """A cell's text as the user reads it (plain)."""
        return QTextDocumentFragment.fromHtml(self.cells[case].label.text()).toPlainText()

    # -- the similarity estimate -------------------------------------------------------------------
    def set_similarity(self, estimate: SimilarityEstimate | None, overridden: bool) -> None:
        """The estimate (None: not made yet); ``overridden``: the user's yes/no stands, the combo keeps it
        (otherwise it goes back to "estimated")."""
        self.estimate = estimate
        verdict = "not yet" if estimate is None else ("similar" if estimate.similar else "different")
        self.override_combo.blockSignals(True)
        self.override_combo.setItemText(0, f"estimated ({verdict})")
        if not overridden:
            self.override_combo.setCurrentIndex(0)
        self.override_combo.blockSignals(False)
        self.estimate_button.setEnabled(True)
        if estimate is None:
            text = (
                "Are your pictures like ImageNet's photos? Estimate it from the images, or say so with "
                "yes / no."
            )
        else:
            text = (
                f"<b>Similarity to ImageNet: {estimate.score:.2f}</b> → <b>{verdict}</b> "
                f"<span style='color:{MUTED}'>({estimate.n_images} images, {html.escape(estimate.model)})"
                f"</span><br><span style='color:{MUTED}'>{html.escape(estimate.reason)}</span>"
            )
        choice = self.override_value()
        if overridden and choice is not None:
            text += f"<br><b style='color:{ACCENT}'>You chose: {'similar' if choice else 'different'}.</b>"
        self.similarity_label.setText(text)

    def busy(self, text: str) -> None:
        """The estimate is running: its progress line; the button waits for the result."""
        self.estimate_button.setEnabled(False)
        self.similarity_label.setText(f"<i style='color:{FAINT}'>{html.escape(text)}</i>")

    def set_estimate_enabled(self, enabled: bool) -> None:
        """Whether an estimate can be asked for (not without a dataset)."""
        self.estimate_button.setEnabled(enabled)

    def override_value(self) -> bool | None:
        return self.override_combo.currentData()

    def similarity_text(self) -> str:
        return QTextDocumentFragment.fromHtml(self.similarity_label.text()).toPlainText()

    def _on_override(self, _index: int) -> None:
        self.similarity_override.emit(self.override_value())
