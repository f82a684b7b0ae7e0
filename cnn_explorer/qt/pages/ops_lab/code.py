"""The Operations lab's "Show the code" (a mixin of OpsLabPage): its current pipeline as plain
``torch.nn.functional``, on the current input, printing the same numbers; with the backward view on, the
autograd version from the same upstream gradient. Rendering is core's (``core.codegen.lab_code``)."""

from __future__ import annotations

from cnn_explorer.core.codegen import LabImageSource, lab_code
from cnn_explorer.qt.pages.base import PageCode
from cnn_explorer.qt.pages.ops_lab.compute import lab_input_array, upstream_for


class LabCode:
    def code(self) -> PageCode | str:
        source = self._current_source()
        if source is None:
            return "Open an image or type a matrix first: the code runs the lab on it."
        settings = self.current_settings()
        loaded = self._loaded
        if source.kind == "image" and source.keep is None and loaded is not None and loaded.path.is_file():
            data = LabImageSource(loaded.path, source.channels, source.size, source.scale)
            what = f"{loaded.path.name}, {source.channels}, shrunk to {source.size} px"
        else:
            data = lab_input_array(source)
            what = "the typed matrix" if source.kind == "matrix" else "the example's input"
        request = self.backward_request()
        upstream = "ones"
        if request is not None and request.kind != "ones":
            result = self._lab_result()
            if result is None:
                return "The lab is still computing: ask again in a moment."
            upstream, _cell = upstream_for(result, request)
        text = lab_code(settings, data, backward=request is not None, upstream=upstream)
        title = "Operations lab: the pipeline on " + what + (", forward and backward" if request else "")
        return PageCode(title, {"lab.py": text})
