#!/usr/bin/env python3
"""Which CPU features LiteRT's aarch64 GPU accelerator library checks for as it loads, read from
a wheel of ai-edge-litert (downloaded for aarch64 by pip, or a .whl / .so given), against
``edgeseg.runtime.model.cpu_features.GPU_ACCELERATOR_NEEDS``. Run it when the wheel changes:

    .venv-runtime/bin/python tools/maintenance/litert_cpu_features.py            # the installed version
    .venv-runtime/bin/python tools/maintenance/litert_cpu_features.py 2.4.0      # another version
    .venv-runtime/bin/python tools/maintenance/litert_cpu_features.py path/to/ai_edge_litert-...aarch64.whl

Exits 1 when the library asks for something else than edgeseg's list says.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgeseg.runtime.model.cpu_features import GPU_ACCELERATOR_NEEDS, library_needs  # noqa: E402

LIBRARY = "ai_edge_litert/libLiteRtWebGpuAccelerator.so"


def aarch64_wheel(version: str, folder: Path) -> Path:
    platforms = [a for n in (17, 24, 27, 28, 31, 34, 35, 39) for a in ("--platform", f"manylinux_2_{n}_aarch64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", *platforms,
                    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                    f"ai-edge-litert=={version}", "-d", str(folder)], check=True)
    return next(folder.glob("ai_edge_litert-*.whl"))


def library_bytes(source: Path) -> bytes:
    if source.suffix == ".so":
        return source.read_bytes()
    with zipfile.ZipFile(source) as wheel:
        return wheel.read(LIBRARY)


def main(argv: list[str]) -> int:
    given = argv[0] if argv else metadata.version("ai-edge-litert")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(given) if Path(given).is_file() else aarch64_wheel(given, Path(tmp))
        needs = library_needs(library_bytes(source))
    print(f"{source.name}: {LIBRARY} checks for {', '.join(needs) or 'nothing'}")
    print(f"edgeseg's GPU_ACCELERATOR_NEEDS: {', '.join(GPU_ACCELERATOR_NEEDS)}")
    if needs != tuple(sorted(GPU_ACCELERATOR_NEEDS)):
        print("they differ: update edgeseg/runtime/model/cpu_features.py (and its comment: which wheel)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
