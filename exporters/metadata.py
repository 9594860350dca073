"""Metadata and checksum inside the .tflite flatbuffer.

Two entries are added to the model's `metadata` list, each pointing at a buffer:

* `rnnkit_metadata`: the caller's metadata plus rnnkit's own (version, form,
  inputs, outputs, streaming state layout), as UTF-8 JSON.
* `rnnkit_sha256`: 64 hex digits, the SHA-256 of the whole file computed with
  these 64 bytes set to zero. The edge loader zeroes them again, hashes and
  compares, so a file carries its own checksum and still verifies when moved
  without its manifest.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from rnnkit.edge.flatbuffer import (
    CHECKSUM_LENGTH,
    CHECKSUM_NAME,
    METADATA_NAME,
    read_flatbuffer,
)
from rnnkit.errors import ExportError


def embed_metadata(model_bytes: bytes, metadata: dict) -> bytes:
    """Returns `model_bytes` with the rnnkit metadata and checksum embedded."""
    from rnnkit.exporters.compact import load_model

    return pack_with_metadata(load_model(model_bytes), metadata)


def pack_with_metadata(model, metadata: dict) -> bytes:
    """Packs a model tree (`compact.load_model`) with metadata and checksum.

    Args:
        model: the flatbuffer's object tree; its metadata list is changed.
        metadata: JSON-serializable dict.

    Returns:
        The new flatbuffer bytes.
    """
    from rnnkit.exporters.compact import pack_model
    from tensorflow.lite.python import schema_py_generated as schema

    try:
        payload = json.dumps(metadata, sort_keys=True).encode("utf-8")
    except TypeError as error:
        raise ExportError(
            "`metadata` must be JSON-serializable (str, numbers, lists, dicts). "
            f"Received: {error}"
        ) from error

    model.metadata = [
        entry
        for entry in (model.metadata or [])
        if entry.name not in (METADATA_NAME.encode(), CHECKSUM_NAME.encode())
    ]
    for name, data in (
        (METADATA_NAME, payload),
        (CHECKSUM_NAME, b"\0" * CHECKSUM_LENGTH),
    ):
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    packed = bytearray(pack_model(model))

    start, end = read_flatbuffer(bytes(packed)).metadata_spans[CHECKSUM_NAME]
    digest = hashlib.sha256(bytes(packed)).hexdigest()
    packed[start:end] = digest.encode("ascii")
    return bytes(packed)
