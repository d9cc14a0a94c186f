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
    return field(1, b"".join(field(1, v) for v in values))  # Feature.bytes_list = 1


def one_byte_entries(arr: np.ndarray) -> bytes:
    """BytesList of one 1-byte entry per element (how DeepMind's readers declare images)."""
    flat = np.ascontiguousarray(arr, dtype=np.uint8).reshape(-1)
    rows = np.empty((flat.size, 3), dtype=np.uint8)
    rows[:, 0], rows[:, 1], rows[:, 2] = 0x0A, 1, flat  # tag(1, LEN), length 1, the byte
    return field(1, rows.tobytes())


def float_list(values) -> bytes:
    packed = np.asarray(values, dtype="<f4").reshape(-1).tobytes()
    return field(2, field(1, packed))  # Feature.float_list = 2, packed


def int64_list(values) -> bytes:
    packed = b"".join(varint(int(v)) for v in np.asarray(values).reshape(-1))
    return field(3, field(1, packed))  # Feature.int64_list = 3, packed


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
        Image.fromarray(arr[..., 0] if arr.ndim == 3 else arr).save(buf, format="PNG")  # 16-bit greyscale
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
        owner[b * h // n_bg : (b + 1) * h // n_bg] = b
    cols = np.array_split(np.arange(w), max(n_fg, 1))
    for k in range(n_fg):
        y0 = int(rng.integers(0, h // 2))
        c = cols[k]
        owner[y0 : y0 + max(2, h // 3), c[0] : c[-1] + 1] = n_bg + k
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
    feats = {
        "image": one_byte_entries(image),
        "mask": one_byte_entries(masks[..., None]),
        "visibility": float_list(vis),
        "pixel_coords": float_list(rng.random((o, 3))),
    }
    for k in ("x", "y", "z", "rotation"):
        feats[k] = float_list(rng.random(o))
    for k, v in cats.items():
        feats[k] = one_byte_entries(v)
    return example(feats), {"image": image, "labels": labels, "visibility": vis, **cats}


def deepmind_image_record(
    rng: np.random.Generator,
    h: int,
    w: int,
    o: int,
    n_fg: int,
    channels: int = 3,
    n_bg: int = 1,
    entity_last: bool = False,
    factors: dict | None = None,
) -> tuple[bytes, dict]:
    """An image dataset record: image/mask as one-byte entries, float factors."""
    masks, labels = entity_masks(rng, o, h, w, n_fg, n_bg)
    image = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    mask = masks[..., None]  # [O H W 1]
    if entity_last:
        mask = mask.transpose(1, 2, 0, 3)  # Multi-dSprites stores [H W O 1]
    feats = {"image": one_byte_entries(image), "mask": one_byte_entries(mask)}
    for k, shape in (factors or {}).items():
        feats[k] = float_list(rng.random((o,) + shape))
    return example(feats), {"image": image, "labels": labels}


def cater_record(rng: np.random.Generator, t: int = 33, o: int = 11, n_fg: int = 3) -> tuple[bytes, dict]:
    pairs = [entity_masks(rng, o, 64, 64, n_fg) for _ in range(t)]
    masks = np.stack([p[0] for p in pairs])[..., None]  # [T O H W 1]
    video = rng.integers(0, 256, (t, 64, 64, 3), dtype=np.uint8)
    positions = rng.random((o, t, 3)).astype(np.float32)  # stored [O T 3]
    camera = rng.random((t, 4, 4)).astype(np.float32)
    feats = {
        "image": field(1, field(1, video.tobytes())),
        "mask": field(1, field(1, masks.tobytes())),
        "object_positions": float_list(positions),
        "camera_matrix": float_list(camera),
    }
    return example(feats), {
        "video": video,
        "labels": np.stack([p[1] for p in pairs]),
        "positions": positions,
        "camera": camera,
    }


def movi_record(rng: np.random.Generator, t: int = 3, h: int = 16, w: int = 16, o: int = 2) -> tuple[bytes, dict]:
    video = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    segs = np.zeros((t, h, w), np.uint8)
    for i in range(o):
        segs[:, 2 + 6 * i : 6 + 6 * i, 3:9] = i + 1
    depth = rng.integers(0, 65536, (t, h, w), dtype=np.uint16)
    flow = rng.integers(0, 65536, (t, h, w, 2), dtype=np.uint16)
    bbox_frames = [list(range(t)), [1]]  # instance 1 visible in frame 1 only
    bboxes = [[[0.125, 0.1875, 0.375, 0.5625]] * t, [[0.5, 0.25, 0.75, 0.5]]]
    feats = {
        "video": bytes_list([png(f) for f in video]),
        "segmentations": bytes_list([png(s[..., None]) for s in segs]),
        "depth": bytes_list([png(d[..., None]) for d in depth]),
        "forward_flow": int64_list(flow),
        "metadata/num_instances": int64_list([o]),
        "metadata/depth_range": float_list([0.5, 20.0]),
        "metadata/forward_flow_range": float_list([-3.0, 4.0]),
        "metadata/video_name": bytes_list([b"7"]),
        "instances/positions": float_list(rng.random((o, t, 3))),
        "instances/image_positions": float_list(rng.random((o, t, 2))),
        "instances/visibility": int64_list(np.full((o, t), 5)),
        "instances/bboxes/ragged_flat_values": float_list(np.concatenate([np.asarray(b) for b in bboxes])),
        "instances/bboxes/ragged_row_lengths_0": int64_list([len(b) for b in bboxes]),
        "instances/bbox_frames/ragged_flat_values": int64_list(np.concatenate(bbox_frames)),
        "instances/bbox_frames/ragged_row_lengths_0": int64_list([len(b) for b in bbox_frames]),
    }
    return example(feats), {"video": video, "segs": segs, "depth": depth, "flow": flow}


def write_movi(root: Path, name: str, splits: dict[str, list[list[bytes]]]) -> Path:
    """A tfds version folder: <name>-<split>.tfrecord-XXXXX-of-YYYYY shards + dataset_info.json."""
    info = {"name": name, "version": "1.0.0", "splits": []}
    for split, shards in splits.items():
        for i, payloads in enumerate(shards):
            write_tfrecord(root / f"{name}-{split}.tfrecord-{i:05d}-of-{len(shards):05d}", payloads)
        info["splits"].append({"name": split, "shardLengths": [str(len(s)) for s in shards], "numBytes": "1"})
    (root / "dataset_info.json").write_text(json.dumps(info))
    return root


def write_clevrtex(root: Path, variant: str, n: int, rng: np.random.Generator, h: int = 24, w: int = 32) -> dict:
    """ClevrTex scenes CLEVRTEX_<variant>_<i:06d>{.png,_flat.png,.json} under clevrtex_<variant>/<block>/."""
    expected = {}
    for i in range(n):
        folder = root / f"clevrtex_{variant}" / str(i // 4)
        folder.mkdir(parents=True, exist_ok=True)
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        mask = np.zeros((h, w), np.uint8)
        k = 1 + i % 3
        for j in range(k):
            mask[4 + 5 * j : 8 + 5 * j, 2:10] = j + 1
        stem = f"CLEVRTEX_{variant}_{i:06d}"
        Image.fromarray(rgba, "RGBA").save(folder / f"{stem}.png")
        Image.fromarray(mask, "L").save(folder / f"{stem}_flat.png")
        objects = [
            {"shape": ["cube", "sphere"][j % 2], "material": f"m{j}", "size": "large", "rotation": 10.0 * j}
            for j in range(k)
        ]
        (folder / f"{stem}.json").write_text(json.dumps({"ground_material": "g", "objects": objects}))
        expected[i] = {"image": rgba[..., :3], "mask": mask, "objects": objects}
    return expected
