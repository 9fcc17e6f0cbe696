#!/usr/bin/env python3
"""`make test-gpu`: `--delegate gpu` (LiteRT's GPU accelerator, WebGPU on Vulkan) run for real on a
software GPU, without a GPU.

1. A Debian 13 (trixie) x86-64 root with Mesa's software Vulkan driver (llvmpipe: Mesa 25; Debian
   12's Mesa 22 lavapipe is refused by Dawn) from Debian's packages (mmdebstrap, cached under
   ~/.cache/edgeseg/gpu), and the device install for its Python 3.13 (pip for that platform).
2. In the root (chroot, in a private mount namespace with its own /proc): `edgeseg run` on the test
   clip with `--delegate gpu` and on the CPU; the masks must agree (fp32 >= 99.5% of pixels; int8
   reported), the GPU line must name the Vulkan adapter and say whether the whole graph is on it;
   `edgeseg benchmark --delegate gpu` runs. Timing under a software GPU means nothing.
3. The same root set up to fail each way the Vulkan loader knows, and the line edgeseg must give:
   no loader (libvulkan.so.1 hidden), no driver manifest (VK_DRIVER_FILES pointing nowhere), a
   driver whose library does not load (an "NVIDIA" manifest whose library needs glvnd's
   libGLdispatch.so.0, which the root lacks: what NVIDIA's driver does without Debian's glvnd
   packages); each the one fallback line and the CPU run; with --strict, one error.
4. A device Dawn refuses: Debian 12's own lavapipe (Mesa 22) on this machine, when it is Debian 12
   with mesa-vulkan-drivers (``make test`` installs it): the line names the missing Vulkan feature.

Exits non-zero on any failure; skips (exit 0, saying why) where it cannot run (not root, no
mmdebstrap), unless EDGESEG_REQUIRE_SYSTEM_TOOLS=1.

    .venv-runtime/bin/python tests/boards/prove_gpu.py [build/test-models]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prove_arm64 import compare_masks, run, step  # noqa: E402 - the same helpers as the board test

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EDGESEG_CACHE", Path.home() / ".cache" / "edgeseg")) / "gpu"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ["python3", "mesa-vulkan-drivers", "libvulkan1", "vulkan-tools"]
X86_TAGS = ["manylinux2014_x86_64"] + [f"manylinux_2_{n}_x86_64" for n in range(17, 42)]  # trixie: glibc 2.41
NO_DRIVER = {"VK_DRIVER_FILES": "/nonexistent/icd.json", "VK_ICD_FILENAMES": "/nonexistent/icd.json"}
HOST_LAVAPIPE = Path("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json")
FP32_MIN_AGREEMENT = 0.995
INT8_MIN_AGREEMENT = 0.95  # int8 is computed in float on the GPU: near-ties flip (97.7-98.2% measured)


def skip(why: str) -> int:
    if os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
        sys.exit(f"the GPU test cannot run although make test should make it possible: {why}")
    step(f"GPU test skipped: {why}")
    return 0


def rootfs() -> Path:
    key = hashlib.sha256(" ".join(PACKAGES).encode()).hexdigest()[:8]
    root = CACHE / f"trixie-vulkan-{key}"
    if (root / "usr/bin/python3").exists():
        return root
    step(f"Debian trixie x86-64 root with Mesa's software Vulkan in {root}")
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    run(["mmdebstrap", "-q", "--variant=apt", f"--include={','.join(PACKAGES)}", "trixie", tmp, MIRROR])
    tmp.rename(root)
    return root


def device_install(root: Path, tmp: Path) -> str:
    """edgeseg's device install for the root's Python 3.13 in /opt/edgeseg (dependencies cached by
    pyproject.toml; this checkout's edgeseg every time). Returns the path inside the root."""
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "wheel", REPO])
    wheel = next((tmp / "wheel").glob("edgeseg-*.whl"))
    site = root / "opt/edgeseg"
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    platform = [a for t in X86_TAGS for a in ("--platform", t)]
    common = ["--only-binary=:all:", "--python-version", "3.13", "--implementation", "cp", "--abi", "cp313", *platform]
    stamp = site / ".edgeseg-test"
    if not (stamp.is_file() and stamp.read_text() == key):
        step("the device install for Python 3.13 into the root")
        shutil.rmtree(site, ignore_errors=True)
        run([sys.executable, "-m", "pip", "install", "-q", "--target", site, *common, wheel])
        stamp.write_text(key)
    run([sys.executable, "-m", "pip", "install", "-q", "--target", site, "--no-deps", "--upgrade", wheel])
    return "/opt/edgeseg"


