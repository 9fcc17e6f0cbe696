"""Whether this CPU can load LiteRT's GPU accelerator library at all.

The aarch64 ``libLiteRtWebGpuAccelerator.so`` of ``ai-edge-litert`` is built for ARMv8.2 with
crypto, and checks the CPU as it loads: on a processor without one of those features it prints
"FATAL ERROR: This binary was compiled with lse enabled, but this feature is not available on
this processor" and aborts the whole process (SIGILL, exit 132), before anything can be caught.
A Raspberry Pi 4 / 400 / CM4 (Cortex-A72) and a Pi Zero 2 W / Pi 3 (Cortex-A53) are such
processors. So the features are compared here first, from the kernel's HWCAP bits (what qemu-user
reports for the CPU model it emulates, too), and a CPU that lacks any gets one line instead of an
abort. The x86-64 library carries no such checks.
"""

from __future__ import annotations

import ctypes
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from edgeseg.core.system import device_model, read_text, sysroot

# What the library demands, read from ai-edge-litert 2.3.0's aarch64 wheel
# (ai_edge_litert-2.3.0-cp311-cp311-manylinux_2_27_aarch64.whl): `strings
# ai_edge_litert/libLiteRtWebGpuAccelerator.so` has one "This binary was compiled with X enabled"
# check for each X here (upstream: google-ai-edge/LiteRT #5675, #6083). Recheck a new wheel with
# `tools/maintenance/litert_cpu_features.py`; `make test-arm64` reads the installed library and
# fails when it demands something else.
GPU_ACCELERATOR_NEEDS = ("aes", "crc", "dotprod", "fp16", "lse", "rcpc", "rdm", "sha2")
REQUIREMENT_PATTERN = re.compile(rb"This binary was compiled with (\w+) enabled, but this feature is not available")

# each of those as Linux's aarch64 HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h) and the names
# /proc/cpuinfo gives them; fp16 is both the scalar and the vector half-precision bit
HWCAP_BITS = {"aes": (3,), "sha2": (6,), "crc": (7,), "lse": (8,), "fp16": (9, 10), "rdm": (12,), "rcpc": (15,),
              "dotprod": (20,)}
CPUINFO_NAMES = {"aes": ("aes",), "sha2": ("sha2",), "crc": ("crc32",), "lse": ("atomics",),
                 "fp16": ("fphp", "asimdhp"), "rdm": ("asimdrdm",), "rcpc": ("lrcpc",), "dotprod": ("asimddp",)}
AT_HWCAP = 16
# "CPU part" of Arm's cores on the boards edgeseg targets (and their neighbours)
ARM_CORES = {0xD03: "Cortex-A53", 0xD04: "Cortex-A35", 0xD05: "Cortex-A55", 0xD07: "Cortex-A57", 0xD08: "Cortex-A72",
             0xD09: "Cortex-A73", 0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77",
             0xD41: "Cortex-A78", 0xD42: "Cortex-A78AE", 0xD4B: "Cortex-A78C", 0xD44: "Cortex-X1"}


@dataclass(frozen=True)
class CpuGap:
    """What this CPU lacks of what the GPU accelerator library needs (``missing`` empty: none)."""

    name: str
    missing: tuple[str, ...]

    @property
    def message(self) -> str:
        return (f"LiteRT's GPU accelerator needs an ARMv8.2 CPU ({', '.join(GPU_ACCELERATOR_NEEDS)}); "
                f"this {self.name} lacks {', '.join(self.missing)}")


def _hwcap() -> int | None:
    try:
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = [ctypes.c_ulong]
        return int(libc.getauxval(AT_HWCAP)) or None
    except (OSError, AttributeError):
        return None


def missing_features(hwcap: int | None, cpuinfo: str) -> tuple[str, ...]:
    """The needed features absent from the HWCAP bits (or, without them, from /proc/cpuinfo)."""
    if hwcap is not None:
        return tuple(f for f in GPU_ACCELERATOR_NEEDS if not all(hwcap >> bit & 1 for bit in HWCAP_BITS[f]))
    found = re.search(r"^Features\s*:(.*)$", cpuinfo, re.M)
    have = set(found.group(1).split()) if found else set()
    return tuple(f for f in GPU_ACCELERATOR_NEEDS if not set(CPUINFO_NAMES[f]) <= have)


def cpu_name(cpuinfo: str, model: str = "") -> str:
    """"Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72)", "Cortex-A53", or "CPU"."""
    part = re.search(r"^CPU part\s*:\s*(0x[0-9a-fA-F]+)", cpuinfo, re.M)
    core = ARM_CORES.get(int(part.group(1), 16)) if part else None
    if model and core:
        return f"{model} ({core})"
    return model or core or "CPU"


def gpu_accelerator_cpu_gap(machine: str | None = None, hwcap=..., cpuinfo: str | None = None,
                            root: Path | None = None) -> CpuGap | None:
    """The gap when this is an aarch64 CPU that would make the accelerator library abort, else
    None. The arguments stand in for the machine in tests (``hwcap=None``: no auxiliary vector,
    /proc/cpuinfo decides)."""
    machine = machine or platform.machine()
    if machine not in ("aarch64", "arm64"):
        return None
    root = Path(root) if root is not None else sysroot()
    if cpuinfo is None:  # a fake board tree may give its own; the CPU itself (or qemu's) otherwise
        cpuinfo = read_text(root / "proc/cpuinfo") or read_text(Path("/proc/cpuinfo"))
    missing = missing_features(_hwcap() if hwcap is ... else hwcap, cpuinfo)
    return CpuGap(cpu_name(cpuinfo, device_model(root)), missing) if missing else None


def library_needs(library: bytes) -> tuple[str, ...]:
    """The CPU features a LiteRT library checks for as it loads (its fail-fast strings)."""
    return tuple(sorted({m.decode() for m in REQUIREMENT_PATTERN.findall(library)}))
