"""The explorer's state without a screen: the image, one or two models (A | B), the cursor, the Grad-CAM
request and the view options, with the methods a user's actions map to and plain change events.

napari's ``Dims`` / ``QtDims`` is the pattern: the page turns clicks and keys into session calls and
session events into widget updates; the session knows nothing of Qt, workers or caches. Work a change
calls for (loading a model, preparing a layer's view, Grad-CAM) is the page's to start, through its
runners; when it is done the page hands the result back (:meth:`ExplorerSession.set_result`).

One cursor drives both sides. It lives on side A's layer list; side B follows through a
:class:`~cnn_explorer.core.explorer.compare.LayerPairing` (by name where the architectures match, else by
relative depth). Switching either side's model keeps the layer (by name) and the channel where they still
exist.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import IntEnum

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.compare import LayerPairing, pair_layers
from cnn_explorer.core.explorer.events import Event
from cnn_explorer.core.explorer.tasks import ModelSource, image_key
from cnn_explorer.core.features import Activation, Exploration
from cnn_explorer.core.images import LoadedImage
from cnn_explorer.core.layers import LayerRow

__all__ = ["CamRequest", "Cursor", "ExplorerSession", "Side", "SideState", "ViewOptions"]


class Side(IntEnum):
    A = 0
    B = 1


@dataclass
class SideState:
    """One side's model and what it computed on the current image."""

    source: ModelSource | None = None  # chosen (perhaps still loading)
    shown: ModelSource | None = None  # whose results ``loaded`` and ``exploration`` are
    loaded: zoo.LoadedModel | None = None
    exploration: Exploration | None = None

    @property
    def rows(self) -> list[LayerRow]:
        return list(self.exploration.table.rows) if self.exploration is not None else []

    @property
    def ready(self) -> bool:
        return self.exploration is not None


@dataclass(frozen=True)
class Cursor:
    layer: str | None = None  # a row name of side A
    channel: int | None = None
    unit: tuple[int, int] | None = None  # (y, x) in the channel's map


@dataclass(frozen=True)
class ViewOptions:
    sort_by: str = "index"
    normalize: str = "channel"
    cmap: str = "viridis"


@dataclass(frozen=True)
class CamRequest:
    enabled: bool = False
    class_index: int | None = None  # side A's class (and B's, when both have the same classes); None: top
    class_index_b: int | None = None  # side B's own class when its classes differ (a fine-tuned head)
    layer_mode: str = "last"  # "last" (the last spatial layer) or "current"


@dataclass
class SessionEvents:
    image: Event = field(default_factory=lambda: Event("image"))
    source: Event = field(default_factory=lambda: Event("source"))  # (side): a model was chosen
    model: Event = field(default_factory=lambda: Event("model"))  # (side): its result is in (or failed)
    compare: Event = field(default_factory=lambda: Event("compare"))  # compare mode on or off
    layer: Event = field(default_factory=lambda: Event("layer"))
    channel: Event = field(default_factory=lambda: Event("channel"))
    unit: Event = field(default_factory=lambda: Event("unit"))
    cam: Event = field(default_factory=lambda: Event("cam"))
    options: Event = field(default_factory=lambda: Event("options"))


