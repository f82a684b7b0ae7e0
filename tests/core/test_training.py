"""fit(): real (small) training runs with the offline EfficientNet-Lite0 on animal silhouettes."""

from __future__ import annotations

import csv
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.control import Cancelled, Control
from cnn_explorer.core.data import Augmentation, scan_dataset
from cnn_explorer.core.runs import RunDir, RunDirError, load_run
from cnn_explorer.core.training import (
    CheckpointSaved,
    ConfigError,
    EpochEnd,
    FileSkipped,
    Finished,
    Notice,
    RunStarted,
    StepEnd,
    TrainConfig,
    fit,
    load_run_model,
    lr_factor,
    predict_files,
    resume,
    run_to_end,
)

SMALL = 64  # px: EfficientNet-Lite0 accepts it and it keeps CPU training quick


def quick(data: Path, **kw) -> TrainConfig:
    defaults = dict(data=str(data), epochs=2, batch_size=16, image_size=SMALL)
    return TrainConfig(**{**defaults, **kw})


def of_type(events, cls):
    return [e for e in events if isinstance(e, cls)]


@pytest.mark.slow
def test_feature_extractor_clearly_beats_chance(animal_folder_shared: Path, tmp_path: Path):
    config = TrainConfig(data=str(animal_folder_shared), epochs=5, batch_size=32, image_size=96)
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    started = of_type(events, RunStarted)[0]
    assert started.cached and started.n_train == 240 and started.n_val == 60
    assert "package" in started.weights  # genuine ImageNet weights, offline
    # only the new head learns: 1280 features x 5 classes + 5 biases
    assert started.trainable_params == 1280 * 5 + 5
    epochs = of_type(events, EpochEnd)
    assert [e.epoch for e in epochs] == [1, 2, 3, 4, 5]
    print(f"feature-extractor val accuracy per epoch: {[round(e.val_acc, 3) for e in epochs]}")
    # 5 classes: chance is 20 %. Observed about 85-90 %; 60 % leaves room for other seeds and CPUs.
    assert summary.status == "finished" and summary.best_val_acc >= 0.6
    assert epochs[-1].train_loss < epochs[0].train_loss
    steps = of_type(events, StepEnd)
    assert len(steps) == 5 * started.steps_per_epoch
    assert all(math.isfinite(s.loss) and s.images_per_s > 0 and s.eta_s >= 0 for s in steps)
    # cosine schedule: the learning rate falls over the run
    assert steps[0].lr == pytest.approx(0.01) and steps[-1].lr < 0.001
    # epochs after the first only train the head on cached embeddings
    assert max(e.seconds for e in epochs[1:]) < 0.5 * epochs[0].seconds

    # the best checkpoint reproduces the recorded accuracy when used for prediction
    loaded = load_run_model(tmp_path / "run")
    assert loaded.categories == ["bird", "cat", "elephant", "giraffe", "horse"]
    assert loaded.preprocess.crop == 96
    val = scan_dataset(animal_folder_shared).val
    predictions = predict_files(loaded, [p for p, _ in val], top_k=3)
    names = loaded.categories
    acc = np.mean([pr.top[0][0] == names[y] for pr, (_, y) in zip(predictions, val, strict=True)])
    assert acc == pytest.approx(summary.best_val_acc, abs=1e-9)
    assert all(len(pr.top) == 3 and pr.top[0][1] >= pr.top[1][1] for pr in predictions)

    finished = events[-1]
    assert isinstance(finished, Finished) and finished.best_epoch == summary.best_epoch
    assert finished.confusion.sum() == 60 and np.trace(finished.confusion) == round(acc * 60)
    assert len(finished.misclassified) == 60 - np.trace(finished.confusion)
    assert all(m.true != m.predicted for m in finished.misclassified)
    # every validation image is listed, so a confusion cell can show its images
    assert len(finished.predictions) == 60
    for i, true in enumerate(names):
        for j, pred in enumerate(names):
            cell = [p for p in finished.predictions if (p.true, p.predicted) == (true, pred)]
            assert len(cell) == finished.confusion[i, j]


