"""The fine-tune page's "Show the code" and "Export…" for the shown run (a mixin of FineTunePage).

The code is a standalone train.py (torch and torchvision only: the run's split, transforms, model surgery,
strategy, optimizer, schedule and label smoothing, from its config) and a predict.py; rendering is core's
(``core.codegen.run_code``). Export opens the dialog on the run folder."""

from __future__ import annotations

from cnn_explorer.core.codegen import run_code
from cnn_explorer.qt.pages.base import PageCode
from cnn_explorer.qt.widgets.export_dialog import ExportDialog


class RunCode:
    def code(self) -> PageCode | str:
        run = self.run_path
        if run is None:
            return "Train a run or pick one in the run history first: the code rebuilds that run."
        try:
            files = run_code(run)
        except (OSError, ValueError) as exc:
            return f"Cannot write the code for {run.name}: {exc}"
        return PageCode(f"Fine-tune run {run.name}: train.py and predict.py", files)

    def export_run(self) -> ExportDialog | None:
        run = self.run_path
        if run is None or self.is_training():
            self.status_message.emit("Export needs a finished run: train one or pick one in the history.")
            return None
        dialog = ExportDialog(run_dir=run, title=f"run {run.name}", parent=self)
        dialog.show()
        return dialog
