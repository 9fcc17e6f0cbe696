#!/usr/bin/env python3
"""`make test-arm64`: the device install on aarch64, without the hardware.

1. A Debian bookworm arm64 root (Python 3.11, as Raspberry Pi OS Bookworm) from Debian's packages
   (mmdebstrap --variant=extract: no chroot, no binfmt).
2. The runtime's aarch64 wheels, resolved by pip for that platform exactly as `pip install
   edgeseg` resolves them on a Pi (no TensorFlow), and edgeseg's own wheel.
   JetPack 6's Python 3.10 (aarch64) is resolved too (not run: one emulated Python is enough).
3. `edgeseg run` (--save-masks, --compare) on PNG frames and on a video, and `edgeseg benchmark`,
   with the small int8 test model under qemu-user (Debian 13's 10.x: Debian 12's 7.2 segfaults
   in LiteRT), and the same runs on x86 in .venv-runtime. On the same pixels the masks must be
   identical; a video's frames are what each platform's FFmpeg decodes, so those masks are
   compared and the decoded frames hashed to say why they differ.
4. The tflite_runtime fallback the backend promises: the same runs with tflite-runtime instead of
   ai-edge-litert (x86, its own package folder, numpy < 2 as it needs): fp32 masks identical,
   int8 masks compared (its int8 kernels are older than LiteRT's).

Downloads are cached under ~/.cache/edgeseg/arm64 (EDGESEG_CACHE). Exits non-zero on any failure.

    .venv-runtime/bin/python tools/test_arm64.py [build/test-models]
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg")) / "arm64"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
QEMU_SUITE = "trixie"  # qemu-user 10.x, a static binary
ROOT_PACKAGES = ["python3.11", "libpython3.11-stdlib", "libstdc++6", "libgcc-s1", "zlib1g"]
AARCH64_TAGS = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 37)]  # glibc 2.36
# the fallback interpreter with what it needs (it is built against numpy 1.x), edgeseg without its
# ai-edge-litert dependency
TFLITE_RUNTIME = ["tflite-runtime", "numpy<2", "opencv-python-headless", "typer", "rich", "pyyaml"]


def step(message: str) -> None:
    print(f"== {message}", flush=True)


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(map(str, argv))}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def rootfs() -> Path:
    root = CACHE / "bookworm-arm64"
    if (root / "usr/bin/python3.11").is_file():
        return root
    if shutil.which("mmdebstrap") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit("mmdebstrap is missing: sudo apt install mmdebstrap")
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "mmdebstrap"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    step(f"Debian bookworm arm64 root in {root}")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    run(["mmdebstrap", "-q", "--variant=extract", "--architectures=arm64", f"--include={','.join(ROOT_PACKAGES)}",
         "bookworm", tmp, MIRROR])
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


def site_packages(edgeseg_wheel: Path, extra=(), tags=AARCH64_TAGS, target: Path = None) -> Path:
    """The device install for ``tags`` into ``target`` (cached by what goes in): edgeseg with its
    dependencies, or with ``extra`` instead of them."""
    key = hashlib.sha256(" ".join([*map(str, extra), *tags, (REPO / "pyproject.toml").read_text()]).encode()).hexdigest()[:12]
    target = target or CACHE / f"site-{key}"
    if not (target / ".complete").is_file():
        step(f"wheels for {tags[0].split('_', 1)[-1]} into {target}")
        shutil.rmtree(target, ignore_errors=True)
        platform = [a for t in tags for a in ("--platform", t)]
        common = ["--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", *platform]
        if extra:
            run([sys.executable, "-m", "pip", "install", "-q", "--target", target, *common, *extra])
            run([sys.executable, "-m", "pip", "install", "-q", "--target", target, "--no-deps", edgeseg_wheel])
        else:
            run([sys.executable, "-m", "pip", "install", "-q", "--target", target, *common, edgeseg_wheel])
        (target / ".complete").touch()
    else:  # the cached install, with this checkout's edgeseg
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


def main(models: Path) -> int:
    if not (models / "tiny_int8.tflite").is_file():
        sys.exit(f"no test models in {models}: run tools/make_test_models.py (make test does)")
    t0 = time.time()
    root, emulator = rootfs(), qemu()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        site = site_packages(wheel(tmp / "wheel"))
        env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1", "EDGESEG_SYSROOT": str(tmp)}
        python = [emulator, "-L", root, root / "usr/bin/python3.11", "-m", "edgeseg.cli.main"]

        step("aarch64 under qemu-user: " + run([*python[:4], "-c", "import platform, sys, ai_edge_litert, numpy, cv2; "
                                                 "print(platform.machine(), sys.version.split()[0], 'numpy', numpy.__version__, "
                                                 "'opencv', cv2.__version__)"], env=env).stdout.strip())
        x86 = Path(sys.executable).with_name("edgeseg")
        for source, name in (("frames", "PNG frames"), ("clip.mp4", "the video")):
            arm = run([*python, *edgeseg_args(models, source, tmp / f"arm-{source}", tmp / "arm.json")], env=env)
            if source == "frames":
                print(arm.stdout.rstrip())
            run([x86, *edgeseg_args(models, source, tmp / f"x86-{source}", tmp / "x86.json")])
            frames, agreement, classes = compare_masks(tmp / f"x86-{source}", tmp / f"arm-{source}")
            arm_stats, x86_stats = (json.loads((tmp / f).read_text()) for f in ("arm.json", "x86.json"))
            step(f"masks arm64 vs x86 on {name}: {frames} frames, {100 * agreement:.3f}% pixels equal, "
                 f"{classes} classes present; int8-vs-fp32 agreement mIoU arm64 "
                 f"{arm_stats['compare']['agreement_miou']:.4f}, x86 {x86_stats['compare']['agreement_miou']:.4f}")
            if source == "frames" and agreement < 1.0:
                sys.exit("arm64 and x86 masks differ on the same pixels")
        decoded = frame_hashes(python[:4], models / "clip.mp4", env)
        here = frame_hashes([sys.executable], models / "clip.mp4", os.environ)
        same = sum(a == b for a, b in zip(decoded, here))
        print(f"   (the video: {same} of {len(here)} frames decode to the same pixels with the aarch64 and x86 "
              "OpenCV/FFmpeg builds; the model sees what the decoder gives)")
        bench = run([*python, "benchmark", models / "tiny_int8.tflite", "--threads", "1,2", "--runs", "5"], env=env)
        print(bench.stdout.rstrip())

        jetson_tags = ["manylinux2014_aarch64"] + [f"manylinux_2_{n}_aarch64" for n in range(17, 36)]  # glibc 2.35
        run([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--ignore-installed", "--target",
                      tmp / "jetson", "--only-binary=:all:", "--python-version", "3.10", "--implementation", "cp",
                      "--abi", "cp310", *[a for t in jetson_tags for a in ("--platform", t)],
                      "--report", tmp / "jetson.json", next((tmp / "wheel").glob("*.whl"))])
        resolved = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.loads((tmp / "jetson.json").read_text())["install"]}
        step("JetPack 6 (Python 3.10, aarch64, glibc 2.35) resolves: " + ", ".join(
            f"{n} {resolved[n]}" for n in ("numpy", "opencv-python-headless", "ai-edge-litert") if n in resolved))
        if not {"numpy", "opencv-python-headless", "ai-edge-litert"} <= set(resolved):
            sys.exit("the device install does not resolve for JetPack 6's Python 3.10")

        x86_tags = ["manylinux2014_x86_64"] + [f"manylinux_2_{n}_x86_64" for n in range(17, 37)]
        legacy = site_packages(next((tmp / "wheel").glob("*.whl")), TFLITE_RUNTIME, x86_tags,
                               CACHE / "site-tflite-runtime-x86_64")
        legacy_env = {**os.environ, "PYTHONPATH": str(legacy), "PYTHONNOUSERSITE": "1"}
        probe = run([sys.executable, "-S", "-c", "from edgeseg.runtime.backend import interpreter_api; "
                     "import numpy; print(interpreter_api()[2], 'numpy', numpy.__version__)"], env=legacy_env).stdout.strip()
        legacy_python = [sys.executable, "-S", "-m", "edgeseg.cli.main"]
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
    step(f"arm64 device install proven in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "test-models"))
