"""Reads a TensorBoard log directory with TensorBoard's own EventAccumulator
and prints every scalar series as JSON: {run: {tag: [[step, value, wall], ...]}}.
Usage: tb_scalars.py LOGDIR RUN... (each RUN a folder under LOGDIR).
Exits 3 when tensorboard is not installed (the Rust test then says SKIP)."""
import json
import os
import sys

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError as e:  # pragma: no cover
    print("tensorboard not importable: %s" % e, file=sys.stderr)
    sys.exit(3)

logdir, runs = sys.argv[1], sys.argv[2:]
out = {}
for run in runs:
    # size_guidance 0 = keep every event (no reservoir sampling).
    ea = EventAccumulator(os.path.join(logdir, run), size_guidance={"scalars": 0})
    ea.Reload()
    out[run] = {
        tag: [[e.step, e.value, e.wall_time] for e in ea.Scalars(tag)]
        for tag in ea.Tags()["scalars"]
    }
print(json.dumps(out))
