"""Reading frames and label files from disk with OpenCV, the way the device does: RGB uint8
images, labels mapped to train ids. Errors name the file.

Label files are read as the tools that make them write them: single-channel id PNGs (8 or 16
bit), indexed (palette) PNGs, whose index is the id whatever colour the palette gives it, and
colour (RGB) masks, which a :class:`~edgeseg.core.labels.LabelMap` with colours decodes.

:func:`probe_image` reads an image's size from its header and checks that the file is whole
(every PNG chunk's checksum and its end, a JPEG's markers up to its end), without decoding it:
what `edgeseg train` checks every frame with before its first step, in a fraction of a decode.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from edgeseg.core.errors import DataError
from edgeseg.core.labels import LabelMap

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"


class UnreadableLabel(DataError):
    """A label file that is missing or cannot be decoded as an image."""


class UnreadableImage(DataError):
    """An image file that is missing, cut short or cannot be decoded."""


def is_image(path: Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (by suffix), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image(p))


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 image; DataError naming the file if it cannot be decoded."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImage(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --- file structure, without decoding ----------------------------------------------------------

def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """``(type, start, length)`` of each chunk of a PNG, checksums verified; DataError saying
    what is wrong at the first damaged or missing byte."""
    view = memoryview(data)
    chunks, at = [], len(PNG_SIGNATURE)
    while True:
        if at + 8 > len(data):
            raise DataError("cut short (no IEND chunk): the file is incomplete")
        length, kind = struct.unpack_from(">I4s", data, at)
        end = at + 8 + length + 4
        if end > len(data):
            raise DataError(f"cut short (in its {kind.decode('latin-1')} chunk): the file is incomplete")
        if zlib.crc32(view[at + 8: at + 8 + length], zlib.crc32(kind)) != struct.unpack_from(">I", data, end - 4)[0]:
            raise DataError(f"damaged (the checksum of its {kind.decode('latin-1')} chunk does not match)")
        chunks.append((kind, at + 8, length))
        if kind == b"IEND":
            return chunks
        at = end


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header, its markers walked up to the scan and its end
    marker looked for after it (a file cut short has none; TensorFlow refuses it)."""
    at, size = 2, None
    while True:
        while at < len(data) and data[at] == 0xFF and at + 1 < len(data) and data[at + 1] == 0xFF:
            at += 1  # fill bytes
        if at + 4 > len(data) or data[at] != 0xFF:
            raise DataError(f"damaged (bad JPEG marker at byte {at})")
        marker = data[at + 1]
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if length < 2 or at + 2 + length > len(data):
            raise DataError("cut short: the file is incomplete")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w = struct.unpack(">HH", data[at + 5:at + 9])
            size = (w, h)
        if marker == 0xDA:  # start of scan: the compressed data follows, up to the end marker
            if size is None:
                raise DataError("damaged (no JPEG frame header before its image data)")
            if data.rfind(b"\xff\xd9", at + 2 + length) < 0:
                raise DataError("cut short (no JPEG end marker): the file is incomplete")
            return size
        at += 2 + length


def probe_image(path: Path) -> tuple[int, int]:
    """``(width, height)`` of an image file, which must be whole: a PNG's chunks (checksums
    included) to its end, a JPEG's markers and its end marker; other kinds are decoded. Does not
    decode PNG or JPEG pixels; UnreadableImage naming the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UnreadableImage(f"cannot read image {path}: {e.strerror or e}") from None
    try:
        if data.startswith(PNG_SIGNATURE):
            chunks = _png_chunks(data)
            kind, start, length = chunks[0]
            if kind != b"IHDR" or length < 8:
                raise DataError("damaged (no PNG header)")
            w, h = struct.unpack(">II", data[start:start + 8])
            if not any(c[0] == b"IDAT" for c in chunks):
                raise DataError("no image data")
            return w, h
        if data.startswith(JPEG_SIGNATURE):
            return _jpeg_size(data)
    except DataError as e:
        raise UnreadableImage(f"cannot read image {path}: {e}") from None
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise UnreadableImage(f"cannot read image {path}: " + ("the file is empty" if not data else "not an image OpenCV decodes"))
    return image.shape[1], image.shape[0]


def _palette_indices(data: bytes, path) -> np.ndarray:
    """The index of each pixel of an indexed (palette) PNG: its palette replaced by a grey ramp
    (entry i = (i, i, i)) and its transparency dropped, then decoded."""
    import cv2

    chunks = _png_chunks(data)
    out = [PNG_SIGNATURE]
    for kind, start, length in chunks:
        if kind == b"tRNS":
            continue
        body = data[start:start + length]
        if kind == b"PLTE":
            body = bytes(v for i in range(length // 3) for v in (i, i, i))
        out.append(struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", zlib.crc32(kind + body)))
    decoded = cv2.imdecode(np.frombuffer(b"".join(out), np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise UnreadableLabel(f"cannot read label {path}: its image data does not decode")
    return decoded[..., 0]


def _why_not(data: bytes) -> str:
    """Why OpenCV could not decode ``data``, as far as can be told."""
    if not data:
        return "the file is empty"
    if data.startswith(PNG_SIGNATURE):
        try:
            _png_chunks(data)
        except DataError as e:
            return str(e)
        return "its PNG data does not decode"
    return "not an image OpenCV decodes"


def read_raw_label(path: Path) -> np.ndarray:
    """A label file as stored: HxW values (an id PNG of 8 or 16 bits, or an indexed PNG's
    indices), or HxWx3 RGB for colour masks."""
    import cv2

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UnreadableLabel(f"cannot read label {path}: {e.strerror or e}") from None
    if data.startswith(PNG_SIGNATURE) and len(data) > 26 and data[12:16] == b"IHDR" and data[25] == 3:
        try:
            return _palette_indices(data, path)
        except UnreadableLabel:
            raise
        except DataError as e:
            raise UnreadableLabel(f"cannot read label {path}: {e}") from None
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if raw is None:
        raise UnreadableLabel(f"cannot read label {path}: {_why_not(data)}")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[..., 0]
    if raw.ndim == 3:
        if raw.shape[2] == 2:  # grey + alpha
            return raw[..., 0]
        raw = cv2.cvtColor(raw[..., :3], cv2.COLOR_BGR2RGB)
        if raw.dtype != np.uint8:
            raise DataError(f"{path}: a 16-bit colour mask; masks are 8-bit colours or 8/16-bit ids")
    return raw


def read_label(path: Path, label_map: LabelMap) -> tuple[np.ndarray, np.ndarray]:
    """Train ids (uint8) and the mask of unknown raw values; DataError naming the file."""
    raw = read_raw_label(path)
    try:
        return label_map.encode(raw)
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
