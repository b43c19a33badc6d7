#!/usr/bin/env python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist, IDX files) as an ImageFolder tree of
grayscale JPEGs: OUT/train/<class>/<index>.JPEG and OUT/val/<class>/<index>.JPEG, classes named
0_t-shirt ... 9_ankle-boot so that their sorted order is the label order. For the real-data check
of the imagefolder path (Docs/imagenet.md):

    python3 -m venv /tmp/pv && /tmp/pv/bin/pip install pillow
    /tmp/pv/bin/python scripts/fashion-mnist-to-imagefolder.py /tmp/fmnist-jpeg [quality]
    hidden-mpi train --dataset imagefolder --data-dir /tmp/fmnist-jpeg --image-size 28 ...
"""
import gzip, os, struct, sys
from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist"
NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def find(prefix, kind):
    for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte.gz", f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"):
        if os.path.exists(os.path.join(SRC, name)):
            return os.path.join(SRC, name)
    sys.exit(f"missing {prefix} {kind} in {SRC}: apt-get install dataset-fashion-mnist")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fmnist-jpeg"
    quality = int(sys.argv[2]) if len(sys.argv) > 2 else 95
    for prefix, split in (("train", "train"), ("t10k", "val")):
        (n, h, w), pixels = idx(find(prefix, "images"))
        (_,), labels = idx(find(prefix, "labels"))
        for c, name in enumerate(NAMES):
            os.makedirs(os.path.join(out, split, f"{c}_{name}"), exist_ok=True)
        for i in range(n):
            label = labels[i]
            image = Image.frombytes("L", (w, h), pixels[i * h * w:(i + 1) * h * w])
            image.save(os.path.join(out, split, f"{label}_{NAMES[label]}", f"{i:05d}.JPEG"), quality=quality)
        print(f"{split}: {n} images")


if __name__ == "__main__":
    main()
