"""The on-disk embedding cache: float16 rows and done flags that survive the run, keys that change with
anything that changes the embeddings, several processes on one entry, broken entries, and pruning."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnn_explorer.core import embedding_cache as ec
from cnn_explorer.core.embedding_cache import (
    CACHE_FOLDER,
    EmbeddingCacheError,
    EmbeddingStore,
    cache_key,
    cache_root,
    prune,
)

SHAPE = (6,)


def _features(rows, shape=SHAPE) -> torch.Tensor:
    """Values a float16 holds exactly, different for every row and column."""
    rows = torch.as_tensor(rows, dtype=torch.float32).reshape(-1, *([1] * len(shape)))
    return rows * 0.5 + torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape) * 0.25


@pytest.fixture(params=["disk", "memory"])
def make_store(request, tmp_path):
    """``make_store(n, shape=SHAPE)``: an on-disk entry in ``tmp_path`` or an in-memory store."""
    stores: list[EmbeddingStore] = []

    def make(n: int, shape: tuple[int, ...] = SHAPE) -> EmbeddingStore:
        if request.param == "disk":
            store = EmbeddingStore.open(tmp_path / "cache", f"key{len(stores)}", n, shape)
        else:
            store = EmbeddingStore.in_memory(n, shape)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def _tmp_folders(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.startswith(".tmp-")]


# -- rows ---------------------------------------------------------------------------------------------


def test_write_then_read_round_trips_within_float16_precision(make_store):
    store = make_store(10, (3, 2, 2))
    rows = [7, 2, 5]
    values = torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(0)) * 10
    store.write(rows, values)
    out = store.read(torch.tensor([5, 7]))
    assert out.dtype == torch.float32 and out.device.type == "cpu" and out.shape == (2, 3, 2, 2)
    torch.testing.assert_close(out, values[[2, 0]], rtol=1e-3, atol=1e-3)
    assert store.nbytes == 10 * 12 * 2


def test_done_flags_and_complete_follow_the_rows_written(make_store):
    store = make_store(5)
    assert store.done.dtype == np.bool_ and store.done.shape == (5,)
    assert not store.done.any() and not store.complete()
    store.write(np.array([1, 3]), _features([1, 3]))
    assert store.done.tolist() == [False, True, False, True, False]
    assert store.complete([1, 3]) and store.complete(np.array([3]))
    assert not store.complete([0, 1])
    assert store.complete([])  # no rows asked for: nothing missing
    store.write(torch.tensor([0, 2, 4]), _features([0, 2, 4]))
    assert store.complete()


def test_unreadable_rows_are_remembered_apart_from_written_ones(make_store):
    store = make_store(4)
    store.write([0], _features([0]))
    store.mark_unreadable(torch.tensor([0, 2]))  # row 0 has features already: it keeps them
    assert store.unreadable.tolist() == [False, False, True, False]
    assert store.done.tolist() == [True, False, False, False]
    assert not store.complete() and not store.complete([2])
    store.write([1, 3], _features([1, 3]))
    assert (store.done | store.unreadable).all() and not store.complete()
    with pytest.raises(ValueError, match="not cached"):
        store.read([2])
    torch.testing.assert_close(store.read([0]), _features([0]))


def test_unreadable_marks_last_across_runs(tmp_path):
    with EmbeddingStore.open(tmp_path, "k", 3, SHAPE) as store:
        store.mark_unreadable([1])
    with EmbeddingStore.open(tmp_path, "k", 3, SHAPE) as store:
        assert store.unreadable.tolist() == [False, True, False]


def test_reading_rows_not_written_is_refused_not_zeros(make_store):
    store = make_store(4)
    store.write([0], _features([0]))
    with pytest.raises(ValueError, match="not cached"):
        store.read([0, 1])


def test_bad_rows_and_shapes_are_refused(make_store):
    store = make_store(4)
    with pytest.raises(IndexError):
        store.write([4], _features([0]))
    with pytest.raises(IndexError):
        store.write([-1], _features([0]))  # would wrap to the last row
    with pytest.raises(ValueError, match="shape"):
        store.write([0, 1], _features([0]))
    with pytest.raises(ValueError, match="shape"):
        store.write([0], torch.zeros(1, 5))
    assert not store.done.any()


def test_values_beyond_float16_are_clipped_not_inf(make_store):
    store = make_store(3, (4,))
    big = torch.tensor([[1e6, -1e6, float("inf"), 70000.0]])
    store.write([0], big)
    store.write([1], torch.tensor([[1e5, -1e5, 3.0, 65504.0]], dtype=torch.bfloat16))
    store.write([2], torch.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=torch.float64))
    out = store.read([0, 1, 2])
    assert torch.isfinite(out).all()
    assert out[0].tolist() == [65504.0, -65504.0, 65504.0, 65504.0]
    assert out[1].tolist() == [65504.0, -65504.0, 3.0, 65504.0]
    assert out[2].tolist() == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_features_on_the_gpu_are_stored(make_store):
    store = make_store(2)
    store.write(torch.tensor([1], device="cuda"), _features([1]).cuda().half())
    torch.testing.assert_close(store.read([1]), _features([1]))


def test_close_is_idempotent_and_ends_use(make_store):
    store = make_store(2)
    store.write([0], _features([0]))
    store.flush()
    store.close()
    store.close()
    with pytest.raises(ValueError, match="closed"):
        store.read([0])
    with pytest.raises(ValueError, match="closed"):
        store.write([1], _features([1]))


def test_an_empty_store_works(make_store):
    store = make_store(0)
    assert store.complete() and store.nbytes == 0
    assert store.read([]).shape == (0, *SHAPE)


def test_in_memory_store_has_no_path():
    store = EmbeddingStore.in_memory(3, (2,))
    assert store.path is None and store.n == 3 and store.feature_shape == (2,)
    store.flush()
    store.close()


# -- entries on disk ----------------------------------------------------------------------------------


def test_reopening_a_key_finds_the_rows_of_an_earlier_run(tmp_path):
    root = tmp_path / "cache"
    with EmbeddingStore.open(root, "abc", 8, SHAPE, meta={"model": "tiny", "part": "train"}) as first:
        assert first.path == root / "abc"
        first.write([1, 6], _features([1, 6]))
    created = json.loads((root / "abc" / "meta.json").read_text())
    assert created["n"] == 8 and created["feature_shape"] == [6] and created["dtype"] == "float16"
    assert created["model"] == "tiny" and created["part"] == "train"
    assert (root / "abc" / "features.f16").stat().st_size == 8 * 6 * 2
    assert (root / "abc" / "done.u8").stat().st_size == 8

    time.sleep(0.01)
    with EmbeddingStore.open(root, "abc", 8, SHAPE) as again:
        assert again.done.tolist() == [False, True, False, False, False, False, True, False]
        torch.testing.assert_close(again.read([6, 1]), _features([6, 1]))
    reopened = json.loads((root / "abc" / "meta.json").read_text())
    assert reopened["last_used"] > created["last_used"] and reopened["created"] == created["created"]
    assert _tmp_folders(root) == []


def test_keys_that_are_not_plain_names_are_refused(tmp_path):
    for key in ("", ".hidden", "a/b", "../up"):
        with pytest.raises(ValueError):
            EmbeddingStore.open(tmp_path, key, 2, SHAPE)


def _write_rows(entry: Path, rows: list[int]) -> None:
    features = np.memmap(entry / "features.f16", dtype=np.float16, mode="r+", shape=(8, *SHAPE))
    done = np.memmap(entry / "done.u8", dtype=np.uint8, mode="r+", shape=(8,))
    features[rows] = _features(rows).numpy()
    done[rows] = 1
    features.flush()
    done.flush()
    del features, done


@pytest.mark.parametrize(
    "damage", ["truncated features", "truncated flags", "meta of another n", "no meta", "bad json"]
)
def test_a_broken_entry_is_recreated_not_trusted(tmp_path, damage):
    root = tmp_path / "cache"
    EmbeddingStore.open(root, "k", 8, SHAPE).close()
    entry = root / "k"
    _write_rows(entry, [0, 1, 2])
    if damage == "truncated features":
        os.truncate(entry / "features.f16", 8 * 6)
    elif damage == "truncated flags":
        os.truncate(entry / "done.u8", 4)
    elif damage == "meta of another n":
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({**meta, "n": 9}))
    elif damage == "no meta":
        (entry / "meta.json").unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    with EmbeddingStore.open(root, "k", 8, SHAPE) as store:
        assert not store.done.any()
        assert (entry / "features.f16").stat().st_size == 8 * 6 * 2
        assert json.loads((entry / "meta.json").read_text())["n"] == 8
    assert _tmp_folders(root) == []


def test_opening_a_key_with_another_size_recreates_the_entry(tmp_path):
    root = tmp_path / "cache"
    with EmbeddingStore.open(root, "k", 4, SHAPE) as store:
        store.write([0, 1, 2, 3], _features([0, 1, 2, 3]))
    with EmbeddingStore.open(root, "k", 4, (3,)) as store:
        assert store.feature_shape == (3,) and not store.done.any()
    with EmbeddingStore.open(root, "k", 5, (3,)) as store:
        assert store.n == 5 and not store.done.any()


def test_losing_the_race_to_create_opens_the_winners_entry(tmp_path, monkeypatch):
    """Another process renames its finished entry into place between our check and our rename."""
    root = tmp_path / "cache"
    entry = root / "k"
    real_rename = os.rename

    def rename_after_the_other_process(src, dst):
        if Path(dst) == entry and not entry.exists():
            shutil.copytree(src, dst)  # the winner's entry, with a row already written
            _write_rows(entry, [5])
        return real_rename(src, dst)

    monkeypatch.setattr(ec.os, "rename", rename_after_the_other_process)
    with EmbeddingStore.open(root, "k", 8, SHAPE) as store:
        assert store.done.tolist() == [False] * 5 + [True] + [False] * 2
        torch.testing.assert_close(store.read([5]), _features([5]))
    assert _tmp_folders(root) == []


def test_a_full_disk_fails_at_open_naming_the_folder(tmp_path, monkeypatch):
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ec.os, "posix_fallocate", no_space, raising=False)
    root = tmp_path / "cache"
    with pytest.raises(EmbeddingCacheError) as caught:
        EmbeddingStore.open(root, "k", 1000, (256,))
    assert str(root) in str(caught.value) and "disk is full" in str(caught.value)
    assert caught.value.path == root
    assert not (root / "k").exists() and _tmp_folders(root) == []


def test_a_file_system_without_fallocate_still_gets_an_entry(tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(ec.os, "posix_fallocate", unsupported, raising=False)
    with EmbeddingStore.open(tmp_path, "k", 4, SHAPE) as store:
        store.write([3], _features([3]))
        torch.testing.assert_close(store.read([3]), _features([3]))


def test_a_root_that_is_a_file_gives_an_error_naming_it(tmp_path):
    root = tmp_path / "cache"
    root.write_text("not a folder")
    with pytest.raises(EmbeddingCacheError, match="cannot be created") as caught:
        EmbeddingStore.open(root, "k", 2, SHAPE)
    assert str(root) in str(caught.value)


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="chmod does not stop root (or Windows)")
def test_a_read_only_root_gives_an_error_naming_the_folder(tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    EmbeddingStore.open(root, "old", 2, SHAPE).close()
    root.chmod(0o555)
    (root / "old").chmod(0o555)
    for name in ("meta.json", "features.f16", "done.u8"):
        (root / "old" / name).chmod(0o444)
    try:
        with pytest.raises(EmbeddingCacheError, match="read-only") as caught:
            EmbeddingStore.open(root, "new", 2, SHAPE)
        assert str(root) in str(caught.value)
        with pytest.raises(EmbeddingCacheError):  # an existing entry must be writable too
            EmbeddingStore.open(root, "old", 2, SHAPE)
    finally:
        root.chmod(0o755)
        (root / "old").chmod(0o755)


@pytest.mark.parametrize(
    ("code", "words"), [(errno.EACCES, "read-only"), (errno.EROFS, "read-only file system")]
)
def test_a_folder_that_refuses_writes_gives_an_error_naming_it(tmp_path, monkeypatch, code, words):
    """What a read-only folder does for a user who is not root (the test above), simulated for anyone."""

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(ec.tempfile, "mkdtemp", refuse)
    root = tmp_path / "cache"
    with pytest.raises(EmbeddingCacheError, match=words) as caught:
        EmbeddingStore.open(root, "k", 2, SHAPE)
    assert str(root) in str(caught.value)


# -- several processes --------------------------------------------------------------------------------


def _rank(root: str, rows: list[int], others: list[int], barrier) -> None:
    """One DDP-like rank: open the shared key at the same moment as the other, write its own rows, and
    see the other's through the shared mapping."""
    barrier.wait(timeout=60)
    store = EmbeddingStore.open(Path(root), "shared", 64, SHAPE)
    for i in range(0, len(rows), 4):
        store.write(rows[i : i + 4], _features(rows[i : i + 4]))
    barrier.wait(timeout=60)
    assert store.complete(others), "the other rank's rows are not visible"
    torch.testing.assert_close(store.read(others), _features(others))
    store.close()


