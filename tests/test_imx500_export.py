"""`edgeseg export RUN --target imx500` without Sony's toolchain: what is refused before the long
conversion, how a missing toolchain is said, and a converter failure (from a stand-in toolchain)
as one line with the converter's reason and its log kept. The real conversion of a tiny model is
tests/test_imx500_convert.py (`make test-imx500`)."""

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

from conftest import error_lines, run_edgeseg
from edgeseg.export.imx500.export import failure_reason


def fitting_copy(run_dir, tmp_path) -> Path:
    """The tiny run with ASPP rates the sensor takes (its weights then do not match: the runs
    here stop before they are loaded, or go to a stand-in toolchain)."""
    run = tmp_path / "tiny"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("export", "backup", "logs"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["atrous_rates"] = [6, 12]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def one_error(result) -> str:
    lines = error_lines(result.stderr)
    assert result.returncode != 0 and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_a_configuration_the_sensor_refused_is_refused_first(run_dir, tmp_path):
    out = tmp_path / "imx"
    result = run_edgeseg("export", run_dir, "--target", "imx500", "--out", out,
                         env={"EDGESEG_IMX500_VENV": str(tmp_path / "none")})
    line = one_error(result)
    assert "IMX500: refused: ASPP rate 18" in line and "--aspp-rates 6,12" in line
    assert not out.exists() or not any(out.iterdir())


def test_a_missing_toolchain_says_how_to_make_it(run_dir, tmp_path):
    result = run_edgeseg("export", fitting_copy(run_dir, tmp_path), "--target", "imx500",
                         env={"EDGESEG_IMX500_VENV": str(tmp_path / "none")})
    line = one_error(result)
    assert "IMX500 toolchain is not installed" in line and "make imx500-env" in line and "requirements.txt" in line


def test_options_of_the_tflite_formats_are_refused_with_imx500(run_dir):
    result = run_edgeseg("export", run_dir, "--target", "imx500", "--int8", "--io", "uint8")
    assert result.returncode == 2 and "--int8, --io do not apply" in one_error(result)


FAKE_PYTHON = '''#!{python}
"""Stands in for convert.py in Sony's environment: writes what it would, from the spec."""
import json, sys
import numpy as np
spec = json.load(open(sys.argv[2]))
h, w = spec["input_size"]
open(spec["keras_out"], "wb").write(b"quantized")
n = len(np.load(spec["val"])["frames"])
zeros = np.zeros((n, h // 4, w // 4, spec["num_classes"]), np.float32)
np.savez(spec["logits_out"], float=zeros, quantized=zeros)
json.dump({{"tensorflow": "2.15.1", "mct": "2.5.1", "tpc": "4.0", "ptq_seconds": 0.1, "val_frames": n}},
          open(spec["result_out"], "w"))
'''
FAKE_IMXCONV = '''#!/bin/sh
echo "2026-12-04 18:07:53.508364: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on."
echo "2026-12-04 18:08:02.414 INFO : CODE: [START] Starting SDSPconv"
echo "2026-12-04 18:08:27.371 ERROR : EtdConvManager Error: unsupported dilation. Layers:[CONV2D, RELU]"
echo "2026-12-04 18:08:27.400 INFO : CODE: [END] exiting"
exit 3
'''


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_a_converter_failure_is_one_line_with_its_reason_and_the_log_kept(run_dir, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    executable(venv / "bin" / "python", FAKE_PYTHON.format(python=sys.executable))
    executable(venv / "bin" / "imxconv-tf", FAKE_IMXCONV)
    executable(tmp_path / "java", "#!/bin/sh\necho 'openjdk version \"17.0.15\" 2025-04-15' >&2\n")
    out = tmp_path / "imx"
    result = run_edgeseg("export", fitting_copy(run_dir, tmp_path), "--target", "imx500", "--out", out,
                         "--calib-size", "8",
                         env={"EDGESEG_IMX500_VENV": str(venv), "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    line = one_error(result)
    assert "imxconv-tf failed: EtdConvManager Error: unsupported dilation. Layers:[CONV2D, RELU]" in line
    assert f"(log: {out / 'imxconv.log'})" in line and "EtdConvManager" in (out / "imxconv.log").read_text()
    assert not (out / "packerOut.zip").exists() and not (out / "export.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".imx500-")]  # the work folder is gone


def test_old_java_is_refused_in_one_line(run_dir, tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "imxconv-tf"):
        executable(venv / "bin" / tool, "#!/bin/sh\nexit 1\n")
    executable(tmp_path / "java", "#!/bin/sh\necho 'java version \"1.8.0_402\"' >&2\n")
    result = run_edgeseg("export", fitting_copy(run_dir, tmp_path), "--target", "imx500",
                         env={"EDGESEG_IMX500_VENV": str(venv), "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    assert "needs Java >= 17 (java 8 on PATH)" in one_error(result)


@pytest.mark.parametrize("log, reason", [
    ("2026-12-04 18:08:27.371 ERROR : EtdConvManager Error ... Layers:[CONV2D, RELU]\nINFO : done\n",
     "EtdConvManager Error ... Layers:[CONV2D, RELU]"),
    ("E external/local_xla/xla/stream_executor/cuda/cuda_dnn.cc:9261] Unable to register cuDNN factory\n"
     "Traceback (most recent call last):\nValueError: Layer rescaling is not supported\n",
     "ValueError: Layer rescaling is not supported"),
    ("only\nnoise lines\n", "noise lines"),
    ("", None),
])
def test_failure_reason_finds_the_converters_own_words(log, reason):
    assert failure_reason(log) == reason
