#!/usr/bin/env python3
"""`make test-arm64`: the device install as the boards have it, without the hardware.

1. Debian arm64 roots from Debian's packages (mmdebstrap --variant=extract: no chroot, no binfmt):
   **bookworm** (Python 3.11, apt's numpy 1.24.2: Raspberry Pi OS Bookworm's base) and **trixie**
   (Python 3.13, numpy 2.2.4: Pi OS Trixie's). Each holds what a Pi's system has beside our
   install: apt's numpy, a C extension built on it (``python3-numexpr``, standing in for
   Picamera2's simplejpeg) and a stand-in ``picamera2`` module that imports it.
2. Each board's **CPU model** under qemu-user (Debian 13's 10.x: Debian 12's 7.2 segfaults in
   LiteRT), not qemu's default ``max`` (every ARMv8/v9 feature, which no board has): Cortex-A72
   (Pi 4 / 400 / CM4, ARMv8.0), Cortex-A76 (Pi 5; the nearest qemu has to a Jetson Orin's A78AE),
   Cortex-A53 (Pi Zero 2 W, Pi 3), and ``max`` as one more row. XNNPACK picks its kernels by the
   CPU's features, so each row's int8 masks are compared with x86's on the same pixels.
3. The README's Pi install in each root, under the CPU of the first row that uses it: a
   ``--system-site-packages`` venv, the system-numpy constraint file and ``pip install`` of
   edgeseg's wheel, pip resolving the aarch64 wheels for itself. The exact equivalent of
   ``python3 -m venv``: the venv is made with ``--copies --without-pip`` and pip is bootstrapped
   from Debian's own pip wheel, as ensurepip does, because qemu-user cannot start the venv's
   aarch64 python from a subprocess (no binfmt here).
4. Checks per CPU model: numpy is still the system one and the stand-in Picamera2 imports,
   ``edgeseg run --camera csi`` on a fake Pi takes the Picamera2 path; ``edgeseg run``
   (--save-masks, --compare) on PNG frames (and on a video), ``edgeseg benchmark``, with the same
   runs on x86 in .venv-runtime: on the same pixels the masks must be identical (a video's frames
   are what each platform's FFmpeg decodes: those masks are compared, the frames hashed). And
   ``--delegate gpu``: on a CPU without the features LiteRT's aarch64 GPU accelerator library
   demands (A72, A53) one line and masks from the CPU, where the same library loaded without
   edgeseg's check kills the process (shown once, on the A72); on the A76 and ``max`` the library
   loads (the roots have no Vulkan: the one fallback line). The features the installed library
   checks for must be edgeseg's list (``cpu_features.GPU_ACCELERATOR_NEEDS``). On the A72 and A76:
   the AI Camera path (``edgeseg run network.rpk --camera csi``) against the stand-in for
   Picamera2's IMX500 class of tests/runtime_only/test_imx500_camera.py.
5. The Bookworm situation on this x86 machine, when it is Debian 12 with apt's python3-numpy and
   python3-numexpr (``make test`` installs them): the README's Pi commands run as written by bash,
   then the same without the constraint file as a control, which must break the system extension
   (numpy 2.x in the venv) and make ``edgeseg run --camera csi`` say why in one line.
6. JetPack 6's Python 3.10 (aarch64, glibc 2.35) resolves with the README's ``numpy<2``.
7. The tflite_runtime fallback the backend promises: the same runs with tflite-runtime instead of
   ai-edge-litert (x86, its own package folder, numpy < 2 as it needs): fp32 masks identical,
   int8 masks compared (its int8 kernels are older than LiteRT's).

Downloads, roots and venvs are cached under ~/.cache/edgeseg/arm64 (EDGESEG_CACHE). Exits non-zero
on any failure; prints one row per CPU model at the end.

    .venv-runtime/bin/python tests/boards/prove_arm64.py [build/test-models]
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg")) / "arm64"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
QEMU_SUITE = "trixie"  # qemu-user 10.x, a static binary
# the fallback interpreter with what it needs (it is built against numpy 1.x), edgeseg without its
# ai-edge-litert dependency
TFLITE_RUNTIME = ["tflite-runtime", "numpy<2", "opencv-python-headless", "typer", "rich", "pyyaml"]
FAKE_PI_MODEL = "Raspberry Pi 5 Model B Rev 1.0"  # the x86 Debian 12 check's fake board
ROOT_FIXUPS = "alternatives+merged-usr"  # what rootfs() does after extracting (part of the cache key)


@dataclass(frozen=True)
class BoardRoot:
    """A Debian arm64 root standing in for a board's OS, with its system Python packages."""

    suite: str
    python: str  # "3.11"
    numpy: str  # the version apt installs (checked: the root must really have it)

    @property
    def packages(self) -> list[str]:
        return [f"python{self.python}", f"python{self.python}-venv", "python3-numpy", "python3-numexpr",
                "libstdc++6", "libgcc-s1", "zlib1g"]


