"""A DDGSD training loop written the way the public PyTorch implementations
are (per-sample torchvision transforms on PIL images in a DataLoader with
worker processes, one forward over both views, CE on both + KL both ways +
linear MMD, Nesterov SGD), timed for `ddgsd-bench bench --pytorch`.

    python bench/ddgsd_pytorch.py --mode loop|step [--arch resnet20]
        [--classes 100] [--batch 128] [--steps 10] [--warmup 2] [--threads 2]
        [--device cpu|cuda] [--workers 2] [--channels-last] [--bf16]

`loop`: synthetic 32x32 RGB u8 images (as torchvision's CIFAR datasets hold
them) -> PIL -> RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor
+ Normalize, twice per sample, DataLoader(shuffle, num_workers, drop_last,
pin_memory on CUDA); the warm-up steps (which include the workers' start)
are not timed. `step`: the same step on fixed random tensors, no data.
Prints one JSON line: mode, source images per second, ms per step, and the
settings used. The networks are tests/python/cifar_models.py's.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
import cifar_models  # noqa: E402

MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


class TwoViews(Dataset):
    """CIFAR-style in-memory u8 HWC images; each item is two distorted views."""

    def __init__(self, n, classes, seed=0):
        g = np.random.default_rng(seed)
        self.data = g.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        self.targets = g.integers(0, classes, size=n).tolist()
        self.transform = transforms.Compose([
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ])

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = Image.fromarray(self.data[i])
        return self.transform(img), self.transform(img), self.targets[i]


def ddgsd_loss(z, h, y, n):
    za, zb = z[:n], z[n:]
    ha, hb = h[:n], h[n:]
    ce = F.cross_entropy(za, y) + F.cross_entropy(zb, y)
    kl = F.kl_div(F.log_softmax(za, 1), F.softmax(zb.detach(), 1), reduction="batchmean") + F.kl_div(
        F.log_softmax(zb, 1), F.softmax(za.detach(), 1), reduction="batchmean"
    )
    mmd = (ha.mean(0) - hb.mean(0)).pow(2).sum()
    return ce + kl + 5e-4 * mmd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["loop", "step"], required=True)
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--bf16", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = cifar_models.build(a.arch, a.classes).to(dev, memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    n = a.batch

    def step(xa, xb, y):
        x = torch.cat([xa, xb]).to(dev, non_blocking=True).contiguous(memory_format=fmt)
        y = y.to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            z, h = model(x)
        loss = ddgsd_loss(z.float(), h.float(), y, n)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    if a.mode == "step":
        xa = torch.randn(n, 3, 32, 32, device=dev)
        xb = torch.randn(n, 3, 32, 32, device=dev)
        y = torch.randint(0, a.classes, (n,), device=dev)
        for _ in range(a.warmup):
            step(xa, xb, y)
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step(xa, xb, y)
        sync()
    else:
        ds = TwoViews(n * (a.warmup + a.steps), a.classes)
        dl = DataLoader(ds, batch_size=n, shuffle=True, num_workers=a.workers, drop_last=True,
                        pin_memory=dev.type == "cuda")
        it = iter(dl)
        for _ in range(a.warmup):
            step(*next(it))
        sync()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step(*next(it))
        sync()
    secs = time.perf_counter() - t0
    print(json.dumps({
        "mode": a.mode,
        "images_per_second": n * a.steps / secs,
        "ms_per_step": 1000 * secs / a.steps,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "workers": a.workers if a.mode == "loop" else 0,
        "channels_last": a.channels_last,
        "bf16": a.bf16,
    }))


if __name__ == "__main__":
    main()
