"""The strategies as objects, the settings the notes name, the linear probe at any layer, "watch it learn"
and notices that outlast the run: through core.training_setup and real fit() runs on the silhouettes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnn_explorer.core import zoo
from cnn_explorer.core.data import Augmentation, scan_dataset
from cnn_explorer.core.train_config import ConfigError, TrainConfig
from cnn_explorer.core.training import Notice, WatchFrame, fit, load_run_model, predict_files, run_to_end
from cnn_explorer.core.training_setup import prepare_training
from cnn_explorer.core.transfer.layers import LinearProbeModel, default_cut_layer, probe_layer_names

SMALL = 64


def quick(data: Path, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(data=str(data), epochs=2, batch_size=16, image_size=SMALL), **kw})


def test_defaults_are_the_notes():
    d = TrainConfig()
    assert (d.optimizer, d.momentum, d.weight_decay) == ("sgd", 0.9, 5e-4)
    assert d.dropout == 0.0 and d.lr_mult == 1.0 and d.label_smoothing == 0.0


def test_the_optimizer_gets_the_settings(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    setup = prepare_training(quick(tiny_folder, momentum=0.8, weight_decay=1e-3), scan)
    group = setup.optimizer.param_groups[0]
    assert isinstance(setup.optimizer, torch.optim.SGD)
    assert (group["momentum"], group["weight_decay"]) == (0.8, 1e-3)
    setup = prepare_training(quick(tiny_folder, optimizer="adamw", weight_decay=0.01), scan)
    assert isinstance(setup.optimizer, torch.optim.AdamW)
    assert setup.optimizer.param_groups[0]["weight_decay"] == 0.01


def test_label_smoothing_reaches_the_loss(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    setup = prepare_training(quick(tiny_folder, label_smoothing=0.3, augmentation=Augmentation.none()), scan)
    batch = next(iter(setup.train_batches(0)))
    setup.model.eval()
    with torch.no_grad():
        logits = setup.logits(batch, "train")
    loss = float(setup.criterion(logits, batch.labels))
    smoothed = float(F.cross_entropy(logits, batch.labels, label_smoothing=0.3))
    plain = float(F.cross_entropy(logits, batch.labels))
    assert loss == pytest.approx(smoothed) and loss != pytest.approx(plain)


def test_dropout_before_the_head_acts_only_while_training(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    setup = prepare_training(quick(tiny_folder, dropout=0.5), scan)
    head = zoo.classifier_head(setup.model)
    x = torch.randn(16, head.in_features, generator=torch.Generator().manual_seed(0))
    head.train()
    torch.manual_seed(1)
    with torch.no_grad():
        trained = head(x)
    torch.manual_seed(1)
    expected = F.linear(F.dropout(x, 0.5, training=True), head.weight, head.bias)
    assert torch.equal(trained, expected)  # exactly dropout(p=0.5) on the head's input
    head.eval()
    with torch.no_grad():
        assert torch.equal(head(x), F.linear(x, head.weight, head.bias))  # nothing in eval mode
    assert head.weight.shape[0] == 3  # the architecture (and its checkpoint names) are unchanged


def test_the_embedding_cache_stores_features_without_dropout(tiny_folder: Path, tmp_path: Path):
    scan = scan_dataset(tiny_folder)
    config = quick(tiny_folder, dropout=0.5, augmentation=Augmentation.none(), cache_dir=str(tmp_path))
    setup = prepare_training(config, scan)
    assert setup.cached and setup.cache_path.startswith(str(tmp_path))
    setup.set_train_mode()  # the head in training mode: its dropout is on
    try:
        batch = next(iter(setup.train_batches(0)))  # embeds this batch's images into the cache
        rows = batch.indices
        stored = setup.train_store.read(rows)
        images = torch.stack([setup.train_set[int(i)][0] for i in rows])
        with torch.no_grad():
            plain = setup.embed(images)  # the head's dropout acts after the embedding, not in it
            dropped = F.dropout(plain, 0.5, training=True)
        assert torch.allclose(stored, plain.half().float())  # stored in float16, without dropout's zeros
        assert not torch.allclose(stored, dropped.half().float())
    finally:
        setup.close()


def test_discriminative_learning_rates(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    setup = prepare_training(quick(tiny_folder, strategy="fine-tune-all", lr_mult=0.1), scan)
    setup.set_lr(0.01)
    groups = setup.optimizer.param_groups
    scales = [g["lr_scale"] for g in groups]
    assert scales[0] == 1.0  # the head learns at the base rate
    block_scales = scales[1 : 1 + len(zoo.backbone_blocks(setup.model))]
    assert block_scales == sorted(block_scales, reverse=True)  # groups go top → input: lower and lower
    assert min(scales) == pytest.approx(0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.01 * s for s in scales])
    every = {id(p) for g in groups for p in g["params"]}
    assert every == {id(p) for p in setup.model.parameters()}  # nothing left out, nothing twice
    assert sum(len(g["params"]) for g in groups) == len(every)
    flat = prepare_training(quick(tiny_folder, strategy="fine-tune-all"), scan)
    [group] = flat.optimizer.param_groups  # one rate for all: one group, in the model's order, as runs
    assert group["params"] == list(flat.model.parameters())  # of earlier versions saved it


def test_fine_tune_top_keeps_frozen_blocks_in_eval_mode(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    setup = prepare_training(quick(tiny_folder, strategy="fine-tune-top", top_blocks=2, lr_mult=0.5), scan)
    setup.set_train_mode()
    blocks = zoo.backbone_blocks(setup.model)
    assert all(not b.training for b in blocks[:-2]) and all(b.training for b in blocks[-2:])
    assert all(not p.requires_grad for b in blocks[:-2] for p in b.parameters())
    assert [g["lr_scale"] for g in setup.optimizer.param_groups] == pytest.approx([1.0, 0.5**0.5, 0.5])


def test_a_cut_layer_the_model_lacks_is_a_config_error(tiny_folder: Path):
    scan = scan_dataset(tiny_folder)
    with pytest.raises(ConfigError, match=r"_blocks\.7"):  # the message lists the layers there are
        prepare_training(quick(tiny_folder, strategy="linear-probe", cut_layer="layer9"), scan)
    with pytest.raises(ConfigError, match="only used by the linear-probe"):
        quick(tiny_folder, cut_layer="_blocks.3").validate()


@pytest.mark.slow
def test_linear_probe_at_an_earlier_layer_trains_and_reopens(animal_folder_shared: Path, tmp_path: Path):
    image = sorted((animal_folder_shared / "cat").glob("*.png"))[0]
    config = quick(
        animal_folder_shared, strategy="linear-probe", cut_layer="_blocks.5", epochs=3, watch_image=str(image)
    )
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    assert summary.status == "finished" and summary.best_val_acc > 0.4  # chance: 0.2
    setup = prepare_training(config, scan_dataset(animal_folder_shared))
    assert isinstance(setup.model, LinearProbeModel) and setup.cached
    # only the probe's head trains: 80 channels of _blocks.5 x 5 classes + 5
    assert sum(p.numel() for p in setup.trainable) == 80 * 5 + 5

    frames = [e for e in events if isinstance(e, WatchFrame)]
    assert [f.epoch for f in frames] == [1, 2, 3]
    assert all(f.true_class == "cat" and f.heatmap.dtype == np.float32 for f in frames)
    assert all(f.heatmap.min() >= 0 and f.heatmap.max() <= 1 and max(f.heatmap.shape) <= 64 for f in frames)
    assert frames[0].layer.startswith("backbone.")  # Grad-CAM inside the kept layers

    loaded = load_run_model(tmp_path / "run")
    assert isinstance(loaded.model, LinearProbeModel) and loaded.model.layer == "_blocks.5"
    assert loaded.categories == ["bird", "cat", "elephant", "giraffe", "horse"]
    cut_away = [n for n in loaded.model.state_dict() if n.startswith(("backbone._blocks.6.", "backbone._fc"))]
    assert cut_away == []  # the layers after the cut are not kept
    [prediction] = predict_files(loaded, [image], top_k=1)
    assert prediction.error is None and prediction.top[0][0] in loaded.categories


def test_linear_probe_default_cut_is_halfway():
    model = zoo.build_model("resnet18", pretrained=False).model
    names = probe_layer_names(model)
    assert default_cut_layer(model) == names[(len(names) - 1) // 2] == "layer2.1"


def test_notices_are_kept_in_the_run_summary(tiny_folder: Path, tmp_path: Path):
    config = quick(
        tiny_folder, epochs=1, strategy="feature-extractor", watch_image=str(tmp_path / "gone.png")
    )
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    said = [e.message for e in events if isinstance(e, Notice)]
    assert any("Augmentation is off" in m for m in said)
    assert any("Cannot watch gone.png" in m for m in said)
    stored = json.loads((tmp_path / "run" / "summary.json").read_text())["notices"]
    assert stored == said == summary.notices


def test_a_bad_cut_layer_is_refused_before_a_run_folder_is_made(tiny_folder: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="no layer 'layer9'"):
        run_to_end(fit(quick(tiny_folder, strategy="linear-probe", cut_layer="layer9"), tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_late_layers_that_need_a_large_input_can_be_cut():
    model = zoo.build_model("inception_v3", pretrained=False).model
    probe = LinearProbeModel(model, "Mixed_7c", 4).eval()
    assert probe.fc.in_features == 2048
    assert not any(k.startswith("_cut") for k in probe.state_dict())  # each weight once, under backbone.
    with torch.no_grad():
        assert probe(torch.zeros(1, 3, 299, 299)).shape == (1, 4)


def test_compare_meets_a_linear_probes_frozen_layers_with_their_pretrained_twins():
    import copy

    from cnn_explorer.core.explorer.compare import weight_changes
    from cnn_explorer.core.layers import layer_table

    pretrained = zoo.build_model("efficientnet_lite0").model
    probe = LinearProbeModel(copy.deepcopy(pretrained), "_blocks.5", 3)
    changes = {c.layer: c for c in weight_changes(pretrained, probe, layer_table(pretrained, 64))}
    assert changes["_conv_stem"].unchanged and changes["_blocks.5._project_conv"].unchanged
    assert (
        "cut away" in changes["_blocks.6._expand_conv"].note
        and not changes["_blocks.6._expand_conv"].measured
    )
    assert "cut away" in changes["_fc"].note


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_watch_it_learn_on_a_gpu(tiny_folder: Path, tmp_path: Path):
    image = sorted((tiny_folder / "bird").glob("*.png"))[0]
    config = quick(tiny_folder, epochs=1, device="cuda", dropout=0.2, watch_image=str(image))
    events, summary = run_to_end(fit(config, tmp_path / "run"))
    assert summary.status == "finished" and summary.device.startswith("cuda")
    [frame] = [e for e in events if isinstance(e, WatchFrame)]
    assert frame.true_class == "bird" and frame.heatmap.dtype == np.float32
