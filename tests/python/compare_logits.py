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


def main():
    d, tol = sys.argv[1], float(sys.argv[2])
    torch.set_grad_enabled(False)
    ok = True
    for spec in sys.argv[3:]:
        arch, classes = spec.split(":")
        state = load_file(os.path.join(d, f"{arch}.model.safetensors"))
        io = load_file(os.path.join(d, f"{arch}.io.safetensors"))
        model, head = build(arch, int(classes))
        try:
            model.load_state_dict(state, strict=True)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL {arch}: load_state_dict(strict=True): {e}")
            ok = False
            continue
        model.eval()
        if head is None:
            logits, feats = model(io["input"])
        else:
            seen = []
            hook = head.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0]))
            logits = model(io["input"])
            hook.remove()
            feats = seen[0]
        dl = (logits - io["logits"]).abs().max().item()
        df = (feats - io["features"]).abs().max().item()
        scale = io["logits"].abs().max().item()
        print(f"RESULT {arch} {dl:.3e} {df:.3e} {scale:.3e}", flush=True)
        if not (dl <= tol and df <= tol):
            print(f"FAIL {arch}: max |logits diff| {dl:.3e}, max |features diff| {df:.3e} > {tol}")
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