BOOKWORM, TRIXIE = BoardRoot("bookworm", "3.11", "1.24.2"), BoardRoot("trixie", "3.13", "2.2.4")


@dataclass(frozen=True)
class CpuRow:
    """One board's CPU under qemu-user, in the root of the OS it runs. ``full``: the install
    checks, the CSI camera and the video too (else the int8 run on frames and the benchmark);
    ``gpu_guard``: the CPU lacks what LiteRT's aarch64 GPU accelerator library demands."""

    cpu: str
    boards: str
    model: str  # the fake board's device-tree name
    root: BoardRoot
    full: bool
    gpu_guard: bool


CPU_ROWS = (
    CpuRow("cortex-a72", "Pi 4 / 400 / CM4", "Raspberry Pi 4 Model B Rev 1.4", BOOKWORM, True, True),
    CpuRow("cortex-a76", "Pi 5 (~ Jetson Orin's A78AE)", "Raspberry Pi 5 Model B Rev 1.0", TRIXIE, True, False),
    CpuRow("cortex-a53", "Pi Zero 2 W / Pi 3", "Raspberry Pi Zero 2 W Rev 1.0", BOOKWORM, False, True),
    CpuRow("cortex-a72", "Pi 4 on Trixie", "Raspberry Pi 4 Model B Rev 1.4", TRIXIE, False, True),
    CpuRow("max", "none (qemu's every feature)", "Raspberry Pi 5 Model B Rev 1.0", TRIXIE, False, False),
)
GPU_GUARD_LINE = "LiteRT's GPU accelerator needs an ARMv8.2 CPU"
# LiteRT's GPU accelerator loaded as edgeseg loads it, without edgeseg's CPU check (the control)
UNGUARDED_GPU = ("import sys\nfrom ai_edge_litert.compiled_model import CompiledModel, HardwareAccelerator, Options\n"
                 "CompiledModel.from_file(sys.argv[1], options=Options(hardware_accelerators="
                 "HardwareAccelerator.GPU | HardwareAccelerator.CPU))\nprint('loaded')")

# Stands in for apt's python3-picamera2: like the real one (through simplejpeg) it needs the C API
# of the system numpy, so a venv numpy of another ABI breaks its import exactly as on a Pi.
STAND_IN_PICAMERA2 = textwrap.dedent("""\
    \"\"\"Stand-in for Debian's python3-picamera2 (edgeseg's board tests): imports a numpy C
    extension as Picamera2's simplejpeg does, then serves BGR frames of a fixed pattern.\"\"\"
    import numexpr  # built against the system numpy
    import numpy as np

    class Picamera2:
        def __init__(self, index=0):
            self.index = index
        def create_video_configuration(self, main, controls=None):
            return {"main": main}
        def configure(self, config):
            self.w, self.h = config["main"]["size"]
        def start(self):
            pass
        def capture_array(self, stream="main"):
            frame = np.zeros((self.h, self.w, 3), np.uint8)
            frame[:, : self.w // 2] = (40, 160, 90)
            return frame
        def stop(self):
            pass
        def close(self):
            pass
""")


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(map(str, argv))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def rootfs(board: BoardRoot) -> Path:
    """The board's arm64 root (cached by its package list)."""
    key = hashlib.sha256(" ".join([*board.packages, ROOT_FIXUPS]).encode()).hexdigest()[:8]
    root = CACHE / f"{board.suite}-arm64-{key}"
    if (root / f"usr/bin/python{board.python}").is_file():
        return root
    if shutil.which("mmdebstrap") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit("mmdebstrap is missing: sudo apt install mmdebstrap")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    step(f"Debian {board.suite} arm64 root in {root}")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    run(["mmdebstrap", "-q", "--variant=extract", "--architectures=arm64", f"--include={','.join(board.packages)}",
         board.suite, tmp, MIRROR])
    # what dpkg's update-alternatives would have linked (extract runs no maintainer scripts):
    # numpy's libblas.so.3 / liblapack.so.3
    for lib in tmp.glob("usr/lib/aarch64-linux-gnu/*/lib*.so.3"):
        if lib.parent.name in ("blas", "lapack", "openblas-pthread") and not (lib.parents[1] / lib.name).exists():
            (lib.parents[1] / lib.name).symlink_to(f"{lib.parent.name}/{lib.name}")
    for top in ("bin", "sbin", "lib"):  # merged /usr (trixie): links base-files' scripts would make
        if not (tmp / top).exists() and not (tmp / top).is_symlink() and (tmp / "usr" / top).is_dir():
            (tmp / top).symlink_to(f"usr/{top}")
    tmp.rename(root)
    return root


