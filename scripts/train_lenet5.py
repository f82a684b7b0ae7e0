"""Train the bundled LeNet-5 on the UCI optical digits (assets/uci_digits.npz) and write its weights.

    python scripts/train_lenet5.py            # writes assets/lenet5_digits.safetensors and .json

Reproducible: a fixed stratified 80/20 split (``SPLIT_SEED``), a fixed training seed, one CPU thread and
PyTorch's deterministic algorithms. The network is ``zoo.LeNet5`` exactly as the zoo builds it, and every
image goes through ``zoo.LENET5_DIGITS_PREPROCESS`` (that is ``core.digits.digit_to_input``), the same
function the app and the CLI apply to a user's digit. Training is plain SGD with momentum, as the course
teaches, with small random shifts, rotations and scalings of the 32×32 planes. The held-out 20% is used
once, at the end, for the accuracy the JSON records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnn_explorer.core import zoo  # noqa: E402
from cnn_explorer.core.digits import SPLIT_SEED, TEST_FRACTION, stratified_split  # noqa: E402

ASSETS = ROOT / "assets"
DATA = ASSETS / "uci_digits.npz"
TRAIN_SEED = 5
EPOCHS = 60
BATCH = 32
LR = 0.05
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4


def load_digits(path: Path = DATA) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 N×8×8 with values 0..16, labels uint8 N)."""
    with np.load(path) as d:
        return d["images"], d["labels"]


def to_inputs(images: np.ndarray) -> Tensor:
    """N×1×32×32 float, exactly as the app feeds LeNet-5 (normalised to -1..1)."""
    return torch.stack([zoo.LENET5_DIGITS_PREPROCESS(img) for img in images])


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Small random rotations (±12°), scalings (0.9–1.1), shifts (±2 px) and thinner strokes (half)."""
    n = x.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(12)
    scale = 0.9 + torch.rand(n, generator=gen) * 0.2
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 / 16)  # affine_grid units: 16 px per unit
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    rows = [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)]
    theta = torch.stack(rows, 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # work on 0..1 planes so that the padding (0) is the black ground, then normalise back to -1..1
    planes = F.grid_sample((x + 1) / 2, grid, align_corners=False, padding_mode="zeros")
    # thinner strokes for half the digits (an erosion): pen and font digits are thinner than UCI's
    thin = -F.max_pool2d(-planes, 3, stride=1, padding=1)
    pick = (torch.rand(n, 1, 1, 1, generator=gen) < 0.5).float()
    return (pick * thin + (1 - pick) * planes) * 2 - 1


def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> tuple[int, int]:
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(1)
    return int((pred == y).sum()), len(y)


def train(epochs: int = EPOCHS, verbose: bool = True) -> tuple[nn.Module, dict]:
    torch.manual_seed(TRAIN_SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    images, labels = load_digits()
    train_idx, test_idx = stratified_split(labels)
    x = to_inputs(images)
    y = torch.from_numpy(labels.astype(np.int64))
    x_train, y_train, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]

    model = zoo.build_model("lenet5", pretrained=False).model  # the zoo's own construction
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(y_train) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        total = 0.0
        for i in range(0, len(order), BATCH):
            b = order[i : i + BATCH]
            loss = loss_fn(model(augment(x_train[b], gen)), y_train[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        if verbose and (epoch % 10 == 0 or epoch == 1):
            ok, n = accuracy(model, x_train, y_train)
            print(f"epoch {epoch:3d}  loss {total / len(y_train):.4f}  train accuracy {ok / n:.4f}")
    ok, n = accuracy(model, x_test, y_test)
    report = {
        "model": "lenet5",
        "data": DATA.name,
        "data_sha256": hashlib.sha256(DATA.read_bytes()).hexdigest(),
        "test_accuracy": round(ok / n, 4),
        "test_correct": ok,
        "test_size": n,
        "train_size": len(y_train),
        "split": f"stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} per class, numpy default_rng",
        "split_seed": SPLIT_SEED,
        "train_seed": TRAIN_SEED,
        "epochs": epochs,
        "optimizer": f"SGD, one-cycle lr {LR}, momentum {MOMENTUM}, decay {WEIGHT_DECAY}, batch {BATCH}",
        "augmentation": "rotation ±12°, scale 0.9–1.1, shift ±2 px, 3×3 erosion for half",
        "preprocess": "cnn_explorer.core.digits.digit_to_input, then (x - 0.5) / 0.5",
        "torch": torch.__version__,
        "date": dt.date.today().isoformat(),
    }
    return model.eval(), report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--out", type=Path, default=ASSETS, help="folder for the .safetensors and .json")
    args = ap.parse_args(argv)
    from safetensors.torch import save_file

    model, report = train(args.epochs)
    ok, n = report["test_correct"], report["test_size"]
    print(f"held-out test accuracy: {report['test_accuracy']:.4f} ({ok}/{n})")
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / zoo.LENET5_WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"test_accuracy": str(report["test_accuracy"])})
    os.replace(tmp, weights)
    weights.chmod(0o644)  # safetensors writes its file owner-only; this one ships
    (args.out / zoo.LENET5_REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size} bytes) and {zoo.LENET5_REPORT_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
