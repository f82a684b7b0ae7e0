"""The explorer session without Qt: one cursor, kept across model switches, driving both sides."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnn_explorer.core import zoo
from cnn_explorer.core.explorer.session import ExplorerSession, Side
from cnn_explorer.core.explorer.tasks import ModelSource, run_model
from cnn_explorer.core.images import open_image

ASSETS = Path(__file__).resolve().parents[2] / "assets"


@pytest.fixture(scope="module")
def runs():
    cat = open_image(ASSETS / "chelsea.png")
    out = {}
    for name in ("lenet5", "resnet18"):
        source = ModelSource.zoo(name)
        out[name] = (source, run_model(source, None, cat.pixels, allow_download=False))
    return cat, out


def _session(runs) -> tuple[ExplorerSession, list[str]]:
    cat, results = runs
    session = ExplorerSession()
    said: list[str] = []
    for name in ("image", "source", "model", "layer", "channel", "compare"):
        getattr(session.events, name).connect(lambda *args, name=name: said.append(name))
    session.set_image(cat)
    source, run = results["lenet5"]
    session.choose_source(Side.A, source)
    session.set_result(Side.A, source, run.loaded, run.exploration)
    return session, said


def test_stepping_and_channels_follow_the_user(runs):
    session, said = _session(runs)
    assert session.cursor.layer == "c1" and said[:3] == ["image", "source", "model"]
    session.step(1)
    assert session.cursor.layer == "c1_tanh"
    session.select_channel(4)
    session.step(1)  # c1_tanh -> s2: the same 6 channels, so channel 4 is followed through
    assert session.cursor.layer == "s2" and session.cursor.channel == 4
    session.select_layer("f6")  # a vector of 84: another channel count, the channel is dropped
    assert session.cursor.channel is None
    session.step(100)
    assert session.cursor.layer == session.layer_names()[-1]
    with pytest.raises(KeyError):
        session.select_layer("nope")


def test_the_layer_and_channel_are_kept_when_the_model_changes(runs):
    session, _ = _session(runs)
    _, results = runs
    session.select_layer("c3")
    session.select_channel(7)
    # The same architecture with other weights (a fine-tuned run): the cursor stays where it was.
    source, run = results["lenet5"]
    other = ModelSource("file:/x/best.pt", "run", path=Path("/x/best.pt"))
    session.choose_source(Side.A, other)
    session.set_result(Side.A, other, run.loaded, run.exploration)
    assert session.cursor.layer == "c3" and session.cursor.channel == 7
    # Another architecture without that layer: back to its first layer.
    source, run = results["resnet18"]
    session.choose_source(Side.A, source)
    session.set_result(Side.A, source, run.loaded, run.exploration)
    assert session.cursor.layer == "conv1" and session.cursor.channel is None


def test_side_b_follows_the_cursor_by_name_or_by_depth(runs):
    session, said = _session(runs)
    _, results = runs
    source, run = results["lenet5"]
    session.open_compare(source)
    session.set_result(Side.B, source, run.loaded, run.exploration)
    assert "compare" in said and session.pairing.by_name
    session.select_layer("c3")
    assert session.current_row(Side.B).name == "c3"
    session.select_channel(20)  # clamped to c3's 16 channels on both sides
    assert session.cursor.channel == 15 and session.channel_for(Side.B) == 15
    source, run = results["resnet18"]
    session.choose_source(Side.B, source)
    session.set_result(Side.B, source, run.loaded, run.exploration)
    assert not session.pairing.by_name
    session.select_layer_index(len(session.rows) - 1)
    assert session.current_row(Side.B).name == session.layer_names(Side.B)[-1]  # the last pairs with the last
    session.close_compare()
    assert not session.comparing and session.current_row(Side.B) is None


def test_a_failed_load_reverts_the_choice_to_what_is_shown(runs):
    session, _ = _session(runs)
    session.choose_source(Side.A, ModelSource.zoo("resnet18"))
    assert session.a.source.key == "zoo:resnet18"
    session.revert_choice(Side.A)  # (the download failed)
    assert session.a.source.key == "zoo:lenet5" and session.a.loaded.info.name == "lenet5"
    assert isinstance(session.a.loaded.weights, zoo.WeightsSource)


def test_an_edited_picture_is_another_picture(tmp_path):
    import threading

    from PIL import Image

    from cnn_explorer.core.explorer.tasks import compute_cam, image_key

    path = tmp_path / "black.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(path)
    before = image_key(open_image(path))
    edited = np.zeros((64, 64), np.uint8)
    edited[3] = 255  # one line: a sample of every 7th row would miss it
    Image.fromarray(edited).save(path)
    assert image_key(open_image(path)) != before

    # Two sides showing one model: their Grad-CAMs take turns on its hooks instead of mixing them up.
    loaded = zoo.load_model("lenet5", allow_download=False)
    pixels = open_image(ASSETS / "chelsea.png").pixels
    errors: list[BaseException] = []

    def many() -> None:
        try:
            for _ in range(40):
                compute_cam(loaded, pixels, "c3", 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=many) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []


def test_a_model_chosen_at_a_layer_opens_there(runs):
    """The gallery's "Open in explorer" at a signature block: the cursor lands on that block's row once the
    model is in, whatever layer was shown before; a later plain choice keeps the usual rule."""
    session, _ = _session(runs)
    _, results = runs
    session.select_layer("c3")
    source, run = results["resnet18"]
    session.choose_source(Side.A, source, layer="layer2.0")
    assert session.cursor.layer == "c3"  # not in yet
    session.set_result(Side.A, source, run.loaded, None)  # loaded, no picture: the wish is kept
    session.set_result(Side.A, source, run.loaded, run.exploration)
    assert session.cursor.layer == "layer2.0"
    session.choose_source(Side.A, source, layer="layer1.0")  # already shown: it moves at once
    assert session.cursor.layer == "layer1.0"
    lenet_source, lenet_run = results["lenet5"]
    session.choose_source(Side.A, lenet_source, layer="no such layer")
    session.set_result(Side.A, lenet_source, lenet_run.loaded, lenet_run.exploration)
    assert session.cursor.layer == "c1"  # an unknown wish falls back to the first row


def test_a_new_picture_for_the_same_model_reuses_its_layer_table(runs):
    """Drawing a digit runs LeNet-5 on picture after picture: the table is measured once."""
    cat, results = runs
    source, run = results["lenet5"]
    table = run.exploration.table
    again = run_model(source, run.loaded, np.ascontiguousarray(cat.pixels[::2, ::2]), table=table)
    assert again.exploration.table is table
    assert not np.array_equal(again.exploration.pixels, run.exploration.pixels)
    fresh = run_model(source, None, cat.pixels, table=table, allow_download=False)  # a model loaded anew
    assert fresh.exploration.table is not table and fresh.exploration.table.names() == table.names()
