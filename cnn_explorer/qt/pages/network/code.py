"""The explorer's "Show the code" and "Export…" (a mixin of NetworkPage).

The code loads side A's model and weights as the app does, preprocesses the picture exactly as the app does,
hooks the current layer and prints its feature map's shape and the top-5 (with Grad-CAM on, the short
Grad-CAM too); rendering is core's (``core.codegen``). Export opens the dialog for side A's model by name or
file: the dialog's worker loads its own copy, so the explorer's model is never shared with it."""

from __future__ import annotations

from cnn_explorer.core.codegen import explorer_code
from cnn_explorer.core.explorer.session import Side
from cnn_explorer.qt.pages.base import PageCode
from cnn_explorer.qt.widgets.export_dialog import ExportDialog


class ExplorerCode:
    def code(self) -> PageCode | str:
        state = self.session.a
        loaded, row, image = state.loaded, self.session.current_row(Side.A), self.session.image
        if loaded is None or row is None or state.source is None:
            return "Choose a model and open a picture first: the code runs them."
        if image is None or not image.path.is_file():
            return "The code opens a picture file: open one (a drawing lives only on the pad)."
        weights = state.source.path  # a weights file or a run's checkpoint; None for a zoo model
        text = explorer_code(
            loaded.info.name,
            weights_path=weights,
            layer=row.name,
            image_path=image.path,
            gradcam=self.session.cam.enabled,
            pretrained=None if loaded.trained else False,
        )
        title = f"Network explorer: {loaded.info.title} at {row.name} on {image.path.name}"
        return PageCode(title, {"explore.py": text})

    def export_model(self) -> ExportDialog | None:
        source = self.session.a.source
        if source is None:
            self.status_message.emit("Choose a model to export first.")
            return None
        if source.path is not None:
            dialog = ExportDialog(weights=source.path, title=source.label, parent=self)
        else:
            dialog = ExportDialog(model=source.name, title=source.label, parent=self)
        dialog.show()
        return dialog
