"""The one safe image loader: any common file in, a plain uint8 RGB (or L) array out, or a clear error.

Every failure raises :class:`ImageLoadError`, whose message names the file and the reason, so the GUI and
the CLI can show it as it is and go on.
"""

from __future__ import annotations

import os
import stat
import struct
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a user can expect to work; Pillow may decode a few more, which we allow too.
SUPPORTED_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SUPPORTED_FORMATS_TEXT = "PNG, JPEG, BMP, GIF, TIFF or WebP"

# 40 megapixels is larger than any phone photo and still fits comfortably in memory three times over;
# a "decompression bomb" (tiny file, gigantic canvas) is refused before its pixels are decoded.
DEFAULT_MAX_PIXELS = 40_000_000
# Real photos and panoramas stay under about 10:1 (a full 360° phone panorama is 6-9:1). A thinner strip,
# 1×40000 say, passes the pixel limit but resizing its short side to 224 would ask for gigabytes.
# At 20:1 that resize stays near one megapixel.
MAX_ASPECT_RATIO = 20

_BACKGROUND = (255, 255, 255)  # transparent pixels are shown over white, as image viewers do


class ImageLoadError(Exception):
    """An image could not be loaded; ``str(err)`` is a complete message for the user."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot open {self.path.name}: {reason}")


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # (H, W, 3) or (H, W) uint8, C-contiguous
    path: Path
    format: str  # "PNG", "JPEG", ...
    original_mode: str  # Pillow mode of the file before conversion, e.g. "P", "I;16", "CMYK"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def describe(self) -> str:
        w, h = self.size
        kind = "grayscale" if self.pixels.ndim == 2 else "RGB"
        return f"{self.path.name} — {w}×{h} {kind} ({self.format}, {self.original_mode})"


def check_dimensions(width: int, height: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """None when a ``width``×``height`` image is safe to decode and resize, else the reason it is not.

    The one size rule of the app: :func:`open_image` applies it before decoding any pixels, and the dataset
    scan applies it to every file's header.
    """
    if width <= 0 or height <= 0:
        return "the image has no pixels (0 width or height)"
    if width * height > max_pixels:
        return (
            f"the image is {width}×{height} = {width * height / 1e6:.0f} megapixels, more than the "
            f"{max_pixels / 1e6:.0f} megapixel limit (a decompression bomb or an unusually large scan); "
            "scale it down first"
        )
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT_RATIO * short:
        ratio = long / short
        shown = f"{ratio:.0f}" if ratio >= 100 or ratio.is_integer() else f"{ratio:.1f}"
        return (
            f"the image is {width}×{height}, an aspect ratio of {shown}:1, beyond the {MAX_ASPECT_RATIO}:1 "
            "limit (a strip this thin would need gigabytes once resized for a model); crop it first"
        )
    return None


def _sniff_non_image(head: bytes) -> str | None:
    """A friendlier reason than "cannot identify" for the non-images people most often pick."""
    stripped = head.lstrip()
    lowered = stripped[:256].lower()
    if lowered.startswith(b"<svg") or (lowered.startswith(b"<?xml") and b"<svg" in lowered):
        return "SVG is a vector format and is not supported; export it as PNG first"
    if stripped.startswith(b"%PDF"):
        return "it is a PDF document, not an image"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return f"HEIC/AVIF images are not supported; convert it to {SUPPORTED_FORMATS_TEXT}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head[:512]):
        return "it contains text, not image data (is the file name's extension wrong?)"
    return None


def _to_8bit(im: Image.Image) -> Image.Image:
    """Integer/float modes ("I;16", "I", "F") scaled to 8 bits."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        arr8 = (arr.astype(np.uint32) // 257).astype(np.uint8)  # full 16-bit range onto 0..255
    else:  # 32-bit int or float: no fixed range, so stretch what is there
        arr = arr.astype(np.float64)
        finite = np.isfinite(arr)
        lo, hi = (arr[finite].min(), arr[finite].max()) if finite.any() else (0.0, 0.0)
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        arr8 = np.nan_to_num(scaled, nan=0.0).clip(0, 255).round().astype(np.uint8)
    return Image.fromarray(arr8, mode="L")


def _normalise_mode(im: Image.Image, gray: bool) -> Image.Image:
    if im.mode.startswith("I") or im.mode == "F":
        im = _to_8bit(im)
    has_alpha = (
        im.mode in ("RGBA", "LA", "PA", "La", "RGBa")
        or (im.mode == "P" and "transparency" in im.info)
        or (im.mode in ("L", "RGB") and "transparency" in im.info)
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_BACKGROUND, 255))
        im = Image.alpha_composite(background, rgba).convert("RGB")
    if gray:
        return im if im.mode == "L" else im.convert("L")
    return im if im.mode == "RGB" else im.convert("RGB")  # handles L, P, CMYK, YCbCr, 1, ...


