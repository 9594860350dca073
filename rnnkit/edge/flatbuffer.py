"""A small, bounds-checked reader of the parts of a .tflite flatbuffer rnnkit needs.

The edge runtime must read metadata, op codes and the embedded checksum without
TensorFlow (and before handing the file to an interpreter, which may crash on a
corrupt one), so this module parses the flatbuffer with `struct` alone. Every
offset is checked against the buffer; a bad one raises `ModelFileError`.

Only the TFLite schema fields used here are read (field numbers from
`tensorflow/compiler/mlir/lite/schema/schema.fbs`):

* Model: 1 operator_codes, 2 subgraphs, 4 buffers, 6 metadata.
* OperatorCode: 0 deprecated_builtin_code, 1 custom_code, 3 builtin_code.
* Buffer: 0 data, 1 offset, 2 size.  Metadata: 0 name, 1 buffer.
* SubGraph: 3 operators.  Operator: 0 opcode_index.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from rnnkit.edge._errors import ModelFileError

FILE_IDENTIFIER = b"TFL3"
CHECKSUM_NAME = "rnnkit_sha256"
METADATA_NAME = "rnnkit_metadata"
CHECKSUM_LENGTH = 64  # hex digits of a SHA-256
CUSTOM_OP_CODE = 32  # BuiltinOperator.CUSTOM


class _Reader:
    """Flatbuffer primitives over a bytes object, every access bounds-checked."""

    def __init__(self, data: bytes):
        self.data = data

    def _check(self, position: int, size: int) -> None:
        if position < 0 or position + size > len(self.data):
            raise ModelFileError(
                "The model file is corrupt or truncated: an offset points outside "
                f"the file. Expected a position below {len(self.data)}. "
                f"Received: position={position}"
            )

    def u8(self, position: int) -> int:
        self._check(position, 1)
        return self.data[position]

    def i8(self, position: int) -> int:
        self._check(position, 1)
        return struct.unpack_from("<b", self.data, position)[0]

    def u16(self, position: int) -> int:
        self._check(position, 2)
        return struct.unpack_from("<H", self.data, position)[0]

    def i32(self, position: int) -> int:
        self._check(position, 4)
        return struct.unpack_from("<i", self.data, position)[0]

    def u32(self, position: int) -> int:
        self._check(position, 4)
        return struct.unpack_from("<I", self.data, position)[0]

    def u64(self, position: int) -> int:
        self._check(position, 8)
        return struct.unpack_from("<Q", self.data, position)[0]

    def field_position(self, table: int, index: int) -> int | None:
        """Absolute position of field `index` of the table at `table`, or None."""
        vtable = table - self.i32(table)
        vtable_size = self.u16(vtable)
        entry = 4 + 2 * index
        if entry + 2 > vtable_size:
            return None
        offset = self.u16(vtable + entry)
        if offset == 0:
            return None
        return table + offset

    def indirect(self, position: int) -> int:
        return position + self.u32(position)

    def table_field(self, table: int, index: int) -> int | None:
        position = self.field_position(table, index)
        return None if position is None else self.indirect(position)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) when absent."""
        position = self.table_field(table, index)
        if position is None:
            return 0, 0
        length = self.u32(position)
        self._check(position + 4, length)
        return position + 4, length

    def table_vector(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index)
        if length > len(self.data) // 4:
            raise ModelFileError(
                "The model file is corrupt: a vector is longer than the file. "
                f"Received: length={length}"
            )
        return [self.indirect(start + 4 * i) for i in range(length)]

    def string(self, table: int, index: int) -> str | None:
        start, length = self.vector(table, index)
        if start == 0:
            return None
        raw = self.data[start : start + length]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ModelFileError(
                f"The model file is corrupt: a name is not UTF-8. Received: {raw[:32]!r}"
            ) from error

    def scalar(self, table: int, index: int, kind: str, default: int = 0) -> int:
        position = self.field_position(table, index)
        if position is None:
            return default
        return getattr(self, kind)(position)