def test_two_processes_write_disjoint_rows_of_one_entry(tmp_path):
    root = tmp_path / "cache"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    even, odd = list(range(0, 64, 2)), list(range(1, 64, 2))
    procs = [
        ctx.Process(target=_rank, args=(str(root), even, odd, barrier), name="rank0"),
        ctx.Process(target=_rank, args=(str(root), odd, even, barrier), name="rank1"),
    ]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(timeout=10)
    assert sorted(p.name for p in root.iterdir() if p.name != ".lock") == ["shared"]  # nothing left over
    with EmbeddingStore.open(root, "shared", 64, SHAPE) as store:
        assert store.complete()
        torch.testing.assert_close(store.read(range(64)), _features(range(64)))


# -- keys ---------------------------------------------------------------------------------------------


def _tiny_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


@pytest.fixture
def samples(tmp_path) -> list[tuple[str, int]]:
    out = []
    for i in range(4):
        path = tmp_path / "data" / f"img{i}.png"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * (10 + i))
        out.append((str(path), i % 2))
    return out


PREPROCESS = {"resize": 64, "crop": 56, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def _key(samples, net=None, **changes) -> str:
    args = {"model": "tiny", "embed": net or _tiny_model(), "preprocess": PREPROCESS, "part": "train"}
    return cache_key(**{**args, "samples": samples, **changes})


def test_the_key_is_the_same_for_the_same_inputs(samples):
    key = _key(samples)
    assert key == _key(list(samples)) == _key(samples, preprocess=dict(reversed(PREPROCESS.items())))
    assert len(key) == 32 and int(key, 16) >= 0


def test_the_key_changes_with_the_weights(samples):
    model = _tiny_model()
    before = _key(samples, model)
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] += 1e-3
    assert _key(samples, model) != before
    model = _tiny_model()
    model[1].running_mean += 0.1  # buffers count too
    assert _key(samples, model) != before


