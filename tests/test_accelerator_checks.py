"""What edgeseg checks before LiteRT's GPU accelerator loads (the CPU's features on aarch64) and
how it names a missing Vulkan adapter. The real runs: tests/boards/prove_arm64.py (qemu's Cortex-A72 /
A53 / A76) and tests/boards/prove_gpu.py (a Vulkan root set up to fail each way)."""

import json
import shutil
import subprocess

import pytest

from edgeseg.runtime.model import cpu_features, vulkan
from edgeseg.runtime.model.cpu_features import CpuGap, cpu_name, gpu_accelerator_cpu_gap, missing_features

# AT_HWCAP as qemu-user 10.0 reports it for these CPU models (read with getauxval under
# `qemu-aarch64 -cpu MODEL`), and /proc/cpuinfo of a real Raspberry Pi 4 (BCM2711: no crypto)
HWCAP_A72, HWCAP_A53, HWCAP_A76 = 0x8FB, 0x8FB, 0x119FFB
PI4_CPUINFO = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n"
DAWN_REFUSAL = ("Warning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n - While initializing adapter "
                "(backend=BackendType::Vulkan)\nERROR: [delegate_webgpu.cc:359] Failed to initialize WebGPU "
                "environment: INTERNAL: No adapters found\n")


def test_cpu_features_from_hwcap_and_cpuinfo():
    assert missing_features(HWCAP_A72, "") == ("dotprod", "fp16", "lse", "rcpc", "rdm")
    assert missing_features(HWCAP_A53, "") == ("dotprod", "fp16", "lse", "rcpc", "rdm")
    assert missing_features(HWCAP_A76, "") == ()
    assert missing_features(None, PI4_CPUINFO) == ("aes", "dotprod", "fp16", "lse", "rcpc", "rdm", "sha2")
    a76 = "Features\t: fp asimd aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
    assert missing_features(None, a76) == ()
    # half precision needs both bits: scalar alone is not enough
    assert "fp16" in missing_features(HWCAP_A76 & ~(1 << 10), "")


