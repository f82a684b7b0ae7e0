"""The safe image loader: every mode and format gives uint8 RGB/L; every bad file gets one clear error."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from cnn_explorer.core.images import (
    MAX_ASPECT_RATIO,
    ImageLoadError,
    check_dimensions,
    default_sample,
    load_image,
    open_image,
    sample_images,
    to_gray,
)


def _gradient(w: int = 40, h: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), np.full_like(x, 128)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("fmt", "suffix", "lossless"),
    [
        ("PNG", ".png", True),
        ("JPEG", ".jpg", False),
        ("BMP", ".bmp", True),
        ("TIFF", ".tif", True),
        ("WEBP", ".webp", False),
        ("GIF", ".gif", False),
    ],
)
def test_each_format_loads_as_rgb_uint8(tmp_path, fmt, suffix, lossless):
    rgb = _gradient()
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path, format=fmt)
    loaded = open_image(path)
    assert loaded.pixels.shape == (30, 40, 3)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.format == fmt
    error = np.abs(loaded.pixels.astype(int) - rgb).mean()
    assert error == 0 if lossless else error < 12  # GIF quantises to 256 colours, JPEG/WebP are lossy


def test_gif_first_frame_of_animation(tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    px = load_image(path)
    assert tuple(px[4, 4]) == (255, 0, 0)


def test_mode_L_and_LA(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray, "L").save(tmp_path / "l.png")
    out = load_image(tmp_path / "l.png")
    assert out.shape == (8, 8, 3) and (out[..., 0] == gray).all() and (out[..., 2] == gray).all()
    assert (load_image(tmp_path / "l.png", gray=True) == gray).all()

    la = Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), "LA")
    alpha = np.full((8, 8), 255, np.uint8)
    alpha[0, 0] = 0  # one transparent pixel shows the white background
    la.putalpha(Image.fromarray(alpha))
    la.save(tmp_path / "la.png")
    out = load_image(tmp_path / "la.png")
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert out[3, 3, 0] == gray[3, 3]


def test_mode_P_with_transparency(tmp_path):
    im = Image.new("P", (6, 6), 0)
    im.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 0  # palette index 0 is transparent
    im.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png")
    assert out.shape == (6, 6, 3)
    assert tuple(out[0, 0]) == (255, 255, 255)  # transparent -> white
    assert tuple(out[1, 1]) == (200, 100, 50)


def test_mode_RGBA_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    rgba[1, 1, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[2, 2]) == (255, 0, 0)
    assert out[1, 1, 0] == 255 and 120 < out[1, 1, 1] < 135  # half red over white


def test_mode_CMYK(tmp_path):
    Image.new("CMYK", (5, 5), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    out = load_image(tmp_path / "cmyk.jpg")
    assert out.shape == (5, 5, 3)
    assert out[2, 2, 0] > 200 and out[2, 2, 1] < 60 and out[2, 2, 2] < 60


def test_mode_I16_scaled_to_8_bit(tmp_path):
    arr = np.array([[0, 257 * 100], [65535, 257 * 200]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    loaded = open_image(tmp_path / "deep.png")
    assert loaded.original_mode.startswith("I")
    assert loaded.pixels[..., 0].tolist() == [[0, 100], [255, 200]]


def test_exif_orientation_is_honoured(tmp_path):
    im = Image.new("RGB", (40, 20), (0, 0, 0))
    im.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "rot.jpg")
    assert out.shape[:2] == (40, 20)  # width and height swapped
    assert out[2, 10].mean() > 200 and out[-3, 10].mean() < 50  # the stripe is now along the top


def _message(path) -> str:
    with pytest.raises(ImageLoadError) as info:
        open_image(path)
    assert path.name in str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    assert "does not exist" in _message(tmp_path / "nope.png")


def test_zero_bytes(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in _message(tmp_path / "empty.jpg")


def test_truncated_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, "PNG")
    (tmp_path / "cut.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert "truncated" in _message(tmp_path / "cut.png")


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("these are my lecture notes, not a photo\n")
    assert "text" in _message(tmp_path / "notes.jpg")


def test_unsupported_format(tmp_path):
    (tmp_path / "logo.png").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    assert "SVG" in _message(tmp_path / "logo.png")
    (tmp_path / "blob.webp").write_bytes(bytes(range(256)) * 8)
    assert "not in a supported image format" in _message(tmp_path / "blob.webp")


def test_folder_instead_of_file(tmp_path):
    assert "folder" in _message(tmp_path)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    Image.new("L", (5000, 5000)).save(tmp_path / "big.png")  # compresses to a few KB
    with pytest.raises(ImageLoadError, match="megapixel") as info:
        open_image(tmp_path / "big.png", max_pixels=1_000_000)
    assert "big.png" in str(info.value)


@pytest.mark.parametrize(("w", "h"), [(1, 40000), (40000, 1), (3000, 100)])
def test_extreme_aspect_ratio_refused_before_decoding(tmp_path, w, h):
    buf = io.BytesIO()
    Image.new("L", (w, h), 90).save(buf, "PNG")
    path = tmp_path / "strip.png"
    path.write_bytes(buf.getvalue()[:-40])  # damaged pixel data: decoding would say "truncated"
    message = _message(path)
    ratio = max(w, h) // min(w, h)
    assert f"{w}×{h}" in message and f"{ratio}:1" in message and f"{MAX_ASPECT_RATIO}:1 limit" in message
    assert "truncated" not in message


def test_panorama_and_limit_ratio_images_load(tmp_path):
    for w, h in [(1000, 100), (MAX_ASPECT_RATIO * 10, 10), (10, MAX_ASPECT_RATIO * 10)]:
        Image.new("RGB", (w, h), (1, 2, 3)).save(tmp_path / "pano.png")
        assert open_image(tmp_path / "pano.png").size == (w, h)


def test_check_dimensions_is_the_size_rule():
    assert check_dimensions(4032, 3024) is None
    assert check_dimensions(MAX_ASPECT_RATIO * 7, 7) is None
    assert "21:1" in check_dimensions(21 * 7, 7)
    assert "40000:1" in check_dimensions(1, 40000)
    assert "81 megapixels, more than the 40 megapixel limit" in check_dimensions(9000, 9000)
    assert "1 megapixel limit" in check_dimensions(2000, 1000, max_pixels=1_000_000)
    assert "no pixels" in check_dimensions(0, 10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX thing")
def test_named_pipe_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")  # reading it would block until some writer opens it
    assert "not a regular file" in _message(tmp_path / "pipe.png")


def test_broken_link_names_its_target(tmp_path):
    try:
        (tmp_path / "photo.jpg").symlink_to(tmp_path / "moved-away.jpg")
    except OSError:
        pytest.skip("this system does not let us make symbolic links")
    message = _message(tmp_path / "photo.jpg")
    assert "link" in message and "moved-away.jpg" in message and "does not exist" in message


def test_to_gray_matches_pillow():
    rgb = _gradient()
    ours = to_gray(rgb)
    pillow = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.abs(ours.astype(int) - pillow).max() <= 1


def test_bundled_samples():
    samples = sample_images()
    assert next(p.stem for p in samples) == "chelsea" == default_sample().stem
    assert {"chelsea", "coffee", "astronaut", "rocket"} <= {p.stem for p in samples}
    cat = open_image(default_sample())
    assert cat.pixels.shape == (300, 451, 3)
