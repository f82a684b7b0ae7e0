"""Time the operations lab's full recompute, forward and backward, against plain PyTorch, in one process.

    python benchmarks/bench_ops.py [--size 512] [--rounds 15] [--kernel "Sobel x"] [--threads N]

The lab recomputes convolution -> ReLU -> max pooling (cnn_explorer.core.lab.run_lab) whenever a control
changes, and with the backward view on also the gradients (lab_backward). This script times both on a
512×512 RGB image with 1 filter and with 8, next to torch.nn.functional (forward) and torch autograd
(backward) on the same data. Forwards are timed first, then backwards; within each phase the lab and
torch run interleaved, one call of each per round (who goes first swaps every round), so a noisy machine
slows them alike. It prints the median time of each, the median of the per-round ratios lab / torch, and
the 60 Hz frame budget (16.7 ms) the forward recompute aims to stay inside.

The baseline computes what the lab hands the page, materialized the same way: the convolution's maps, the
ReLU'd maps as a separate array (not in place: the page shows both), the pooled maps and, because the lab
returns them too (the page outlines them, the CLI lists them, the backward routes through them), each max
pooling window's winner (``return_indices=True``). The lab convolves through torch's own kernel and max-pools
in numpy, two whole-array passes (columns, then rows) that give torch's numbers and winners.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cnn_explorer.core.allocator import keep_freed_memory
from cnn_explorer.core.images import default_sample, load_image, resize_to
from cnn_explorer.core.kernels import kernel_preset
from cnn_explorer.core.lab import LabSettings, default_filters, lab_backward, run_lab, upstream_gradient
from cnn_explorer.core.ops import image_to_input

FRAME_BUDGET_MS = 1000 / 60


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


class Case:
    """One filter count: the lab's forward and backward, and torch's, on the same input and weights."""

    def __init__(self, x: np.ndarray, kernel: np.ndarray, filters: int) -> None:
        self.filters = filters
        self.x = x
        bank = default_filters(kernel, x.shape[0], filters)
        self.settings = LabSettings(
            kernel=kernel, padding=1, activation="relu", pool_mode="max"
        ).with_filters(bank)
        self.result = run_lab(x, self.settings)
        self.upstream = upstream_gradient("random", self.result.output.shape, seed=0).astype(np.float32)
        self.xt = torch.from_numpy(x)[None]
        self.wt = torch.from_numpy(bank.weights.astype(np.float32))
        self.bt = torch.from_numpy(bank.biases.astype(np.float32))
        self.gt = torch.from_numpy(self.upstream).reshape(1, filters, *self.result.output.shape[-2:])

    def lab_forward(self) -> object:
        return run_lab(self.x, self.settings)

    def torch_forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The lab's outputs: conv maps, ReLU'd maps (a new tensor), pooled maps and their winners."""
        with torch.no_grad():
            return F.max_pool2d(
                F.relu(F.conv2d(self.xt, self.wt, self.bt, padding=1)), 2, return_indices=True
            )

    def lab_backward(self) -> object:
        return lab_backward(self.result, self.upstream)

    def torch_graph(self) -> tuple[torch.Tensor, ...]:
        """A fresh forward graph (not timed): autograd's backward can run once per graph."""
        xt, wt, bt = (t.clone().requires_grad_(True) for t in (self.xt, self.wt, self.bt))
        return F.max_pool2d(F.relu(F.conv2d(xt, wt, bt, padding=1)), 2), xt, wt, bt

    def agree(self) -> tuple[bool, bool]:
        """Whether the lab's numbers equal torch's, forward and backward. Checked in float64: in float32
        two near-equal values in a max-pool window may swap places, which moves a gradient elsewhere. The
        float32 max pool and its winners are checked exactly, on the lab's own activated maps."""
        x64 = self.x.astype(np.float64)
        result = run_lab(x64, self.settings)
        xt = torch.from_numpy(x64)[None].requires_grad_(True)
        wt = torch.from_numpy(self.settings.weights.astype(np.float64)).requires_grad_(True)
        bt = torch.from_numpy(self.settings.biases.astype(np.float64))
        out = F.max_pool2d(F.relu(F.conv2d(xt, wt, bt, padding=1)), 2)
        forward = np.allclose(result.maps("pool"), out.detach()[0].numpy(), rtol=1e-10, atol=1e-8)
        out.backward(self.gt.double())
        grads = lab_backward(result, self.upstream.astype(np.float64))
        backward = np.allclose(grads.d_input, xt.grad[0].numpy(), rtol=1e-10, atol=1e-8) and np.allclose(
            grads.d_weight, wt.grad.numpy(), rtol=1e-10, atol=1e-6
        )
        # In float32 too, on the benchmark's own result: the max pool of the lab's activated maps, and each
        # window's winner, exactly as torch's (a maximum involves no rounding).
        act = torch.from_numpy(np.ascontiguousarray(self.result.maps("activation")))[None]
        pooled, winners = F.max_pool2d(act, 2, return_indices=True)
        forward = forward and (
            np.array_equal(self.result.maps("pool"), pooled[0].numpy())
            and np.array_equal(self.result.winners.reshape(winners[0].shape), winners[0].numpy())
        )
        return forward, backward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--kernel", default="Sobel x", help="kernel preset for filter 0 (default Sobel x)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own choice). On a busy machine 1 compares the work done, "
        "without the lost time of a parallel section waiting for a thread another process holds",
    )
    parser.add_argument(
        "--malloc-as-it-comes",
        action="store_true",
        help="leave glibc's malloc as it comes (default: keep freed memory, as cnn-explorer runs)",
    )
    args = parser.parse_args()
    if not args.malloc_as_it_comes:
        keep_freed_memory()  # as the app's main() does: a recompute's maps reuse the last one's memory
    if args.threads:
        torch.set_num_threads(args.threads)

    pixels = resize_to(load_image(default_sample()), args.size, args.size)
    x = image_to_input(pixels, "rgb", size=args.size)  # (3, H, W) float32, 0…255
    kernel = kernel_preset(args.kernel)
    cases = [Case(x, kernel, 1), Case(x, kernel, 8)]

    names = [(c, "fwd") for c in cases] + [(c, "bwd") for c in cases]
    lab_times: dict[tuple[int, str], list[float]] = {(c.filters, k): [] for c, k in names}
    torch_times: dict[tuple[int, str], list[float]] = {(c.filters, k): [] for c, k in names}
    ratios: dict[tuple[int, str], list[float]] = {(c.filters, k): [] for c, k in names}
    # Forward and backward are timed in separate phases, as the page runs them: a control change recomputes
    # the forward, and the backward view, when it is open, follows it. Inside a phase the lab and torch
    # alternate call by call. (Alternating a forward with a 60 ms backward instead slows both forwards
    # 2-3× on this machine, the lab's and torch's alike: 15.6 and 16.6 ms instead of about 6 and 5.5.)
    for phase in ("fwd", "bwd"):
        for round_ in range(args.rounds + 1):  # round 0 warms up: first-call allocations, torch's lazy start
            for case, kind in names:
                if kind != phase:
                    continue
                key = (case.filters, kind)
                # Who goes first swaps every round: the first call of a pair meets the caches the case
                # before it left (8 filters' maps before 1 filter's), the second its pair's warm input.
                lab_first = round_ % 2 == 0
                if kind == "fwd":
                    if lab_first:
                        lab_ms, torch_ms = _ms(case.lab_forward), _ms(case.torch_forward)
                    else:
                        torch_ms, lab_ms = _ms(case.torch_forward), _ms(case.lab_forward)
                else:
                    out, *_ = case.torch_graph()
                    if lab_first:
                        lab_ms = _ms(case.lab_backward)
                        torch_ms = _ms(lambda out=out, case=case: out.backward(case.gt))
                    else:
                        torch_ms = _ms(lambda out=out, case=case: out.backward(case.gt))
                        lab_ms = _ms(case.lab_backward)
                if round_:
                    lab_times[key].append(lab_ms)
                    torch_times[key].append(torch_ms)
                    ratios[key].append(lab_ms / torch_ms)

    print(
        f"input: {args.size}×{args.size} RGB, {args.kernel} 3×3 (padding 1, then other presets) -> ReLU -> "
        "max pool 2×2 (with its winners)"
    )
    print(
        f"torch threads: {torch.get_num_threads()}, {args.rounds} interleaved rounds "
        "(median times; ratio = median of the per-round lab / torch; who goes first swaps every round)"
    )
    print(f"  {'':46} {'lab ms':>8} {'torch ms':>9} {'ratio':>7}")
    for case, kind in names:
        key = (case.filters, kind)
        plural = "s" if case.filters > 1 else ""
        if kind == "fwd":
            label = f"forward, {case.filters} filter{plural} vs conv2d+relu+max_pool2d"
        else:
            label = f"backward, {case.filters} filter{plural} vs autograd"
        print(
            f"  {label:<46} {statistics.median(lab_times[key]):8.2f} "
            f"{statistics.median(torch_times[key]):9.2f} {statistics.median(ratios[key]):7.2f}"
        )
    print(f"  frame budget at 60 Hz: {FRAME_BUDGET_MS:.2f} ms")
    for case in cases:
        fwd = statistics.median(lab_times[(case.filters, "fwd")])
        verdict = "within" if fwd < FRAME_BUDGET_MS else "OVER"
        forward_ok, backward_ok = case.agree()
        print(
            f"  {case.filters} filter(s): forward is {verdict} one frame ({fwd / FRAME_BUDGET_MS:.0%} of it)"
        )
        print(
            f"    agrees with torch (float64, and the pool's winners in float32): "
            f"forward {'yes' if forward_ok else 'NO'}, "
            f"backward {'yes' if backward_ok else 'NO'}"
        )


if __name__ == "__main__":
    main()
