"""A tiny model through Sony's REAL toolchain (`make test-imx500`: the environment is made once,
then MCT and imxconv-tf run for minutes): the files the AI Camera takes, checked.

Skipped where the environment is missing, unless EDGESEG_REQUIRE_IMX500=1 (make test-imx500),
which makes a missing toolchain a failure."""

import json
import os
import zipfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import run_edgeseg
from edgeseg.export.imx500.toolchain import Toolchain, candidates

pytestmark = pytest.mark.imx500


@pytest.fixture(scope="module")
def toolchain():
    found = next((Toolchain(p) for p in candidates() if Toolchain(p).imxconv.is_file()), None)
    if found is None:
        if os.environ.get("EDGESEG_REQUIRE_IMX500") == "1":
            pytest.fail(f"Sony's IMX500 toolchain is not installed in {candidates()}: make imx500-env")
        pytest.skip("Sony's IMX500 toolchain is not installed (make imx500-env; make test-imx500 runs this)")
    return found


@pytest.fixture(scope="module")
def imx_run(synth_root, tmp_path_factory):
    """A tiny run the sensor takes: MobileNetV2 alpha 0.35, 64x64, ASPP rates 6/12."""
    from edgeseg.config import TrainConfig
    from edgeseg.train import train

    run = tmp_path_factory.mktemp("imx500") / "tiny"
    cfg = TrainConfig().override(
        data__root=str(synth_root), data__crop_size=[64, 64], data__eval_size=[64, 64], data__batch_size=4,
        model__alpha=0.35, model__aspp_filters=32, model__decoder_filters=32, model__atrous_rates=[6, 12],
        optim__epochs=2, optim__steps_per_epoch=15, optim__learning_rate=5e-3)
    train(cfg, run, verbose=0)
    return run


def test_a_tiny_model_converts_for_the_ai_camera(toolchain, imx_run, tmp_path):
    out = tmp_path / "imx"
    result = run_edgeseg("export", imx_run, "--target", "imx500", "--out", out, "--calib-size", "8",
                         env={"EDGESEG_IMX500_VENV": str(toolchain.venv)}, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "memory report:" in result.stdout and "Fit In Chip True" in result.stdout
    report = json.loads((out / "export.json").read_text())
    files = {k: Path(v) for k, v in report["files"].items()}
    assert zipfile.ZipFile(files["packer"]).namelist()
    assert report["memory"]["Fit In Chip"] is True and report["memory"]["Total Memory Available On Chip"] == "8.00MB"
    dataset = json.loads((imx_run / "dataset.json").read_text())
    names = dataset["class_names"]
    assert files["labels"].read_text().splitlines() == names
    meta = json.loads(files["metadata"].read_text())
    assert meta["precision"] == "imx500" and meta["input_size"] == [64, 64] and meta["class_names"] == names
    # the sensor normalises (p - 128) / 128 from the input quantization: the graph has no Rescaling
    net = ET.parse(files["dnn_params"]).getroot().find(".//network")
    inp, outp = net.find(".//inputTensor"), net.find(".//outputTensor")
    assert float(inp.get("scale")) == 1 / 128 and inp.get("format") == "signed"
    assert [int(d.get("size")) for d in outp.iter("dimension")] == [16, 16, len(names)]
    # the weights travelled: the float model rebuilt under TensorFlow 2.15 scores val as training did
    drop = report["parity"]["imx500"]
    best = json.loads((imx_run / "best.json").read_text())
    assert drop["miou_float"] == pytest.approx(best["miou"], abs=1e-6)
    assert 0.5 < drop["pixel_agreement"] <= 1.0
    assert report["mct"]["tensorflow"] == "2.15.1" and report["mct"]["mct"] == "2.5.1"
    # edgeseg evaluate of the exported .keras (MCT's loader, in Sony's environment) scores it as the export did
    scores = tmp_path / "eval.json"
    result = run_edgeseg("evaluate", imx_run, files["quantized"], "--json", scores,
                         env={"EDGESEG_IMX500_VENV": str(toolchain.venv)}, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["kind"]: r for r in json.loads(scores.read_text())["models"]}
    assert rows["imx500"]["miou"] == pytest.approx(drop["miou_quantized"], abs=1e-9)