def qemu() -> Path:
    binary = CACHE / "qemu-aarch64"
    if binary.is_file():
        return binary
    step(f"qemu-user from Debian {QEMU_SUITE}")
    with urllib.request.urlopen(f"{MIRROR}/dists/{QEMU_SUITE}/main/binary-amd64/Packages.xz", timeout=120) as r:
        index = lzma.decompress(r.read()).decode()
    entry = next(block for block in index.split("\n\n") if block.startswith("Package: qemu-user\n"))
    fields = dict(line.split(": ", 1) for line in entry.splitlines() if ": " in line)
    with tempfile.TemporaryDirectory() as tmp:
        deb = Path(tmp) / "qemu-user.deb"
        with urllib.request.urlopen(f"{MIRROR}/{fields['Filename']}", timeout=600) as r:
            deb.write_bytes(r.read())
        if hashlib.sha256(deb.read_bytes()).hexdigest() != fields["SHA256"]:
            sys.exit("qemu-user.deb does not match its SHA256 in the Debian index")
        run(["dpkg-deb", "-x", deb, Path(tmp) / "x"])
        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(tmp) / "x/usr/bin/qemu-aarch64", binary.with_suffix(".tmp"))
    binary.with_suffix(".tmp").rename(binary)
    print(f"   qemu-user {fields['Version']}")
    return binary


def wheel(out: Path) -> Path:
    """edgeseg's own wheel (pure Python), as pip would install it."""
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, REPO])
    return next(out.glob("edgeseg-*.whl"))


def site_packages(edgeseg_wheel: Path, extra, tags, target: Path) -> Path:
    """``extra`` with edgeseg (without its dependencies) for ``tags`` into ``target`` (cached by
    what goes in), for Python 3.11."""
    key = hashlib.sha256(" ".join([*map(str, extra), *tags]).encode()).hexdigest()[:12]
    done = target / ".complete"
    if not (done.is_file() and done.read_text() == key):
        step(f"wheels for {tags[0].split('_', 1)[-1]} into {target}")
        shutil.rmtree(target, ignore_errors=True)
        platform = [a for t in tags for a in ("--platform", t)]
        common = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", *platform]
        run([sys.executable, "-m", "pip", "install", "-q", "--target", target, *common, *extra])
        done.write_text(key)
    run([sys.executable, "-m", "pip", "install", "-q", "--target", target, "--no-deps", "--upgrade", edgeseg_wheel])
    return target


def edgeseg_args(models: Path, source: str, masks: Path, stats: Path) -> list:
    return ["run", models / "tiny_int8.tflite", "--source", models / source, "--save-masks", masks,
            "--compare", models / "tiny_fp32.tflite", "--compare-every", "1", "--threads", "2", "--stats-json", stats]


def frame_hashes(python: list, video: Path, env) -> list[str]:
    code = ("import cv2, hashlib, sys\ncap = cv2.VideoCapture(sys.argv[1])\nwhile True:\n ok, f = cap.read()\n"
            " if not ok: break\n print(hashlib.sha256(f.tobytes()).hexdigest()[:12])")
    return run([*python, "-c", code, video], env=env).stdout.split()


def compare_masks(a: Path, b: Path) -> tuple[int, float, int]:
    """(frames, pixel agreement, classes present) of two folders of mask PNGs."""
    import cv2
    import numpy as np

    names = sorted(p.name for p in a.glob("*.png"))
    if not names or names != sorted(p.name for p in b.glob("*.png")):
        sys.exit(f"mask files differ: {a} has {len(names)}, {b} has {len(list(b.glob('*.png')))}")
    same, total, classes = 0, 0, set()
    for name in names:
        x, y = cv2.imread(str(a / name), cv2.IMREAD_UNCHANGED), cv2.imread(str(b / name), cv2.IMREAD_UNCHANGED)
        same += int((x == y).sum())
        total += x.size
        classes |= set(np.unique(x).tolist())
    return len(names), same / total, len(classes)


class Emulated:
    """Commands in a board root under qemu-user, as the CPU model ``cpu``."""

    def __init__(self, emulator: Path, root: Path, board: BoardRoot, cpu: str):
        self.emulator, self.root, self.board, self.cpu = emulator, root, board, cpu

    def python(self, venv: Path | None = None) -> list:
        exe = venv / "bin" / f"python{self.board.python}" if venv else self.root / f"usr/bin/python{self.board.python}"
        return [self.emulator, "-cpu", self.cpu, "-L", self.root, exe]


