"""Shared test setup: offscreen Qt, and a check that no test leaves a thread running."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")
# Never touch the network from tests: torchvision downloads are pointed at an unreachable address.
os.environ.setdefault("CNN_EXPLORER_OFFLINE", "1")

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory) -> Path:
    """CNN Explorer's own cache (the Lite0 weights' safetensors copy) in pytest's temporary folder."""
    path = tmp_path_factory.mktemp("user-cache")
    os.environ["CNN_EXPLORER_CACHE"] = str(path)
    return path


@pytest.fixture(autouse=True)
def user_config(tmp_path_factory, monkeypatch) -> Path:
    """CNN Explorer's settings folder (remembered answers about trusting code): fresh for every test."""
    path = tmp_path_factory.mktemp("user-config")
    monkeypatch.setenv("CNN_EXPLORER_CONFIG", str(path))
    return path


@pytest.fixture
def sample_cat() -> Path:
    return ASSETS / "chelsea.png"


@pytest.fixture(autouse=True)
def no_threads_left_behind(request):
    """Fail a test that leaves a Python thread or a worker job running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]
    jobs = []
    try:
        import sys

        if "cnn_explorer.qt.workers" in sys.modules:
            from cnn_explorer.qt import workers

            jobs = [j.name for j in workers.active_jobs()]
            stuck = workers.shutdown(timeout_ms=20_000)  # clean up so one leak does not cascade
            jobs += [f"{name} (would not stop)" for name in stuck]
    except ImportError:
        pass
    for t in leftover:
        t.join(timeout=5)
    still = [t.name for t in leftover if t.is_alive()]
    children = [p.name for p in multiprocessing.active_children()]  # also reaps finished ones
    if jobs or still or children:
        pytest.fail(f"test left work running: jobs={jobs} threads={still} processes={children}")
