"""Finding Sony's IMX500 toolchain: its own virtual environment (``make imx500-env``: TensorFlow
2.15, MCT, ``imxconv-tf``) and Java >= 17, or one line saying how to make them. Imports no
TensorFlow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeseg.core.errors import ExportError

ENV_VAR = "EDGESEG_IMX500_VENV"
DEFAULT_VENV = ".venv-imx500"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
CONVERT_SCRIPT = Path(__file__).with_name("convert.py")
MIN_JAVA = 17


@dataclass(frozen=True)
class Toolchain:
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def imxconv(self) -> Path:
        return self.venv / "bin" / "imxconv-tf"


def how_to_make() -> str:
    return (f"make imx500-env in an edgeseg checkout, or: python3.11 -m venv {DEFAULT_VENV} && "
            f"{DEFAULT_VENV}/bin/pip install -r {REQUIREMENTS} (and sudo apt install openjdk-17-jre-headless); "
            f"elsewhere, point {ENV_VAR} at it")


def candidates() -> list[Path]:
    """Where the environment is looked for: ``$EDGESEG_IMX500_VENV``, else ``.venv-imx500`` in the
    working directory and in the checkout edgeseg runs from."""
    if os.environ.get(ENV_VAR):
        return [Path(os.environ[ENV_VAR])]
    return list(dict.fromkeys([Path.cwd() / DEFAULT_VENV, Path(__file__).resolve().parents[3] / DEFAULT_VENV]))


def find_toolchain() -> Toolchain:
    """The IMX500 environment and Java, or an ExportError in one line saying how to make them."""
    places = candidates()
    found = next((Toolchain(p) for p in places if Toolchain(p).imxconv.is_file() and Toolchain(p).python.is_file()),
                 None)
    if found is None:
        where = " or ".join(str(p) for p in places)
        raise ExportError(f"Sony's IMX500 toolchain is not installed (no imxconv-tf in {where}): {how_to_make()}")
    java = java_version()
    if java is None or java < MIN_JAVA:
        said = "no java on PATH" if java is None else f"java {java} on PATH"
        raise ExportError(f"the IMX500 converter needs Java >= {MIN_JAVA} ({said}): sudo apt install openjdk-17-jre-headless")
    return found


def java_version() -> int | None:
    """The major version of the ``java`` on PATH, None without one."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        said = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', said)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def clean_env() -> dict:
    """The environment for the toolchain's processes: no PYTHONPATH of the caller's (it would put
    the training install's TensorFlow before the toolchain's own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "TF_USE_LEGACY_KERAS")}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env