def readme_commands(board: str) -> list[str]:
    """The README's install commands for ``board`` (pi, jetson): the shell block after its marker."""
    text = (REPO / "README.md").read_text()
    marker = text.index(f"<!-- board-install:{board}")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.S)
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def board_venv(emu: Emulated, edgeseg_wheel: Path) -> Path:
    """The README's Pi install inside the root, under qemu (cached by the dependencies asked for;
    this checkout's edgeseg is installed again every time)."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes() + emu.root.name.encode() + emu.cpu.encode()).hexdigest()[:12]
    venv = CACHE / f"venv-{emu.board.suite}"
    stamp = venv / ".edgeseg-test"
    python = emu.python(venv)
    if not (stamp.is_file() and stamp.read_text().split()[0] == key):
        step(f"README's Pi install in the {emu.board.suite} root under qemu's {emu.cpu} (pip resolves for aarch64 itself)")
        shutil.rmtree(venv, ignore_errors=True)
        run([*emu.python(), "-m", "venv", "--copies", "--without-pip", "--system-site-packages", venv])
        pip_wheel = next((emu.root / "usr/share/python-wheels").glob("pip-*.whl"))
        run([*python, f"/usr/share/python-wheels/{pip_wheel.name}/pip", "install", "-q", "--no-index",
             f"/usr/share/python-wheels/{pip_wheel.name}"])
        # python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > ~/edgeseg-venv/system-numpy.txt
        pin = run([*python, "-c", 'import numpy; print("numpy==" + numpy.__version__)']).stdout
        (venv / "system-numpy.txt").write_text(pin)
        # ~/edgeseg-venv/bin/pip install -c ~/edgeseg-venv/system-numpy.txt edgeseg-0.1.0-py3-none-any.whl
        run([*python, "-m", "pip", "install", "-q", "-c", venv / "system-numpy.txt", edgeseg_wheel])
        stamp.write_text(f"{key} installed under {emu.cpu}")
    else:
        run([*python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", edgeseg_wheel])
    return venv


def check_system_packages(python: list, expected_numpy: str, env=None, where="") -> str:
    """numpy is the system one and the stand-in Picamera2 (a numpy C extension inside) imports."""
    code = ("import numpy, sys\nprint('numpy', numpy.__version__, 'from', numpy.__file__)\n"
            "import picamera2, cv2, ai_edge_litert\nprint('picamera2 stand-in imported; opencv', cv2.__version__)")
    out = run([*python, "-c", code], env=env).stdout
    version = out.split()[1]
    if version != expected_numpy or "/usr/lib/python3/dist-packages/numpy" not in out:
        sys.exit(f"{where}: numpy is not the system's {expected_numpy}: {out}")
    return " ".join(out.split())


def fake_pi(tmp: Path, model: str = FAKE_PI_MODEL) -> Path:
    root = tmp / f"fake-{model.replace(' ', '-')}"
    (root / "proc/device-tree").mkdir(parents=True, exist_ok=True)
    (root / "proc/device-tree/model").write_bytes(model.encode() + b"\0")
    return root


def camera_run(python: list, models: Path, env, masks: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, python), "-m", "edgeseg.cli.main", "run", str(models / "tiny_int8.tflite"),
                           "--camera", "csi", "--camera-size", "64x48", "--max-frames", "3", "--save-masks", str(masks)],
                          capture_output=True, text=True, env=env)


def board_root(row: CpuRow) -> Path:
    root = rootfs(row.root)
    stand_in = root / "usr/lib/python3/dist-packages/picamera2"
    stand_in.mkdir(exist_ok=True)
    (stand_in / "__init__.py").write_text(STAND_IN_PICAMERA2)
    return root


def masks_against_x86(python: list, env, models: Path, source: str, tmp: Path, label: str) -> dict:
    """edgeseg run on ``source`` here and in the x86 device venv: pixels equal, agreement of each."""
    arm_masks, x86_masks = tmp / f"{label}-{source}", tmp / f"x86-{source}"
    shutil.rmtree(arm_masks, ignore_errors=True)
    run([*python, "-m", "edgeseg.cli.main", *edgeseg_args(models, source, arm_masks, tmp / "arm.json")], env=env)
    if not x86_masks.is_dir():
        run([Path(sys.executable).with_name("edgeseg"), *edgeseg_args(models, source, x86_masks, tmp / f"x86-{source}.json")])
    frames, agreement, classes = compare_masks(x86_masks, arm_masks)
    arm_stats, x86_stats = (json.loads((tmp / f).read_text()) for f in ("arm.json", f"x86-{source}.json"))
    return {"frames": frames, "equal": agreement, "classes": classes,
            "agreement_arm": arm_stats["compare"]["agreement_miou"], "agreement_x86": x86_stats["compare"]["agreement_miou"]}


def benchmark_medians(python: list, env, models: Path) -> list[float]:
    """``edgeseg benchmark`` of the int8 model at 1 and 2 threads: the median ms of each."""
    out = run([*python, "-m", "edgeseg.cli.main", "benchmark", models / "tiny_int8.tflite", "--threads", "1,2",
               "--runs", "5"], env=env).stdout
    return [float(line.split()[-2]) for line in out.splitlines() if line.startswith("tiny_int8.tflite")]


def gpu_on_this_cpu(row: CpuRow, python: list, env, models: Path, tmp: Path) -> str:
    """``--delegate gpu`` under the row's CPU: the guard's line and CPU masks where the library
    would abort, the library loading (and finding no Vulkan in the root) elsewhere."""
    masks = tmp / f"gpu-{row.cpu}-{row.root.suite}"
    shutil.rmtree(masks, ignore_errors=True)
    common = ["-m", "edgeseg.cli.main", "run", models / "tiny_fp32.tflite", "--source", models / "frames", "--delegate", "gpu"]
    result = subprocess.run(list(map(str, [*python, *common, "--save-masks", masks])), capture_output=True, text=True, env=env)
    said = [line for line in result.stderr.splitlines() if "GPU accelerator" in line]
    made = len(list(masks.glob("*.png")))
    if result.returncode != 0 or len(said) != 1 or made != len(list((models / "frames").glob("*.png"))):
        sys.exit(f"{row.cpu}: edgeseg run --delegate gpu (exit {result.returncode}, {made} masks):\n{result.stderr[-2000:]}")
    if row.gpu_guard != said[0].startswith(GPU_GUARD_LINE) or "running on the CPU (XNNPACK)" not in said[0]:
        sys.exit(f"{row.cpu}: expected {'the CPU guard' if row.gpu_guard else 'the library to load'}: {said[0]}")
    if row.gpu_guard:
        strict = subprocess.run(list(map(str, [*python, *common, "--strict", "--max-frames", "1"])), capture_output=True,
                                text=True, env=env)
        errors = [line for line in strict.stderr.splitlines() if line.startswith("edgeseg: error: " + GPU_GUARD_LINE)]
        if strict.returncode != 1 or len(errors) != 1 or strict.stderr.count("\n") != 1:
            sys.exit(f"{row.cpu}: --strict should be one error line and exit 1 ({strict.returncode}):\n{strict.stderr[-2000:]}")
    step(f"{row.cpu} ({row.root.suite}): edgeseg run --delegate gpu: '{said[0]}', {made} masks")
    return said[0]


def unguarded_gpu_dies(row: CpuRow, python: list, env, models: Path) -> str:
    """The control: the accelerator library loaded without edgeseg's check on a CPU it was not
    built for ends the process by itself."""
    result = subprocess.run(list(map(str, [*python, "-c", UNGUARDED_GPU, models / "tiny_fp32.tflite"])),
                            capture_output=True, text=True, env=env)
    fatal = next((line.strip() for line in result.stderr.splitlines() if "FATAL ERROR" in line), "")
    if result.returncode not in (132, -4) or "This binary was compiled with" not in fatal or "loaded" in result.stdout:
        sys.exit(f"{row.cpu}: LiteRT's GPU accelerator without edgeseg's check was expected to abort, got exit "
                 f"{result.returncode}:\n{result.stderr[-1500:]}")
    step(f"{row.cpu}, without edgeseg's check: LiteRT's GPU accelerator kills the process (exit {result.returncode}): "
         f"'{fatal}'")
    return f"exit {result.returncode}"


def installed_library_needs(venv: Path) -> None:
    """The features the installed aarch64 accelerator library checks for are edgeseg's list."""
    from edgeseg.runtime.model.cpu_features import GPU_ACCELERATOR_NEEDS, library_needs

    library = next(venv.glob("lib/python3*/site-packages/ai_edge_litert/libLiteRtWebGpuAccelerator.so"), None)
    if library is None:
        step(f"{venv.name}: this ai-edge-litert has no GPU accelerator library")
        return
    needs = library_needs(library.read_bytes())
    if needs != tuple(sorted(GPU_ACCELERATOR_NEEDS)):
        sys.exit(f"{library} checks for {', '.join(needs)}; edgeseg.runtime.model.cpu_features.GPU_ACCELERATOR_NEEDS "
                 f"says {', '.join(GPU_ACCELERATOR_NEEDS)}: update it (tools/maintenance/litert_cpu_features.py)")
    step(f"the installed aarch64 GPU accelerator library checks for {', '.join(needs)}: edgeseg's list")


