"""Just enough of a FlatBuffers reader to pull edgeseg's metadata out of a .tflite file.

Pure Python so the runtime needs neither TensorFlow nor the ``flatbuffers`` package. Field
numbers follow tensorflow/lite/schema/schema.fbs (Model: 2 subgraphs, 4 buffers, 6 metadata;
SubGraph: 0 tensors; Tensor: 0 shape, 1 type, 2 buffer, 3 name, 4 quantization, 6 sparsity;
QuantizationParameters: 2 scale; Metadata: 0 name, 1 buffer; Buffer: 0 data, 1 offset, 2 size).
"""

from __future__ import annotations

import math
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

    def _vector(self, index: int) -> tuple[int, int] | None:
        """(where the elements start, how many), or None for an absent field."""
        at = self._ref(index)
        return None if at is None else (at + 4, struct.unpack_from("<I", self.buf, at)[0])

    def bytes_vector(self, index: int) -> bytes | None:
        found = self._vector(index)
        return None if found is None else bytes(self.buf[found[0]:found[0] + found[1]])

    def string(self, index: int) -> str | None:
        data = self.bytes_vector(index)
        return None if data is None else data.decode("utf-8", "replace")

    def numbers(self, index: int, code: str) -> list:
        """A vector of scalars of struct ``code`` (``i`` int32, ``f`` float32); [] when absent."""
        at, n = self._vector(index) or (0, 0)
        return list(struct.unpack_from(f"<{n}{code}", self.buf, at)) if n else []

    def table(self, index: int) -> "_Table | None":
        at = self._ref(index)
        return None if at is None else _Table(self.buf, at)

    def tables(self, index: int) -> list["_Table"]:
        at, n = self._vector(index) or (0, 0)
        slots = (at + 4 * i for i in range(n))
        return [_Table(self.buf, slot + struct.unpack_from("<I", self.buf, slot)[0]) for slot in slots]


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


# bytes per element of TensorType (schema.fbs); INT4 (17) packs two a byte; STRING, RESOURCE and
# VARIANT have no fixed size and are not checked
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}


def _buffer_size(buf: bytes, b: _Table) -> int:
    data = b._vector(0)
    if data is not None:
        return data[1]
    return b.scalar(2, "<Q") if b.scalar(1, "<Q") > 1 else 0


def check_constant_tensors(buf: bytes) -> None:
    """FlatbufferError unless every tensor's buffer exists, its quantization scales are positive
    numbers, and every constant tensor holds as many bytes as its shape and type need. LiteRT maps a constant onto its buffer without this check: a
    tensor pointed at a smaller buffer (one flipped byte of a damaged file) reads past it and
    crashes the process (SIGSEGV) at the first inference."""
    try:
        model = _root(buf)
        buffers = model.tables(4)
        for graph in model.tables(2):
            for i, tensor in enumerate(graph.tables(0)):
                index = tensor.scalar(2, "<I")
                if index >= len(buffers):
                    raise FlatbufferError(f"corrupt TFLite model: tensor {i} ({tensor.string(3)}) points at buffer "
                                          f"{index} of {len(buffers)}")
                quantization = tensor.table(4)
                scales = quantization.numbers(2, "f") if quantization is not None else []
                if not all(math.isfinite(v) and v > 0 for v in scales):  # LiteRT aborts on them (SIGABRT)
                    raise FlatbufferError(f"corrupt TFLite model: tensor {i} ({tensor.string(3)}) has a quantization "
                                          f"scale that is not a positive number ({min(scales):g})")
                size, kind = _buffer_size(buf, buffers[index]), tensor.scalar(1, "<b")
                if size == 0 or kind not in _ELEMENT_BYTES and kind != 17 or tensor._field(6):
                    continue  # not a constant, no fixed element size, or sparse (field 6: its own layout)
                count = 1
                for dim in tensor.numbers(0, "i"):
                    count *= max(dim, 0)
                need = (count + 1) // 2 if kind == 17 else count * _ELEMENT_BYTES[kind]
                if size != need:
                    raise FlatbufferError(f"corrupt TFLite model: tensor {i} ({tensor.string(3)}) has {size} bytes "
                                          f"of data where its shape needs {need}")
    except (struct.error, IndexError) as e:
        raise FlatbufferError(f"corrupt TFLite model: {e}") from None
