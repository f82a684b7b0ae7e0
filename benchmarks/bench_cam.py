"""Time Grad-CAM against a bare forward pass and against the gradient it needs, in one process.

    python benchmarks/bench_cam.py [--rounds 20] [--threads N] [--layers _swish#2 _blocks.1._swish]

EfficientNet-Lite0 (bundled weights) at 224×224 on the sample photo, on the CPU, for the top class. For
each layer (by default the explorer's default CAM layer and an early one) every round runs, in turn:

- bare: the forward pass alone under ``torch.inference_mode`` (what a prediction costs);
- grad_cam: :func:`cnn_explorer.core.cam.grad_cam`, the map upsampled and scaled as the app shows it;
- baseline: what torchcam does, the least any Grad-CAM can do: the forward pass with autograd on and a
  forward hook keeping the layer's output, then ``torch.autograd.grad(top score, that output)`` (one
  backward pass of the layer's graph; no map is made);
- torchcam: ``torchcam.methods.GradCAM`` on the same layer, only if torchcam is importable (it is not a
  dependency; its hooks are added before and removed after each of its runs, untimed).

The extra time of each is its time minus bare's in the same round. The verdict is grad_cam's extra over
the baseline's (medians of the per-round extras), target ≤ 1.0: Grad-CAM costs no more than the gradient
it needs. Rounds interleave the variants, so a busy phase of a shared machine slows all alike; 3 warm-up
rounds are not counted. Medians are printed, the fastest runs beside them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from cnn_explorer.core import zoo
from cnn_explorer.core.cam import default_cam_layer, grad_cam
from cnn_explorer.core.images import default_sample, load_image
from cnn_explorer.core.layers import layer_table

TARGET_RATIO = 1.0
EARLY_LAYER = "_blocks.1._bn0"  # 96 × 112 × 112, after block 1 expands: its gradient crosses most of the net

try:
    from torchcam.methods import GradCAM as TorchcamGradCAM
except ImportError:  # optional: only measured where it is installed
    TorchcamGradCAM = None


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def baseline_grad(model: nn.Module, x: Tensor, module: nn.Module, call: int) -> Tensor:
    """The gradient of the top score at the layer's output (its ``call``-th output): hook + autograd.grad."""
    kept: list[Tensor] = []

    def hook(_m: nn.Module, _args: tuple, output: Tensor) -> None:
        kept.append(output)

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            (grads,) = torch.autograd.grad(logits[0].max(), kept[call - 1])
    finally:
        handle.remove()
    return grads


def calls_per_pass(model: nn.Module, x: Tensor, module: nn.Module) -> int:
    calls = 0

    def count(*_args: object) -> None:
        nonlocal calls
        calls += 1

    handle = module.register_forward_hook(count)
    try:
        with torch.inference_mode():
            model(x)
    finally:
        handle.remove()
    return calls


def compare(model: nn.Module, x: Tensor, layer: str, rounds: int) -> float:
    """Print one block of rows for a layer; return grad_cam's extra / the baseline's extra."""
    base, _, call = layer.partition("#")
    module = model.get_submodule(base)

    def bare() -> None:
        with torch.inference_mode():
            model(x)

    def ours() -> None:
        grad_cam(model, x[0], layer)

    def baseline() -> None:
        baseline_grad(model, x, module, int(call or 1))

    def torchcam() -> float:
        extractor = TorchcamGradCAM(model, target_layer=base)  # adds its hooks: untimed

        def run() -> None:
            with torch.enable_grad():
                scores = model(x)
                extractor(int(scores[0].argmax()), scores)

        try:
            return timed(run)
        finally:
            extractor.remove_hooks()

    variants: dict[str, Callable[[], float]] = {
        "bare": lambda: timed(bare),
        "grad_cam": lambda: timed(ours),
        "baseline": lambda: timed(baseline),
    }
    if TorchcamGradCAM is not None and int(call or 1) == calls_per_pass(model, x, module):
        variants["torchcam"] = torchcam  # torchcam keeps a layer's last output of the pass
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds + 3):
        for name in variants if r % 2 == 0 else reversed(variants):
            ms = variants[name]()
            if r >= 3:
                times[name].append(ms)
    bare_ms = times["bare"]
    print(f"\nlayer {layer}:")
    print(f"  {'':<10} {'median ms':>10} {'fastest':>8} {'extra ms (median of rounds)':>28}")
    extras: dict[str, float] = {}
    for name, ms in times.items():
        extra = statistics.median(t - b for t, b in zip(ms, bare_ms, strict=True))
        extras[name] = extra
        shown = "" if name == "bare" else f"{extra:>28.1f}"
        print(f"  {name:<10} {statistics.median(ms):>10.1f} {min(ms):>8.1f} {shown}")
    ratio = extras["grad_cam"] / extras["baseline"]
    line = f"  grad_cam extra / baseline extra: {ratio:.2f}"
    if "torchcam" in extras:
        line += f"; torchcam extra / baseline extra: {extras['torchcam'] / extras['baseline']:.2f}"
    print(line)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds after 3 warm-ups (default 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument(
        "--layers", nargs="+", default=None, help=f"default: the default CAM layer and {EARLY_LAYER}"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    loaded = zoo.load_model("efficientnet_lite0", allow_download=False)
    model = loaded.model.eval()
    x = loaded.preprocess(load_image(default_sample()))[None]
    layers = args.layers or [default_cam_layer(layer_table(model, 224)), EARLY_LAYER]
    extra = "torchcam installed" if TorchcamGradCAM is not None else "torchcam not installed"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {loaded.info.title} "
        f"({loaded.weights} weights) at {x.shape[-1]}×{x.shape[-2]}; {args.rounds} rounds; {extra}"
    )
    ratios = [compare(model, x, layer, args.rounds) for layer in layers]
    verdict = "meets" if max(ratios) <= TARGET_RATIO else "MISSES"
    print(
        f"\ngrad_cam extra / baseline extra: worst {max(ratios):.2f} — {verdict} the ≤ {TARGET_RATIO} target"
    )


if __name__ == "__main__":
    main()
