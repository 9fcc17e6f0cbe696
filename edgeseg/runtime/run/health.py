"""Device health next to the FPS: CPU temperature and frequency from sysfs, a Raspberry Pi's
throttling flags (``vcgencmd get_throttled``) and a Jetson's power mode (``nvpmodel -q``).
A board that runs slower than its benchmark is usually hot, under-powered or in a low power mode.
Read under the same root prefix as :mod:`edgeseg.runtime.sources.board`, so tests use a fake tree and
fake commands on PATH."""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeseg.core.system import sysroot

log = logging.getLogger("edgeseg")

# vcgencmd get_throttled bits (Raspberry Pi documentation): now (0-3) and since boot (16-19)
THROTTLE_NOW = {0: "under-voltage", 1: "frequency capped", 2: "throttled", 3: "soft temperature limit"}


@dataclass
class Health:
    cpu_temp_c: float | None = None
    cpu_mhz: float | None = None
    throttled: list | None = None  # what limits the Pi now (empty: nothing); None: unknown
    throttled_since_boot: bool | None = None
    power_mode: str | None = None

    def line(self) -> str:
        parts = []
        if self.cpu_temp_c is not None:
            parts.append(f"{self.cpu_temp_c:.0f}C")
        if self.cpu_mhz is not None:
            parts.append(f"{self.cpu_mhz:.0f}MHz")
        if self.throttled:
            parts.append("THROTTLED: " + ", ".join(self.throttled))
        if self.power_mode:
            parts.append(f"mode {self.power_mode}")
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _number(path: Path) -> float | None:
    try:
        return float(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cpu_temperature(root: Path) -> float | None:
    """Degrees C of the CPU thermal zone (``cpu-thermal`` on a Pi, ``cpu-thermal``/``CPU-therm`` on
    a Jetson), else the hottest zone."""
    zones = []
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        milli = _number(zone / "temp")
        if milli is None:
            continue
        kind = (zone / "type").read_text().strip().lower() if (zone / "type").is_file() else ""
        zones.append((kind.startswith("cpu"), milli / 1000))
    cpu = [t for is_cpu, t in zones if is_cpu]
    return max(cpu or [t for _, t in zones], default=None)


def cpu_frequency(root: Path) -> float | None:
    """MHz of the fastest core now (scaling_cur_freq is in kHz)."""
    khz = [_number(p) for p in (root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq")]
    khz = [k for k in khz if k is not None]
    return max(khz) / 1000 if khz else None


def _command(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=2.0).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def throttling() -> tuple[list | None, bool | None]:
    """(what limits the Pi now, whether anything did since boot), from ``vcgencmd``."""
    out = _command(["vcgencmd", "get_throttled"])
    if not out or "=" not in out:
        return None, None
    try:
        bits = int(out.strip().split("=", 1)[1], 16)
    except ValueError:
        return None, None
    return [name for bit, name in THROTTLE_NOW.items() if bits >> bit & 1], bool(bits >> 16 & 0xF)


def power_mode() -> str | None:
    """A Jetson's nvpmodel mode name (``NV Power Mode: MAXN``)."""
    out = _command(["nvpmodel", "-q"])
    for line in (out or "").splitlines():
        if "Power Mode" in line and ":" in line:
            return line.split(":", 1)[1].strip()
    return None


class HealthMonitor:
    """Samples health when asked (the run loop asks with each status line), keeps the hottest
    temperature seen, and warns once when throttling starts."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else sysroot()
        self.latest = Health()
        self.max_temp_c: float | None = None
        self._warned = False

    def sample(self) -> Health:
        throttled, since_boot = throttling()
        health = Health(cpu_temperature(self.root), cpu_frequency(self.root), throttled, since_boot, power_mode())
        if health.cpu_temp_c is not None:
            self.max_temp_c = max(self.max_temp_c or health.cpu_temp_c, health.cpu_temp_c)
        if health.throttled and not self._warned:
            log.warning("the board is limiting itself (%s): FPS will drop; check the power supply and "
                        "cooling", ", ".join(health.throttled))
            self._warned = True
        self.latest = health
        return health

    def summary(self) -> dict:
        out = self.latest.to_dict()
        if self.max_temp_c is not None:
            out["max_cpu_temp_c"] = self.max_temp_c
        return out
