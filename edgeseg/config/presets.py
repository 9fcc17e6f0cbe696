"""Named sets of training options (`edgeseg train --preset NAME`): plain data; options given on the
command line override them."""

from __future__ import annotations

from edgeseg.core.errors import ConfigError

# The Raspberry Pi AI Camera (IMX500), from the configurations that converted
# (edgeseg/export/imx500/limits.py): MobileNetV2 at alpha 1.0 on 256x256 or alpha 0.5 on 320x320,
# ASPP rates 6/12 (rate 18 fails on the sensor), logits at stride 4 (as every export). The
# export drops the Rescaling layer: the sensor normalises (p - 128) / 128 from the input quantization.
PRESETS: dict[str, dict] = {
    "imx500": {"model__backbone": "mobilenetv2", "model__alpha": 1.0, "model__output_stride": 16,
               "model__atrous_rates": [6, 12], "data__crop_size": "256x256", "data__eval_size": "256x256"},
    "imx500-320": {"model__backbone": "mobilenetv2", "model__alpha": 0.5, "model__output_stride": 16,
                   "model__atrous_rates": [6, 12], "data__crop_size": "320x320", "data__eval_size": "320x320"},
}
TARGET_OF_PRESET = {"imx500": "imx500", "imx500-320": "imx500"}


def preset(name: str) -> dict:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}") from None