def prove_cpu(row: CpuRow, emulator: Path, models: Path, edgeseg_wheel: Path, tmp: Path, installed: set) -> dict:
    """The README's install (first use of the root), the runs and the GPU check under one CPU model."""
    emu = Emulated(emulator, board_root(row), row.root, row.cpu)
    venv = board_venv(emu, edgeseg_wheel) if row.root.suite not in installed else CACHE / f"venv-{row.root.suite}"
    if row.root.suite not in installed:
        installed_library_needs(venv)
    installed.add(row.root.suite)
    python = emu.python(venv)
    env = {**os.environ, "PYTHONNOUSERSITE": "1", "EDGESEG_SYSROOT": str(fake_pi(tmp, row.model))}
    env.pop("PYTHONPATH", None)
    label = f"{row.root.suite}-{row.cpu}"
    result = {"cpu": row.cpu, "boards": row.boards, "root": f"{row.root.suite} (Python {row.root.python})"}
    if row.full:
        step(f"{label} after the README's Pi install: {check_system_packages(python, row.root.numpy, env, label)}")
        camera = camera_run(python, models, env, tmp / f"{label}-camera")
        if camera.returncode != 0 or "through Picamera2" not in camera.stderr or "failed to import" in camera.stderr:
            sys.exit(f"{label}: edgeseg run --camera csi did not take the Picamera2 path:\n{camera.stderr[-2000:]}")
        said = next(line for line in camera.stderr.splitlines() if "through Picamera2" in line)
        step(f"{label}: edgeseg run --camera csi on a fake {row.model}: '{said.strip()}', "
             f"{len(list((tmp / f'{label}-camera').glob('*.png')))} masks")
        result["camera"] = said.strip()
    frames = masks_against_x86(python, env, models, "frames", tmp, label)
    step(f"{label}: int8 masks vs x86 on PNG frames: {frames['frames']} frames, {100 * frames['equal']:.3f}% pixels "
         f"equal, {frames['classes']} classes; int8-vs-fp32 agreement mIoU {frames['agreement_arm']:.4f} "
         f"(x86 {frames['agreement_x86']:.4f})")
    if frames["equal"] < 1.0:
        sys.exit(f"{label}: int8 masks differ from x86's on the same pixels: XNNPACK chose other kernels for this "
                 "CPU (compare `edgeseg benchmark -v` under each -cpu) and they round differently")
    result["frames"] = frames
    if row.full:
        video = masks_against_x86(python, env, models, "clip.mp4", tmp, label)
        decoded = frame_hashes(python, models / "clip.mp4", env)
        here = frame_hashes([sys.executable], models / "clip.mp4", os.environ)
        video["same_decode"] = sum(a == b for a, b in zip(decoded, here))
        step(f"{label}: masks on the video: {video['frames']} frames, {100 * video['equal']:.3f}% pixels equal "
             f"({video['same_decode']} of {len(here)} frames decode to the same pixels with the aarch64 and x86 "
             "OpenCV/FFmpeg builds; the model sees what the decoder gives)")
        result["video"] = video
    result["benchmark_ms"] = benchmark_medians(python, env, models)
    result["gpu"] = gpu_on_this_cpu(row, python, env, models, tmp)
    if row.gpu_guard and row.full:
        result["gpu_unguarded"] = unguarded_gpu_dies(row, python, env, models)
    if row.full:
        result["imx500_agreement"] = imx500_stand_in(row, python, env, models, tmp)
    return result


