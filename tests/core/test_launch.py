"""The command lines the fine-tune page shows rebuild the page's config, through the real CLI parser."""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import pytest

from cnn_explorer import cli, cli_train
from cnn_explorer.core.data import Augmentation
from cnn_explorer.core.launch import finetune_args, launch_commands
from cnn_explorer.core.train_config import TrainConfig


def parsed(argv: list[str]):
    """``cnn-explorer ARGV`` through the parser ``cnn-explorer`` itself builds: (TrainConfig, --out)."""
    args = cli.build_parser(argv).parse_args(argv)
    assert args.func is cli_train.run_finetune
    return cli_train._config_from_args(args), args.out


def every_setting_changed(tmp: Path) -> TrainConfig:
    return TrainConfig(
        data=str(tmp / "my data"),
        model="resnet18",
        strategy="linear-probe",
        top_blocks=3,
        cut_layer="layer2",
        epochs=7,
        batch_size=12,
        lr=3e-4,
        lr_mult=0.1,
        optimizer="adamw",
        momentum=0.8,
        weight_decay=1e-4,
        schedule="step",
        step_epochs=2,
        gamma=0.5,
        label_smoothing=0.1,
        dropout=0.2,
        augmentation=Augmentation(flip=False, crop_scale_min=0.35, rotation=15.0, color_jitter=0.3),
        cache_embeddings=False,
        image_size=96,
        val_fraction=0.25,
        seed=3,
        device="cpu",
        num_workers=4,
        precision="bf16",
        channels_last=False,
        cache_dir=str(tmp / "cache"),
        allow_download=False,
        watch_image=str(tmp / "it's a cat.png"),
    )


def configs(tmp: Path) -> list[TrainConfig]:
    data = str(tmp / "animals")
    return [
        TrainConfig(data=data),
        every_setting_changed(tmp),
        TrainConfig(  # no augmentation but a rotation; no worker processes; awkward floats
            data=data,
            augmentation=dataclasses.replace(Augmentation.none(), rotation=10.0),
            num_workers=0,
            precision="fp16",
            lr=0.1 + 0.2,
            weight_decay=1 / 3,
            schedule="constant",
            strategy="fine-tune-all",
            lr_mult=0.25,
        ),
        TrainConfig(data=data, augmentation=Augmentation.none(), precision="fp32", device="cuda"),
        TrainConfig(data=data, strategy="fine-tune-top", top_blocks=1, num_workers=32, image_size=64),
        TrainConfig(data=data, augmentation=Augmentation(random_resized_crop=False), gamma=0.3),  # flips only
        TrainConfig(data=data, augmentation=dataclasses.replace(Augmentation.none(), crop_scale_min=0.2)),
    ]


def test_the_test_changes_every_setting_the_cli_has_a_flag_for(tmp_path: Path):
    # a new TrainConfig field fails here until it is in every_setting_changed (and, with its flag, in
    # finetune_args): the round trip below is only as good as the fields it changes
    changed, default = every_setting_changed(tmp_path), TrainConfig()
    same = {
        f.name
        for f in dataclasses.fields(TrainConfig)
        if getattr(changed, f.name) == getattr(default, f.name)
    }
    assert same == set()  # every setting has a flag


@pytest.mark.parametrize("index", range(7))
def test_every_command_rebuilds_the_config(tmp_path: Path, index: int):
    tmp = tmp_path.resolve()
    config = configs(tmp)[index]
    out = tmp / "runs" / "20250101-120000_resnet18_linear-probe"
    rebuilt, parsed_out = parsed(["finetune", *finetune_args(config, out)])
    assert rebuilt == config, [
        (f.name, getattr(config, f.name), getattr(rebuilt, f.name))
        for f in dataclasses.fields(TrainConfig)
        if getattr(config, f.name) != getattr(rebuilt, f.name)
    ]
    assert parsed_out == out

    commands = launch_commands(config, out, gpus=4)
    for command, program in ((commands.single, "cnn-explorer"), (commands.local, "torchrun")):
        words = shlex.split(command)
        assert words[0] == program
        tail = words[1:] if program == "cnn-explorer" else words[words.index("cnn_explorer") + 1 :]
        assert parsed(tail) == (config, out)
    words = shlex.split(commands.multi_node)
    assert parsed(words[words.index("cnn_explorer") + 1 :]) == (config, out)


def test_defaults_need_only_the_dataset(tmp_path: Path):
    assert finetune_args(TrainConfig(data=str(tmp_path))) == [str(tmp_path)]
    assert finetune_args(TrainConfig()) == ["DATA"]  # no dataset chosen yet: a placeholder


def test_torchrun_commands(tmp_path: Path):
    out = tmp_path / "runs" / "run-1"
    config = TrainConfig(data=str(tmp_path / "data"), epochs=3)
    c = launch_commands(config, out, gpus=8)
    assert c.single == shlex.join(
        ["cnn-explorer", "finetune", str(tmp_path / "data"), "--out", str(out), "--epochs", "3"]
    )
    local = shlex.split(c.local)
    assert local[:5] == ["torchrun", "--standalone", "--nproc_per_node=8", "-m", "cnn_explorer"]
    multi = shlex.split(c.multi_node)
    assert multi[:6] == [
        "torchrun",
        "--nnodes=2",
        "--nproc_per_node=8",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=HOST:29500",
        "--rdzv_id=run-1",
    ]
    assert "HOST" in c.multi_node_note and "same path" in c.multi_node_note
    # a machine with one GPU (or none) is shown the command for a machine with several
    assert launch_commands(config, out, gpus=0).nproc_per_node == 2
    assert "--nproc_per_node=2" in launch_commands(config, None, gpus=1).local
    assert "--rdzv_id=RUN_NAME" in launch_commands(config, None, gpus=1).multi_node


def test_a_value_that_looks_like_an_option_is_not_misread(tmp_path: Path):
    tmp = tmp_path.resolve()
    config = TrainConfig(data=str(tmp / "d"), watch_image="-odd.png")
    args = finetune_args(config)
    assert "--watch=-odd.png" in args
    rebuilt, _ = parsed(["finetune", *args])
    assert rebuilt.watch_image == str(Path("-odd.png").resolve())
