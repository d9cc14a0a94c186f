"""TFRecord files of ``tf.Example`` protos, read without TensorFlow.

A TFRecord file is a sequence of records, each framed as

    uint64 length (little-endian) | uint32 masked CRC-32C of the length bytes |
    length bytes of data          | uint32 masked CRC-32C of the data

(TensorFlow's ``core/lib/io/record_writer.cc``; the mask is
``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32). A compressed file
(``GZIP`` or ``ZLIB``) compresses that whole byte stream. The payload is a serialized
``tf.train.Example`` (``core/example/example.proto`` and ``feature.proto``), parsed here
with protobuf from a schema built at import time. CRCs come from ``google-crc32c``.

Every problem raises :class:`~ocf.errors.UserError` naming the file and the record index.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ocf.errors import UserError

EXTRA = "datasets"
COMPRESSIONS = ("none", "gzip", "zlib")
_MASK_DELTA = 0xA282EAD8


def require(module: str, what: str) -> Any:
    """Import an optional dependency of the ``ocf[datasets]`` extra or explain how to get it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(
            f"{what} needs the optional package {module.split('.')[0]!r}: pip install 'ocf[{EXTRA}]'"
        ) from None


# --------------------------------------------------------------------------- framing


def masked_crc(data: bytes) -> int:
    crc32c = require("google_crc32c", "reading TFRecord files")
    crc = crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


class _ZlibReader:
    """A file-like view of a zlib stream, decompressed chunk by chunk."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.buffer, self.inflate = raw, b"", zlib.decompressobj()

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n and not self.inflate.eof:
            chunk = self.raw.read(1 << 20)
            if not chunk:
                break
            self.buffer += self.inflate.decompress(chunk)
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def close(self) -> None:
        self.raw.close()


def _open(path: Path, compression: str) -> Any:
    raw = open(path, "rb")
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zlib":
        return _ZlibReader(raw)
    return raw


def iter_records(path: str | Path, compression: str = "none", verify: bool = True) -> Iterator[bytes]:
    """The payloads of a TFRecord file, in order. ``compression`` is none, gzip or zlib."""
    path = Path(path)
    if compression not in COMPRESSIONS:
        raise UserError(f"unknown TFRecord compression {compression!r}; one of {', '.join(COMPRESSIONS)}")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    stream = _open(path, compression)
    index = 0
    try:
        while True:
            try:
                header = stream.read(12)
                if not header:
                    return
                if len(header) < 12:
                    raise UserError(f"{path}: record {index}: truncated header ({len(header)} of 12 bytes)")
                (length,), (length_crc,) = struct.unpack("<Q", header[:8]), struct.unpack("<I", header[8:])
                if verify and masked_crc(header[:8]) != length_crc:
                    raise UserError(
                        f"{path}: record {index}: bad length checksum (corrupt file, or wrong "
                        f"compression: read as {compression})"
                    )
                body = stream.read(length + 4)
            except (OSError, EOFError, zlib.error) as exc:
                raise UserError(f"{path}: record {index}: cannot decompress ({compression}): {exc}") from None
            if len(body) < length + 4:
                raise UserError(
                    f"{path}: record {index}: truncated ({len(body)} of {length + 4} bytes); the file ends early"
                )
            data = body[:length]
            if verify and masked_crc(data) != struct.unpack("<I", body[length:])[0]:
                raise UserError(f"{path}: record {index}: bad data checksum (corrupt file)")
            yield data
            index += 1
    finally:
        stream.close()


def frame_record(data: bytes) -> bytes:
    """One record framed as TFRecord (length, its CRC, data, its CRC)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


# --------------------------------------------------------------------------- tf.Example