def imx500_stand_in(row: CpuRow, python: list, env, models: Path, tmp: Path) -> str:
    """``edgeseg run network.rpk --camera csi`` in the root against the stand-in for Picamera2's
    IMX500 class that tests/runtime_only/test_imx500_camera.py uses (recorded output tensors: the
    float model's logits on each ROI), so the sensor's masks must agree with ``--compare``."""
    sys.path.insert(0, str(REPO / "tests" / "runtime_only"))
    from test_imx500_camera import stand_in_camera

    camera = stand_in_camera(tmp / f"imx500-{row.cpu}-{row.root.suite}", models)
    # the recorded logits made again here, by the board's own OpenCV: its aarch64 build dispatches
    # on the CPU's features (an A76's fp16/dotprod kernels), so the ROI's resize to the input can
    # differ from x86's by a grey level, and a 64x64 test model's near-ties follow it (0.84 on A76)
    rerecord = ("import sys, numpy as np\nfrom edgeseg.runtime.model.segmenter import Segmenter\n"
                "rec = dict(np.load(sys.argv[1]))\nseg = Segmenter(sys.argv[2], threads=1)\n"
                "x, y, w, h = (int(v) for v in rec['roi'])\n"
                "rec['outputs'] = np.stack([seg.raw_output(np.ascontiguousarray(f[..., ::-1][y:y + h, x:x + w]))[0] "
                "for f in rec['frames']])\nnp.savez(sys.argv[1], **rec)\n")
    run([*python, "-c", rerecord, camera["recording"], models / "tiny_fp32.tflite"], env=env)
    stats = tmp / f"imx500-{row.cpu}.json"
    env = {**env, "PYTHONPATH": str(camera["root"]), "FAKE_IMX500_RECORDING": str(camera["recording"])}
    result = run([*python, "-m", "edgeseg.cli.main", "run", camera["rpk"], "--camera", "csi", "--compare",
                  models / "tiny_fp32.tflite", "--compare-every", "1", "--max-frames", "6", "--stats-json", stats], env=env)
    summary = json.loads(stats.read_text())
    agreement = summary.get("compare", {}).get("agreement_miou")
    if summary["frames"] != 6 or summary["precision"] != "imx500" or agreement is None or agreement < 0.999:
        sys.exit(f"{row.cpu}: the IMX500 stand-in run: {summary}\n{result.stderr[-1500:]}")
    step(f"{row.cpu} ({row.root.suite}): edgeseg run network.rpk --camera csi (stand-in IMX500, recorded tensors): "
         f"{summary['frames']} frames, {summary['backend']}, agreement with the float model {agreement:.4f}")
    return f"{agreement:.4f}"


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'CPU model':<11} {'board':<29} {'root':<22} {'int8 masks vs x86':<22} {'agreement':>9} "
          f"{'bench 1/2 thr ms':>17}  --delegate gpu")
    for r in rows:
        f = r["frames"]
        gpu = ("CPU guard: one line, CPU masks" + (f"; unguarded: {r['gpu_unguarded']}" if "gpu_unguarded" in r else "")
               if r["gpu"].startswith(GPU_GUARD_LINE) else "library loads (no Vulkan in the root)")
        bench = " / ".join(f"{ms:.1f}" for ms in r["benchmark_ms"])
        print(f"{r['cpu']:<11} {r['boards']:<29} {r['root']:<22} {f['frames']} frames {100 * f['equal']:7.3f}%  "
              f"{f['agreement_arm']:>9.4f} {bench:>17}  {gpu}")