def open_image(
    path: str | os.PathLike[str], *, gray: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Load ``path`` as uint8 RGB (or L with ``gray=True``), EXIF-rotated, first frame of animations."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        if os.path.islink(path):
            raise ImageLoadError(path, f"it is a link to {_link_target(path)}, which does not exist") from exc
        if isinstance(exc, FileNotFoundError):
            raise ImageLoadError(path, "the file does not exist") from exc
        raise ImageLoadError(path, f"the file cannot be read ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise ImageLoadError(path, "it is a folder, not an image file")
    if not stat.S_ISREG(info.st_mode):  # opening a named pipe would wait forever for a writer
        raise ImageLoadError(path, "it is not a regular file (a pipe, socket or device), so not an image")
    size = info.st_size
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise ImageLoadError(path, f"the file cannot be read ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageLoadError(path, "the file is empty (0 bytes)")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Pillow warns about damaged metadata it skips; the outcome here is an image or an ImageLoadError.
            warnings.simplefilter("ignore", UserWarning)
            im = Image.open(path)
            with im:
                fmt = im.format or path.suffix.lstrip(".").upper()
                reason = check_dimensions(*im.size, max_pixels=max_pixels)
                if reason is not None:
                    raise ImageLoadError(path, reason)
                # Pillow opens at the first frame. Not asking n_frames: for a TIFF it parses every page,
                # and a damaged later page would then fail a good first one.
                original_mode = im.mode
                im.load()
                im = ImageOps.exif_transpose(im) or im
                im = _normalise_mode(im, gray)
                pixels = np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    except ImageLoadError:
        raise
    except UnidentifiedImageError as exc:
        reason = _sniff_non_image(head) or (
            f"the file is not in a supported image format ({SUPPORTED_FORMATS_TEXT}) or is damaged"
        )
        raise ImageLoadError(path, reason) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(path, f"the image is too large to open safely ({exc})") from exc
    except OSError as exc:
        text = str(exc)
        if "truncated" in text or "broken data stream" in text or "premature end" in text.lower():
            reason = "the file is truncated or damaged (it ends before the image data does)"
        else:
            reason = f"the image data cannot be decoded ({text})"
        raise ImageLoadError(path, reason) from exc
    except (ValueError, TypeError, IndexError, struct.error, SyntaxError, EOFError, MemoryError) as exc:
        # Pillow's plugins signal malformed headers and tags with these (Image.open itself treats
        # SyntaxError, IndexError, TypeError and struct.error as "not this format").
        raise ImageLoadError(path, f"the file is damaged or malformed ({exc})") from exc
    if pixels.size == 0:
        raise ImageLoadError(path, "the image has no pixels (0 width or height)")
    return LoadedImage(pixels=pixels, path=path, format=fmt, original_mode=original_mode)


def _link_target(path: Path) -> str:
    try:
        return str(os.readlink(path))
    except OSError:
        return "a missing place"


def load_image(
    path: str | os.PathLike[str], *, gray: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Shorthand for ``open_image(...).pixels``."""
    return open_image(path, gray=gray, max_pixels=max_pixels).pixels


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 -> L uint8 with the ITU-R 601 luma weights Pillow uses; L passes through."""
    if pixels.ndim == 2:
        return pixels
    luma = pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return luma.round().clip(0, 255).astype(np.uint8)


def resize_to(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resample a uint8 image with good antialiasing (Pillow's Lanczos when shrinking)."""
    im = Image.fromarray(pixels)
    shrinking = width < im.width or height < im.height
    out = im.resize(
        (int(width), int(height)), Image.Resampling.LANCZOS if shrinking else Image.Resampling.BICUBIC
    )
    return np.asarray(out)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """By extension only: cheap, for filtering drops and folder scans before a real load."""
    return Path(path).suffix.lower() in SUPPORTED_SUFFIXES


def assets_dir() -> Path:
    """The bundled assets: installed as the package ``cnn_explorer.assets``; in a bare source checkout,
    the top-level ``assets/`` folder beside the package."""
    try:
        return Path(str(resources.files("cnn_explorer.assets")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "assets"


def sample_images() -> list[Path]:
    """The bundled sample photos, the cat first (the app opens with it)."""
    folder = assets_dir()
    found = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg") and p.stem != "icon")
    found.sort(key=lambda p: (p.stem != "chelsea", p.stem))
    return found


def default_sample() -> Path:
    samples = sample_images()
    if not samples:
        raise FileNotFoundError("the bundled sample photos are missing from the installation")
    return samples[0]