def test_the_gap_names_the_board_and_what_it_lacks(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    gap = gpu_accelerator_cpu_gap("aarch64", hwcap=None, cpuinfo=PI4_CPUINFO, root=tmp_path)
    assert gap.message == ("LiteRT's GPU accelerator needs an ARMv8.2 CPU (aes, crc, dotprod, fp16, lse, rcpc, rdm, "
                           "sha2); this Raspberry Pi 4 Model B Rev 1.4 (Cortex-A72) lacks aes, dotprod, fp16, lse, "
                           "rcpc, rdm, sha2")
    assert gpu_accelerator_cpu_gap("aarch64", hwcap=HWCAP_A76, cpuinfo="", root=tmp_path) is None
    assert gpu_accelerator_cpu_gap("x86_64", hwcap=0, cpuinfo="", root=tmp_path) is None  # no checks in that library
    assert cpu_name("CPU part\t: 0xd03\n") == "Cortex-A53" and cpu_name("") == "CPU"


def test_needed_features_are_read_from_the_library_strings():
    blob = (b"\0FATAL ERROR: This binary was compiled with lse enabled, but this feature is not available on this "
            b"processor (go/sigill-fail-fast).\0FATAL ERROR: This binary was compiled with aes enabled, but this "
            b"feature is not available on this processor\0compiled with `--copt=-DX`\0")
    assert cpu_features.library_needs(blob) == ("aes", "lse")


def test_a_cpu_without_the_features_never_loads_the_accelerator(monkeypatch, edgeseg_log, tmp_path):
    """The guard comes first: one line and the CPU interpreter, or the error with --strict."""
    from edgeseg.runtime.model import litert_gpu
    from edgeseg.runtime.model.backend import LiteRTBackend

    gap = CpuGap("Raspberry Pi 4 Model B (Cortex-A72)", ("dotprod", "fp16", "lse", "rcpc", "rdm"))
    monkeypatch.setattr(litert_gpu, "gpu_accelerator_cpu_gap", lambda: gap)

    def loaded(*a, **k):
        raise AssertionError("the GPU accelerator library was loaded")

    monkeypatch.setattr(litert_gpu, "_quiet_at_exit", loaded)
    from conftest import REPO

    path = REPO / "tests" / "golden" / "golden_fp32.tflite"  # committed: no model needs building
    backend = litert_gpu.open_gpu_backend(path, 1)
    assert isinstance(backend, LiteRTBackend)
    assert edgeseg_log == [gap.message + ": running on the CPU (XNNPACK) instead"]
    with pytest.raises(litert_gpu.GpuUnavailable, match="lacks dotprod, fp16, lse, rcpc, rdm$"):
        litert_gpu.open_gpu_backend(path, 1, strict=True)
    assert litert_gpu.probe_gpu(path) == {"available": False, "why": gap.message}


def manifest(folder, name, library):
    path = folder / name
    path.write_text(json.dumps({"file_format_version": "1.0.0", "ICD": {"library_path": str(library)}}))
    return path


def test_vulkan_no_loader_and_no_manifest(monkeypatch, tmp_path):
    monkeypatch.setattr(vulkan, "LOADER", "libvulkan-not-here.so.1")
    assert vulkan.diagnose("") == "no Vulkan loader (libvulkan-not-here.so.1 is not installed: sudo apt install libvulkan1)"
    monkeypatch.undo()
    if vulkan._load_error(vulkan.LOADER) is not None:
        pytest.skip("this machine has no Vulkan loader (make test installs libvulkan1)")
    monkeypatch.setenv("VK_DRIVER_FILES", str(tmp_path / "none.json"))
    assert vulkan.diagnose("No adapters found") == (
        f"no Vulkan driver: no driver manifest (ICD file) in VK_DRIVER_FILES={tmp_path / 'none.json'} "
        "(Pi OS / Debian: sudo apt install mesa-vulkan-drivers; NVIDIA: its driver)")
    # the loader's default places, through the XDG variables
    monkeypatch.delenv("VK_DRIVER_FILES")
    monkeypatch.delenv("VK_ICD_FILENAMES", raising=False)
    for var in ("XDG_CONFIG_DIRS", "XDG_DATA_DIRS"):
        monkeypatch.setenv(var, str(tmp_path / var))
    (tmp_path / "XDG_DATA_DIRS/vulkan/icd.d").mkdir(parents=True)
    assert vulkan.icd_files()[0] == []
    found = manifest(tmp_path / "XDG_DATA_DIRS/vulkan/icd.d", "x_icd.json", "libx.so")
    assert vulkan.icd_files()[0] == [found]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build a driver library with a missing dependency")
def test_vulkan_driver_that_does_not_load_is_named_with_its_missing_library(monkeypatch, tmp_path):
    """NVIDIA's ICD without glvnd, in miniature: a driver library whose dependency is absent."""
    if vulkan._load_error(vulkan.LOADER) is not None:
        pytest.skip("this machine has no Vulkan loader (make test installs libvulkan1)")
    (tmp_path / "d.c").write_text("int stub(void) { return 0; }\n")
    (tmp_path / "i.c").write_text("int vk_icdGetInstanceProcAddr(void) { return 0; }\n")
    gcc = ["gcc", "-shared", "-fPIC"]
    subprocess.run([*gcc, "-Wl,-soname,libGLdispatch.so.0", "-o", tmp_path / "libGLdispatch.so.0", tmp_path / "d.c"], check=True)
    library = tmp_path / "libGLX_nvidia.so.0"
    subprocess.run([*gcc, "-o", library, tmp_path / "i.c", "-Wl,--no-as-needed", f"-L{tmp_path}",
                    "-l:libGLdispatch.so.0"], check=True)
    # the same name as glvnd's would be found on this machine: rename the dependency to one nobody has
    (tmp_path / "libGLdispatch.so.0").unlink()
    data = library.read_bytes().replace(b"libGLdispatch.so.0", b"libGLdispatcX.so.0")
    library.write_bytes(data)
    monkeypatch.setenv("VK_DRIVER_FILES", str(manifest(tmp_path, "nvidia_icd.json", library)))
    assert vulkan.diagnose("No adapters found") == f"NVIDIA's Vulkan driver {library} failed to load: libGLdispatcX.so.0 not found"
    assert vulkan._missing_dependency("libGLdispatch.so.0: cannot open shared object file: No such file or directory") \
        == "libGLdispatch.so.0 not found (sudo apt install libglvnd0)"


def test_vulkan_device_dawn_refuses_names_the_feature(monkeypatch):
    if vulkan._load_error(vulkan.LOADER) is not None:
        pytest.skip("this machine has no Vulkan loader (make test installs libvulkan1)")
    monkeypatch.setattr(vulkan, "icd_files", lambda: ([vulkan.__file__], "here"))  # a driver that loads
    monkeypatch.setattr(vulkan, "driver_load_failures", lambda manifests: [])
    assert vulkan.diagnose(DAWN_REFUSAL) == ("the Vulkan device lacks shaderUniform*ArrayDynamicIndexing, which "
                                            "WebGPU (Dawn) requires (a newer driver may have it)")
    assert vulkan.diagnose("No adapters found") is None  # nothing the loader knows: the caller says so plainly


def test_the_exports_gpu_probe_runs_in_its_own_process(tmp_path, monkeypatch):
    from conftest import REPO

    from edgeseg.runtime.model import litert_gpu

    path = REPO / "tests" / "golden" / "golden_fp32.tflite"
    assert litert_gpu.probe_gpu_isolated(path) == litert_gpu.probe_gpu(path)  # the same answer, from a child
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\nkill -ABRT $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(crashing))
    assert litert_gpu.probe_gpu_isolated(path) == {"available": False,
                                                   "why": "the GPU probe process failed (exit -6)"}