def debian12_system_python() -> Path | None:
    """This machine's /usr/bin/python3, if it is Debian 12's with apt's numpy and numexpr."""
    python = Path("/usr/bin/python3")
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        return None
    if not debian.startswith("12") or not python.is_file():
        return None
    probe = subprocess.run([python, "-c", "import numpy, numexpr, ensurepip"], capture_output=True)
    return python if probe.returncode == 0 else None


def prove_x86_bookworm(models: Path, edgeseg_wheel: Path, tmp: Path) -> None:
    """The README's Pi commands run by bash on this Debian 12, and without the constraint file."""
    python = debian12_system_python()
    if python is None:
        if os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
            sys.exit("this Debian 12 machine lacks apt's python3-numpy / python3-numexpr / python3-venv "
                     "although make test installs them")
        step("x86 Bookworm check skipped: not Debian 12 with apt's python3-numpy, python3-numexpr and python3-venv")
        return
    system_numpy = run([python, "-c", "import numpy; print(numpy.__version__)"]).stdout.strip()
    stand_in = tmp / "system-stand-in"
    (stand_in / "picamera2").mkdir(parents=True)
    (stand_in / "picamera2" / "__init__.py").write_text(STAND_IN_PICAMERA2)
    commands = [c for c in readme_commands("pi") if not c.startswith("sudo ")]
    for name, lines in (("as written", commands), ("without the constraint file (control)",
                                                     [c.replace("-c ~/edgeseg-venv/system-numpy.txt ", "") for c in commands])):
        home = tmp / f"home-{len(name)}"
        home.mkdir()
        shutil.copy(edgeseg_wheel, home)
        env = {**os.environ, "HOME": str(home), "PATH": f"/usr/bin:{os.environ['PATH']}", "PYTHONNOUSERSITE": "1",
               "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))}
        env.pop("VIRTUAL_ENV", None)
        run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], cwd=home, env=env)
        venv_python = [home / "edgeseg-venv/bin/python"]
        env = {**env, "PYTHONPATH": str(stand_in), "EDGESEG_SYSROOT": str(fake_pi(tmp)), "PATH": os.environ["PATH"]}
        if name == "as written":
            facts = check_system_packages(venv_python, system_numpy, env, "x86 Debian 12")
            camera = camera_run(venv_python, models, env, home / "masks")
            if camera.returncode != 0 or "through Picamera2" not in camera.stderr:
                sys.exit(f"x86 Debian 12: edgeseg run --camera csi did not take the Picamera2 path:\n{camera.stderr[-2000:]}")
            step(f"x86 Debian 12, the README's Pi commands {name}: {facts}; --camera csi through Picamera2")
        else:
            got = run([*venv_python, "-c", "import numpy; print(numpy.__version__)"], env=env).stdout.strip()
            camera = camera_run(venv_python, models, env, home / "masks")
            said = [line for line in camera.stderr.splitlines() if "Picamera2" in line]
            if got == system_numpy or camera.returncode != 1 or len(said) != 1 or camera.stderr.count("\n") != 1:
                sys.exit(f"x86 Debian 12 control: expected a venv numpy that breaks the stand-in Picamera2 and one "
                         f"line about it (numpy {got}, exit {camera.returncode}):\n{camera.stderr[-2000:]}")
            step(f"x86 Debian 12, {name}: the venv got numpy {got} over the system's {system_numpy}; "
                 f"edgeseg run --camera csi: '{said[0].strip()}'")


