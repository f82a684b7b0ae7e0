"""Time the network explorer's all-layer capture against a bare forward pass, in one process.

    python benchmarks/bench_explorer.py [--repeat 20] [--models resnet18 efficientnet_lite0]

For each model at 224×224 on the sample photo, as ratios to the bare forward pass (``torch.inference_mode``,
no hooks):

- capture: ``capture_activations`` given the layer table, as the explorer calls it, its result as
  returned (target ≤ 1.10);
- capture + read: the same, then reading every step's values (``Activation.data``), which compacts the
  kept outputs and recomputes the derived steps (target: no more than the fp32 hooks below);
- fp32 hooks: the plain way, a forward hook on the same steps that clones every output in float32
  (no table, no compaction);
- copy-all: ``capture_activations`` without a table (every step copied to float16 during the pass);
- keep only: the floor under the capture as returned: the same forward wrappers keeping each captured
  step's output tensor and doing nothing else (no naming, no checks, no Activation objects). What it
  costs is the memory held: the bare pass reuses each freed output's buffer, still in cache, for the
  next, where a capture writes every kept output to memory of its own.

Also the layer table itself (computed once per model and input size, then reused for every image; timed
separately), and the time to tile and colour a 512-channel feature map into one RGB picture.

Everything is measured twice: first with glibc's malloc as it comes, then with the setting the app runs
with (:func:`cnn_explorer.core.allocator.keep_freed_memory`, which keeps freed blocks for reuse). The
verdicts are for the app's setting; both are printed.

The variants run in interleaved rounds (one of each per round, in a rotating order), so a busy machine
slows them alike. Each ratio is given twice: the median over rounds of that round's ratio, and the ratio
of the fastest runs (as ``timeit`` advises: slower runs measure other processes, not the code). On a
machine busy with other work, ``--clock cpu`` times the process's CPU time instead of the wall clock
(preemption then costs nothing; with ``--threads 1`` that is the single-core cost).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from cnn_explorer.core import zoo
from cnn_explorer.core.allocator import keep_freed_memory
from cnn_explorer.core.capture import (
    _first_tensor,
    _plan_for,
    _unwrap_forwards,
    _wrap_forwards,
    capture_activations,
)
from cnn_explorer.core.features import render_grid
from cnn_explorer.core.images import default_sample, load_image
from cnn_explorer.core.layers import eval_mode, layer_table, step_modules

TARGET_RATIO = 1.10
VARIANTS = ("bare", "capture", "capture + read", "fp32 hooks", "copy-all", "keep only")


CLOCK = time.perf_counter  # --clock cpu: time.process_time


def timed(fn: Callable[[], object]) -> float:
    start = CLOCK()
    fn()
    return (CLOCK() - start) * 1000


def fp32_hooks(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The plain baseline: a hook on every step that clones its output in float32."""
    outputs: list[torch.Tensor] = []

    def hook(_module: torch.nn.Module, _args: tuple, output: object) -> None:
        out = _first_tensor(output)
        if out is not None:
            outputs.append(out.clone())

    handles = [m.register_forward_hook(hook) for _, m, _ in step_modules(model)]
    try:
        with eval_mode(model), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return outputs


def keep_only(
    model: torch.nn.Module, x: torch.Tensor, hooked: list[torch.nn.Module], modules: list[torch.nn.Module]
) -> list[object]:
    """The capture's pass and nothing more: each wrapped step's output kept in a list (``hooked`` and
    ``modules`` are the capture's plan's, as the capture uses them)."""
    kept: list[object] = []

    def note(_module: torch.nn.Module, _args: tuple, output: object) -> None:
        kept.append(output)

    wrapped = _wrap_forwards(hooked, note)
    try:
        with eval_mode(model, modules), torch.no_grad():
            model(x)
    finally:
        _unwrap_forwards(wrapped)
    return kept