def test_the_key_changes_with_the_structure(samples):
    model = _tiny_model()
    before = _key(samples, model)
    model[2] = nn.GELU()  # no weights of its own: only str() tells
    assert _key(samples, model) != before


def test_the_key_changes_with_the_preprocessing_model_name_and_part(samples):
    key = _key(samples)
    assert _key(samples, preprocess={**PREPROCESS, "crop": 48}) != key
    assert _key(samples, preprocess={**PREPROCESS, "grayscale": True}) != key
    assert _key(samples, model="other") != key
    assert _key(samples, part="val") != key


def test_the_key_changes_with_a_files_size_or_modification_time(samples):
    key = _key(samples)
    path = Path(samples[2][0])
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    touched = _key(samples)
    assert touched != key
    data = path.read_bytes()
    path.write_bytes(data + b"y")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))  # same time, other size
    assert _key(samples) not in (key, touched)


def test_the_key_changes_when_samples_are_added_removed_relabelled_or_reordered(samples):
    key = _key(samples)
    assert _key(samples[:-1]) != key
    assert _key([*samples, samples[0]]) != key
    assert _key([(samples[0][0], 1 - samples[0][1]), *samples[1:]]) != key
    assert _key([samples[1], samples[0], *samples[2:]]) != key  # rows are indices: order matters


