"""Just enough of a FlatBuffers reader to pull edgeseg's metadata out of a .tflite file.

Pure Python so the runtime needs neither TensorFlow nor the ``flatbuffers`` package. Field
numbers follow tensorflow/lite/schema/schema.fbs (Model: 4 buffers, 6 metadata; Metadata:
0 name, 1 buffer; Buffer: 0 data, 1 offset, 2 size).
"""

from __future__ import annotations

import struct

from edgeseg.core.errors import EdgesegError

TFLITE_IDENTIFIER = b"TFL3"


class FlatbufferError(EdgesegError, ValueError):
    pass


class _Table:
    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable = vtable
        self.vsize = struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return 0
        return struct.unpack_from("<H", self.buf, self.vtable + slot)[0]

    def scalar(self, index: int, fmt: str, default=0):
        off = self._field(index)
        return struct.unpack_from(fmt, self.buf, self.pos + off)[0] if off else default

    def _ref(self, index: int) -> int | None:
        off = self._field(index)
        if not off:
            return None
        at = self.pos + off
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def string(self, index: int) -> str | None:
        at = self._ref(index)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        return self.buf[at + 4:at + 4 + n].decode("utf-8", "replace")

    def bytes_vector(self, index: int) -> bytes | None:
        at = self._ref(index)
        if at is None:
            return None
        n = struct.unpack_from("<I", self.buf, at)[0]
        return bytes(self.buf[at + 4:at + 4 + n])

    def tables(self, index: int) -> list["_Table"]:
        at = self._ref(index)
        if at is None:
            return []
        n = struct.unpack_from("<I", self.buf, at)[0]
        out = []
        for i in range(n):
            slot = at + 4 + 4 * i
            out.append(_Table(self.buf, slot + struct.unpack_from("<I", self.buf, slot)[0]))
        return out


def _root(buf: bytes) -> _Table:
    if len(buf) < 8 or buf[4:8] != TFLITE_IDENTIFIER:
        raise FlatbufferError("not a TFLite model (missing the TFL3 identifier)")
    try:
        return _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    except struct.error as e:
        raise FlatbufferError(f"corrupt TFLite model: {e}") from None


def read_metadata(buf: bytes) -> dict[str, bytes]:
    """All ``Model.metadata`` entries: name -> bytes of the buffer it points at."""
    try:
        model = _root(buf)
        buffers = model.tables(4)
        out = {}
        for entry in model.tables(6):
            name, index = entry.string(0), entry.scalar(1, "<I")
            if name is None or index >= len(buffers):
                continue
            b = buffers[index]
            data = b.bytes_vector(0)
            if data is None:  # large models keep buffer data after the flatbuffer
                offset, size = b.scalar(1, "<Q"), b.scalar(2, "<Q")
                data = bytes(buf[offset:offset + size]) if offset > 1 else b""
            out[name] = data
        return out
    except (struct.error, IndexError) as e:
        raise FlatbufferError(f"corrupt TFLite model: {e}") from None
