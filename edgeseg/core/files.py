"""Writing files so that a reader never sees half of one, with the permissions the user's umask
gives (a temporary file from ``mkstemp`` is 0600, which would make every exported model unreadable
to other users and service accounts on a device).

A file is written under a temporary name beside its final one, ``.STEM.XXXXXXXX.tmp.SUFFIX``,
while its writer holds a lock on it; once complete it is synced to disk and renamed. A writer
killed (``kill -9``, a power cut) leaves the temporary without a lock: the next start of the
command that made it removes it (:func:`sweep_temporaries`). A full disk, a read-only folder or a
quota is an :class:`OutputError` naming the file and the free space, in one line.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgeseg.core.errors import EdgesegError

log = logging.getLogger("edgeseg")

# what the disk or the folder refuses (not a bug of the writer): one line, not a traceback
FULL_OR_REFUSED = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}
TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}\.tmp(?P<suffix>\.[^.]+)?$")


class OutputError(EdgesegError, OSError):
    """A file that cannot be written (disk full, read-only folder, quota): the file and the free
    space, in one line. An OSError too, for the code that goes on without the file."""


def free_space(path: Path | str) -> str:
    """``'212 KB free in /mnt/card'``: the space left to a normal user on ``path``'s filesystem."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return "free space unknown"
    free = st.f_bavail * st.f_frsize
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if free >= size:
            return f"{free / size:.1f} {unit} free in {folder if folder.is_dir() else folder.parent}"
    return f"{free} bytes free in {folder if folder.is_dir() else folder.parent}"


def write_error(path: Path | str, error: OSError) -> OutputError:
    """``cannot write PATH: No space left on device (212 KB free in /mnt/card)``."""
    return OutputError(f"cannot write {path}: {error.strerror or error} ({free_space(Path(path).parent)})")


def is_refused(error: BaseException) -> bool:
    """Whether ``error`` is the disk or the folder refusing a write (full, read-only, quota)."""
    return isinstance(error, OSError) and error.errno in FULL_OR_REFUSED


def sync_folder(folder: Path | str) -> None:
    """Make a rename in ``folder`` survive a power cut (its directory entry on disk)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
def atomic_path(path: Path | str, durable: bool = True, locked: bool = True):
    """Yield a temporary path beside ``path``; once the block succeeds it is synced to disk
    (``durable``; not for a file a frame), given the umask's permissions and renamed onto
    ``path``; if it fails it is removed. For writers that want a file name (OpenCV, h5py,
    numpy); the temporary name keeps ``path``'s suffix. The disk or folder refusing the write
    is an :class:`OutputError` naming ``path`` and the free space. ``locked`` False: for a
    writer that locks the file itself (HDF5 takes an exclusive ``flock``); its temporary then
    looks abandoned to :func:`sweep_temporaries` while it is written."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as e:
        raise write_error(path, e) from None
    tmp = Path(tmp)
    try:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a live writer's mark: sweep_temporaries leaves it alone
        yield tmp
        if durable:
            os.fsync(fd)  # the same inode the writer wrote through its own descriptor
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
        if durable:
            sync_folder(path.parent)
    except OSError as e:
        # a refused write of this file (an error naming another file is the block's own)
        if is_refused(e) and e.filename in (None, str(tmp), str(path)):
            raise write_error(path, e) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)


def sweep_temporaries(folder: Path | str, stands_for=None) -> list[Path]:
    """Remove the temporaries :func:`atomic_path` left in ``folder`` when their writer died
    (no process holds their lock); ``stands_for(final_name)`` picks those of the files a command
    writes (None: all). Each removal is said in one line; the removed paths are returned."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = TEMPORARY.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        if stands_for is not None and not stands_for(match["stem"] + (match["suffix"] or "")):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its writer is alive
        try:
            size = os.fstat(fd).st_size
            os.unlink(entry.path)
        except OSError as e:
            log.warning("cannot remove %s, left by an interrupted run: %s", entry.path, e.strerror or e)
            continue
        finally:
            os.close(fd)
        removed.append(Path(entry.path))
        log.warning("removed %s (%s), left by an interrupted run", entry.path, _size(size))
    return removed


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} bytes"


def write_bytes_atomic(path: Path | str, data: bytes, durable: bool = True) -> None:
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path | str, data, indent: int | None = 2) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent))


def write_image_atomic(path: Path | str, rgb, durable: bool = True) -> None:
    """An RGB (or single-channel) uint8 image, encoded by its suffix (.png, .jpg). Encoded in
    memory first: a full disk is then an OSError with its errno, not OpenCV's False."""
    import cv2

    path = Path(path)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    try:
        ok, encoded = cv2.imencode(path.suffix, image) if path.suffix else (False, None)
    except cv2.error:
        ok = False
    if not ok:
        raise OSError(f"cannot encode an image as {path.suffix or 'an image without suffix'}: {path}")
    write_bytes_atomic(path, encoded.tobytes(), durable)


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