def _example_class() -> Any:
    """``tf.train.Example`` as a protobuf message class, from a schema equal to TensorFlow's
    feature.proto / example.proto (field numbers included)."""
    descriptor_pb2 = require("google.protobuf.descriptor_pb2", "reading tf.Example records")
    from google.protobuf import descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="ocf_tf_example.proto", package="ocf_tf", syntax="proto3")
    label_rep = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    label_opt = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    types = descriptor_pb2.FieldDescriptorProto

    def message(name: str, fields: list[tuple], nested: list | None = None, options: Any = None) -> Any:
        msg = fdp.message_type.add(name=name) if nested is None else nested.add(name=name)
        for fname, number, ftype, label, type_name, oneof in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            if oneof is not None:
                f.oneof_index = oneof
        if options is not None:
            msg.options.CopyFrom(options)
        return msg

    message("BytesList", [("value", 1, types.TYPE_BYTES, label_rep, None, None)])
    message("FloatList", [("value", 1, types.TYPE_FLOAT, label_rep, None, None)])
    message("Int64List", [("value", 1, types.TYPE_INT64, label_rep, None, None)])
    feature = message(
        "Feature",
        [
            ("bytes_list", 1, types.TYPE_MESSAGE, label_opt, ".ocf_tf.BytesList", 0),
            ("float_list", 2, types.TYPE_MESSAGE, label_opt, ".ocf_tf.FloatList", 0),
            ("int64_list", 3, types.TYPE_MESSAGE, label_opt, ".ocf_tf.Int64List", 0),
        ],
    )
    feature.oneof_decl.add(name="kind")
    features = message(
        "Features", [("feature", 1, types.TYPE_MESSAGE, label_rep, ".ocf_tf.Features.FeatureEntry", None)]
    )
    message(
        "FeatureEntry",
        [
            ("key", 1, types.TYPE_STRING, label_opt, None, None),
            ("value", 2, types.TYPE_MESSAGE, label_opt, ".ocf_tf.Feature", None),
        ],
        nested=features.nested_type,
        options=descriptor_pb2.MessageOptions(map_entry=True),
    )
    message("Example", [("features", 1, types.TYPE_MESSAGE, label_opt, ".ocf_tf.Features", None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("ocf_tf.Example"))


_EXAMPLE: Any = None


@dataclass(frozen=True)
class Feature:
    """One feature of an Example: ``kind`` is bytes, float or int64; ``values`` a list of
    bytes or a 1-D numpy array."""

    kind: str
    values: Any


def parse_example(data: bytes, where: str) -> dict[str, Feature]:
    """A serialized ``tf.train.Example`` → ``{name: Feature}``; ``where`` names the record."""
    global _EXAMPLE
    if _EXAMPLE is None:
        _EXAMPLE = _example_class()
    example = _EXAMPLE()
    try:
        example.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise UserError(f"{where}: not a tf.Example: {exc}") from None
    out: dict[str, Feature] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            out[name] = Feature("bytes", list(feature.bytes_list.value))
        elif kind == "float_list":
            out[name] = Feature("float", np.asarray(feature.float_list.value, dtype=np.float32))
        elif kind == "int64_list":
            out[name] = Feature("int64", np.asarray(feature.int64_list.value, dtype=np.int64))
        else:
            out[name] = Feature("bytes", [])
    return out


class Example:
    """Typed access to the features of one record, with errors naming file, record and feature."""

    def __init__(self, features: dict[str, Feature], where: str) -> None:
        self.features, self.where = features, where

    def _get(self, name: str, kind: str) -> Feature:
        if name not in self.features:
            have = ", ".join(sorted(self.features)) or "none"
            raise UserError(f"{self.where}: missing feature {name!r} (the record has {have})")
        feature = self.features[name]
        if feature.kind != kind:
            raise UserError(f"{self.where}: feature {name!r} is a {feature.kind} list, expected {kind}")
        return feature

    def has(self, name: str) -> bool:
        return name in self.features

    def raw(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A bytes feature decoded as uint8 (the bytes of all entries joined) of ``shape``."""
        data = b"".join(self._get(name, "bytes").values)
        size = int(np.prod(shape))
        if len(data) != size:
            raise UserError(
                f"{self.where}: feature {name!r} holds {len(data)} bytes, expected "
                f"{size} = {' x '.join(map(str, shape))} uint8"
            )
        return np.frombuffer(data, dtype=np.uint8).reshape(shape)

    def numbers(self, name: str, kind: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        values = self._get(name, kind).values
        if shape is not None:
            if values.size != int(np.prod(shape)):
                raise UserError(
                    f"{self.where}: feature {name!r} has {values.size} values, expected {' x '.join(map(str, shape))}"
                )
            values = values.reshape(shape)
        return values

    def blobs(self, name: str, count: int | None = None) -> list[bytes]:
        values = self._get(name, "bytes").values
        if count is not None and len(values) != count:
            raise UserError(f"{self.where}: feature {name!r} has {len(values)} entries, expected {count}")
        return values


def iter_examples(paths: list[Path], compression: str) -> Iterator[Example]:
    """The Examples of several TFRecord files in order."""
    for path in paths:
        for index, data in enumerate(iter_records(path, compression)):
            where = f"{path}: record {index}"
            yield Example(parse_example(data, where), where)
