"""Show the code: the shortest plain PyTorch that reproduces what a page shows, with its settings filled in.

Rendered from the templates in :mod:`cnn_explorer.core.codegen.templates` (all of them, in one place).

    lab_code(settings, source, *, backward=False, upstream="ones") -> str
    explorer_code(model_name, *, weights_path=None, layer, image_path, top_k=5, gradcam=False,
                  pretrained=None) -> str
    run_code(run_dir) -> {"train.py": str, "predict.py": str}
"""

from __future__ import annotations

from cnn_explorer.core.codegen.explorer import explorer_code
from cnn_explorer.core.codegen.lab import LabImageSource, lab_code
from cnn_explorer.core.codegen.run import run_code

__all__ = ["LabImageSource", "explorer_code", "lab_code", "run_code"]
