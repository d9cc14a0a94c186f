"""Small files in the exact on-disk formats of the standard datasets, written independently
of ocf's readers: tf.Example protos encoded by hand from the protobuf wire format
(example.proto / feature.proto field numbers), TFRecord framing with masked CRC-32C, the
datasets' own compression, tfds shards with dataset_info.json, ClevrTex folders and COCO
JSON."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from pathlib import Path

import google_crc32c
import numpy as np
from PIL import Image

# --------------------------------------------------------------------------- protobuf wire format


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 are 10-byte varints
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def bytes_list(values: list[bytes]) -> bytes:
    return field(1, b"".join(field(1, v) for v in values))           # Feature.bytes_list = 1


def one_byte_entries(arr: np.ndarray) -> bytes:
    """BytesList of one 1-byte entry per element (how DeepMind's readers declare images)."""
    flat = np.ascontiguousarray(arr, dtype=np.uint8).reshape(-1)
    rows = np.empty((flat.size, 3), dtype=np.uint8)
    rows[:, 0], rows[:, 1], rows[:, 2] = 0x0A, 1, flat                # tag(1, LEN), length 1, the byte
    return field(1, rows.tobytes())


def float_list(values) -> bytes:
    packed = np.asarray(values, dtype="<f4").reshape(-1).tobytes()
    return field(2, field(1, packed))                                  # Feature.float_list = 2, packed


def int64_list(values) -> bytes:
    packed = b"".join(varint(int(v)) for v in np.asarray(values).reshape(-1))
    return field(3, field(1, packed))                                  # Feature.int64_list = 3, packed


def example(features: dict[str, bytes]) -> bytes:
    """tf.train.Example{features: Features{feature: map<string, Feature>}}."""
    entries = b"".join(field(1, field(1, k.encode()) + field(2, v)) for k, v in features.items())
    return field(1, entries)


# --------------------------------------------------------------------------- TFRecord


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: Path, payloads: list[bytes], compression: str = "none") -> Path:
    out = bytearray()
    for data in payloads:
        length = struct.pack("<Q", len(data))
        out += length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    raw = bytes(out)
    if compression == "gzip":
        raw = gzip.compress(raw)
    elif compression == "zlib":
        raw = zlib.compress(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    arr = np.asarray(arr)
    if arr.dtype == np.uint16:
        Image.fromarray(arr[..., 0] if arr.ndim == 3 else arr, mode="I;16").save(buf, format="PNG")
    else:
        Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- scenes


def entity_masks(rng: np.random.Generator, o: int, h: int, w: int, n_fg: int, n_bg: int = 1) -> np.ndarray:
    """One-hot entity masks [O H W] (0/255): background entities split the rows, then
    ``n_fg`` non-overlapping rectangles. Returns masks and the expected label map
    (background 0, foreground entity e -> e - n_bg + 1)."""
    owner = np.zeros((h, w), dtype=np.int64)
    for b in range(n_bg):
        owner[b * h // n_bg:(b + 1) * h // n_bg] = b
    cols = np.array_split(np.arange(w), max(n_fg, 1))
    for k in range(n_fg):
        y0 = int(rng.integers(0, h // 2))
        c = cols[k]
        owner[y0:y0 + max(2, h // 3), c[0]:c[-1] + 1] = n_bg + k
    masks = np.stack([(owner == e) for e in range(o)]).astype(np.uint8) * 255
    labels = np.where(owner < n_bg, 0, owner - n_bg + 1).astype(np.int16)
    return masks, labels


def clevr_record(rng: np.random.Generator, n_fg: int, h: int = 240, w: int = 320) -> tuple[bytes, dict]:
    o = 11
    masks, labels = entity_masks(rng, o, h, w, n_fg)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    vis = np.zeros(o, np.float32)
    vis[: n_fg + 1] = 1
    cats = {k: rng.integers(0, 4, o).astype(np.uint8) for k in ("size", "material", "shape", "color")}
    feats = {"image": one_byte_entries(image), "mask": one_byte_entries(masks[..., None]),
             "visibility": float_list(vis), "pixel_coords": float_list(rng.random((o, 3)))}
    for k in ("x", "y", "z", "rotation"):
        feats[k] = float_list(rng.random(o))
    for k, v in cats.items():
        feats[k] = one_byte_entries(v)
    return example(feats), {"image": image, "labels": labels, "visibility": vis, **cats}
