"""The IMX500's measured limits: verdicts before training, the preset, the summary's --target."""

import pytest
from typer.testing import CliRunner

from conftest import error_lines
from edgeseg.cli.main import app
from edgeseg.config import ModelConfig, TrainConfig
from edgeseg.config.presets import PRESETS
from edgeseg.core.errors import ConfigError
from edgeseg.export.imx500.limits import MEASURED, check_imx500

runner = CliRunner()


def verdict(size, classes=21, **model):
    return check_imx500(ModelConfig(**model), classes, size)


@pytest.mark.parametrize("row", MEASURED, ids=lambda m: m.describe())
def test_every_measured_configuration_gets_its_measured_verdict(row):
    v = verdict(row.size, row.num_classes, alpha=row.alpha, atrous_rates=row.rates)
    assert v.status == ("fits" if row.converted else "refused"), v.line()
    assert row.why in v.reason


def test_smaller_than_a_converted_model_fits_and_larger_than_a_refused_one_is_refused():
    assert verdict((224, 320), 11, alpha=0.35, atrous_rates=(6, 12)).status == "fits"
    assert verdict((256, 256), 11, alpha=1.0, atrous_rates=(6,)).status == "fits"
    assert verdict((352, 480), 11, alpha=1.3, atrous_rates=(6, 12)).refused
    # more classes than any measured model, or a width between the measured ones: not known
    assert verdict((256, 256), 40, alpha=1.0, atrous_rates=(6, 12)).status == "unknown"
    v = verdict((288, 288), 11, alpha=0.75, atrous_rates=(6, 12))
    assert v.status == "unknown" and "memory report" in v.reason


def test_the_limit_is_named():
    v = verdict((256, 256), 11, alpha=0.5)  # the paper's rates at output stride 16: 6/12/18
    assert v.refused and "ASPP rate 18" in v.reason and "EtdConvManager" in v.reason
    assert "unknown" == verdict((256, 256), 11, alpha=0.5, atrous_rates=(6, 14)).status
    v = verdict((256, 256), 11, backbone="resnet50", atrous_rates=(6, 12))
    assert v.refused and "one scale and offset for all channels" in v.reason


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_make_configurations_known_to_fit(name):
    cfg = TrainConfig().override(**PRESETS[name])
    assert cfg.model.aspp_rates == (6, 12)
    assert check_imx500(cfg.model, 11, cfg.data.eval_size).status == "fits"


def test_aspp_rates_are_a_setting_and_default_to_the_output_stride():
    assert ModelConfig().aspp_rates == (6, 12, 18)
    assert ModelConfig(output_stride=8).aspp_rates == (12, 24, 36)
    cfg = TrainConfig().override(model__atrous_rates=[6, 12])
    assert TrainConfig.from_dict(cfg.to_dict()).model.aspp_rates == (6, 12)
    for bad in ([], [0, 6], ["x"]):
        with pytest.raises(ConfigError, match="ASPP rates"):
            ModelConfig(atrous_rates=bad)


def test_model_summary_target_imx500_says_and_exits_1_when_refused():
    base = ["model", "summary", "--num-classes", "11", "--no-macs", "--target", "imx500", "--alpha", "1.0"]
    ok = runner.invoke(app, base + ["--input-size", "256x256", "--aspp-rates", "6,12"])
    assert ok.exit_code == 0 and "IMX500: fits" in ok.stdout and "rates 6/12" in ok.stdout
    refused = runner.invoke(app, base + ["--input-size", "320x320", "--aspp-rates", "6,12"])
    assert refused.exit_code == 1 and "IMX500: refused" in refused.stdout and "110%" in refused.stdout


def test_train_preset_refuses_a_configuration_the_sensor_refused_before_any_data_is_read(tmp_path):
    result = runner.invoke(app, ["train", "--preset", "imx500", "--eval-size", "320x320", "--crop-size", "320x320",
                                 "--run-dir", str(tmp_path / "run")])
    lines = error_lines(result.stderr)
    assert result.exit_code == 2 and len(lines) == 1, result.stderr
    assert "--preset imx500" in lines[0] and "110%" in lines[0]
    assert not (tmp_path / "run").exists()
    unknown = runner.invoke(app, ["train", "--preset", "nope", "--run-dir", str(tmp_path / "run")])
    assert unknown.exit_code == 2 and "imx500-320" in unknown.stderr
