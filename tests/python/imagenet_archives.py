"""Writes a miniature of the three official ILSVRC-2012 archives and the same
images as an ImageFolder tree (as torchvision.datasets.ImageNet would lay
them out).

usage: imagenet_archives.py OUT_DIR

OUT_DIR/archives/ILSVRC2012_img_train.tar       a tar of <wnid>.tar (not in sorted order)
OUT_DIR/archives/ILSVRC2012_img_val.tar         flat, members shuffled
OUT_DIR/archives/ILSVRC2012_devkit_t12.tar.gz   data/meta.mat (scipy.io.savemat) + ground truth
OUT_DIR/devkit_uncompressed_mat.tar.gz   the same devkit, meta.mat not compressed
OUT_DIR/tree/{train,val}/<wnid>/<file>
"""
import io
import os
import random
import sys
import tarfile

import numpy as np
import scipy.io
from PIL import Image

out = sys.argv[1]
arch = os.path.join(out, "archives")
tree = os.path.join(out, "tree")
os.makedirs(arch, exist_ok=True)
rng = np.random.default_rng(7)
r = random.Random(7)


def image(w, h, fmt="JPEG"):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.stack([x * 255 / w, y * 255 / h, (x + y) % 256], -1) + rng.normal(0, 8, (h, w, 3))
    b = io.BytesIO()
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(b, fmt, quality=90)
    return b.getvalue()


# ILSVRC2012 ids are not in wnid order; one synset is not a leaf.
synsets = [(3, "n01440764", 0), (1, "n01443537", 0), (2, "n01484850", 0), (4, "n00001740", 3)]
wnids = sorted(w for _, w, c in synsets if c == 0)
train = {w: {"%s_%d.JPEG" % (w, i): image(40 + 7 * i, 30 + 5 * i) for i in range(3)} for w in wnids}
train[wnids[1]]["%s_png.JPEG" % wnids[1]] = image(33, 27, "PNG")  # PNG content, .JPEG name
train[wnids[2]]["%s_corrupt.JPEG" % wnids[2]] = b"\xff\xd8\xff\xe0 not really a jpeg"
id_of = {w: i for i, w, _ in synsets}
truth = [r.choice(wnids) for _ in range(7)]
val = {"ILSVRC2012_val_%08d.JPEG" % (k + 1): image(36 + k, 41 - k) for k in range(7)}


def member(t, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def tar_bytes(files, gz=False):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w:gz" if gz else "w") as t:
        for name, data in files:
            member(t, name, data)
    return b.getvalue()


order = list(reversed(wnids))
with open(os.path.join(arch, "ILSVRC2012_img_train.tar"), "wb") as f:
    f.write(tar_bytes([(w + ".tar", tar_bytes(sorted(train[w].items(), reverse=True))) for w in order]))
items = list(val.items())
r.shuffle(items)
with open(os.path.join(arch, "ILSVRC2012_img_val.tar"), "wb") as f:
    f.write(tar_bytes(items))

fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
arr = np.zeros((len(synsets), 1), dtype=[(n, "O") for n in fields])
for k, (i, w, c) in enumerate(synsets):
    children = np.array([[1.0, 2.0, 3.0]]) if c else np.zeros((1, 0))
    arr[k, 0] = (np.array([[float(i)]]), w, "words of " + w, "gloss", np.array([[float(c)]]), children,
                 np.array([[0.0]]), np.array([[float(len(train.get(w, {})))]]))
gt = "".join("%d\n" % id_of[w] for w in truth).encode()
for compress, path in [(True, os.path.join(arch, "ILSVRC2012_devkit_t12.tar.gz")),
                       (False, os.path.join(out, "devkit_uncompressed_mat.tar.gz"))]:
    mat = io.BytesIO()
    scipy.io.savemat(mat, {"synsets": arr}, do_compression=compress)  # MATLAB compresses
    with open(path, "wb") as f:
        f.write(tar_bytes([("ILSVRC2012_devkit_t12/data/meta.mat", mat.getvalue()),
                           ("ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", gt)], gz=True))

for w, files in train.items():
    os.makedirs(os.path.join(tree, "train", w), exist_ok=True)
    for n, d in files.items():
        open(os.path.join(tree, "train", w, n), "wb").write(d)
for (n, d), w in zip(sorted(val.items()), truth):
    os.makedirs(os.path.join(tree, "val", w), exist_ok=True)
    open(os.path.join(tree, "val", w, n), "wb").write(d)
print("val classes:", " ".join(truth))
