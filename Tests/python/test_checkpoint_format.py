#!/usr/bin/env python3
"""Reads a hidden-mpi score checkpoint and the subnetwork exported from it with plain numpy and
checks them against the format in Docs/checkpoints.md and against `hidden-mpi info --json`:

  python3 test_checkpoint_format.py CHECKPOINT SUBNETWORK INFO_JSONL

- both files: 8-byte little-endian header length, JSON header padded with spaces so the data
  starts at a multiple of 8, tensors back to back in the data section, data_crc32 (zlib) of the
  data section, header_crc32 of the metadata and tensor entries;
- the checkpoint: exactly the documented metadata keys, scores.<l> and momentum.<l> (and second_moment.<l> for Adam; F32, the
  layer's shape) for every layer;
- the subnetwork: mask.<l> (U8, bits packed most significant first), shape.<l> and kept.<l>, the
  checkpoint's model fields; each mask equals the top-k of |scores.<l>| rebuilt here
  (kept = n - int((1 - k) * n), ties to the lower index), and every layer's kept count equals
  what `hidden-mpi info --json` reports.

Exits 0 and prints one line per layer when everything holds; fails with an AssertionError otherwise.
The block between the two marker lines is the snippet shown in Docs/checkpoints.md (an XCTest
checks that the two are identical and runs the documentation's version).
"""

import json
import struct
import sys
import zlib

import numpy as np

# --- Docs/checkpoints.md snippet begins ---
import json, struct
import numpy as np

DTYPES = {"F32": np.dtype("<f4"), "U8": np.dtype("u1")}


def read_safetensors(path):
    """(metadata, {name: numpy array}) of a hidden-mpi checkpoint or subnetwork file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])           # header length, little-endian
    header = json.loads(blob[8:8 + n])
    metadata = header.pop("__metadata__", {})       # string -> string
    data = blob[8 + n:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]          # relative to the data section
        array = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return metadata, tensors


def mask_from_scores(scores, k):
    """A layer's mask as training selects it: the top-k of |scores|, ties to the lower index."""
    magnitude = np.abs(scores.ravel())
    n = magnitude.size
    kept = n - int((1.0 - k) * n)
    order = np.argsort(-magnitude, kind="stable")   # descending; equal values keep index order
    mask = np.zeros(n, dtype=bool)
    mask[order[:kept]] = True
    return mask.reshape(scores.shape)


def unpack_mask(packed, shape):
    """A subnetwork's mask.<l>: one bit per weight, most significant bit first."""
    n = int(np.prod(shape))
    return np.unpackbits(packed)[:n].astype(bool).reshape(shape)
# --- Docs/checkpoints.md snippet ends ---


ADAM_KEYS = {"beta1", "beta2", "adam_eps"}
MULTISTEP_KEYS = {"lr_milestones", "lr_gamma"}
CHECKPOINT_KEYS = {
    "format", "format_version",
    # model
    "model", "width", "k", "init", "scale_fan", "seed", "dataset", "input", "classes", "method",
    "first_layer_dense", "last_layer_dense",
    # training
    "train_size", "test_size", "global_batch", "lr", "momentum", "weight_decay", "nesterov", "optimizer",
    "schedule", "warmup", "epochs", "label_smoothing", "bn_sync", "reduction", "chunk", "augment",
    # where the run stands
    "epoch", "step_in_epoch", "global_step", "epoch_loss_sum", "epoch_correct", "epoch_seen",
    "world_size", "weight_checksum", "layers", "batchnorms",
    # checksums
    "data_crc32", "header_crc32",
}
MODEL_KEYS = ["model", "width", "k", "init", "scale_fan", "seed", "dataset", "input", "classes", "method",
              "first_layer_dense", "last_layer_dense"]
SUBNETWORK_FIXED_KEYS = {
    "format", "format_version", *MODEL_KEYS, "layers", "batchnorms", "weight_checksum", "global_batch", "reduction", "chunk",
    "train_size", "test_size", "source_epoch", "source_step_in_epoch", "source_global_step",
    "data_crc32", "header_crc32",
}