LAVAPIPE = sorted(__import__("pathlib").Path("/usr/share/vulkan/icd.d").glob("lvp_icd.*.json"))
PROBE_BESIDE_TENSORFLOW = """import sys, tensorflow
from edgeseg.runtime.model import litert_gpu
print(getattr(litert_gpu, sys.argv[1])(sys.argv[2]))"""


def test_an_export_process_with_lavapipe_visible_exits_cleanly():
    """TensorFlow's LLVM and Mesa lavapipe's, both loaded, abort the process at exit (134): the
    export's GPU probe must not load the accelerator beside TensorFlow (the control shows the abort)."""
    import os
    import sys

    from conftest import REPO

    if not LAVAPIPE:
        if os.environ.get("EDGESEG_REQUIRE_SYSTEM_TOOLS") == "1":
            pytest.fail("mesa-vulkan-drivers (lavapipe) is not installed")
        pytest.skip("no lavapipe ICD (apt install mesa-vulkan-drivers)")
    env = {k: v for k, v in os.environ.items() if k not in ("VK_DRIVER_FILES", "VK_ICD_FILENAMES")}
    env["VK_DRIVER_FILES"] = str(LAVAPIPE[0])
    model = str(REPO / "tests" / "golden" / "golden_fp32.tflite")
    done = {name: subprocess.run([sys.executable, "-c", PROBE_BESIDE_TENSORFLOW, name, model], env=env,
                                 capture_output=True, text=True)
            for name in ("probe_gpu_isolated", "probe_gpu")}
    isolated = done["probe_gpu_isolated"]
    assert isolated.returncode == 0, isolated.stderr[-1000:]
    assert "'available'" in isolated.stdout and "probe process failed" not in isolated.stdout, isolated.stdout
    if done["probe_gpu"].returncode == 0:  # the control: what the isolation is for
        pytest.skip("TensorFlow and this Mesa no longer abort together at exit: nothing to isolate from here")
