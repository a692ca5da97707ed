"""NLL and ECE as PS-KD's official code computes them (lgcnsai/PS-KD-Pytorch:
main.py `val()` takes F.softmax(outputs) as numpy lists and nn.CrossEntropyLoss;
utils/metric.py `metric_ece_aurc_eaurc` bins the max confidence into
(upper - bin_size, upper] for upper in np.arange(bin_size, 1 + bin_size,
bin_size), ECE = 100 * sum |acc - avg_conf| * count / total), written here
from that description, in PyTorch/numpy, for the same logits the Rust test
evaluates. Usage: calibration_ref.py IN.json -> prints JSON."""
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = json.load(open(sys.argv[1]))
n, k = len(d["labels"]), d["classes"]
logits = torch.tensor(d["logits"], dtype=torch.float32).view(n, k)
labels = torch.tensor(d["labels"], dtype=torch.int64)

confidences = F.softmax(logits, dim=1).numpy().tolist()
truths = labels.numpy().tolist()


def ece(bin_size):
    conf = np.asarray(confidences)
    pred = np.argmax(conf, axis=1)
    max_conf = np.amax(conf, axis=1)
    total = len(conf)
    ces = []
    for upper in np.arange(bin_size, 1 + bin_size, bin_size):
        lower = upper - bin_size
        sel = [(p, t, c) for p, t, c in zip(pred, truths, max_conf) if lower < c <= upper]
        if not sel:
            continue
        acc = sum(1 for p, t, _ in sel if p == t) / len(sel)
        avg = sum(c for _, _, c in sel) / len(sel)
        ces.append(abs(acc - avg) * len(sel))
    return 100 * sum(ces) / total


nll = F.cross_entropy(logits, labels).item()
top1 = 100.0 * (logits.argmax(1) == labels).float().mean().item()
print(json.dumps({"nll": nll, "ece10": ece(0.1), "ece15": ece(1.0 / 15), "top1": top1}))