def test_a_missing_file_counts_without_failing(samples, tmp_path):
    key = _key(samples)
    Path(samples[3][0]).unlink()
    missing = _key(samples)
    assert missing != key
    assert _key(samples) == missing
    assert _key([*samples, (str(tmp_path / "never" / "there.png"), 0), ("bad\0name", 1)]) != missing


def test_the_head_can_be_left_out_of_the_key(samples):
    model = _tiny_model()
    key = _key(samples, model, head=model[5])
    with torch.no_grad():
        model[5].weight += 1.0  # the head trains; the embeddings stay the same
    assert _key(samples, model, head=model[5]) == key
    assert _key(samples, model) != key
    with torch.no_grad():
        model[0].bias += 1.0
    assert _key(samples, model, head=model[5]) != key


def test_the_key_handles_half_precision_and_empty_data():
    model = _tiny_model().to(torch.bfloat16)
    key = cache_key(model="tiny", embed=model, preprocess={}, samples=[], part="val")
    assert key == cache_key(model="tiny", embed=model, preprocess={}, samples=[], part="val")
    assert key != cache_key(model="tiny", embed=_tiny_model(), preprocess={}, samples=[], part="val")


def test_cache_root_defaults_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_EXPLORER_CACHE", str(tmp_path / "user"))
    assert cache_root() == tmp_path / "user" / CACHE_FOLDER
    assert cache_root(str(tmp_path / "mine")) == tmp_path / "mine"
    assert cache_root("~/x") == Path.home() / "x"


