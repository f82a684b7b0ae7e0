"""Scaling of a first, uncached feature-extractor epoch from 2,000 to 20,000 images: time, speed, memory.

    python benchmarks/bench_scale.py [--quick] [--image-size 64] [--rounds 3] [--data-dir /tmp/...]

Data: the bundled animal silhouettes (assets/animal_shapes.npz, 500 pictures of 5 animals), upscaled to
52 px and placed on a 64 × 64 canvas at a different shift (and mirror) for every copy, so that no two files
are alike; 2,000 and 20,000 grey PNG files in class folders (``--quick``: 500 and 5,000). The folders are
written once and kept under ``--data-dir`` (default /tmp/cnn_explorer_bench_scale), keyed by count.

Every run is ``cnn-explorer finetune DATA --epochs 1 --image-size 64 --offline --quiet`` (EfficientNet-
Lite0, the default feature-extractor strategy, its bundled pretrained weights) in a fresh subprocess with
a fresh ``--cache-dir``, so the epoch embeds every image (the uncached first epoch) and the peak memory
is that run's own. 64 px keeps 20,000 images at a minute or two on a 2-core machine: the speeds below are
for 64 px inputs, not the model's 224. Measured:

1. Wall time (subprocess start to the end of the run), img/s (the epoch's ``images_per_s`` in the run's
   metrics.csv: training images / training time of the epoch, embedding included) and peak RSS of both
   sizes: the training process's own VmHWM (/proc/self/status, read in the child when the run is over)
   and, separately, the largest DataLoader worker's (its VmHWM, polled from /proc by the training process
   while the worker lives; a forked worker's RSS counts the pages it shares with its parent).
   Target: memory stays flat, peak RSS of the training process at 20,000 <= 1.3 × at 2,000.
2. That img/s against a bare batched forward pass of the same backbone (``zoo.embedding_split`` of the
   model the run trains: eval mode, ``torch.no_grad``, the same batch size and thread count) over
   images already decoded and preprocessed into tensors in memory (a subset, ``--baseline-images``),
   measured in the same child right after its run, so both see the same machine. Target: >= 0.8 ×.
3. The same epoch with ``--workers 0`` (decoding in the training process, no DataLoader workers), same
   dataset, as a ratio; runs alternate (workers auto, workers 0, ...) so slow phases hit both alike.
3b. Items 2 and 3 again at the model's own input size (224 px, what a run uses unless told otherwise) on
   the 2,000-image set (``--skip-native`` leaves it out). At 64 px decoding a file costs a third of what
   the backbone's pass over it costs, and on 2 cores the DataLoader worker that decodes takes a core the
   forward pass wants; at 224 px the pass dominates, as it does for photos at their usual size.
4. One process against two under torchrun on CPU (``python -m torch.distributed.run --standalone
   --nproc_per_node=2 -m cnn_explorer finetune …``) on the 2,000-image set, next to a plain one-process
   run and a one-process run with OMP_NUM_THREADS=1 (torchrun gives each of its processes one thread).
   Reported, no target: with 2 cores, two processes of one thread each cannot beat one process of two.

Ratios are medians over ``--rounds`` rounds; this machine is shared and noisy, so absolute times vary
more than the ratios measured side by side. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_FORMAT = "animals-64px-v2"  # bump when the generated images change, so cached folders are rewritten
CANVAS, SHAPE = 64, 52  # pixels: the canvas of each file, the upscaled silhouette on it
MEMORY_TARGET = 1.3
BARE_TARGET = 0.8
MODEL = "efficientnet_lite0"


# -- the datasets -----------------------------------------------------------------------------------------


def ensure_dataset(data_dir: Path, count: int) -> tuple[Path, bool]:
    """The folder of ``count`` generated PNG files (count/5 per class): reused when already complete."""
    root = data_dir / f"animals_{count}"
    marker = root / ".complete"
    if marker.is_file() and marker.read_text().strip() == DATA_FORMAT:
        return root, True
    import numpy as np
    from PIL import Image

    from cnn_explorer.core.images import assets_dir

    shutil.rmtree(root, ignore_errors=True)
    partial = data_dir / f"animals_{count}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    with np.load(assets_dir() / "animal_shapes.npz") as data:
        images, labels = data["images"], data["labels"]
        names = [str(c) for c in data["class_names"]]
    big = [np.asarray(Image.fromarray(im).resize((SHAPE, SHAPE), Image.BILINEAR)) for im in images]
    room = CANVAS - SHAPE + 1
    variants = [(dx, dy, flip) for dx in range(room) for dy in range(room) for flip in (False, True)]
    rng = np.random.default_rng(0)
    per_class = count // len(names)
    seen: set[bytes] = set()
    for c, name in enumerate(names):
        sources = np.flatnonzero(labels == c)
        if per_class > len(sources) * len(variants) // 2:
            raise SystemExit(f"{count} images: too many for {len(variants)} variants per silhouette")
        order = {int(s): iter(rng.permutation(len(variants)).tolist()) for s in sources}
        folder = partial / name
        folder.mkdir(parents=True)
        for j in range(per_class):
            s = int(sources[j % len(sources)])
            while True:  # the next variant of this silhouette that gives a new file (the set has duplicates)
                dx, dy, flip = variants[next(order[s])]
                canvas = np.zeros((CANVAS, CANVAS), np.uint8)
                canvas[dy : dy + SHAPE, dx : dx + SHAPE] = big[s][:, ::-1] if flip else big[s]
                if canvas.tobytes() not in seen:
                    break
            seen.add(canvas.tobytes())
            Image.fromarray(canvas).save(folder / f"{name}_{j:05d}.png", compress_level=1)
    (partial / ".complete").write_text(DATA_FORMAT)
    partial.rename(root)
    return root, False


# -- one run in a child process ----------------------------------------------------------------------------


def child_main(spec_path: Path) -> int:
    """In a fresh process: the CLI's fine-tune run, its peak memory, then the bare forward pass."""
    spec = json.loads(spec_path.read_text())
    from cnn_explorer.cli import main as cli_main

    watch = ChildWatch()
    watch.start()
    try:
        rc = cli_main(spec["cli"])
    finally:
        watch.stop()
    t_end = time.time()
    result = {"rc": rc, "t_end": t_end, "vmhwm_kb": vm_hwm_kb("self")}
    result["workers"] = len(watch.peaks)
    result["workers_maxrss_kb"] = max(watch.peaks.values(), default=0)
    if rc == 0 and spec["baseline_images"] > 0:
        result["bare"] = bare_forward(spec)
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