def check_container(path):
    """The raw layout and both checksums; returns (metadata, tensors) via the snippet's reader."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert 8 + n <= len(blob), f"{path}: header length {n} beyond the file"
    assert (8 + n) % 8 == 0, f"{path}: data section starts at {8 + n}, not a multiple of 8"
    text = blob[8:8 + n].decode("utf-8")
    assert text.rstrip(" ").endswith("}"), f"{path}: header padded with something other than spaces"
    header = json.loads(text)
    meta = header["__metadata__"]
    assert all(isinstance(v, str) for v in meta.values()), f"{path}: metadata values must be strings"
    data = blob[8 + n:]
    entries = sorted(((e["data_offsets"], name, e) for name, e in header.items() if name != "__metadata__"))
    cursor = 0
    for (begin, end), name, e in entries:
        assert begin == cursor, f"{path}: {name} starts at {begin}, expected {cursor}"
        size = int(np.prod(e["shape"], dtype=np.int64)) * DTYPES[e["dtype"]].itemsize
        assert end - begin == size, f"{path}: {name} has {end - begin} bytes for shape {e['shape']}"
        cursor = end
    assert cursor == len(data), f"{path}: {len(data) - cursor} bytes after the last tensor"
    assert meta["data_crc32"] == f"{zlib.crc32(data):08x}", f"{path}: data_crc32"
    lines = "".join(f"{key}={meta[key]}\n" for key in sorted(meta) if key != "header_crc32")
    lines += "".join(f"{name} {e['dtype']} [{', '.join(str(d) for d in e['shape'])}] "
                     f"[{e['data_offsets'][0]}, {e['data_offsets'][1]}]\n"
                     for name, e in sorted(header.items()) if name != "__metadata__")
    assert meta["header_crc32"] == f"{zlib.crc32(lines.encode()):08x}", f"{path}: header_crc32"
    return read_safetensors(path)


def main(checkpoint, subnetwork, info_path):
    cmeta, ctensors = check_container(checkpoint)
    smeta, stensors = check_container(subnetwork)

    assert cmeta["format"] == "hidden-mpi-scores" and cmeta["format_version"] == "1", cmeta["format"]
    # Adam's settings and the multistep schedule's fields are there exactly when they are used.
    adam = cmeta.get("optimizer") == "adam"
    expected = CHECKPOINT_KEYS | (ADAM_KEYS if adam else set()) | (MULTISTEP_KEYS if cmeta.get("schedule") == "multistep" else set())
    assert set(cmeta) == expected, f"checkpoint keys: extra {set(cmeta) - expected}, missing {expected - set(cmeta)}"
    layers, norms = int(cmeta["layers"]), int(cmeta["batchnorms"])
    running = {f"running.{b}" for b in range(norms)}
    kinds = ("scores", "momentum", "second_moment") if adam else ("scores", "momentum")
    assert set(ctensors) == {f"{kind}.{l}" for kind in kinds for l in range(layers)} | running, sorted(ctensors)
    for name in running:                                   # [running mean; running unbiased variance]
        r = ctensors[name]
        assert r.dtype == np.float32 and r.ndim == 2 and r.shape[0] == 2, (name, r.shape)
        assert (r[1] > 0).all(), f"{name}: a running variance is not positive"
    for key in ("epoch_loss_sum", "epoch_correct"):        # float64 bit patterns, 16 hex digits
        assert len(cmeta[key]) == 16, key
        value = struct.unpack("<d", struct.pack("<Q", int(cmeta[key], 16)))[0]
        assert np.isfinite(value) and value >= 0, (key, value)
    assert len(cmeta["weight_checksum"]) == 16 and int(cmeta["weight_checksum"], 16) >= 0

    assert smeta["format"] == "hidden-mpi-subnetwork" and smeta["format_version"] == "1", smeta["format"]
    expected = SUBNETWORK_FIXED_KEYS | {f"{kind}.{l}" for kind in ("shape", "kept") for l in range(layers)}
    assert set(smeta) == expected, f"subnetwork keys: extra {set(smeta) - expected}, missing {expected - set(smeta)}"
    for key in MODEL_KEYS + ["layers", "batchnorms", "weight_checksum", "global_batch", "train_size", "test_size"]:
        assert smeta[key] == cmeta[key], f"{key}: subnetwork {smeta[key]} vs checkpoint {cmeta[key]}"
    for key in ("epoch", "step_in_epoch", "global_step"):
        assert smeta["source_" + key] == cmeta[key], key
    assert set(stensors) == {f"mask.{l}" for l in range(layers)} | running, sorted(stensors)
    for name in running:                                   # the subnetwork carries them to evaluation
        assert np.array_equal(stensors[name], ctensors[name]), name

    info = [json.loads(line) for line in open(info_path) if line.strip()]
    masked = {row["masked_index"]: row for row in info if "masked_index" in row}
    total = [row for row in info if row.get("layer") == "total"]
    assert sorted(masked) == list(range(layers)), f"info lists masked layers {sorted(masked)}, the checkpoint {layers}"

    k = float(cmeta["k"])
    four_d = 0
    for l in range(layers):
        scores, momentum = ctensors[f"scores.{l}"], ctensors[f"momentum.{l}"]
        assert scores.dtype == np.float32 and momentum.dtype == np.float32
        assert scores.shape == momentum.shape, (l, scores.shape, momentum.shape)
        four_d += scores.ndim == 4
        shape = tuple(int(d) for d in smeta[f"shape.{l}"].split("x"))
        assert shape == scores.shape, f"layer {l}: shape.{l} {shape} vs scores {scores.shape}"
        packed = stensors[f"mask.{l}"]
        n = scores.size
        assert packed.dtype == np.uint8 and packed.shape == ((n + 7) // 8,), (l, packed.shape)
        assert not np.unpackbits(packed)[n:].any(), f"layer {l}: padding bits set"
        stored = unpack_mask(packed, shape)
        rebuilt = mask_from_scores(scores, k)
        if not np.array_equal(stored, rebuilt):
            diff = np.flatnonzero(stored.ravel() != rebuilt.ravel())
            raise AssertionError(f"layer {l}: the exported mask differs from top-k of |scores| at {diff.size} "
                                 f"of {n} weights (first {diff[:5].tolist()})")
        kept = int(stored.sum())
        assert kept == int(smeta[f"kept.{l}"]), f"layer {l}: {kept} bits set, kept.{l} = {smeta[f'kept.{l}']}"
        assert kept == n - int((1.0 - k) * n)
        row = masked[l]
        assert row["weights"] == n, f"layer {l}: info says {row['weights']} weights, the checkpoint has {n}"
        assert row["kept"] == kept, f"layer {l}: info says {row['kept']} kept, the subnetwork keeps {kept}"
        print(f"layer {l}: {'x'.join(map(str, shape))}, {kept} of {n} kept; mask = top-k of |scores|; info agrees")
    assert four_d > 0, "use a convolutional model: no 4-D score tensor was checked"
    assert total and total[0]["kept"] == sum(masked[l]["kept"] for l in range(layers))
    print(f"OK: {layers} layers ({four_d} convolutional), {norms} batch norms, checksums, layout and masks agree")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