def prove_jetpack_resolves(edgeseg_wheel: Path, tmp: Path) -> None:
    jetson_tags = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 36)]  # glibc 2.35
    constraint = next(c for c in readme_commands("jetson") if c.startswith("echo "))
    pin = constraint.split("'")[1]
    (tmp / "jetson-numpy.txt").write_text(pin + "\n")
    run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--target",
         tmp / "jetson", "--only-binary=:all:", "--python-version", "3.10", "--implementation", "cp",
         "--abi", "cp310", *[a for t in jetson_tags for a in ("--platform", t)], "-c", tmp / "jetson-numpy.txt",
         "--report", tmp / "jetson.json", edgeseg_wheel])
    resolved = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads((tmp / "jetson.json").read_text())["install"]}
    step(f"JetPack 6 (Python 3.10, aarch64, glibc 2.35) with the README's '{pin}' resolves: " + ", ".join(
        f"{n} {resolved[n]}" for n in ("numpy", "opencv-python-headless", "ai-edge-litert") if n in resolved))
    if not {"numpy", "opencv-python-headless", "ai-edge-litert"} <= set(resolved) or not resolved["numpy"].startswith("1."):
        sys.exit("the device install does not resolve for JetPack 6's Python 3.10 with numpy < 2")


def prove_tflite_runtime_fallback(models: Path, edgeseg_wheel: Path, tmp: Path) -> None:
    x86_tags = ["manylinux2014_x86_64"] + [f"manylinux_2_{n}_x86_64" for n in range(17, 37)]
    legacy = site_packages(edgeseg_wheel, TFLITE_RUNTIME, x86_tags, CACHE / "site-tflite-runtime-x86_64")
    legacy_env = {**os.environ, "PYTHONPATH": str(legacy), "PYTHONNOUSERSITE": "1"}
    probe = run([sys.executable, "-S", "-c", "from edgeseg.runtime.model.backend import interpreter_api; "
                 "import numpy; print(interpreter_api()[2], 'numpy', numpy.__version__)"], env=legacy_env).stdout.strip()
    legacy_python = [sys.executable, "-S", "-m", "edgeseg.cli.main"]
    x86 = Path(sys.executable).with_name("edgeseg")
    for precision in ("fp32", "int8"):
        for python, where, environ in ((legacy_python, "legacy", legacy_env), ([x86], "litert", os.environ)):
            run([*python, "run", models / f"tiny_{precision}.tflite", "--source", models / "frames",
                 "--save-masks", tmp / f"{where}-{precision}"], env=environ)
        frames, agreement, _ = compare_masks(tmp / f"litert-{precision}", tmp / f"legacy-{precision}")
        step(f"{precision}: fallback backend ({probe}) vs ai_edge_litert on x86: {frames} frames, "
             f"{100 * agreement:.3f}% pixels equal")
        # fp32 must agree; int8 kernels changed between tflite-runtime 2.14 and LiteRT (int8
        # outputs differ by a few steps), so int8 masks agree only where logits are not close
        if agreement < (1.0 if precision == "fp32" else 0.95):
            sys.exit(f"tflite_runtime and ai_edge_litert {precision} masks differ")


def main(models: Path) -> int:
    if not (models / "tiny_int8.tflite").is_file():
        sys.exit(f"no test models in {models}: run tools/maintenance/make_test_models.py (make test does)")
    t0 = time.time()
    emulator = qemu()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        edgeseg_wheel = wheel(tmp / "wheel")
        installed: set[str] = set()
        rows = [prove_cpu(row, emulator, models, edgeseg_wheel, tmp, installed) for row in CPU_ROWS]
        prove_x86_bookworm(models, edgeseg_wheel, tmp)
        prove_jetpack_resolves(edgeseg_wheel, tmp)
        prove_tflite_runtime_fallback(models, edgeseg_wheel, tmp)
    print_rows(rows)
    if len(sys.argv) > 2 and sys.argv[2].startswith("--json="):
        Path(sys.argv[2].split("=", 1)[1]).write_text(json.dumps(rows, indent=1))
    step(f"board installs proven in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "test-models"))
