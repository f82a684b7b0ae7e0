"""The user's remembered answers to "run the code in this model file?", keyed by the file's SHA-256.

A TorchScript file is a program (see :class:`cnn_explorer.core.zoo.UntrustedCodeError`). When the user
agrees to run one and asks to remember it, its content hash is stored here, so the same bytes open without
asking again, while a changed file (or another file of the same name) is asked about afresh. A "no" can be
remembered too, so the window does not ask again about a file the user refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from enum import Enum
from pathlib import Path

from cnn_explorer.core.appdirs import user_config_dir

__all__ = ["CodeTrust", "TrustDecision"]

TRUST_FILE = "trusted-code.json"


class TrustDecision(Enum):
    UNKNOWN = "unknown"  # ask
    TRUSTED = "trusted"
    REFUSED = "refused"


class CodeTrust:
    """A small JSON file of {sha256: {"decision", "name", "time"}}; unreadable files count as empty."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else user_config_dir() / TRUST_FILE

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def decision(self, sha256: str) -> TrustDecision:
        entry = self._read().get(sha256)
        if not isinstance(entry, dict):
            return TrustDecision.UNKNOWN
        try:
            return TrustDecision(entry.get("decision"))
        except ValueError:
            return TrustDecision.UNKNOWN

    def remember(self, sha256: str, decision: TrustDecision, name: str = "") -> None:
        """Store the answer (written to a temporary file, then renamed: a crash keeps the old list)."""
        data = self._read()
        if decision is TrustDecision.UNKNOWN:
            data.pop(sha256, None)
        else:
            data[sha256] = {"decision": decision.value, "name": name, "time": time.time()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
