"""CNN Explorer's per-user folders: one place decides where the cache and the settings live.

Each honours an environment override (tests and portable installs use them), else the platform's usual
place: ``~/.cache`` and ``~/.config`` on Linux (XDG), ``~/Library`` on macOS, ``%LOCALAPPDATA%`` on Windows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CACHE_ENV = "CNN_EXPLORER_CACHE"
CONFIG_ENV = "CNN_EXPLORER_CONFIG"
_APP = "cnn-explorer"


def _override(env: str) -> Path | None:
    value = os.environ.get(env, "").strip()
    return Path(value).expanduser() if value else None


def user_cache_dir() -> Path:
    """``$CNN_EXPLORER_CACHE``, else the platform's per-user cache folder (safe to delete)."""
    override = _override(CACHE_ENV)
    if override is not None:
        return override
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / _APP


def user_config_dir() -> Path:
    """``$CNN_EXPLORER_CONFIG``, else the platform's per-user settings folder (the user's decisions)."""
    override = _override(CONFIG_ENV)
    if override is not None:
        return override
    if os.name == "nt":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / _APP