def vm_hwm_kb(pid: str | int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process has ended
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class ChildWatch:
    """The peak RSS (VmHWM) of each forked child of this process (its DataLoader workers), polled from /proc
    every 0.1 s while they live. Not getrusage(RUSAGE_CHILDREN): there ``ctypes.util.find_library``'s
    ``ldconfig -p`` (the CLI's allocator set-up) counts with the RSS it inherited from the forking process."""

    def __init__(self, every_s: float = 0.1) -> None:
        import threading

        self.every_s = every_s
        self.peaks: dict[int, int] = {}
        self._me = os.getpid()
        self._exe = os.readlink("/proc/self/exe")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _children(self) -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == self._me and os.readlink(f"/proc/{entry}/exe") == self._exe:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def _poll(self) -> None:
        while not self._done.wait(self.every_s):
            for pid in self._children():
                self.peaks[pid] = max(self.peaks.get(pid, 0), vm_hwm_kb(pid))


def bare_forward(spec: dict) -> dict:
    """Images/s of the frozen backbone alone on preprocessed tensors: the ceiling of the uncached epoch."""
    import torch

    from cnn_explorer.core import zoo
    from cnn_explorer.core.accel import Accel
    from cnn_explorer.core.images import open_image
    from cnn_explorer.core.training_setup import run_preprocess
    from cnn_explorer.core.transfer.strategies import make_strategy

    root = Path(spec["data"])
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = sorted(root.glob("*/*.png"))
    n = min(spec["baseline_images"], len(files))
    chosen = files[:: max(1, len(files) // n)][:n]  # spread over the classes
    loaded = zoo.build_model(MODEL, class_names=names, allow_download=False)
    model = make_strategy("feature-extractor").prepare(loaded.model, len(names)).model
    accel = Accel.create(torch.device("cpu"))
    accel.prepare_model(model).eval()
    split = zoo.embedding_split(model)
    assert split is not None
    embed = split[0]
    pre = run_preprocess(loaded.preprocess, spec["image_size"])
    start = time.perf_counter()
    x = torch.stack([pre(open_image(p, gray=pre.grayscale).pixels) for p in chosen])
    decode_rate = len(chosen) / (time.perf_counter() - start)
    bs = spec["batch_size"]
    rates = []
    with torch.no_grad():
        embed(accel.images(x[:bs]))  # warm-up
        for _ in range(spec["baseline_rounds"]):
            start = time.perf_counter()
            for i in range(0, len(x), bs):
                embed(accel.images(x[i : i + bs]))
            rates.append(len(x) / (time.perf_counter() - start))
    return {
        "rate": statistics.median(rates),
        "rates": rates,
        "images": len(x),
        "threads": torch.get_num_threads(),
        "decode_rate": decode_rate,  # open_image + preprocessing, one image after the other
    }


# -- the parent --------------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("OMP_NUM_THREADS", None)
    env.update(extra)
    return env


def epoch_rate(run_dir: Path) -> float:
    with open(run_dir / "metrics.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return float(rows[0]["images_per_s"])


def finetune_args(data: Path, out: Path, cache: Path, args: argparse.Namespace, *extra: str) -> list[str]:
    return [
        "finetune",
        str(data),
        "--epochs",
        "1",
        "--image-size",
        str(args.image_size),
        "--batch-size",
        str(args.batch_size),
        "--device",
        "cpu",
        "--offline",
        "--quiet",
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        *extra,
    ]


class Runner:
    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work = work
        self.args = args
        self.count = 0

    def _fresh(self, tag: str) -> tuple[Path, Path, Path]:
        self.count += 1
        base = self.work / f"{self.count:02d}_{tag}"
        base.mkdir()
        return base, base / "run", base / "cache"

    def _check(self, proc: subprocess.CompletedProcess, log: Path, what: str) -> None:
        if proc.returncode != 0:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{what} failed (exit {proc.returncode}); its output ends:\n{tail}")

    def measured(self, data: Path, tag: str, *extra: str) -> dict:
        """A fine-tune run in a fresh child that reports its peak memory and then the bare forward pass."""
        base, out, cache = self._fresh(tag)
        spec = {
            "cli": finetune_args(data, out, cache, self.args, *extra),
            "data": str(data),
            "image_size": self.args.image_size,
            "batch_size": self.args.batch_size,
            "baseline_images": self.args.baseline_images,
            "baseline_rounds": 3,
            "result": str(base / "result.json"),
        }
        (base / "spec.json").write_text(json.dumps(spec))
        log = base / "log.txt"
        start = time.time()
        with open(log, "w") as fh:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(base / "spec.json")],
                cwd=REPO,
                env=child_env(),
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        self._check(proc, log, f"the run {tag}")
        res = json.loads((base / "result.json").read_text())
        self._check(subprocess.CompletedProcess([], res["rc"]), log, f"the run {tag}")
        res["wall_s"] = res["t_end"] - start
        res["rate"] = epoch_rate(out)
        shutil.rmtree(cache, ignore_errors=True)
        return res

    def plain(self, data: Path, tag: str, command: list[str], **env: str) -> dict:
        """A fine-tune run as a user starts it (``python -m cnn_explorer finetune`` or torchrun)."""
        base, out, cache = self._fresh(tag)
        log = base / "log.txt"
        start = time.perf_counter()
        with open(log, "w") as fh:
            proc = subprocess.run(
                [sys.executable, *command, *finetune_args(data, out, cache, self.args)],
                cwd=REPO,
                env=child_env(**env),
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        wall = time.perf_counter() - start
        self._check(proc, log, f"the run {tag}")
        shutil.rmtree(cache, ignore_errors=True)
        return {"wall_s": wall, "rate": epoch_rate(out)}


def mib(kb: float) -> str:
    return f"{kb / 1024:.0f} MiB"


def med(values: list[float]) -> float:
    return statistics.median(values)


TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cnn_explorer"]
DIST_KINDS = {
    "1 process": (["-m", "cnn_explorer"], {}),
    "1 process, OMP_NUM_THREADS=1": (["-m", "cnn_explorer"], {"OMP_NUM_THREADS": "1"}),
    "2 processes (torchrun)": (TORCHRUN, {}),
}


def scale_runs(runner: Runner, roots: dict[int, Path], rounds: int) -> tuple[dict, dict]:
    """Per size: rounds of (workers auto, workers 0), each run in its own child."""
    auto: dict[int, list[dict]] = {n: [] for n in roots}
    zero: dict[int, list[dict]] = {n: [] for n in roots}
    for count, root in roots.items():
        for r in range(rounds):
            for label, store, extra in (("auto", auto, ()), ("0", zero, ("--workers", "0"))):
                res = runner.measured(root, f"{count}_w{label}", *extra)
                store[count].append(res)
                n_workers = res["workers"]
                worker = (
                    f"{n_workers} worker(s), largest {mib(res['workers_maxrss_kb'])}" if n_workers else "none"
                )
                print(
                    f"  {count:>6,} images, --workers {label:>4}, round {r + 1}: "
                    f"wall {res['wall_s']:6.1f} s, epoch {res['rate']:6.1f} img/s | bare forward "
                    f"{res['bare']['rate']:6.1f} img/s ({res['bare']['threads']} threads) | "
                    f"peak RSS {mib(res['vmhwm_kb'])}, workers: {worker}",
                    flush=True,
                )
    return auto, zero


def report_scale(auto: dict, zero: dict, small: int, large: int) -> bool:
    ok = True
    print(
        f"\n{'workers auto (the default)':32} {f'{small:,} images':>14} {f'{large:,} images':>14} "
        f"{'ratio':>7}"
    )

    def row(name: str, get, fmt: str) -> tuple[float, float]:
        a, b = med([get(x) for x in auto[small]]), med([get(x) for x in auto[large]])
        ratio = f"{b / a:.2f}" if a else ""
        print(f"{name:32} {a:>14{fmt}} {b:>14{fmt}} {ratio:>7}")
        return a, b

    row("wall time, s", lambda x: x["wall_s"], ".1f")
    row("epoch img/s", lambda x: x["rate"], ".1f")
    row("bare forward img/s", lambda x: x["bare"]["rate"], ".1f")
    a, b = row("peak RSS training process, MiB", lambda x: x["vmhwm_kb"] / 1024, ".0f")
    row("peak RSS largest worker, MiB", lambda x: x["workers_maxrss_kb"] / 1024, ".0f")
    row("DataLoader worker processes", lambda x: x["workers"], ".0f")
    row("decode + preprocess img/s, 1 thr", lambda x: x["bare"]["decode_rate"], ".1f")
    print(
        "  (medians over the rounds; ratio = larger set / smaller set. Worker processes: each DataLoader,\n"
        "  training and validation, keeps its own persistent workers. Decode: the bare pass's own loading\n"
        "  of its images in the child, open_image + preprocessing, one after the other)"
    )
    mem_ratio = b / a
    verdict = "PASS" if mem_ratio <= MEMORY_TARGET else "FAIL"
    ok &= verdict == "PASS"
    print(
        f"\nmemory: peak RSS of the training process {b:.0f} MiB at {large:,} vs {a:.0f} MiB at {small:,} "
        f"images: ratio {mem_ratio:.2f} (target <= {MEMORY_TARGET}): {verdict}"
    )

    print("\nfirst-epoch img/s / bare forward pass of the backbone (same child, same batch and threads):")
    for count in (small, large):
        ratios = [x["rate"] / x["bare"]["rate"] for x in auto[count]]
        ratio = med(ratios)
        verdict = "PASS" if ratio >= BARE_TARGET else "FAIL"
        ok &= verdict == "PASS"
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"  {count:>6,} images: {ratio:.2f} (rounds: {each}; target >= {BARE_TARGET}): {verdict}")

    print(
        "\nworkers auto (the default) against --workers 0 (decoding in the training process), same dataset:"
    )
    for count in (small, large):
        ra, rz = med([x["rate"] for x in auto[count]]), med([x["rate"] for x in zero[count]])
        wa, wz = med([x["wall_s"] for x in auto[count]]), med([x["wall_s"] for x in zero[count]])
        bare0 = med([x["rate"] / x["bare"]["rate"] for x in zero[count]])
        rss0 = med([x["vmhwm_kb"] for x in zero[count]])
        print(
            f"  {count:>6,} images: epoch {ra:.1f} vs {rz:.1f} img/s = {ra / rz:.2f}x; wall {wa:.1f} vs "
            f"{wz:.1f} s = {wz / wa:.2f}x (above 1: the default is faster); --workers 0 reaches "
            f"{bare0:.2f} of the bare pass, peak RSS {mib(rss0)}"
        )
    return ok


NATIVE_SIZE = 224  # EfficientNet-Lite0's own input crop


def native_size_runs(work: Path, args: argparse.Namespace, root: Path, count: int, rounds: int) -> bool:
    """The first epoch against the bare pass at the model's own input size, workers auto and 0."""
    native = argparse.Namespace(**{**vars(args), "image_size": NATIVE_SIZE, "baseline_images": 320})
    runner = Runner(work, native)
    print(
        f"\nAt the model's own input size, {NATIVE_SIZE} px, {count:,} images (the default run; the bare "
        f"pass over {native.baseline_images} of them):"
    )
    runs: dict[str, list[dict]] = {"auto": [], "0": []}
    for r in range(rounds):
        for label, extra in (("auto", ()), ("0", ("--workers", "0"))):
            res = runner.measured(root, f"{count}_{NATIVE_SIZE}px_w{label}", *extra)
            runs[label].append(res)
            print(
                f"  --workers {label:>4}, round {r + 1}: wall {res['wall_s']:6.1f} s, "
                f"epoch {res['rate']:6.1f} img/s | bare forward {res['bare']['rate']:6.1f} img/s | "
                f"peak RSS {mib(res['vmhwm_kb'])}",
                flush=True,
            )
    ok = True
    for label, results in runs.items():
        ratios = [x["rate"] / x["bare"]["rate"] for x in results]
        ratio = med(ratios)
        verdict = "PASS" if ratio >= BARE_TARGET else "FAIL"
        if label == "auto":
            ok = verdict == "PASS"
        each = ", ".join(f"{q:.2f}" for q in ratios)
        what = "workers auto (the default)" if label == "auto" else "--workers 0"
        print(f"  {what:28} / bare pass: {ratio:.2f} (rounds: {each}; target >= {BARE_TARGET}): {verdict}")
    ra, rz = med([x["rate"] for x in runs["auto"]]), med([x["rate"] for x in runs["0"]])
    print(f"  workers auto against --workers 0: {ra:.1f} vs {rz:.1f} img/s = {ra / rz:.2f}x")
    return ok


def torchrun_runs(runner: Runner, root: Path, count: int, rounds: int) -> None:
    print(
        f"\n1 process against 2 under torchrun on CPU, {count:,} images, otherwise the same command. This "
        f"machine has {os.cpu_count()} cores and torchrun sets OMP_NUM_THREADS=1: 2 processes of 1 thread "
        "each (each with its own DataLoader workers), so expect no gain, or a loss."
    )
    runs: dict[str, list[dict]] = {k: [] for k in DIST_KINDS}
    for r in range(rounds):
        for name, (command, env) in DIST_KINDS.items():
            res = runner.plain(root, f"dist{r}", command, **env)
            runs[name].append(res)
            print(f"  {name:30} round {r + 1}: wall {res['wall_s']:6.1f} s, epoch {res['rate']:6.1f} img/s")
    rate = {k: med([x["rate"] for x in v]) for k, v in runs.items()}
    wall = {k: med([x["wall_s"] for x in v]) for k, v in runs.items()}
    two = "2 processes (torchrun)"
    print(f"\n{'':30} {'wall s':>8} {'img/s':>8}   2 processes / this: img/s, wall-time speed")
    for name in DIST_KINDS:
        print(
            f"{name:30} {wall[name]:>8.1f} {rate[name]:>8.1f}   "
            f"{rate[two] / rate[name]:>5.2f}x, {wall[name] / wall[two]:>5.2f}x"
        )
    print(
        "  (above 1: the 2-process run is faster; img/s counts the images of both processes. No target: "
        "on 2 cores there is no spare core for a second process)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="500 and 5,000 images, one round: a smoke check")
    ap.add_argument("--image-size", type=int, default=64, help="input crop in pixels (default 64)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=None, help="rounds of each comparison (default 3, quick 1)")
    ap.add_argument("--baseline-images", type=int, default=1000, help="images of the bare forward pass")
    ap.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "cnn_explorer_bench_scale")
    ap.add_argument("--skip-torchrun", action="store_true")
    ap.add_argument("--skip-native", action="store_true", help="leave out the runs at the model's 224 px")
    ap.add_argument("--only-torchrun", action="store_true", help="just the 1- against 2-process part")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        return child_main(args.child)
    small, large = (500, 5000) if args.quick else (2000, 20000)
    rounds = args.rounds or (1 if args.quick else 3)

    t0 = time.perf_counter()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    roots = {}
    for count in (small,) if args.only_torchrun else (small, large):
        start = time.perf_counter()
        roots[count], reused = ensure_dataset(args.data_dir, count)
        how = "reused" if reused else f"written in {time.perf_counter() - start:.1f} s"
        print(f"dataset {count:,} images: {roots[count]} ({how})")
    print(
        f"\n{MODEL}, feature extractor, 1 epoch, uncached (fresh --cache-dir), {args.image_size} px inputs "
        f"(small, so that 20,000 images take a minute or two on {os.cpu_count()} cores; speeds are for "
        f"{args.image_size} px, not the model's 224 px), batch {args.batch_size}, 80/20 train/val split, "
        f"{rounds} round(s), each run in a fresh subprocess\n"
    )
    ok = True
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        runner = Runner(work, args)
        runner.plain(roots[small], "warm-up", ["-m", "cnn_explorer"])  # page cache, lazy imports: not timed
        if not args.only_torchrun:
            auto, zero = scale_runs(runner, roots, rounds)
            ok = report_scale(auto, zero, small, large)
            if not args.skip_native:
                ok &= native_size_runs(work, args, roots[small], small, rounds)
        if not args.skip_torchrun:
            torchrun_runs(runner, roots[small], small, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s; targets {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
