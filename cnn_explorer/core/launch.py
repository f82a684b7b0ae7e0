"""The command lines that run a fine-tuning config outside the window: in a terminal, on every GPU of this
machine (``torchrun``), and on several machines.

:func:`finetune_args` turns a :class:`~cnn_explorer.core.train_config.TrainConfig` into the arguments of
``cnn-explorer finetune`` (the CLI of ``cli_train``) that rebuild the same config: the dataset, the run
folder, and every setting that differs from the defaults. :func:`launch_commands` wraps them into the
three shell commands the fine-tune page shows. Every setting has a flag: a test parses the commands back
and compares the configs, so a command shown for a run really reproduces it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from cnn_explorer.core.data import Augmentation
from cnn_explorer.core.train_config import TrainConfig

__all__ = ["RENDEZVOUS_PORT", "LaunchCommands", "finetune_args", "launch_commands"]

RENDEZVOUS_PORT = 29500  # torchrun's usual port on the first machine
DATA_PLACEHOLDER = "DATA"  # shown while no dataset is chosen


@dataclass(frozen=True)
class LaunchCommands:
    """Shell commands (quoted for a POSIX shell) that train ``config`` as the window would."""

    single: str  # one process, like the window: `cnn-explorer finetune …`
    local: str  # one process per GPU of this machine (DistributedDataParallel)
    multi_node: str  # the same on two machines; run it on each, HOST being the first one
    nproc_per_node: int
    multi_node_note: str


def _num(value: float) -> str:
    return repr(float(value))  # repr round-trips a float exactly


def _option(flag: str, value: object) -> list[str]:
    text = str(value)
    # "--layer -x" would read -x as an option; "--layer=-x" cannot be misread
    return [f"{flag}={text}"] if text.startswith("-") else [flag, text]


def _augmentation_args(aug: Augmentation) -> list[str]:
    default = Augmentation()
    if not aug.random_resized_crop and not aug.flip:
        args = ["--no-augment"]
    else:
        args = (["--no-crop"] if not aug.random_resized_crop else []) + (
            ["--no-flip"] if not aug.flip else []
        )
    for value, base, flag in (
        (aug.crop_scale_min, default.crop_scale_min, "--crop-scale"),
        (aug.rotation, default.rotation, "--rotation"),
        (aug.color_jitter, default.color_jitter, "--color-jitter"),
    ):
        if value != base:
            args += _option(flag, _num(value))
    return args


def finetune_args(config: TrainConfig, out: str | Path | None = None) -> list[str]:
    """The arguments after ``cnn-explorer finetune`` that rebuild ``config``: DATA, ``--out`` when given,
    and a flag for each setting that differs from ``TrainConfig()``'s. Paths are passed as they are; the
    CLI makes them absolute."""
    d = TrainConfig()
    data = config.data or DATA_PLACEHOLDER
    args = [f"./{data}" if data.startswith("-") else data]
    if out is not None:
        args += _option("--out", Path(out))
    plain = (  # field, flag: settings whose value is written as it is
        ("model", "--model"),
        ("strategy", "--strategy"),
        ("top_blocks", "--top-blocks"),
        ("cut_layer", "--layer"),
        ("epochs", "--epochs"),
        ("batch_size", "--batch-size"),
        ("optimizer", "--optimizer"),
        ("schedule", "--schedule"),
        ("step_epochs", "--step-epochs"),
        ("image_size", "--image-size"),
        ("seed", "--seed"),
        ("device", "--device"),
        ("num_workers", "--workers"),
        ("precision", "--precision"),
        ("cache_dir", "--cache-dir"),
        ("watch_image", "--watch"),
    )
    for name, flag in plain:
        value = getattr(config, name)
        if value != getattr(d, name) and value is not None:
            args += _option(flag, value)
    numbers = (
        ("lr", "--lr"),
        ("lr_mult", "--lr-mult"),
        ("gamma", "--gamma"),
        ("momentum", "--momentum"),
        ("weight_decay", "--weight-decay"),
        ("label_smoothing", "--label-smoothing"),
        ("dropout", "--dropout"),
        ("val_fraction", "--val-fraction"),
    )
    for name, flag in numbers:
        value = getattr(config, name)
        if value is not None and value != getattr(d, name):
            args += _option(flag, _num(value))
    args += _augmentation_args(config.augmentation)
    switches = (  # boolean field, the flag that turns its default off
        ("cache_embeddings", "--no-cache"),
        ("channels_last", "--no-channels-last"),
        ("allow_download", "--offline"),
    )
    for name, flag in switches:
        if getattr(config, name) != getattr(d, name):
            args.append(flag)
    return args


def launch_commands(config: TrainConfig, out: str | Path | None, *, gpus: int) -> LaunchCommands:
    """The commands that train ``config`` into ``out``: in one process, on this machine's ``gpus`` GPUs
    (at least 2 processes: the command is meant for a machine with several), and on two machines."""
    nproc = max(2, int(gpus))
    tail = ["-m", "cnn_explorer", "finetune", *finetune_args(config, out)]
    run_name = Path(out).name if out is not None else "RUN_NAME"
    multi = [
        "torchrun",
        "--nnodes=2",
        f"--nproc_per_node={nproc}",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=HOST:{RENDEZVOUS_PORT}",
        f"--rdzv_id={run_name}",
        *tail,
    ]
    note = (
        "Run the same command on each machine. HOST is the first machine's name or address (port "
        f"{RENDEZVOUS_PORT} open between them). Every machine reads the dataset at the same path (a shared "
        "folder, or a copy in the same place); the run folder is written on the first machine only."
    )
    return LaunchCommands(
        single=shlex.join(["cnn-explorer", "finetune", *finetune_args(config, out)]),
        local=shlex.join(["torchrun", "--standalone", f"--nproc_per_node={nproc}", *tail]),
        multi_node=shlex.join(multi),
        nproc_per_node=nproc,
        multi_node_note=note,
    )
