"""Which board this is and what cameras it has, read from the device tree, the Tegra release file
and sysfs under a root prefix (``EDGESEG_SYSROOT``, ``/`` by default) that tests point at a fake
tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeseg.core.system import device_model, read_text, sysroot


@dataclass(frozen=True)
class Board:
    """``kind``: ``raspberrypi``, ``jetson`` or None (anything else); ``model``: as the board
    names itself."""

    kind: str | None
    model: str

    @property
    def name(self) -> str:
        return self.model or "this machine"


def detect_board(root: Path | None = None) -> Board:
    root = Path(root) if root is not None else sysroot()
    model = device_model(root)
    if (root / "etc/nv_tegra_release").is_file() or "jetson" in model.lower():
        return Board("jetson", model or "NVIDIA Jetson")
    if model.lower().startswith("raspberry pi"):
        return Board("raspberrypi", model)
    return Board(None, model)


def usb_cameras(root: Path | None = None) -> list[str]:
    """``/dev/videoN`` of the USB (UVC) cameras: on a Pi or Jetson the other video nodes belong to
    the CSI pipeline, the codecs or the ISP, and give OpenCV no usable frames."""
    root = Path(root) if root is not None else sysroot()
    found = []
    for node in sorted((root / "sys/class/video4linux").glob("video*")):
        if "DRIVER=uvcvideo" in read_text(node / "device/uevent"):
            found.append(f"/dev/{node.name}")
    return found


def csi_only(board: Board, root: Path | None = None) -> bool:
    """A Pi or Jetson without a USB camera: ``--camera 0`` means its CSI camera."""
    return board.kind is not None and not usb_cameras(root)
