"""Damaged files never crash the loader: every truncation or flipped byte gives an image or ImageLoadError.

Seeded random damage to real files (the bundled photos and small files of each supported format), within a
time box so the test stays quick on a slow machine. A case that ever escapes as another exception is kept
below as a regression test of its own.
"""

from __future__ import annotations

import io
import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnn_explorer.core.data import check_image
from cnn_explorer.core.images import ImageLoadError, assets_dir, open_image

MAX_CASES = 4000
TIME_BOX_S = 10.0
MIN_CASES = 300  # fewer means the time box, not the damage, decided what was tested


def _encoded(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **options)
    return buf.getvalue()


def _valid_files() -> list[tuple[str, bytes]]:
    """(suffix, bytes) of good files: the bundled photos and one small file per format and mode."""
    files = [
        (p.suffix, p.read_bytes()) for p in sorted(assets_dir().glob("*")) if p.suffix in (".png", ".jpg")
    ]
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: exercises the EXIF path
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    files += [
        (".png", _encoded(rgb, "PNG")),
        (".png", _encoded(rgb.convert("P"), "PNG", transparency=0)),
        (".png", _encoded(rgb.convert("RGBA"), "PNG")),
        (".png", _encoded(Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000), "PNG")),
        (".jpg", _encoded(rgb, "JPEG", exif=exif.tobytes())),
        (".jpg", _encoded(rgb, "JPEG", progressive=True)),
        (".jpg", _encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG")),
        (".gif", _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)),
        (".tif", _encoded(rgb, "TIFF")),
        (".tif", _encoded(rgb, "TIFF", compression="tiff_lzw")),
        (".tif", _encoded(frames[0], "TIFF", save_all=True, append_images=frames[1:])),
        (".webp", _encoded(rgb, "WEBP")),
        (".bmp", _encoded(rgb, "BMP")),
        (".bmp", _encoded(rgb.convert("L"), "BMP")),
    ]
    return files


def _damage(data: bytes, rng: np.random.Generator) -> bytes:
    """Cut the file short, overwrite a few bytes (mostly in the header, where the sizes live), or both."""
    out = bytearray(data)
    kind = int(rng.integers(3))
    if kind in (0, 2):
        out = out[: int(rng.integers(1, len(out)))]
    if kind in (1, 2):
        for _ in range(int(rng.integers(1, 9))):
            head = rng.random() < 0.7
            i = int(rng.integers(min(len(out), 256))) if head else int(rng.integers(len(out)))
            out[i] = int(rng.integers(256))
    return bytes(out)


def test_damaged_files_give_an_image_or_a_clear_error(tmp_path: Path):
    rng = np.random.default_rng(20240611)
    valid = _valid_files()
    outcomes = {"loaded": 0, "refused": 0}
    start = time.monotonic()
    for case in range(MAX_CASES):
        if time.monotonic() - start > TIME_BOX_S:
            break
        suffix, data = valid[int(rng.integers(len(valid)))]
        path = tmp_path / f"case{case}{suffix}"
        path.write_bytes(_damage(data, rng))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own notes on what it skipped are not the point here
            try:
                loaded = open_image(path)
            except ImageLoadError as exc:
                assert path.name in str(exc) and exc.reason
                outcomes["refused"] += 1
            except Exception as exc:  # anything else is the bug this test hunts
                pytest.fail(
                    f"case {case} ({path.name}, kept in {tmp_path}) raised {type(exc).__name__}: {exc}"
                )
            else:
                px = loaded.pixels
                assert px.dtype == np.uint8 and px.flags.c_contiguous and px.ndim in (2, 3), path.name
                assert px.ndim == 2 or px.shape[2] == 3
                outcomes["loaded"] += 1
            reason = check_image(path)  # must not raise either
        assert reason is None or (isinstance(reason, str) and reason), path.name
        path.unlink()
    assert sum(outcomes.values()) >= MIN_CASES, outcomes
    assert outcomes["loaded"] and outcomes["refused"], outcomes  # the damage spans both outcomes


def test_tiff_with_a_damaged_later_page_still_opens_its_first(tmp_path: Path):
    """Found by the fuzz test: asking a TIFF for its page count raised TypeError("Missing dimensions")."""
    data = bytearray(_encoded(Image.new("RGB", (16, 12), (200, 30, 30)), "TIFF"))
    first_page = struct.unpack_from("<I", data, 4)[0]
    tags = struct.unpack_from("<H", data, first_page)[0]
    # point "next page" at a page with a single tag (a camera name) and no width or height
    struct.pack_into("<I", data, first_page + 2 + 12 * tags, len(data))
    data += struct.pack("<HHHI4sI", 1, 305, 2, 4, b"cam\0", 0)
    path = tmp_path / "two_pages.tif"
    path.write_bytes(bytes(data))
    loaded = open_image(path)
    assert loaded.size == (16, 12) and tuple(loaded.pixels[5, 5]) == (200, 30, 30)
    assert check_image(path) is None