@dataclass
class FlatbufferInfo:
    """What the edge runtime reads from a .tflite file without an interpreter."""

    metadata: dict[str, bytes] = field(default_factory=dict)
    # (start, end) of each metadata entry's bytes in the file, by name.
    metadata_spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    builtin_codes: list[int] = field(default_factory=list)
    custom_codes: list[str] = field(default_factory=list)
    num_subgraphs: int = 0
    num_operators: int = 0


def read_flatbuffer(data: bytes) -> FlatbufferInfo:
    """Parses the metadata and op codes of a .tflite model.

    Args:
        data: the whole file.

    Returns:
        A `FlatbufferInfo`.

    Raises:
        ModelFileError: the bytes are not a well-formed TFLite flatbuffer.
    """
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        raise ModelFileError(
            "Not a TFLite model: the file identifier is missing. Expected the bytes "
            f"{FILE_IDENTIFIER!r} at offset 4 of a file of at least 8 bytes. "
            f"Received: {bytes(data[4:8])!r} in a file of {len(data)} bytes"
        )
    reader = _Reader(data)
    model = reader.indirect(0)
    info = FlatbufferInfo()

    for code in reader.table_vector(model, 1):
        deprecated = reader.scalar(code, 0, "i8")
        builtin = reader.scalar(code, 3, "i32")
        # Files written before builtin_code existed only fill the deprecated byte.
        info.builtin_codes.append(max(deprecated, builtin))
        custom = reader.string(code, 1)
        if custom is not None:
            info.custom_codes.append(custom)

    subgraphs = reader.table_vector(model, 2)
    info.num_subgraphs = len(subgraphs)
    for subgraph in subgraphs:
        operators = reader.table_vector(subgraph, 3)
        for operator in operators:
            index = reader.scalar(operator, 0, "u32")
            if index >= len(info.builtin_codes):
                raise ModelFileError(
                    "The model file is corrupt: an operator names an op code that "
                    f"does not exist. Expected an index below "
                    f"{len(info.builtin_codes)}. Received: {index}"
                )
        info.num_operators += len(operators)

    buffers = reader.table_vector(model, 4)
    for entry in reader.table_vector(model, 6):
        name = reader.string(entry, 0)
        index = reader.scalar(entry, 1, "u32")
        if name is None or index >= len(buffers):
            raise ModelFileError(
                "The model file is corrupt: a metadata entry has no name or names a "
                f"buffer that does not exist. Received: name={name!r}, buffer={index}"
            )
        buffer = buffers[index]
        start, length = reader.vector(buffer, 0)
        if start == 0:
            # Large models keep buffer bytes after the flatbuffer (offset, size).
            start = reader.scalar(buffer, 1, "u64")
            length = reader.scalar(buffer, 2, "u64")
            if start:
                reader._check(start, length)
        info.metadata[name] = bytes(data[start : start + length])
        info.metadata_spans[name] = (start, start + length)
    return info


def embedded_checksum(data: bytes, info: FlatbufferInfo) -> tuple[str, str] | None:
    """(stored, computed) SHA-256 of a file with an rnnkit checksum, else None.

    The stored value is the hash of the file with the checksum's own bytes set
    to zero, so it can live inside the file it protects.
    """
    span = info.metadata_spans.get(CHECKSUM_NAME)
    if span is None:
        return None
    start, end = span
    if end - start != CHECKSUM_LENGTH:
        raise ModelFileError(
            f"The model's embedded checksum has the wrong length. Expected "
            f"{CHECKSUM_LENGTH} bytes. Received: {end - start}"
        )
    stored = data[start:end].decode("ascii", errors="replace")
    digest = hashlib.sha256()
    digest.update(data[:start])
    digest.update(b"\0" * CHECKSUM_LENGTH)
    digest.update(data[end:])
    return stored, digest.hexdigest()