class Root:
    """Commands in the root: chroot in a private mount namespace with /proc mounted."""

    def __init__(self, path: Path, site: str):
        self.path, self.site = path, site

    def run(self, args: list, env: dict | None = None, check: bool = True, hide: tuple = ()) -> subprocess.CompletedProcess:
        """edgeseg in the root; ``hide``: files of the root covered by /dev/null for this run."""
        variables = {"PYTHONPATH": self.site, "HOME": "/root", "PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": "/tmp",
                     **(env or {})}
        inner = " ".join(["exec", "env", "-i", *(f"{k}={v}" for k, v in variables.items()),
                          "/usr/bin/python3", "-m", "edgeseg.cli.main", *map(str, args)])
        covers = "".join(f'mount --bind /dev/null "{self.path}{path}" && ' for path in hide)
        argv = ["unshare", "--mount", "--fork", "sh", "-c",
                f'{covers}mount -t proc proc "{self.path}/proc" && exec chroot "{self.path}" sh -c \'{inner}\'']
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            sys.exit(f"failed in the root ({result.returncode}): edgeseg {' '.join(map(str, args))}\n{result.stderr[-3000:]}")
        return result


def fake_nvidia_driver(folder: Path, inside: str) -> Path:
    """An "NVIDIA" driver manifest whose library needs glvnd's libGLdispatch.so.0 (built here by
    gcc against a stub that is then removed, as a root without Debian's glvnd packages has it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "d.c").write_text("int stub(void) { return 0; }\n")
    (folder / "i.c").write_text("int vk_icdGetInstanceProcAddr(void) { return 0; }\n")
    gcc = ["gcc", "-shared", "-fPIC"]
    run([*gcc, "-Wl,-soname,libGLdispatch.so.0", "-o", folder / "libGLdispatch.so.0", folder / "d.c"])
    run([*gcc, "-o", folder / "libGLX_nvidia.so.0", folder / "i.c", "-Wl,--no-as-needed", f"-L{folder}",
         "-l:libGLdispatch.so.0"])
    for leftover in ("libGLdispatch.so.0", "d.c", "i.c"):
        (folder / leftover).unlink()
    manifest = folder / "nvidia_icd.json"
    manifest.write_text(json.dumps({"file_format_version": "1.0.0",
                                    "ICD": {"library_path": f"{inside}/icd/libGLX_nvidia.so.0", "api_version": "1.3.0"}}))
    return manifest


def failure_cases(root_path: Path, work: Path, inside: str) -> list:
    """(name, environment, files hidden, the reason edgeseg must give) for each way to fail."""
    loader = next(p for p in (root_path / "usr/lib/x86_64-linux-gnu").glob("libvulkan.so.1*") if not p.is_symlink())
    cases = [("no Vulkan loader", {}, (f"/{loader.relative_to(root_path)}",),
              "no Vulkan loader (libvulkan.so.1 is not installed: sudo apt install libvulkan1)"),
             ("no driver manifest", NO_DRIVER, (),
              f"no Vulkan driver: no driver manifest (ICD file) in VK_DRIVER_FILES={NO_DRIVER['VK_DRIVER_FILES']}")]
    if shutil.which("gcc") is None:
        if os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
            sys.exit("gcc is missing although make test installs it")
        step("the driver-that-does-not-load case skipped: no gcc to build its library")
    elif any((root_path / "usr/lib/x86_64-linux-gnu").glob("libGLdispatch.so.0*")):
        sys.exit("the root has glvnd's libGLdispatch.so.0: the NVIDIA-without-glvnd case cannot be set up in it")
    else:
        manifest = fake_nvidia_driver(work / "icd", inside)
        cases.append(("a driver library that does not load", {"VK_DRIVER_FILES": f"{inside}/icd/{manifest.name}"}, (),
                      f"NVIDIA's Vulkan driver {inside}/icd/libGLX_nvidia.so.0 failed to load: libGLdispatch.so.0 not "
                      "found (sudo apt install libglvnd0)"))
    return cases


def fallback_line(root: Root, inside: str, name: str, expected: str, env: dict, hide: tuple) -> str:
    """The run with the failure: one fallback line giving ``expected`` and the CPU; --strict: one error."""
    common = ["run", f"{inside}/models/tiny_fp32.tflite", "--source", f"{inside}/models/clip.mp4", "--max-frames", "2",
              "--delegate", "gpu"]
    fallback = root.run(common, env=env, hide=hide)
    line = [ln for ln in fallback.stderr.splitlines() if "GPU accelerator" in ln]
    want = f"the GPU accelerator cannot run tiny_fp32.tflite: {expected}"
    if len(line) != 1 or not line[0].startswith(want) or "running on the CPU" not in line[0] or \
            "XNNPACK CPU" not in fallback.stderr:
        sys.exit(f"{name}: expected one line starting '{want}':\n{fallback.stderr[-2000:]}")
    strict = root.run([*common, "--strict"], env=env, hide=hide, check=False)
    errors = [ln for ln in strict.stderr.splitlines() if ln.startswith("edgeseg: error:")]
    if strict.returncode != 1 or len(errors) != 1 or "Traceback" in strict.stderr or want not in errors[0]:
        sys.exit(f"{name}: --strict should be one error line:\n{strict.stderr[-2000:]}")
    return line[0].strip()


def host_lavapipe_refusal(models: Path) -> str | None:
    """Debian 12's lavapipe, which Dawn refuses: the line must name the feature it lacks."""
    debian = Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").is_file() else ""
    if not debian.startswith("12") or not HOST_LAVAPIPE.is_file():
        if debian.startswith("12") and os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
            sys.exit(f"{HOST_LAVAPIPE} is missing although make test installs mesa-vulkan-drivers")
        step("Debian 12's lavapipe check skipped: not Debian 12 with mesa-vulkan-drivers")
        return None
    edgeseg = Path(sys.executable).with_name("edgeseg")
    env = {**os.environ, "VK_DRIVER_FILES": str(HOST_LAVAPIPE), "VK_ICD_FILENAMES": str(HOST_LAVAPIPE)}
    result = subprocess.run([str(edgeseg), "run", str(models / "tiny_fp32.tflite"), "--source", str(models / "frames"),
                             "--delegate", "gpu", "--max-frames", "1"], capture_output=True, text=True, env=env)
    line = [ln for ln in result.stderr.splitlines() if "GPU accelerator" in ln]
    if result.returncode != 0 or len(line) != 1 or "the Vulkan device lacks shaderUniform" not in line[0]:
        sys.exit(f"Debian 12's lavapipe: expected the missing Vulkan feature named in one line:\n{result.stderr[-2000:]}")
    return line[0].strip()