def compare(names: list[str], pixels: np.ndarray, repeat: int) -> dict[str, dict[str, tuple[float, float]]]:
    """Print one row per model; return {model: {variant: (median of per-round ratios, best-of ratio)}}."""
    header = (
        f"{'model':<20} {'weights':<9} {'steps':>5} {'MB kept':>7} {'bare ms':>15} "
        + " ".join(f"{v:>15}" for v in VARIANTS[1:])
        + f" {'table ms':>8}"
    )
    print(header)
    print(
        f"{'':<20} {'':<9} {'':>5} {'':>7} {'best (med)':>15} "
        + " ".join(f"{'med (best)':>15}" for _ in VARIANTS[1:])
    )
    print("-" * len(header))
    results = {}
    for name in names:
        loaded = zoo.load_model(name, allow_download=False)
        x = loaded.preprocess(pixels)[None]
        model = loaded.model
        table = layer_table(model, 224)

        def bare(model=model, x=x) -> None:
            with torch.inference_mode():
                model(x)

        def capture(model=model, x=x, table=table) -> None:
            capture_activations(model, x, table=table)

        def capture_read(model=model, x=x, table=table) -> None:
            for act in capture_activations(model, x, table=table):
                act.data  # noqa: B018 (reading is what is timed)

        def hooks(model=model, x=x) -> None:
            fp32_hooks(model, x)

        def copy_all(model=model, x=x) -> None:
            capture_activations(model, x)

        plan = _plan_for(model, table, tuple(x.shape[1:]))  # (the capture's own: what it wraps and checks)

        def keep(model=model, x=x, plan=plan) -> None:
            keep_only(model, x, plan.hooked, plan.modules)

        fns = dict(zip(VARIANTS, (bare, capture, capture_read, hooks, copy_all, keep), strict=True))
        for _ in range(3):  # warm-up: allocator, oneDNN kernels, lazy init
            for fn in fns.values():
                fn()
        ms: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for i in range(repeat):
            order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
            for v in order:
                ms[v].append(timed(fns[v]))
        kept = capture_activations(model, x, table=table)
        table_ms = statistics.median(timed(lambda m=model: layer_table(m, 224)) for _ in range(5))
        bare_ms = ms["bare"]
        ratios = {
            v: (
                statistics.median(t / b for t, b in zip(ms[v], bare_ms, strict=True)),
                min(ms[v]) / min(bare_ms),
            )
            for v in VARIANTS[1:]
        }
        results[loaded.info.title] = ratios
        print(
            f"{loaded.info.title:<20} {loaded.weights:<9} {len(kept):>5} {kept.nbytes / 2**20:>7.1f} "
            f"{min(bare_ms):>6.1f} (med {statistics.median(bare_ms):>3.0f}) "
            + " ".join(f"{med:>7.2f} ({best:.2f})" for med, best in ratios.values())
            + f" {table_ms:>8.1f}"
        )
    return results


def verdicts(results: dict[str, dict[str, tuple[float, float]]]) -> list[str]:
    lines = []
    for which, k in (("median over rounds", 0), ("fastest runs", 1)):
        model, r = max(results.items(), key=lambda kv: kv[1]["capture"][k])
        cap, floor = r["capture"][k], r["keep only"][k]
        ok = "meets" if cap <= TARGET_RATIO else "MISSES"
        lines.append(
            f"capture / bare ({which}): worst {cap:.3f} ({model}) — {ok} the ≤ {TARGET_RATIO:.2f} target; "
            f"keeping its outputs alone costs {floor:.3f}, the capture's own work {cap - floor:+.3f}"
        )
        for model, r in results.items():
            read, hooks = r["capture + read"][k], r["fp32 hooks"][k]
            ok = "meets" if read <= hooks else "MISSES"
            lines.append(
                f"capture + read every step ({which}), {model}: {read:.3f} vs fp32 hooks {hooks:.3f} — "
                f"{ok} the ≤ fp32 hooks target"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--models", nargs="+", default=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall", help="wall clock (default) or process CPU time"
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    pixels = load_image(default_sample())
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; 224×224; {args.repeat} rounds; {args.clock} clock")
    print("Ratios to the bare pass: median over rounds of each round's ratio (ratio of the fastest runs).")
    print("MB kept: the float32 outputs the capture holds until each step is first read.\n")
    print("glibc malloc as it comes:")
    default_results = compare(args.models, pixels, args.repeat)
    print("\nglibc malloc keeping freed memory, as the app runs (keep_freed_memory):")
    if not keep_freed_memory():
        print("(not glibc: the app changes nothing here, so this repeats the measurement above)")
    results = compare(args.models, pixels, args.repeat)

    fmap = np.random.default_rng(0).standard_normal((512, 14, 14)).astype(np.float16)
    render_grid(fmap)
    grid_ms = [
        timed(lambda: render_grid(fmap, cmap="viridis", normalize="channel", sort_by="mean"))
        for _ in range(20)
    ]
    rgb = render_grid(fmap)
    print(
        f"\n512-channel grid (512×14×14 → {rgb.shape[1]}×{rgb.shape[0]} RGB, per-channel scaling, sorted): "
        f"median {statistics.median(grid_ms):.1f} ms"
    )
    print("\nwith malloc as it comes:")
    for line in verdicts(default_results):
        print("  " + line)
    print("as the app runs:")
    for line in verdicts(results):
        print("  " + line)


if __name__ == "__main__":
    main()
