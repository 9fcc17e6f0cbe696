"""Runs in .venv-runtime: every device command with broken inputs ends in one `edgeseg: error:`
line and exit 1 (never a traceback or a signal): a truncated model, a model of the kind whose
backend is not installed (ONNX without onnxruntime), a missing file; then byte mutations of the
int8 .tflite and .onnx models and truncated videos and images, with a fixed seed."""

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

MODELS = Path(os.environ.get("EDGESEG_TEST_MODELS", "build/test-models"))


@pytest.fixture(scope="module")
def models():
    return MODELS  # conftest skips these tests with the reason when the models are missing


def edgeseg(*args, timeout=120):
    exe = Path(sys.executable).with_name("edgeseg")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout)


def assert_one_line(result, *words):
    """Exit 1, one error line containing ``words``, no traceback, no signal."""
    said = [line for line in result.stderr.splitlines() if line.startswith("edgeseg: error:")]
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and len(said) == 1, result.stderr[-2000:]
    for word in words:
        assert word in said[0], said[0]
    return said[0]


def commands(model: Path, models: Path):
    """Every command that opens a model file, as a user would type it on the device."""
    return {
        "run": ["run", model, "--source", models / "frames", "--max-frames", "2"],
        "run --compare": ["run", models / "tiny_int8.tflite", "--source", models / "frames", "--compare", model],
        "benchmark": ["benchmark", model, "--threads", "1", "--runs", "1"],
        "evaluate": ["evaluate", model, "--data", models / "data", "--format", "synthetic"],
    }


@pytest.fixture(scope="module")
def broken(models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken")
    cut = folder / "cut.tflite"
    cut.write_bytes((models / "tiny_int8.tflite").read_bytes()[:3000])
    return {"truncated": (cut, ["cut.tflite"]),
            "onnx without onnxruntime": (models / "tiny_int8.onnx", ["tiny_int8.onnx", "pip install 'edgeseg[onnx]'"]),
            "missing": (folder / "nowhere.tflite", ["nowhere.tflite"])}


@pytest.mark.parametrize("case", ["truncated", "onnx without onnxruntime", "missing"])
@pytest.mark.parametrize("command", ["run", "run --compare", "benchmark", "evaluate"])
def test_every_command_says_one_line(models, broken, case, command):
    if case == "onnx without onnxruntime":
        import importlib.util

        assert importlib.util.find_spec("onnxruntime") is None, "this venv should be the device install"
    model, words = broken[case]
    assert_one_line(edgeseg(*commands(model, models)[command]), *words)


def test_fuzzed_models_and_media_never_crash(models, tmp_path):
    """60 byte mutations of the int8 .tflite, 10 of the .onnx, truncated videos and images: each
    run is either clean (exit 0) or one error line; never a traceback, a signal or a hang."""
    rng = random.Random(1234)
    outcomes = {"clean": 0, "one line": 0}
    cases = []
    for source, count in (("tiny_int8.tflite", 60), ("tiny_int8.onnx", 10)):
        data = (models / source).read_bytes()
        for i in range(count):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 16)):
                at = rng.randrange(len(mutated))
                mutated[at] = rng.randrange(256)
            path = tmp_path / f"m{i}{Path(source).suffix}"
            path.write_bytes(bytes(mutated))
            cases.append(["run", path, "--source", models / "frames", "--max-frames", "1", "--threads", "1"])
    clip = (models / "clip.mp4").read_bytes()
    frame = sorted((models / "frames").glob("*.png"))[0].read_bytes()
    for i, cut in enumerate((len(clip) // 10, len(clip) // 2, len(clip) - 7)):
        (tmp_path / f"v{i}.mp4").write_bytes(clip[:cut])
        cases.append(["run", models / "tiny_int8.tflite", "--source", tmp_path / f"v{i}.mp4"])
    for i, cut in enumerate((10, len(frame) // 2)):
        (tmp_path / f"i{i}").mkdir()
        (tmp_path / f"i{i}" / "f.png").write_bytes(frame[:cut])
        cases.append(["run", models / "tiny_int8.tflite", "--source", tmp_path / f"i{i}"])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda args: (args, edgeseg(*args, timeout=60)), cases))
    for args, result in results:
        assert result.returncode >= 0, f"killed by {signal.Signals(-result.returncode).name}: {args}"
        assert "Traceback" not in result.stderr, (args, result.stderr[-3000:])
        if result.returncode == 0:
            outcomes["clean"] += 1
        else:
            assert_one_line(result)
            outcomes["one line"] += 1
    print(f"fuzz: {outcomes}")
    assert outcomes["one line"] >= 10  # the mutations do break files: the test sees errors, not only luck


def test_a_constant_pointed_at_another_buffer_is_refused_before_it_crashes(tmp_path):
    """One flipped byte of a tensor's buffer index (found by the fuzz test above: SIGSEGV at the
    first inference, LiteRT does not check): refused in one line, naming the tensor."""
    import struct

    import cv2
    import numpy as np

    from edgeseg.runtime.model.flatbuffer import _buffer_size, _root

    golden = Path(__file__).resolve().parents[1] / "golden" / "golden_fp32.tflite"
    buf = bytearray(golden.read_bytes())
    model = _root(bytes(buf))
    sizes = [_buffer_size(buf, b) for b in model.tables(4)]
    tensors = model.tables(2)[0].tables(0)
    i, tensor = next((i, t) for i, t in enumerate(tensors) if sizes[t.scalar(2, "<I")] > 0)
    own = sizes[tensor.scalar(2, "<I")]
    other = next(j for j, n in enumerate(sizes) if n > 0 and n != own)
    struct.pack_into("<I", buf, tensor.pos + tensor._field(2), other)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(buf))
    (tmp_path / "frames").mkdir()
    cv2.imwrite(str(tmp_path / "frames" / "f.png"), np.full((48, 64, 3), 90, np.uint8))
    result = edgeseg("run", bad, "--source", tmp_path / "frames", "--max-frames", "1")
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1] == (f"edgeseg: error: cannot load {bad}: corrupt TFLite model: tensor {i} ({tensor.string(3)}) "
                         f"has {sizes[other]} bytes of data where its shape needs {own}"), result.stderr
    assert "Traceback" not in result.stderr
    ok = edgeseg("run", golden, "--source", tmp_path / "frames", "--max-frames", "1")  # the file as made
    assert ok.returncode == 0, ok.stderr[-2000:]
