"""Asking the user before a model file's code runs (TorchScript is a program, not only weights)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

from cnn_explorer.core.trust import CodeTrust, TrustDecision


class CodeConsentDialog(QMessageBox):
    """Names the file, says what the risk is, and offers to remember the answer for these exact bytes.

    Opened window-modal with :meth:`open`, so the event loop goes on; ``decided`` is read in ``finished``.
    """

    def __init__(self, path: Path, sha256: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.sha256 = sha256
        self.setIcon(QMessageBox.Icon.Warning)
        self.setWindowTitle("Run the code in this model file?")
        self.setText(f"<b>{path.name}</b> is a TorchScript file: a program, not only weights.")
        self.setInformativeText(
            "Opening it runs the code stored inside it, with your permissions: that code can read, change "
            "or delete your files. Open it only if you trust where it came from.<br><br>"
            f"<small>{path}<br>SHA-256 {sha256[:16]}…</small>"
        )
        self.run_button = self.addButton("Run its code", QMessageBox.ButtonRole.AcceptRole)
        self.cancel_button = self.addButton("Don't open", QMessageBox.ButtonRole.RejectRole)
        self.setDefaultButton(self.cancel_button)
        self.remember = QCheckBox("Remember my answer for this file (by its content)")
        self.setCheckBox(self.remember)

    @property
    def decided(self) -> TrustDecision:
        return TrustDecision.TRUSTED if self.clickedButton() is self.run_button else TrustDecision.REFUSED

    def store(self, trust: CodeTrust) -> None:
        """Remember the answer if the user ticked the box."""
        if self.remember.isChecked():
            trust.remember(self.sha256, self.decided, self.path.name)
