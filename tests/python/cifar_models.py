"""PyTorch definitions of ddgsd-bench's CIFAR networks, written as ordinary
nn.Modules (independently of the Rust code) so that tests/torch_compat.rs can
check that a ddgsd-bench checkpoint loads with ``load_state_dict(strict=True)``
and computes the same logits and features.

Every model's ``forward(x)`` returns ``(logits, features)``, features being the
pooled input of the final ``fc`` layer. Global pooling is a mean over H and W.

- ``resnet<6n+2>``: He et al. 2016 CIFAR ResNet, option-A shortcuts.
- ``resnet18`` / ``resnet50``: kuangliu/pytorch-cifar ResNet18 / ResNet50
  (1x1-conv + BN projection shortcuts named ``shortcut``), final layer ``fc``.
- ``preact_resnet18``: Self-KD-Lib's CIFAR_ResNet18 (stem conv-BN-ReLU, then
  pre-activation blocks with conv-only projection shortcuts, no final BN).
- ``wrn<d>_<k>``: Wide ResNet (xternalz/WideResNet-pytorch layout, dropout 0).
- ``densenet_bc100``: DenseNet-BC-100, k = 12, compression 0.5.
"""
import re

import torch
import torch.nn as nn
import torch.nn.functional as F


def gpool(x):
    return x.mean(dim=(2, 3))


# --- He et al. CIFAR ResNet, option A -------------------------------------
class OptionABlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.pad = (cout - cin) // 2

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.stride != 1 or self.pad != 0:
            s = x[:, :, :: self.stride, :: self.stride]
            s = F.pad(s, (0, 0, 0, 0, self.pad, self.pad))
        else:
            s = x
        return F.relu(out + s)


class OptionAResNet(nn.Module):
    def __init__(self, depth, num_classes, width=16):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, w in enumerate([width, 2 * width, 4 * width]):
            blocks = []
            for b in range(n):
                blocks.append(OptionABlock(cin, w, 2 if (i > 0 and b == 0) else 1))
                cin = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        h = gpool(x)
        return self.fc(h), h


# --- kuangliu ResNet18 / ResNet50 ------------------------------------------
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        cout = 4 * planes
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.has_shortcut = stride != 1 or cin != planes
        if self.has_shortcut:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        short = self.shortcut(out) if self.has_shortcut else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + short


class CifarResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], num_blocks)):
            layers = []
            for b in range(n):
                layers.append(block(cin, planes, (1 if i == 0 else 2) if b == 0 else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        h = gpool(x)
        return self.fc(h), h


# --- Wide ResNet -----------------------------------------------------------
class WideBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        if not self.equal:
            self.convShortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.equal else self.convShortcut(act))


class WideStage(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(
            *[WideBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(n)]
        )

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, k, num_classes):
        super().__init__()
        n = (depth - 4) // 6
        w = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.block1 = WideStage(n, w[0], w[1], 1)
        self.block2 = WideStage(n, w[1], w[2], 2)
        self.block3 = WideStage(n, w[2], w[3], 2)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        h = gpool(F.relu(self.bn1(x)))
        return self.fc(h), h


# --- DenseNet-BC -----------------------------------------------------------
class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class DenseNetBC(nn.Module):
    def __init__(self, depth, growth, num_classes, reduction=0.5):
        super().__init__()
        n = (depth - 4) // 6
        c = 2 * growth
        self.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        for i in range(3):
            layers = []
            for _ in range(n):
                layers.append(DenseLayer(c, growth))
                c += growth
            setattr(self, f"dense{i + 1}", nn.Sequential(*layers))
            if i < 2:
                out = int(c * reduction)
                setattr(self, f"trans{i + 1}", Transition(c, out))
                c = out
        self.bn = nn.BatchNorm2d(c)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        x = self.trans1(self.dense1(x))
        x = self.trans2(self.dense2(x))
        x = self.dense3(x)
        h = gpool(F.relu(self.bn(x)))
        return self.fc(h), h


def build(name, num_classes):
    if name == "resnet18":
        return CifarResNet(BasicBlock, [2, 2, 2, 2], num_classes)
    if name == "resnet50":
        return CifarResNet(Bottleneck, [3, 4, 6, 3], num_classes)
    if name == "preact_resnet18":
        return CifarResNet(PreActBlock, [2, 2, 2, 2], num_classes)
    if name == "densenet_bc100":
        return DenseNetBC(100, 12, num_classes)
    m = re.fullmatch(r"wrn(\d+)_(\d+)", name)
    if m:
        return WideResNet(int(m.group(1)), int(m.group(2)), num_classes)
    m = re.fullmatch(r"resnet(\d+)", name)
    if m and (int(m.group(1)) - 2) % 6 == 0:
        return OptionAResNet(int(m.group(1)), num_classes)
    raise ValueError(f"unknown CIFAR architecture {name}")


if __name__ == "__main__":
    for name in ["resnet32", "resnet18", "resnet50", "preact_resnet18", "wrn16_4", "wrn28_10", "densenet_bc100"]:
        for classes in (10, 100):
            m = build(name, classes)
            print(name, classes, sum(p.numel() for p in m.parameters() if p.requires_grad))
    import torchvision

    for name in ["resnet18", "resnet50", "alexnet"]:
        m = getattr(torchvision.models, name)(num_classes=1000)
        print("imagenet", name, sum(p.numel() for p in m.parameters()))
