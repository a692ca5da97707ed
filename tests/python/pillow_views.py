"""Generates image files with Pillow and writes what torchvision makes of them.

usage: pillow_views.py OUT_DIR

OUT_DIR/files/<name>      the files (JPEG variants, PNGs, some named .JPEG, a truncated JPEG)
OUT_DIR/expect/<name>.rgb  Image.open(f).convert("RGB") as HWC u8 bytes
OUT_DIR/expect/<name>.eval CenterCrop(224)(Resize(256)(img)) as HWC u8 bytes
OUT_DIR/expect/<name>.norm Normalize(ToTensor(<eval>)) as CHW float32 little-endian bytes
OUT_DIR/expect/<name>.crop<k> F.resized_crop(img, i, j, h, w, [224, 224]) as HWC u8 bytes
OUT_DIR/cases.json         [{name, w, h, decodes, boxes: [[i, j, h, w], ...]}]
"""
import io
import json
import os
import random
import sys

import numpy as np
import torch
from PIL import Image
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F

out = sys.argv[1]
os.makedirs(os.path.join(out, "files"), exist_ok=True)
os.makedirs(os.path.join(out, "expect"), exist_ok=True)
rng = np.random.default_rng(0)
torch.manual_seed(0)


def natural(w, h):
    """Smooth colour fields with edges and a little noise (JPEG-friendly)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 128 + 90 * np.sin((x + y) / 31.0)
    b = np.where((x // 40 + y // 30) % 2 == 0, 200.0, 40.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def noise(w, h):
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def jpeg(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def png(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


exif = Image.Exif()
exif[0x0112] = 6  # rotate 90 CW on display; torchvision does not apply it
cases = {
    "420.JPEG": jpeg(natural(500, 375), quality=90, subsampling=2),
    "444.JPEG": jpeg(natural(375, 500), quality=95, subsampling=0),
    "422_odd.JPEG": jpeg(natural(301, 217), quality=85, subsampling=1),
    "progressive.JPEG": jpeg(natural(333, 256), quality=88, progressive=True),
    "grey.JPEG": jpeg(natural(289, 311).convert("L"), quality=90),
    "cmyk.JPEG": jpeg(natural(260, 300).convert("CMYK"), quality=90),
    "exif_rotated.JPEG": jpeg(natural(320, 240), quality=90, exif=exif.tobytes()),
    "noise.JPEG": jpeg(noise(257, 263), quality=90),
    "small_upscaled.JPEG": jpeg(natural(150, 113), quality=90),
    "png_rgb.JPEG": png(natural(300, 260)),
    "png_rgba.JPEG": png(Image.merge("RGBA", natural(270, 240).split() + (natural(270, 240).convert("L"),))),
    "png_palette.png": png(natural(260, 250).quantize(64)),
    "png_grey.JPEG": png(natural(250, 270).convert("L")),
    "png_grey16.png": png(Image.fromarray(rng.integers(0, 65536, (61, 47), dtype=np.uint16))),
    "png_la.png": png(natural(40, 52).convert("LA")),
    "png_1bit.png": png(natural(45, 38).convert("1")),
}
b = io.BytesIO()
natural(50, 40).convert("RGBA").quantize(16).save(b, "PNG", transparency=0)
cases["png_palette_transparent.png"] = b.getvalue()
full = jpeg(natural(300, 300), quality=90)
cases["truncated.JPEG"] = full[: len(full) // 2]
# libjpeg warns ("Corrupt JPEG data: 3 extraneous bytes before marker 0xd9"); Pillow decodes it.
cases["extraneous_bytes.JPEG"] = full[:-2] + b"\x00\x01\x02" + full[-2:]

evaluate = T.Compose([T.Resize(256), T.CenterCrop(224)])
normalise = T.Compose([T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
meta = []
for name, data in sorted(cases.items()):
    path = os.path.join(out, "files", name)
    with open(path, "wb") as f:
        f.write(data)
    try:
        img = Image.open(path).convert("RGB")
    except OSError:
        meta.append({"name": name, "decodes": False})
        continue
    e = os.path.join(out, "expect", name)
    open(e + ".rgb", "wb").write(np.asarray(img).tobytes())
    view = evaluate(img)
    open(e + ".eval", "wb").write(np.asarray(view).tobytes())
    open(e + ".norm", "wb").write(normalise(view).numpy().astype("<f4").tobytes())
    r = random.Random(name)
    boxes = [[0, 0, img.height, img.width]]
    for _ in range(3):
        i, j, h, w = T.RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
        boxes.append([i, j, h, w])
    boxes.append([r.randrange(img.height - 7), r.randrange(img.width - 5), 7, 5])
    for k, (i, j, h, w) in enumerate(boxes):
        crop = F.resized_crop(img, i, j, h, w, [224, 224])
        open(e + ".crop%d" % k, "wb").write(np.asarray(crop).tobytes())
    meta.append({"name": name, "decodes": True, "w": img.width, "h": img.height, "boxes": boxes})
json.dump(meta, open(os.path.join(out, "cases.json"), "w"))
print("torchvision %s, Pillow %s" % (torchvision.__version__, Image.__version__))