class ExplorerSession:
    def __init__(self) -> None:
        self.events = SessionEvents()
        self.image: LoadedImage | None = None
        self.image_key: tuple | None = None
        self.sides: list[SideState | None] = [SideState(), None]
        self.cursor = Cursor()
        self.options = ViewOptions()
        self.cam = CamRequest()
        self._pairing: LayerPairing | None = None
        self._wanted_layer: str | None = None  # where the cursor goes once side A's next model is in

    # -- sides ------------------------------------------------------------------------------------
    def side(self, side: Side) -> SideState | None:
        return self.sides[side]

    @property
    def a(self) -> SideState:
        state = self.sides[Side.A]
        assert state is not None
        return state

    @property
    def b(self) -> SideState | None:
        return self.sides[Side.B]

    @property
    def comparing(self) -> bool:
        return self.sides[Side.B] is not None

    def active_sides(self) -> list[Side]:
        return [Side.A, Side.B] if self.comparing else [Side.A]

    # -- the image --------------------------------------------------------------------------------
    def set_image(self, image: LoadedImage) -> bool:
        """A new picture; returns False if it is the one already shown."""
        key = image_key(image)
        if key == self.image_key:
            return False
        self.image, self.image_key = image, key
        for state in self.sides:
            if state is not None:
                state.exploration = None
        self._pairing = None
        self.events.image.emit()
        return True

    # -- models -----------------------------------------------------------------------------------
    def choose_source(
        self, side: Side, source: ModelSource, *, reload: bool = False, layer: str | None = None
    ) -> None:
        """The user picked a model for ``side``; the page loads it and calls :meth:`set_result`.

        ``reload``: open it afresh even if it is shown (a file may have changed; its consent must be
        asked again, since a remembered "yes" belongs to the old bytes). ``layer``: a row of side A's new
        model to put the cursor on (the gallery's "Open in explorer" at a signature block)."""
        state = self.sides[side]
        if state is None:
            state = self.sides[side] = SideState()
        if side is Side.A:
            self._wanted_layer = layer
        if not reload and state.source is not None and state.source.key == source.key and state.ready:
            if side is Side.A and layer is not None and layer in self.layer_names():
                self._wanted_layer = None
                self.select_layer(layer)
            return
        state.source = source
        self.events.source.emit(side)

    def open_compare(self, source: ModelSource, *, reload: bool = False) -> None:
        """Show ``source`` as side B beside side A."""
        opening = not self.comparing
        if opening:
            self.sides[Side.B] = SideState()
            self._pairing = None
            self.events.compare.emit()
        self.choose_source(Side.B, source, reload=reload)

    def close_compare(self) -> None:
        if self.comparing:
            self.sides[Side.B] = None
            self._pairing = None
            self.events.compare.emit()

    def set_result(
        self, side: Side, source: ModelSource, loaded: zoo.LoadedModel, exploration: Exploration | None
    ) -> None:
        """A side's model is loaded (and run on the image): keep the cursor where it still applies."""
        state = self.sides[side]
        if state is None:
            return
        state.source, state.loaded, state.exploration = source, loaded, exploration
        state.shown = source
        self._pairing = None
        self.events.model.emit(side)
        if side is Side.A:
            self._restore_cursor()
        else:
            self.events.layer.emit()  # side B follows the cursor it now has rows for

    def revert_choice(self, side: Side) -> None:
        """Loading the chosen model failed or was stopped: the choice goes back to what is shown."""
        if side is Side.A:
            self._wanted_layer = None
        state = self.sides[side]
        if state is not None:
            state.source = state.shown

    def _restore_cursor(self) -> None:
        rows = self.a.rows
        names = [r.name for r in rows]
        cur = self.cursor
        if names:  # (a model without a picture yet keeps the wish for its first result)
            wanted, self._wanted_layer = self._wanted_layer, None
            if wanted in names:
                cur = Cursor(wanted)
        layer = cur.layer if cur.layer in names else (names[0] if names else None)
        channel = cur.channel if layer == cur.layer else None
        act = self.activation(Side.A, layer) if layer else None
        if channel is not None and (act is None or act.too_large or not 0 <= channel < act.shape[0]):
            channel = None
        self.cursor = Cursor(layer, channel, None)
        self.events.layer.emit()

    # -- the cursor -------------------------------------------------------------------------------
    @property
    def rows(self) -> list[LayerRow]:
        return self.a.rows

    def layer_names(self, side: Side = Side.A) -> list[str]:
        state = self.sides[side]
        return [r.name for r in state.rows] if state is not None else []

    @property
    def layer_index(self) -> int:
        names = self.layer_names()
        return names.index(self.cursor.layer) if self.cursor.layer in names else 0

    @property
    def pairing(self) -> LayerPairing:
        if self._pairing is None:
            b = self.b
            self._pairing = pair_layers(self.layer_names(), self.layer_names(Side.B) if b is not None else [])
        return self._pairing

    def current_row(self, side: Side = Side.A) -> LayerRow | None:
        state = self.sides[side]
        if state is None or not state.rows or self.cursor.layer is None:
            return None
        if side is Side.A:
            return state.rows[self.layer_index]
        partner = self.pairing.partner_of_a(self.layer_index)
        return state.rows[partner] if partner is not None else None

    def activation(self, side: Side, layer: str | None) -> Activation | None:
        state = self.sides[side]
        if state is None or state.exploration is None or layer is None:
            return None
        try:
            return state.exploration.capture[layer]
        except KeyError:
            return None

    def step(self, delta: int) -> None:
        names = self.layer_names()
        if names:
            self.select_layer_index(max(0, min(len(names) - 1, self.layer_index + delta)))

    def select_layer_index(self, index: int) -> None:
        names = self.layer_names()
        if names:
            self.select_layer(names[max(0, min(len(names) - 1, index))])

    def select_layer(self, name: str) -> None:
        """Step to a layer of side A. The channel follows when the channel count stays the same
        (conv → norm → activation), so one channel can be traced through."""
        if name not in self.layer_names():
            raise KeyError(f"no layer named {name!r}")
        old = self.activation(Side.A, self.cursor.layer)
        new = self.activation(Side.A, name)
        keep = (
            self.cursor.channel is not None
            and old is not None
            and new is not None
            and old.shape[:1] == new.shape[:1]
        )
        self.cursor = Cursor(name, self.cursor.channel if keep else None, None)
        self.events.layer.emit()

    def select_channel(self, channel: int | None, unit: tuple[int, int] | None = None) -> None:
        act = self.activation(Side.A, self.cursor.layer)
        if channel is not None and act is not None and act.shape:
            channel = max(0, min(int(act.shape[0]) - 1, int(channel)))
        changed = channel != self.cursor.channel
        self.cursor = dataclasses.replace(self.cursor, channel=channel, unit=unit)
        if changed or unit is not None:
            self.events.channel.emit()

    def select_unit(self, y: int, x: int) -> None:
        self.cursor = dataclasses.replace(self.cursor, unit=(int(y), int(x)))
        self.events.unit.emit()

    def channel_for(self, side: Side) -> int | None:
        """The cursor's channel on ``side``: the same index where that side's layer has it."""
        channel = self.cursor.channel
        if side is Side.A or channel is None:
            return channel
        row = self.current_row(side)
        act = self.activation(side, row.name) if row is not None else None
        if act is None or not act.shape:
            return None
        return min(channel, int(act.shape[0]) - 1)

    # -- Grad-CAM and options ---------------------------------------------------------------------
    def set_cam(self, **changes: object) -> None:
        new = dataclasses.replace(self.cam, **changes)  # type: ignore[arg-type]
        if new != self.cam:
            self.cam = new
            self.events.cam.emit()

    def same_classes(self) -> bool:
        b = self.b
        return (
            b is not None
            and b.loaded is not None
            and self.a.loaded is not None
            and (b.loaded.categories == self.a.loaded.categories)
        )

    def cam_class(self, side: Side) -> int | None:
        """The class whose evidence ``side`` shows: the chosen one, else that side's top class."""
        state = self.sides[side]
        if state is None or state.exploration is None or not state.exploration.predictions:
            return None
        n = len(state.loaded.categories) if state.loaded is not None else 0
        chosen = self.cam.class_index if side is Side.A or self.same_classes() else self.cam.class_index_b
        if chosen is not None and 0 <= chosen < n:
            return chosen
        return state.exploration.predictions[0].index

    def set_options(self, **changes: str) -> None:
        new = dataclasses.replace(self.options, **changes)
        if new != self.options:
            self.options = new
            self.events.options.emit()
