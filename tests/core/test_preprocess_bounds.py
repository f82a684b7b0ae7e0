"""Preprocessing allocates a bounded amount for any image shape, and changes nothing for ordinary ones."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from cnn_explorer.core import zoo


def _reference(pre: zoo.Preprocess, pixels: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(pixels).permute(2, 0, 1)
    t = TF.resize(t, [pre.resize], interpolation=InterpolationMode(pre.interpolation), antialias=True)
    return TF.center_crop(t, [pre.crop, pre.crop])


def test_ordinary_and_long_images_reach_the_network_unchanged():
    rng = np.random.default_rng(0)
    pre = zoo.LITE0_PREPROCESS
    for h, w in ((300, 400), (240, 700), (700, 240)):  # within PRECROP_SIDES: bit for bit torchvision's
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert torch.equal(
            torch.from_numpy(pre.crop_pixels(pixels)).permute(2, 0, 1), _reference(pre, pixels)
        )
    # A 10:1 panorama is cut before resizing: the centre the crop uses is the same up to resampling.
    smooth = np.linspace(0, 255, 3000, dtype=np.float32)[None, :, None].repeat(300, 0).repeat(3, 2)
    pixels = smooth.astype(np.uint8)
    ours = torch.from_numpy(pre.crop_pixels(pixels)).permute(2, 0, 1).int()
    assert (ours - _reference(pre, pixels).int()).abs().max() <= 2


def test_extreme_aspect_ratio_is_bounded_in_memory():
    """1×40000 and 40000×1 once asked for ~31 GB. Under a 1.5 GB address-space allowance they now run."""
    script = textwrap.dedent(
        """
        import resource
        import numpy as np
        from cnn_explorer.core import zoo
        pre = zoo.Preprocess(resize=256, crop=224, mean=(0.5,) * 3, std=(0.5,) * 3)
        pre(np.zeros((300, 300, 3), np.uint8))  # warm up torch's allocator and kernels
        with open("/proc/self/status") as fh:
            vm = next(int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1536 << 20), resource.RLIM_INFINITY))
        for shape in ((1, 40000, 3), (40000, 1, 3), (2, 40000), (40000, 3)):
            out = pre(np.full(shape, 200, np.uint8))
            assert tuple(out.shape) == (3, 224, 224), out.shape
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
