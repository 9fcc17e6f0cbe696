"""Writing files so that a reader never sees half of one, with the permissions the user's umask
gives (a temporary file from ``mkstemp`` is 0600, which would make every exported model unreadable
to other users and service accounts on a device)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` sets it,
    which races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: Path | str):
    """Yield a temporary path beside ``path``; once the block succeeds it is renamed onto
    ``path`` with the umask's permissions, if it fails it is removed. For writers that want a
    file name (OpenCV, h5py, numpy); the temporary name keeps ``path``'s suffix."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path | str, data, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent))


def write_image_atomic(path: Path | str, rgb) -> None:
    """An RGB (or single-channel) uint8 image, encoded by its suffix (.png, .jpg)."""
    import cv2

    path = Path(path)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"cannot encode an image as {path.suffix or 'an image without suffix'}: {path}")


def check_output_file(path: Path | str | None, what: str) -> None:
    """An output file named by an option: its folder must exist and it must not be a folder
    (ConfigError naming the option), so the run does not fail at its end."""
    from edgeseg.core.errors import ConfigError

    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what}: {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise ConfigError(f"{what}: folder {path.parent} does not exist")


def check_writable_dir(folder: Path | str, what: str) -> Path:
    """Create ``folder`` if needed and check that files can be written in it; OSError is turned
    into one line naming ``what`` (an option) and the folder."""
    from edgeseg.core.errors import ConfigError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as e:
        raise ConfigError(f"{what}: cannot write into {folder}: {e.strerror or e}") from None
    return folder
