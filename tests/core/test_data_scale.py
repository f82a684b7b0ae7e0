"""Big datasets with flat memory: the compact SampleList, the split that stays reproducible, and one
persistent DataLoader serving every epoch."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import pickle
import random
import signal
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from cnn_explorer.core import data
from cnn_explorer.core.data import (
    WORKERS_FROM_IMAGES,
    Batch,
    DatasetScan,
    EpochBatches,
    ImageSamples,
    SampleList,
    close_loader,
    make_loader,
    resolve_num_workers,
    scan_dataset,
    stratified_split,
    usable_cpus,
    write_animal_dataset,
)

PAIRS = [
    ("/data/train/cat/a.jpg", 0),
    ("/data/train/dog/b.png", 1),
    ("relative.png", 1),
    ("C:\\Users\\me\\Pictures\\c.jpg", 2),
    ("/data/train/cat/z.jpg", 0),
]


def _reference_split(samples, num_classes, val_fraction, seed):
    """stratified_split as it was when the file list was a list of tuples (the split of existing runs)."""
    rng = random.Random(seed)
    train = []
    val = []
    for c in range(num_classes):
        members = sorted(s for s in samples if s[1] == c)
        rng.shuffle(members)
        if len(members) < 2:
            train += members
            continue
        n_val = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val += members[:n_val]
        train += members[n_val:]
    return sorted(train), sorted(val)


def _synthetic(n: int):
    return ((f"/data/train/class_{i % 10:02d}/img_{i:07d}.jpg", i % 10) for i in range(n))


# -- SampleList ------------------------------------------------------------------------------------------


def test_sample_list_reads_like_the_list_it_replaces():
    s = SampleList(PAIRS)
    assert len(s) == 5 and bool(s) and not SampleList()
    assert s[0] == PAIRS[0] and s[-1] == PAIRS[-1] and s[3] == PAIRS[3]
    assert isinstance(s[0][1], int) and s.path(-2) == PAIRS[-2][0]
    assert list(s) == PAIRS and list(s.paths()) == [p for p, _ in PAIRS]
    for sl in (slice(1, 3), slice(None, None, -1), slice(-2, None), slice(None, None, 2), slice(4, 1)):
        part = s[sl]
        assert isinstance(part, SampleList) and part == PAIRS[sl]
    with pytest.raises(IndexError):
        s[5]
    with pytest.raises(IndexError):
        s[-6]
    with pytest.raises(IndexError):
        s.take([7])
    assert s.take(np.array([4, -5, 4])) == [PAIRS[4], PAIRS[0], PAIRS[4]]
    assert s[np.int64(1)] == PAIRS[1]
    # equality both ways, with lists of tuples or of lists, and other SampleLists
    assert s == PAIRS and PAIRS == s and s == [list(p) for p in PAIRS] and s == SampleList(PAIRS)  # noqa: SIM300 (both sides)
    assert s != PAIRS[:-1] and s != [*PAIRS[:-1], ("other", 0)] and s != SampleList(PAIRS[::-1])
    assert s != "not samples" and s != 5
    assert SampleList() == [] and SampleList([]) == SampleList()
    assert PAIRS[1] in s and s.index(PAIRS[2]) == 2 and s.count(PAIRS[0]) == 1
    with pytest.raises(TypeError):
        hash(s)
    with pytest.raises(AttributeError):
        s.foo = 1
    # labels: a read-only int array
    assert s.labels.tolist() == [0, 1, 1, 2, 0]
    with pytest.raises(ValueError):
        s.labels[0] = 3
    assert torch.tensor(s.labels, dtype=torch.long).tolist() == [0, 1, 1, 2, 0]
    assert "SampleList" in repr(s) and len(repr(SampleList(_synthetic(10_000)))) < 200
    # the paths need not be str: os.PathLike works, bytes and NUL do not
    assert SampleList([(Path("/a/b.png"), 3)]) == [(str(Path("/a/b.png")), 3)]
    with pytest.raises(TypeError):
        SampleList([(b"/a/b.png", 0)])
    with pytest.raises(ValueError, match="NUL"):
        SampleList([("a\0b.png", 0)])


def test_add_sorted_and_copies():
    a, b = SampleList(PAIRS[:3]), SampleList(PAIRS[3:])
    assert isinstance(a + b, SampleList) and a + b == PAIRS
    assert a + PAIRS[3:] == PAIRS and isinstance(PAIRS[:3] + b, SampleList) and PAIRS[:3] + b == PAIRS
    assert a + [] == a and SampleList() + b == b and (a + a)[3:] == a  # noqa: RUF005
    assert SampleList(a) == a  # from another SampleList: its arrays, shared (nothing can change them)
    assert SampleList(PAIRS).sorted() == sorted(PAIRS)
    tricky = [("x/a-b/1.png", 0), ("x/a/2.png", 0), ("x/a/2.png", 1), ("x/é.png", 0), ("x/z.png", 0)]
    shuffled = random.Random(1).sample(tricky, len(tricky))
    assert SampleList(shuffled).sorted() == sorted(tricky)  # str order, not folder order


def test_undecodable_and_unpaired_names_round_trip():
    weird = [
        (os.fsdecode(b"/data/caf\xe9/\xff\xfe.jpg"), 0),  # POSIX names that are not UTF-8 (surrogateescape)
        ("C:\\photos\\\ud800lone.png", 1),  # Windows names with an unpaired UTF-16 half
        ("/data/\U0001f600/emoji.png", 2),
        ("/déjà/vu/ümlaut.jpg", 3),
    ]
    s = SampleList(weird)
    assert list(s) == weird and [s[i] for i in range(4)] == weird
    back = pickle.loads(pickle.dumps(s))
    assert back == weird and os.fsencode(back[0][0]) == b"/data/caf\xe9/\xff\xfe.jpg"
    assert back.sorted() == sorted(weird)


def test_pickles_compactly():
    s = SampleList(_synthetic(20_000))
    blob = pickle.dumps(s)
    back = pickle.loads(blob)
    assert back == s and isinstance(back, SampleList)
    assert len(blob) < 1.2 * s.nbytes  # the arrays, not 20,000 tuples
    assert pickle.loads(pickle.dumps(s[5:9])) == list(_synthetic(9))[5:9]


def test_offsets_widen_past_4_gib(monkeypatch):
    """Past 4 GiB of names the offsets become int64: pretended here with a tiny limit."""
    monkeypatch.setattr(data, "_MAX_UINT32", 10)
    s = SampleList(PAIRS)
    assert s._offsets.dtype == np.int64 and s == PAIRS
    small = SampleList(PAIRS[:1])
    assert small._offsets.dtype == np.uint32
    assert (small + small)._offsets.dtype == np.int64 and small + small == PAIRS[:1] * 2
    assert s[::-1] == PAIRS[::-1] and pickle.loads(pickle.dumps(s)) == PAIRS


def test_memory_a_quarter_of_a_list_of_tuples():
    n = 100_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        as_list = list(_synthetic(n))
        list_bytes = tracemalloc.get_traced_memory()[0] - before
        del as_list
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        compact = SampleList(_synthetic(n))
        held, peak = (m - before for m in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    print(
        f"per sample: list {list_bytes / n:.1f} B, SampleList {compact.nbytes / n:.1f} B "
        f"(held {held / n:.1f} B, peak while building {peak / n:.1f} B)"
    )
    assert len(compact) == n
    assert compact.nbytes <= list_bytes / 4
    assert held <= list_bytes / 4
    assert peak <= list_bytes / 4


# -- DatasetScan and the split -----------------------------------------------------------------------------


def test_scan_keeps_sample_lists_and_its_json_format(tmp_path):
    root = tmp_path / "data"
    train = [(str(root / "cat" / "a.png"), 0), (str(root / "dog" / "b.png"), 1), ("/elsewhere/c.png", 1)]
    val = [(str(root / "cat" / "d.png"), 0)]
    scan = DatasetScan(root=root, layout="class-folders", class_names=["cat", "dog"], train=train, val=val)
    assert isinstance(scan.train, SampleList) and isinstance(scan.val, SampleList)
    expected = {
        "root": str(root),
        "layout": "class-folders",
        "class_names": ["cat", "dog"],
        "train": [["cat/a.png", 0], ["dog/b.png", 1], ["/elsewhere/c.png", 1]],
        "val": [["cat/d.png", 0]],
        "bad_files": [],
        "ignored_files": [],
        "warnings": [],
        "seed": 0,
        "val_fraction": 0.2,
    }
    assert json.dumps(scan.to_dict()) == json.dumps(expected)
    back = DatasetScan.from_dict(json.loads(json.dumps(scan.to_dict())))
    assert isinstance(back.train, SampleList) and back.train == train and back.val == val and back == scan
    assert scan.class_counts() == {"cat": (1, 1), "dog": (2, 0)}
    assert scan.examples("dog", k=1) == [root / "dog" / "b.png"] and scan.examples("cat") == [
        root / "cat/a.png"
    ]
    scan.val = [(str(root / "dog" / "e.png"), 1)]  # a later assignment is converted too
    assert isinstance(scan.val, SampleList) and scan.class_counts()["dog"] == (2, 1)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_is_the_one_of_earlier_versions(seed):
    rng = random.Random(seed)
    folders = ["a", "a-b", "a/b", "é", "Z", "z", "\U0001f600", "x\udc80"]
    samples = []
    for i in range(600):
        label = rng.randrange(6) if i % 50 else 9  # label 9: not a class, left out by both
        samples.append((f"/d/{rng.choice(folders)}/{rng.randrange(400):04d}.png", label))
    samples += [("/d/only/one.png", 5)]  # class 5 has this one image; class 4 may be small
    samples += samples[:10]  # repeated samples
    rng.shuffle(samples)
    for fraction in (0.2, 0.5, 0.01):
        ref_train, ref_val = _reference_split(samples, 6, fraction, seed)
        train, val = stratified_split(samples, 6, fraction, seed)
        assert isinstance(train, SampleList) and train == ref_train and val == ref_val
        train2, val2 = stratified_split(SampleList(samples), 6, fraction, seed)
        assert train2 == ref_train and val2 == ref_val
    assert stratified_split([], 3, 0.2, seed) == ([], [])


def test_scanned_split_matches_earlier_versions(tmp_path):
    root = write_animal_dataset(tmp_path / "d", per_class=12, classes=["bird", "cat", "elephant"])
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    scan = scan_dataset(root, val_fraction=0.25, seed=3)
    assert isinstance(scan.train, SampleList) and isinstance(scan.val, SampleList)
    assert [b.path.name for b in scan.bad_files] == ["broken.png"]
    everything = sorted(scan.train + scan.val)
    assert (scan.train, scan.val) == _reference_split(everything, 3, 0.25, 3)
    assert len(scan.train) + len(scan.val) == 36


def test_image_samples_keep_the_sample_list(tmp_path):
    s = SampleList(PAIRS)
    assert ImageSamples(s, _ToTensor()).samples is s
    from_list = ImageSamples(list(PAIRS), _ToTensor())
    assert isinstance(from_list.samples, SampleList) and from_list.samples == PAIRS
    tensor, label, index, reason = from_list[1]
    assert tensor is None and (label, index) == (1, 1) and reason


# -- workers ---------------------------------------------------------------------------------------------


def test_resolve_num_workers(monkeypatch):
    assert usable_cpus() >= 1
    monkeypatch.setattr(data, "usable_cpus", lambda: 16)
    assert resolve_num_workers(3, 10) == 3 and resolve_num_workers(0, 10**6) == 0
    assert resolve_num_workers(None, WORKERS_FROM_IMAGES - 1) == 0
    assert resolve_num_workers(None, WORKERS_FROM_IMAGES) == 8  # capped
    monkeypatch.setattr(data, "usable_cpus", lambda: 4)
    assert resolve_num_workers(None, 100_000) == 3  # one core left for the training process
    for cores in (1, 2, 3):  # no core to spare: a worker would slow the forward pass down
        monkeypatch.setattr(data, "usable_cpus", lambda cores=cores: cores)
        assert resolve_num_workers(None, 100_000) == 0


class _ToTensor:
    """Pixels -> float tensor; a module-level class so worker processes could unpickle it (spawn)."""

    def __call__(self, pixels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(pixels, dtype=np.float32))


def _epoch(loader) -> list[list[int]]:
    batches = []
    for batch in loader:
        assert isinstance(batch, Batch) and not batch.failures and batch.images.shape[0] == len(batch.indices)
        batches.append(batch.indices.tolist())
    return batches


def test_one_persistent_loader_serves_every_epoch(tmp_path):
    scan = scan_dataset(
        write_animal_dataset(tmp_path / "d", per_class=6, classes=["bird", "cat", "elephant"])
    )
    dataset = ImageSamples(scan.train + scan.val, _ToTensor())
    n = len(dataset)
    plans = [[list(range(i, min(i + 4, n))) for i in range(0, n, 4)]]
    order = random.Random(5).sample(range(n), n)
    plans.append([order[i : i + 5] for i in range(0, n, 5)])
    batches = EpochBatches(plans[0])
    loader = make_loader(dataset, batches, num_workers=2)
    try:
        assert len(loader) == len(plans[0])
        assert _epoch(loader) == plans[0]
        workers = list(loader._iterator._workers)
        assert len(workers) == 2 and all(w.is_alive() for w in workers)

        # Ctrl+C in a terminal reaches the workers too: they ignore it and keep serving
        for w in workers:
            os.kill(w.pid, signal.SIGINT)
        time.sleep(0.3)
        assert all(w.is_alive() for w in workers)

        batches.plan = plans[1]
        assert len(loader) == len(plans[1])
        assert _epoch(loader) == plans[1]
        assert list(loader._iterator._workers) == workers  # the same processes: persistent

        # an epoch left early (a stop) does not leak its prefetched batches into the next one
        batches.plan = plans[0]
        for _ in loader:
            break
        batches.plan = plans[1][::-1]
        assert _epoch(loader) == plans[1][::-1]
    finally:
        close_loader(loader)
    assert multiprocessing.active_children() == []
    assert not any(w.is_alive() for w in workers)
    close_loader(loader)  # again: nothing to do
    close_loader(make_loader(dataset, EpochBatches(), num_workers=0))


def test_loader_without_workers(tmp_path):
    scan = scan_dataset(write_animal_dataset(tmp_path / "d", per_class=5, classes=["bird", "cat"]))
    dataset = ImageSamples(scan.train, _ToTensor())
    batches = EpochBatches([[0, 1], [2]])
    loader = make_loader(dataset, batches, num_workers=0)
    assert _epoch(loader) == [[0, 1], [2]]
    batches.plan = [[3]]
    assert _epoch(loader) == [[3]]
    close_loader(loader)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs a GPU")
def test_batches_can_be_pinned():
    batch = data.collate_skipping_bad([(torch.zeros(3, 2, 2), 1, 0, None), (None, 0, 1, "broken")])
    pinned = batch.pin_memory()
    assert pinned.images.is_pinned() and pinned.labels.is_pinned() and pinned.failures == [(1, "broken")]


def test_automatic_workers_share_the_cores_between_training_processes(monkeypatch):
    import cnn_explorer.core.data as data_module

    monkeypatch.setattr(data_module, "usable_cpus", lambda: 16)
    assert data_module.resolve_num_workers(None, 10_000) == 8  # one process: at most 8
    assert data_module.resolve_num_workers(None, 10_000, processes=4) == 3  # 4 processes: 16 // 4 - 1 each
    assert data_module.resolve_num_workers(None, 10_000, processes=8) == 0  # 2 cores each: none to spare
    assert data_module.resolve_num_workers(2, 10_000, processes=16) == 2  # a number is used as given
