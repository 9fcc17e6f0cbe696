"""Facts the machine states about itself in files: the device tree, /proc, sysfs, read under a
root prefix (``EDGESEG_SYSROOT``, ``/`` by default) that tests point at a fake tree."""

from __future__ import annotations

import os
from pathlib import Path


def sysroot() -> Path:
    return Path(os.environ.get("EDGESEG_SYSROOT", "/"))


def read_text(path: Path) -> str:
    """A small system file as text ("" when absent or unreadable; device-tree NULs dropped)."""
    try:
        return path.read_bytes().decode(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def device_model(root: Path | None = None) -> str:
    """The board's name as its device tree gives it ("Raspberry Pi 4 Model B Rev 1.4"), or ""."""
    return read_text((Path(root) if root is not None else sysroot()) / "proc/device-tree/model")