def test_run_directory_files(tiny_folder: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    events, summary = run_to_end(fit(quick(tiny_folder, epochs=2), run_dir))
    names = {p.name for p in run_dir.iterdir()}
    assert names == {
        "config.json", "dataset.json", "summary.json", "metrics.csv", "steps.csv",
        "best.pt", "last.pt", "confusion.csv", "misclassified.csv", "val_predictions.csv",
    }  # fmt: skip
    record = load_run(run_dir)
    assert record.config["strategy"] == "feature-extractor" and record.config["image_size"] == SMALL
    assert record.summary.status == "finished" and record.summary.epochs_done == 2
    assert [m.epoch for m in record.epochs] == [1, 2]
    assert [m.val_acc for m in record.epochs] == pytest.approx([e.val_acc for e in of_type(events, EpochEnd)])
    steps = RunDir(run_dir).read_steps()
    spe = of_type(events, RunStarted)[0].steps_per_epoch
    assert [s[2] for s in steps] == list(range(1, 2 * spe + 1))
    # checkpoints carry what is needed to use them (weights_only-loadable)
    best = zoo.read_checkpoint(run_dir / "best.pt")
    assert best["arch"] == "efficientnet_lite0" and best["class_names"] == ["bird", "elephant", "giraffe"]
    assert best["preprocess"]["crop"] == SMALL
    last = zoo.read_checkpoint(run_dir / "last.pt")
    assert last["epoch"] == 2 and last["step"] == 0 and "optimizer" in last
    saved = of_type(events, CheckpointSaved)
    assert [c.kind for c in saved if c.epoch == 2][-1] == "last"
    matrix, classes = RunDir(run_dir).read_confusion()
    assert classes == ["bird", "elephant", "giraffe"] and matrix.sum() == summary.n_val == 6
    with open(run_dir / "misclassified.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == matrix.sum() - np.trace(matrix)


def test_embedding_cache_gives_the_same_training_as_the_full_network(tiny_folder: Path, tmp_path: Path):
    plain = dict(augmentation=Augmentation.none(), epochs=2)
    cached_events, _ = run_to_end(fit(quick(tiny_folder, **plain), tmp_path / "a"))
    full_events, _ = run_to_end(fit(quick(tiny_folder, cache_embeddings=False, **plain), tmp_path / "b"))
    assert of_type(cached_events, RunStarted)[0].cached and not of_type(full_events, RunStarted)[0].cached
    a = [(e.train_loss, e.val_loss) for e in of_type(cached_events, EpochEnd)]
    b = [(e.train_loss, e.val_loss) for e in of_type(full_events, EpochEnd)]
    # the cache stores float16 (half the disk and memory): losses agree to float16's ~3 significant digits
    assert np.allclose(a, b, rtol=2e-3, atol=1e-4)
    assert not np.allclose(a[0], a[1], rtol=2e-3)  # and the runs did learn: the comparison can fail


def test_cache_turns_augmentation_off_with_a_notice(tiny_folder: Path, tmp_path: Path):
    events, _ = run_to_end(fit(quick(tiny_folder, epochs=1), tmp_path / "a"))
    assert any("Augmentation is off" in n.message for n in of_type(events, Notice))
    events, _ = run_to_end(fit(quick(tiny_folder, epochs=1, cache_embeddings=False), tmp_path / "b"))
    assert not of_type(events, Notice)


def _stop_at(gen, control: Control, epoch: int, step: int) -> list:
    """Iterate until StepEnd(epoch, step), cancel there, and expect Cancelled on the next step."""
    seen = []
    with pytest.raises(Cancelled):
        for ev in gen:
            seen.append(ev)
            if isinstance(ev, StepEnd) and (ev.epoch, ev.step) == (epoch, step):
                control.cancel()
    return seen


def test_cancel_keeps_a_checkpoint_and_resume_matches_an_uninterrupted_run(tiny_folder: Path, tmp_path: Path):
    config = quick(tiny_folder, epochs=3, batch_size=4)  # 18 training images: 5 steps per epoch
    _, reference = run_to_end(fit(config, tmp_path / "ref"))

    control = Control()
    seen = _stop_at(fit(config, tmp_path / "run", control=control), control, epoch=2, step=3)
    assert not of_type(seen, StepEnd)[-1].step > 3  # took effect within a step
    run = RunDir(tmp_path / "run")
    summary = run.read_summary()
    assert summary.status == "stopped" and "resume" in summary.message and summary.epochs_done == 1
    last = zoo.read_checkpoint(run.last_checkpoint)
    assert (last["epoch"], last["step"]) == (1, 3)

    events, resumed = run_to_end(resume(tmp_path / "run"))
    started = of_type(events, RunStarted)[0]
    assert (started.start_epoch, started.start_step) == (1, 3) and started.steps_per_epoch == 5
    assert [s.global_step for s in of_type(events, StepEnd)] == list(range(9, 16))
    assert resumed.status == "finished" and resumed.epochs_done == 3
    # the same batches, weights and optimizer state: the numbers match a run that was never stopped
    assert [m.epoch for m in run.read_epochs()] == [1, 2, 3]
    ref_rows = RunDir(tmp_path / "ref").read_epochs()
    for mine, ref in zip(run.read_epochs(), ref_rows, strict=True):
        assert mine.train_loss == pytest.approx(ref.train_loss, rel=1e-4)
        assert mine.val_loss == pytest.approx(ref.val_loss, rel=1e-4)
    assert [s[2] for s in run.read_steps()] == list(range(1, 16))
    assert resumed.best_val_acc == pytest.approx(reference.best_val_acc)


def test_closing_the_generator_stops_like_cancel(tiny_folder: Path, tmp_path: Path):
    """The GUI worker closes the generator on cancel: the run must still keep its checkpoint."""
    gen = fit(quick(tiny_folder, epochs=2, batch_size=4), tmp_path / "run")
    for ev in gen:
        if isinstance(ev, StepEnd) and ev.epoch == 1 and ev.step == 2:
            break
    gen.close()
    run = RunDir(tmp_path / "run")
    assert run.read_summary().status == "stopped"
    last = zoo.read_checkpoint(run.last_checkpoint)
    assert (last["epoch"], last["step"]) == (0, 2)


def test_pause_holds_training_until_resumed(tiny_folder: Path, tmp_path: Path):
    control = Control()
    gen = fit(quick(tiny_folder, epochs=1, batch_size=4), tmp_path / "run", control=control)
    first = next(ev for ev in gen if isinstance(ev, StepEnd))
    control.pause()
    timer = threading.Timer(0.5, control.resume)
    timer.start()
    t0 = time.perf_counter()
    nxt = next(gen)  # blocks in the paused checkpoint before the next step
    waited = time.perf_counter() - t0
    timer.join()
    assert isinstance(nxt, StepEnd) and nxt.step == first.step + 1
    assert waited >= 0.45
    # cancel while paused wakes the run up and stops it
    control.pause()
    control.cancel()
    with pytest.raises(Cancelled):
        next(gen)
    assert RunDir(tmp_path / "run").read_summary().status == "stopped"


def test_nan_loss_stops_with_advice_and_keeps_the_last_good_checkpoint(tiny_folder: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    run_to_end(fit(quick(tiny_folder, epochs=1, batch_size=4), run_dir))
    good = zoo.read_checkpoint(run_dir / "last.pt")["state_dict"]
    # an absurd learning rate: the weights overflow float32 within a few steps
    events, summary = run_to_end(resume(run_dir, epochs=3, lr=1e20))
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.status == "diverged" == summary.status
    assert "lower learning rate" in finished.message and "1e+19" in finished.message
    assert "epoch 1" in finished.message  # names the checkpoint that was kept
    assert summary.epochs_done == 1
    kept = zoo.read_checkpoint(run_dir / "last.pt")
    assert kept["epoch"] == 1
    assert all(torch.equal(good[k], kept["state_dict"][k]) for k in good)
    # it can be resumed with a sensible learning rate
    _, again = run_to_end(resume(run_dir, epochs=2, lr=0.01))
    assert again.status == "finished" and again.epochs_done == 2


def test_nan_in_the_first_epoch_saves_nothing(tiny_folder: Path, tmp_path: Path):
    events, summary = run_to_end(fit(quick(tiny_folder, epochs=2, lr=1e20, batch_size=4), tmp_path / "r"))
    assert summary.status == "diverged" and "No checkpoint was saved" in events[-1].message
    assert not (tmp_path / "r" / "last.pt").exists()
    with pytest.raises(RunDirError, match=r"no last\.pt"):
        next(resume(tmp_path / "r"))


def test_image_that_fails_while_training_is_skipped_once(
    tmp_path: Path, make_image_folder, make_truncated_jpeg
):
    root = make_image_folder(tmp_path / "d", per_class=8, classes=["bird", "giraffe"])
    cut = make_truncated_jpeg(root / "bird" / "zz_cut.jpg")
    scan = scan_dataset(root, val_fraction=0.25)
    assert not scan.bad_files  # the quick scan cannot see it
    events, summary = run_to_end(fit(quick(root, epochs=3, batch_size=4), tmp_path / "run", scan=scan))
    skipped = of_type(events, FileSkipped)
    assert [(s.path, "truncated" in s.reason) for s in skipped] == [(cut, True)]
    assert summary.status == "finished" and summary.bad_files == 1


def test_fine_tune_top_changes_only_the_top_blocks(tiny_folder: Path, tmp_path: Path):
    config = quick(tiny_folder, strategy="fine-tune-top", top_blocks=2, epochs=1, batch_size=8)
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    assert summary.status == "finished"
    before = zoo.build_model("efficientnet_lite0", class_names=["bird", "elephant", "giraffe"]).model
    after = load_run_model(tmp_path / "run", which="last").model
    blocks_after = zoo.backbone_blocks(after)
    blocks_before = zoo.backbone_blocks(before)
    started = of_type(events, RunStarted)[0]
    top = sum(p.numel() for b in blocks_after[-2:] for p in b.parameters())
    head = sum(p.numel() for p in zoo.classifier_head(after).parameters())
    assert started.trainable_params == top + head
    for b_before, b_after in zip(blocks_before[:-2], blocks_after[:-2], strict=True):
        for (name, x), (_, y) in zip(
            b_before.state_dict().items(), b_after.state_dict().items(), strict=True
        ):
            assert torch.equal(x, y), name  # frozen: weights and BatchNorm statistics untouched
    changed = [
        not torch.equal(x, y)
        for b_before, b_after in zip(blocks_before[-2:], blocks_after[-2:], strict=True)
        for x, y in zip(b_before.parameters(), b_after.parameters(), strict=True)
    ]
    assert any(changed)


@pytest.mark.parametrize("strategy", ["fine-tune-all", "scratch"])
def test_train_everything_strategies(tiny_folder: Path, tmp_path: Path, strategy: str):
    config = quick(tiny_folder, strategy=strategy, epochs=1, batch_size=8, image_size=32)
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    started = of_type(events, RunStarted)[0]
    assert summary.status == "finished" and not started.cached
    assert started.trainable_params == started.total_params
    assert ("UNTRAINED" in started.weights) == (strategy == "scratch")


def test_grayscale_model_trains_on_one_channel_with_augmentation(tiny_folder: Path, tmp_path: Path):
    """LeNet-5 reads one grey plane; RGB-or-grey files and the augmentation pipeline must deliver that."""
    aug = Augmentation(rotation=10, color_jitter=0.2)
    config = TrainConfig(
        data=str(tiny_folder), model="lenet5", strategy="scratch", epochs=1, augmentation=aug
    )
    _, summary = run_to_end(fit(config, tmp_path / "run"))
    assert summary.status == "finished"
    saved = zoo.read_checkpoint(tmp_path / "run" / "best.pt")
    assert saved["preprocess"]["grayscale"] and saved["state_dict"]["c1.weight"].shape[1] == 1


def test_learning_rate_schedules():
    assert lr_factor("constant", 50, 100, 10, 3, 0.1) == 1.0
    assert lr_factor("cosine", 0, 100, 10, 3, 0.1) == 1.0
    assert lr_factor("cosine", 50, 100, 10, 3, 0.1) == pytest.approx(0.5)
    assert lr_factor("cosine", 99, 100, 10, 3, 0.1) < 0.01
    assert [lr_factor("step", s, 100, 10, 3, 0.1) for s in (0, 29, 30, 60)] == pytest.approx(
        [1, 1, 0.1, 0.01]
    )


def test_config_validation_and_round_trip():
    config = TrainConfig(data="x", strategy="fine-tune-top", lr=0.003, augmentation=Augmentation(rotation=10))
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert TrainConfig().effective_lr() == 0.01 and TrainConfig(optimizer="adamw").effective_lr() == 1e-3
    for bad, needle in [
        (dict(strategy="magic"), "strategy"),
        (dict(epochs=0), "epochs"),
        (dict(lr=-1.0), "learning rate"),
        (dict(lr=float("nan")), "learning rate"),
        (dict(schedule="linear"), "schedule"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            TrainConfig(**bad).validate()
    with pytest.raises(ConfigError, match="CUDA"):
        run_to_end(fit(TrainConfig(data="x", device="cuda"), "/nonexistent/never"))


def test_a_used_run_folder_is_refused_and_finished_runs_need_more_epochs(tiny_folder: Path, tmp_path: Path):
    run_to_end(fit(quick(tiny_folder, epochs=1), tmp_path / "run"))
    with pytest.raises(RunDirError, match="already holds a run"):
        next(fit(quick(tiny_folder), tmp_path / "run"))
    with pytest.raises(RunDirError, match="larger number of epochs"):
        next(resume(tmp_path / "run"))
    events, summary = run_to_end(resume(tmp_path / "run", epochs=2))
    assert summary.epochs_done == 2 and [e.epoch for e in of_type(events, EpochEnd)] == [2]


def test_predict_reports_unreadable_images(tiny_folder: Path, tmp_path: Path, sample_cat: Path):
    run_to_end(fit(quick(tiny_folder, epochs=1), tmp_path / "run"))
    (tmp_path / "broken.png").write_bytes(b"")
    out = predict_files(load_run_model(tmp_path / "run"), [sample_cat, tmp_path / "broken.png"], top_k=10)
    assert len(out[0].top) == 3 and sum(p for _, p in out[0].top) == pytest.approx(1.0, abs=1e-5)
    assert out[1].top == [] and "empty" in out[1].error
