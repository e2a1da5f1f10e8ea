"""A ClickMe reader that needs no TensorFlow: TFRecord framing and tf.train.Example parsing.

TFRecord: each record is [uint64 length][uint32 CRC of length][data][uint32 CRC of data]
(little-endian; CRCs are not checked). `data` is a tf.train.Example protobuf:
Example{1: Features{1: map<string, Feature>}}, Feature{1: BytesList, 2: FloatList, 3: Int64List}.
ClickMe records hold `image` (encoded JPEG/PNG), `heatmap` (an encoded image, or raw float32
H x W) and `label` (int64).
"""
from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image


def read_tfrecords(path: str | Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while header := f.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            yield f.read(length)
            f.read(4)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes | int]]:
    """(field number, wire type, payload) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            yield number, wire, buf[pos : pos + length]
            pos += length
        elif wire == 5:
            yield number, wire, buf[pos : pos + 4]
            pos += 4
        elif wire == 1:
            yield number, wire, buf[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _feature_value(buf: bytes):
    for kind, _, payload in _fields(buf):
        items = list(_fields(payload))
        if kind == 1:
            return [v for _, _, v in items]
        if kind == 2:  # packed floats, or one float per field
            raw = b"".join(v if w == 2 else v for _, w, v in items)
            return list(np.frombuffer(raw, "<f4"))
        if kind == 3:
            values = []
            for _, wire, v in items:
                if wire == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(x)
                else:
                    values.append(v)
            return values
    return []


def parse_example(record: bytes) -> dict[str, list]:
    features = {}
    for number, _, features_msg in _fields(record):
        if number != 1:
            continue
        for _, _, entry in _fields(features_msg):
            name, value = None, None
            for n, _, v in _fields(entry):
                if n == 1:
                    name = v.decode()
                elif n == 2:
                    value = _feature_value(v)
            features[name] = value
    return features


def _decode_map(data: bytes, shape_hint: tuple[int, int] | None) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("L"), dtype=np.float32)
    except Exception:
        values = np.frombuffer(data, "<f4")
        side = int(round(np.sqrt(values.size)))
        return values.reshape(shape_hint or (side, side))


def read_clickme(path: str | Path) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """(RGB image uint8 HxWx3, heatmap float HxW, label) per record."""
    for record in read_tfrecords(path):
        f = parse_example(record)
        with Image.open(io.BytesIO(f["image"][0])) as im:
            image = np.asarray(im.convert("RGB"))
        yield image, _decode_map(f["heatmap"][0], image.shape[:2]), int(f["label"][0])
