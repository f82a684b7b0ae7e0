"""The Compress page's worker bodies: plain functions run on worker threads (no widgets here).

``check_then_describe`` asks the core whether a request can run (``check_request`` raises CompressError
with a message naming the file or the part) and ``read_report`` reads an earlier run's report.json back
into a :class:`CompressReport`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnn_explorer.core.compress.spec import (
    CompressError,
    CompressReport,
    CompressSource,
    CompressSpec,
    SweepPoint,
    VariantReport,
    WeightHistogram,
)

REPORT_FILE = "report.json"


def check(source: CompressSource, spec: CompressSpec) -> None:
    """The core's check of a request (CompressError when it cannot run)."""
    from cnn_explorer.core.compress import check_request

    check_request(source, spec)


def report_from_dict(d: dict[str, Any]) -> CompressReport:
    """The inverse of :meth:`CompressReport.to_dict`."""
    variants = []
    for v in d.get("variants", []):
        v = dict(v)
        v["layer_sparsity"] = tuple((x["layer"], float(x["sparsity"])) for x in v.get("layer_sparsity", []))
        v["notes"] = tuple(v.get("notes", []))
        variants.append(VariantReport(**v))
    histograms = [
        WeightHistogram(
            **{**h, "edges": tuple(h["edges"]), "before": tuple(h["before"]), "after": tuple(h["after"])}
        )
        for h in d.get("histograms", [])
    ]
    return CompressReport(
        base=d["base"],
        metric=d["metric"],
        images=int(d["images"]),
        threads=int(d["threads"]),
        quantization_flow=d.get("quantization_flow", ""),
        variants=variants,
        sweep=[SweepPoint(**p) for p in d.get("sweep", [])],
        histograms=histograms,
        notes=list(d.get("notes", [])),
    )


def read_report(out_dir: str | Path) -> CompressReport:
    """A finished run's report.json; CompressError (naming the file) when it is missing or unreadable."""
    path = Path(out_dir).expanduser() / REPORT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompressError(f"{path} does not exist: choose a folder that a compression run wrote.") from None
    except (OSError, ValueError) as exc:
        raise CompressError(f"Cannot read {path}: {exc}") from exc
    try:
        return report_from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise CompressError(f"{path} is not a compression report ({type(exc).__name__}: {exc}).") from exc
