"""The training curves keep their axes while a run trains: new ticks are the dearest part of a redraw."""

from __future__ import annotations

from cnn_explorer.qt.widgets.training_plots import TrainingPlots


def _plots(qtbot) -> TrainingPlots:
    plots = TrainingPlots()
    plots.resize(900, 320)
    qtbot.addWidget(plots)
    plots.show()
    return plots


def test_a_planned_run_keeps_its_axes_until_a_value_leaves_them(qtbot):
    plots = _plots(qtbot)
    plots.plan(4)
    for step in range(1, 11):
        plots.add_step(1, step, 10, 2.0 - 0.05 * step, 0.01)
    plots.redraw()
    (x0, y0), lr0 = plots.loss_plot.viewRange(), plots.lr_plot.viewRange()[1]
    assert x0[0] <= 0 and 4 <= x0[1] < 4.2  # the whole run, from the first step on
    assert y0[0] == 0 and y0[1] >= 1.95
    for step in range(1, 11):
        plots.add_step(2, step, 10, 1.4 - 0.05 * step, 0.01)
    plots.add_epoch(1, 1.5, 1.6, 0.4, 0.35)
    plots.redraw()
    assert plots.loss_plot.viewRange()[0] == x0  # nothing moved
    assert plots.loss_plot.viewRange()[1] == y0
    assert plots.lr_plot.viewRange()[1] == lr0
    plots.add_step(3, 1, 10, 5.0, 0.01)  # a spike above the axis: it grows
    plots.redraw()
    assert plots.loss_plot.viewRange()[1][1] >= 5.0
    plots.add_step(5, 1, 10, 0.5, 0.01)  # past the plan (a resumed run went on): the axis follows
    plots.redraw()
    assert plots.loss_plot.viewRange()[0][1] >= 5.0


def test_a_past_run_opened_after_a_planned_one_gets_axes_of_its_own(qtbot):
    """The Fine-tune page's history resets the curves, then loads a past run's logs (runs.py): after a
    30-epoch run, a 2-epoch run is not squeezed into 0..30 nor under the last run's loss axis."""
    plots = _plots(qtbot)
    plots.plan(30)
    for step in range(1, 11):
        plots.add_step(1, step, 10, 9.0, 0.5)
    plots.redraw()
    plots.reset()
    steps = [(e, s, 5 * (e - 1) + s, 1.0 + 0.01 * s, 0.1) for e in (1, 2) for s in range(1, 6)]
    plots.load(steps, [])
    qtbot.waitUntil(lambda: plots.loss_plot.viewRange()[0][1] < 2.5)  # two epochs' worth, not thirty
    qtbot.waitUntil(lambda: plots.loss_plot.viewRange()[1][1] < 2)  # its own loss axis, not up to 9


def test_epoch_curves_follow_their_epochs_and_are_not_set_again_between_them(qtbot, monkeypatch):
    plots = _plots(qtbot)
    plots.plan(3)
    sets: list[str] = []
    original = plots.val_acc.setData
    monkeypatch.setattr(plots.val_acc, "setData", lambda *a, **k: (sets.append("val_acc"), original(*a, **k)))
    for epoch in (1, 2):
        for step in range(1, 6):
            plots.add_step(epoch, step, 5, 1.0, 0.01)
            plots.redraw()
        plots.add_epoch(epoch, 1.0, 1.2, 0.5, 0.25 * epoch)
        plots.redraw()
    assert sets == ["val_acc"] * 2  # once per finished epoch
    assert list(plots.val_acc.xData) == [1, 2] and list(plots.val_acc.yData) == [25, 50]
    plots.reset()
    assert plots.val_acc.xData is None or len(plots.val_acc.xData) == 0