def main(models: Path) -> int:
    if not (models / "tiny_int8.tflite").is_file():
        sys.exit(f"no test models in {models}: run tools/maintenance/make_test_models.py (make test does)")
    if os.geteuid() != 0:
        return skip("needs root (chroot and a mount namespace)")
    if shutil.which("mmdebstrap") is None or shutil.which("unshare") is None:
        return skip("mmdebstrap or unshare is missing (make test installs mmdebstrap)")
    t0 = time.time()
    root_path = rootfs()
    work = root_path / "tmp/edgeseg-gpu"
    shutil.rmtree(work, ignore_errors=True)
    (work / "models").mkdir(parents=True)
    for name in ("tiny_fp32.tflite", "tiny_int8.tflite", "clip.mp4"):
        shutil.copy(models / name, work / "models" / name)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Root(root_path, device_install(root_path, Path(tmp)))
    inside = "/tmp/edgeseg-gpu"
    rows = []
    for precision in ("fp32", "int8"):
        model = f"{inside}/models/tiny_{precision}.tflite"
        common = ["run", model, "--source", f"{inside}/models/clip.mp4", "--threads", "2"]
        gpu = root.run([*common, "--delegate", "gpu", "--strict", "--save-masks", f"{inside}/gpu-{precision}",
                        "--stats-json", f"{inside}/gpu-{precision}.json"])
        root.run([*common, "--save-masks", f"{inside}/cpu-{precision}"])
        said = next((line for line in gpu.stderr.splitlines() if "LiteRT GPU accelerator" in line), "")
        if "llvmpipe" not in said:
            sys.exit(f"{precision}: the GPU line does not name the Vulkan adapter:\n{gpu.stderr[-2000:]}")
        stats = json.loads((work / f"gpu-{precision}.json").read_text())
        frames, agreement, _ = compare_masks(work / f"cpu-{precision}", work / f"gpu-{precision}")
        rows.append((precision, frames, agreement, stats["backend"]))
        step(f"{precision}: '{said.strip()}'; masks GPU vs CPU on {frames} frames: {100 * agreement:.2f}% pixels equal")
        if agreement < (FP32_MIN_AGREEMENT if precision == "fp32" else INT8_MIN_AGREEMENT):
            sys.exit(f"{precision} masks on the GPU agree with the CPU on only {100 * agreement:.2f}% of pixels")
        if "GPU accelerator" not in stats["backend"]:
            sys.exit(f"--stats-json does not name the accelerator: {stats['backend']}")
    bench = root.run(["benchmark", f"{inside}/models/tiny_fp32.tflite", "--delegate", "gpu", "--threads", "2", "--runs", "3"])
    print(bench.stdout.rstrip())
    for name, env, hide, expected in failure_cases(root_path, work, inside):
        line = fallback_line(root, inside, name, expected, env, hide)
        step(f"{name}: '{line}'")
    refusal = host_lavapipe_refusal(models)
    if refusal:
        step(f"a device Dawn refuses (Debian 12's lavapipe on this machine): '{refusal}'")
    shutil.rmtree(work, ignore_errors=True)
    step(f"GPU accelerator proven on a software Vulkan in {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "test-models"))
