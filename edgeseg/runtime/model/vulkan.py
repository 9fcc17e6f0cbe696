"""Why LiteRT's GPU accelerator found no Vulkan adapter, told the way the Vulkan loader knows it.

Dawn (WebGPU) only says "No adapters found". Behind it is one of: no loader (libvulkan.so.1), no
driver manifest (ICD file) where the loader looks, a driver whose library does not load (NVIDIA's
``libGLX_nvidia.so.0`` without glvnd's ``libGLdispatch.so.0``), or a device that Dawn refuses for
a missing Vulkan feature (Debian 12's lavapipe: "Vulkan shaderUniform*ArrayDynamicIndexing
required"). :func:`diagnose` checks them in that order, by the loader's own search rules, and
returns one line with the fix where one is known.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
from pathlib import Path

LOADER = "libvulkan.so.1"
# the Debian / Ubuntu / Pi OS package that brings a library a Vulkan driver needs
PACKAGE_OF = {"libvulkan.so.1": "libvulkan1", "libGLdispatch.so.0": "libglvnd0", "libGLX.so.0": "libglx0",
              "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libGLESv2.so.2": "libgles2",
              "libOpenGL.so.0": "libopengl0", "libLLVM": "libllvm (mesa-vulkan-drivers)"}
DRIVER_HINT = "Pi OS / Debian: sudo apt install mesa-vulkan-drivers; NVIDIA: its driver"


def _load_error(library: str) -> str | None:
    """dlopen's complaint about ``library``, or None when it loads."""
    try:
        ctypes.CDLL(library, mode=os.RTLD_LAZY | os.RTLD_LOCAL)
    except OSError as e:
        return str(e)
    return None


def _env_paths(name: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(name, "").split(os.pathsep) if p]


def icd_files() -> tuple[list[Path], str]:
    """The driver manifests the loader would read, and where it looked (for the message)."""
    chosen = next((var for var in ("VK_DRIVER_FILES", "VK_ICD_FILENAMES") if _env_paths(var)), None)
    if chosen:
        places, where = _env_paths(chosen), f"{chosen}={os.environ[chosen]}"
    else:
        home = Path(os.environ.get("HOME", "/nonexistent"))
        config = [Path(os.environ.get("XDG_CONFIG_HOME", home / ".config"))] + \
            (_env_paths("XDG_CONFIG_DIRS") or [Path("/etc/xdg")]) + [Path("/etc")]
        data = [Path(os.environ.get("XDG_DATA_HOME", home / ".local/share"))] + \
            (_env_paths("XDG_DATA_DIRS") or [Path("/usr/local/share"), Path("/usr/share")])
        places = [d / "vulkan/icd.d" for d in config + data]
        where = ", ".join(str(p) for p in places if not str(p).startswith(str(home)))
    places += _env_paths("VK_ADD_DRIVER_FILES")
    found = []
    for place in places:
        if place.is_dir():
            found += sorted(place.glob("*.json"))
        elif place.is_file():
            found.append(place)
    return found, where


def _driver_name(manifest: Path, library: str) -> str:
    text = f"{manifest.name} {library}".lower()
    for key, name in (("nvidia", "NVIDIA's Vulkan driver"), ("lvp", "Mesa's software Vulkan driver (lavapipe)"),
                      ("broadcom", "Mesa's Vulkan driver for the Pi (v3dv)"), ("radeon", "Mesa's radv driver"),
                      ("intel", "Mesa's Intel Vulkan driver")):
        if key in text:
            return name
    return "the Vulkan driver"


def _missing_dependency(error: str) -> str:
    """"libGLdispatch.so.0 not found (sudo apt install libglvnd0)" from dlopen's message."""
    found = re.search(r"([\w.+-]+\.so[\w.]*): cannot open shared object file", error)
    if not found:
        return error.strip()[:160]
    name = found.group(1)
    package = next((p for lib, p in PACKAGE_OF.items() if name.startswith(lib)), None)
    return f"{name} not found" + (f" (sudo apt install {package})" if package else "")


def driver_load_failures(manifests: list[Path]) -> list[str]:
    """One phrase for each manifest whose driver library does not load."""
    failures = []
    for manifest in manifests:
        try:
            library = json.loads(manifest.read_text())["ICD"]["library_path"]
        except (OSError, ValueError, KeyError, TypeError):
            failures.append(f"{manifest} is not a Vulkan driver manifest")
            continue
        path = library if "/" not in library or library.startswith("/") else str(manifest.parent / library)
        error = _load_error(path)
        if error is not None:
            failures.append(f"{_driver_name(manifest, library)} {library} failed to load: {_missing_dependency(error)}")
    return failures


def refused_feature(text: str) -> str | None:
    """The Vulkan feature Dawn says the device lacks, from LiteRT's log."""
    found = re.search(r"Vulkan (\S+) required", text)
    return found.group(1) if found else None


def diagnose(text: str = "") -> str | None:
    """Why there is no adapter, in a few words with the fix (``text``: what LiteRT and Dawn said),
    or None when the loader and its drivers look sound."""
    error = _load_error(LOADER)
    if error is not None or "libvulkan.so" in text:
        return f"no Vulkan loader ({LOADER} is not installed: sudo apt install libvulkan1)"
    manifests, where = icd_files()
    if not manifests:
        return f"no Vulkan driver: no driver manifest (ICD file) in {where} ({DRIVER_HINT})"
    failures = driver_load_failures(manifests)
    feature = refused_feature(text)
    if feature:
        failures.append(f"the Vulkan device lacks {feature}, which WebGPU (Dawn) requires (a newer driver may have it)")
    return "; ".join(failures) or None
