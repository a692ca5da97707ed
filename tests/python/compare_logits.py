"""Loads ddgsd-bench model files into PyTorch and compares the outputs.

Usage: compare_logits.py DIR TOL ARCH[:CLASSES] ...

For each ARCH, DIR/ARCH.model.safetensors is a state dict written by
ddgsd-bench (model::export::state_dict) and DIR/ARCH.io.safetensors holds
`input`, and the `logits` and `features` ddgsd-bench computed from it in eval
mode. The model is built with torchvision (imagenet_resnet18, imagenet_resnet50,
alexnet) or with tests/python/cifar_models.py, loaded with
``load_state_dict(strict=True)``, run in eval mode on the same input, and the
max absolute differences of logits and features are printed, one line per
model: ``RESULT <arch> <max|dlogits|> <max|dfeatures|> <max|logits|>``.

An ARCH written `byot_<arch>` is a BYOT run's export: the plain network
(loaded as above) and DIR/byot_<arch>.heads.safetensors, the auxiliary heads,
loaded with ``strict=True`` into a transcription of the official heads
(luanyunteng/pytorch-be-your-own-teacher models/resnet.py: `branchBottleNeck`
and `middle_fc<i>`), fed the outputs of the network's stages (`layer1`, ...)
and compared with `head<i>_logits` of the io file; the line then adds
``<max|dheads|>``.

Exit status: 0 all within TOL, 1 a difference above TOL or a load failure,
3 a needed package cannot be imported (the first line then starts "SKIP:").
"""
import os
import sys

try:
    import torch
    import torchvision
    from safetensors.torch import load_file
except Exception as e:  # noqa: BLE001 - any import failure means "skip"
    print(f"SKIP: cannot import torch, torchvision and safetensors: {e!r}")
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar_models  # noqa: E402


def build(arch, classes):
    """The model and the module whose input is the feature vector."""
    if arch == "imagenet_resnet18":
        m = torchvision.models.resnet18(num_classes=classes)
        return m, m.fc
    if arch == "imagenet_resnet50":
        m = torchvision.models.resnet50(num_classes=classes)
        return m, m.fc
    if arch == "alexnet":
        m = torchvision.models.alexnet(num_classes=classes)
        return m, m.classifier[6]
    m = cifar_models.build(arch, classes)
    return m, None


def branchBottleNeck(channel_in, channel_out, kernel_size):
    # luanyunteng/pytorch-be-your-own-teacher models/resnet.py
    middle_channel = channel_out // 4
    return torch.nn.Sequential(
        torch.nn.Conv2d(channel_in, middle_channel, kernel_size=1, stride=1),
        torch.nn.BatchNorm2d(middle_channel),
        torch.nn.ReLU(),
        torch.nn.Conv2d(middle_channel, middle_channel, kernel_size=kernel_size, stride=kernel_size),
        torch.nn.BatchNorm2d(middle_channel),
        torch.nn.ReLU(),
        torch.nn.Conv2d(middle_channel, channel_out, kernel_size=1, stride=1),
        torch.nn.BatchNorm2d(channel_out),
        torch.nn.ReLU(),
    )


class Heads(torch.nn.Module):
    """The official Multi_ResNet's side branches, for stages of `channels`."""

    def __init__(self, channels, classes):
        super().__init__()
        last, s = channels[-1], len(channels)
        for i in range(s - 1):
            setattr(self, f"bottleneck{i + 1}_1", branchBottleNeck(channels[i], last, 2 ** (s - 1 - i)))
            setattr(self, f"middle_fc{i + 1}", torch.nn.Linear(last, classes))
        self.n = s - 1

    def forward(self, stages):
        out = []
        for i, x in enumerate(stages):
            y = getattr(self, f"bottleneck{i + 1}_1")(x)
            y = torch.nn.functional.adaptive_avg_pool2d(y, (1, 1)).flatten(1)
            out.append(getattr(self, f"middle_fc{i + 1}")(y))
        return out


def stage_modules(model):
    names = [n for n in ("layer1", "layer2", "layer3", "layer4") if hasattr(model, n)]
    return [getattr(model, n) for n in names]


def main():
    d, tol = sys.argv[1], float(sys.argv[2])
    torch.set_grad_enabled(False)
    ok = True
    for spec in sys.argv[3:]:
        arch, classes = spec.split(":")
        key, arch = arch, arch.removeprefix("byot_")
        state = load_file(os.path.join(d, f"{key}.model.safetensors"))
        io = load_file(os.path.join(d, f"{key}.io.safetensors"))
        model, head = build(arch, int(classes))
        try:
            model.load_state_dict(state, strict=True)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {arch}: load_state_dict(strict=True): {e}")
            ok = False
            continue
        model.eval()
        heads, stage_out, hooks = None, [], []
        if key != arch:
            stages = stage_modules(model)
            hstate = load_file(os.path.join(d, f"{key}.heads.safetensors"))
            channels = [hstate[f"bottleneck{i + 1}_1.0.weight"].shape[1] for i in range(len(stages) - 1)]
            channels.append(hstate["middle_fc1.weight"].shape[1])
            heads = Heads(channels, int(classes))
            try:
                heads.load_state_dict(hstate, strict=True)
            except Exception as e:  # noqa: BLE001
                print(f"FAIL {key}: heads load_state_dict(strict=True): {e}")
                ok = False
                continue
            heads.eval()
            for m in stages[:-1]:
                hooks.append(m.register_forward_hook(lambda _m, _i, out: stage_out.append(out)))
        if head is None:
            logits, feats = model(io["input"])
        else:
            seen = []
            hook = head.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0]))
            logits = model(io["input"])
            hook.remove()
            feats = seen[0]
        for h in hooks:
            h.remove()
        dl = (logits - io["logits"]).abs().max().item()
        df = (feats - io["features"]).abs().max().item()
        dh = 0.0
        if heads is not None:
            for i, z in enumerate(heads(stage_out)):
                dh = max(dh, (z - io[f"head{i + 1}_logits"]).abs().max().item())
        scale = io["logits"].abs().max().item()
        extra = f" {dh:.3e}" if heads is not None else ""
        print(f"RESULT {key} {dl:.3e} {df:.3e} {scale:.3e}{extra}", flush=True)
        if not (dl <= tol and df <= tol and dh <= tol):
            print(f"FAIL {arch}: max |logits diff| {dl:.3e}, max |features diff| {df:.3e} > {tol}")
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
