"""Coral's ``edgetpu_compiler`` on the int8 file, when it is installed (``--target edgetpu``)."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from edgeseg.core.errors import ExportError

log = logging.getLogger("edgeseg")


def edgetpu_path(int8: Path) -> Path:
    """Where edgetpu_compiler writes the compiled model of ``int8``: beside it, ``_edgetpu`` added."""
    return int8.with_name(f"{int8.stem}_edgetpu.tflite")


def compile_for_edgetpu(int8: Path | None, out_dir: Path) -> dict:
    """The int8 file compiled by Coral's ``edgetpu_compiler`` when it is on PATH (x86-64 Linux,
    Debian package ``edgetpu-compiler``): ``NAME_edgetpu.tflite`` and the compiler's log beside it.
    Otherwise the report says what the file still needs; an uncompiled file runs on the CPU."""
    import shutil
    import subprocess

    if int8 is None:
        return {"compiled": False, "why": "no int8 file to compile"}
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        why = (f"edgetpu_compiler is not installed: the file is not Edge TPU code until it has run "
               f"(edgetpu_compiler -s -o {out_dir} {int8})")
        log.warning("Edge TPU: %s", why)
        return {"compiled": False, "why": why}
    target = edgetpu_path(int8)  # plan_export refused it already if it existed without --force
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".edgetpu-") as tmp:
        done = subprocess.run([compiler, "-s", "-o", tmp, str(int8)], capture_output=True, text=True)
        made = Path(tmp) / target.name
        if done.returncode != 0 or not made.is_file():
            said = (done.stderr or done.stdout).strip().splitlines()
            raise ExportError(f"edgetpu_compiler failed on {int8.name}: {said[-1] if said else f'exit {done.returncode}'}")
        made.replace(target)
        log_file = next(Path(tmp).glob("*.log"), None)
        if log_file is not None:
            log_file.replace(out_dir / log_file.name)
    on_tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", done.stdout)
    on_cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", done.stdout)
    return {"compiled": True, "path": str(target), "compiler": compiler,
            "ops_on_edgetpu": int(on_tpu.group(1)) if on_tpu else None,
            "ops_on_cpu": int(on_cpu.group(1)) if on_cpu else None}