# -- pruning ------------------------------------------------------------------------------------------


def _entry(root: Path, name: str, last_used: float | None) -> Path:
    EmbeddingStore.open(root, name, 100, (10,)).close()  # 2,000 bytes of features, 100 of flags
    meta_path = root / name / "meta.json"
    if last_used is None:
        meta_path.unlink()
        os.utime(root / name, (50.0, 50.0))  # no meta: the folder's time counts
    else:
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({**meta, "last_used": last_used}))
    return root / name


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.iterdir())


def test_prune_removes_the_least_recently_used_first(tmp_path):
    root = tmp_path / "cache"
    entries = {name: _entry(root, name, t) for name, t in [("a", 300.0), ("b", 100.0), ("c", 200.0)]}
    size = {name: _size(folder) for name, folder in entries.items()}
    assert prune(root, sum(size.values())) == []
    assert prune(root, size["a"] + size["c"]) == [entries["b"]]
    assert prune(root, size["a"] + 10) == [entries["c"]]
    assert [p.name for p in root.iterdir() if p.is_dir()] == ["a"]
    assert prune(root, 0) == [entries["a"]]


def test_prune_never_removes_what_it_is_told_to_keep(tmp_path):
    root = tmp_path / "cache"
    entries = {name: _entry(root, name, t) for name, t in [("a", 300.0), ("b", 100.0), ("c", 200.0)]}
    assert prune(root, 0, keep={"b", "a"}) == [entries["c"]]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["a", "b"]


def test_prune_falls_back_to_the_folder_time_and_spares_what_is_not_an_entry(tmp_path):
    root = tmp_path / "cache"
    newer = _entry(root, "newer", time.time())
    old = _entry(root, "old", None)
    photos = root / "photos"
    photos.mkdir()
    (photos / "cat.jpg").write_bytes(b"\xff" * 10_000)
    (root / "notes.txt").write_text("mine")
    assert prune(root, _size(newer)) == [old]
    assert prune(root, 0) == [newer]
    assert (photos / "cat.jpg").exists() and (root / "notes.txt").exists()


def test_prune_removes_stale_temporary_folders_only(tmp_path):
    root = tmp_path / "cache"
    stale, fresh = root / ".tmp-dead-1", root / ".tmp-busy-2"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / "features.f16").write_bytes(b"\0" * 100)
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    assert prune(root, 10**9) == [stale]
    assert fresh.exists() and not stale.exists()


def test_prune_of_a_missing_root_is_nothing(tmp_path):
    assert prune(tmp_path / "nowhere", 0) == []


def test_a_pruned_entry_is_simply_made_again(tmp_path):
    root = tmp_path / "cache"
    with EmbeddingStore.open(root, "k", 4, SHAPE) as store:
        store.write([0], _features([0]))
    prune(root, 0)
    with EmbeddingStore.open(root, "k", 4, SHAPE) as store:
        assert not store.done.any()
