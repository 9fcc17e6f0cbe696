"""What the IMX500 (the Raspberry Pi AI Camera) was measured to take, as data, and the verdict on a
DeepLabv3+ configuration before anyone trains it: ``fits``, ``refused`` (naming the limit) or
``unknown`` (not measured: the conversion's memory report decides).

The measurements (Sony's toolchain, ``edgeseg/export/imx500/requirements.txt``; DeepLabv3+ on
MobileNetV2, ASPP at output stride 16, 21 classes, logits at stride 4, no Rescaling layer) are in
``MEASURED``. A configuration no larger than one that converted (width, input, classes, ASPP
channels, the same or fewer rates) fits; one at least as large as one refused for memory is
refused. Imports no TensorFlow: ``edgeseg model summary`` and ``train`` check before building.
"""

from __future__ import annotations

from dataclasses import dataclass

# The sensor feeds the network from its input quantization: one scale and offset for all three
# channels. MobileNetV2's (p - 127.5) / 127.5 is that (the converter sees (p - 128) / 128); a
# per-channel mean and std (ResNet50's caffe mean) is not.
BACKBONES_OK = ("mobilenetv2",)
MAX_RATE_OK = 12  # the largest ASPP rate that converted (on 16x16 and 20x20 maps)
MIN_RATE_REFUSED = 18  # failed in the converter's backend on a 20x20 map
CHIP_MB = 8.0


@dataclass(frozen=True)
class Measured:
    """One configuration put through the converter."""

    alpha: float
    size: tuple[int, int]
    rates: tuple[int, ...]
    converted: bool
    why: str  # what the converter said (a refusal) or what it made
    memory_mb: float | None = None
    packer_mb: float | None = None
    output_stride: int = 16
    num_classes: int = 21
    aspp_filters: int = 256
    decoder_filters: int = 256
    head: str = "separable"

    def describe(self) -> str:
        return (f"alpha {self.alpha:g} at {self.size[0]}x{self.size[1]}, rates "
                f"{'/'.join(map(str, self.rates))}")


MEASURED = (
    Measured(1.0, (256, 256), (6, 12), True, "5.14 MB on chip, packerOut.zip 2.67 MB, output 64x64x21",
             memory_mb=5.14, packer_mb=2.67),
    Measured(0.5, (320, 320), (6, 12), True, "5.14 MB on chip, packerOut.zip 1.17 MB", memory_mb=5.14,
             packer_mb=1.17),
    Measured(1.0, (320, 320), (6, 12), False, "graph memory 110% of the chip's 8 MB"),
    Measured(1.0, (320, 320), (6, 12, 18), False,
             "the converter's backend failed at the rate-18 depthwise conv on the 20x20 map "
             "(EtdConvManager Error, Layers:[CONV2D, RELU]) after the memory report passed (7.93 MB)",
             memory_mb=7.93),
)


@dataclass(frozen=True)
class Verdict:
    """``status``: fits | refused | unknown; ``reason``: one line for the user."""

    status: str
    reason: str

    @property
    def refused(self) -> bool:
        return self.status == "refused"

    def line(self) -> str:
        return f"IMX500: {self.status}: {self.reason}"


def check_imx500(config, num_classes: int | None, input_size) -> Verdict:
    """The verdict on a :class:`~edgeseg.config.ModelConfig` at ``input_size`` (h, w): the size the
    model is exported at (the run's evaluation size). ``num_classes`` None: not known yet (before
    the data is read), taken as no more than the measured models had."""
    h, w = (int(v) for v in input_size)
    rates = tuple(config.aspp_rates)
    if config.backbone not in BACKBONES_OK:
        return Verdict("refused", f"backbone {config.backbone}: the sensor normalises the input with one scale "
                                  f"and offset for all channels (from the input quantization); use "
                                  f"{', '.join(BACKBONES_OK)}")
    big = [r for r in rates if r >= MIN_RATE_REFUSED]
    if big:
        failed = next(m for m in MEASURED if MIN_RATE_REFUSED in m.rates and not m.converted)
        return Verdict("refused", f"ASPP rate {big[0]}: rate {MIN_RATE_REFUSED} failed ({failed.why}); "
                                  f"use rates up to {MAX_RATE_OK}, e.g. --aspp-rates 6,12")
    for m in MEASURED:
        if m.converted and _no_larger(config, num_classes, (h, w), rates, m):
            if (config.alpha, (h, w), rates) == (m.alpha, m.size, m.rates):
                return Verdict("fits", f"{m.describe()} converted ({m.why})")
            return Verdict("fits", f"no larger than {m.describe()}, which converted ({m.why})")
    for m in MEASURED:
        if not m.converted and set(rates) == set(m.rates) and _no_smaller(config, (h, w), m):
            said = f"{m.describe()} was refused" if (config.alpha, (h, w)) == (m.alpha, m.size) else \
                f"alpha {config.alpha:g} at {h}x{w} is no smaller than {m.describe()}, refused"
            return Verdict("refused", f"{said}: {m.why}; measured to fit: {_fits_list()}")
    unmeasured = [r for r in rates if r > MAX_RATE_OK]
    why = (f"ASPP rate {unmeasured[0]} was not measured (up to {MAX_RATE_OK} converted, {MIN_RATE_REFUSED} failed)"
           if unmeasured else "not measured")
    return Verdict("unknown", f"{why}; the conversion's memory report decides (measured to fit: {_fits_list()})")


def _fits_list() -> str:
    return "; ".join(m.describe() for m in MEASURED if m.converted)


def _no_larger(config, num_classes: int, size, rates, m: Measured) -> bool:
    """Every dimension that costs the sensor memory is at most the measured model's."""
    return (config.alpha <= m.alpha and size[0] <= m.size[0] and size[1] <= m.size[1]
            and (num_classes or 0) <= m.num_classes and config.output_stride == m.output_stride
            and config.aspp_filters <= m.aspp_filters and config.decoder_filters <= m.decoder_filters
            and config.head == m.head and set(rates) <= set(m.rates))


def _no_smaller(config, size, m: Measured) -> bool:
    """At least the refused model's width and input, at its output stride or a finer one. The
    classes are left out: the logits at stride 4 are a few per cent of the activations, far less
    than the 10% the refused model was over."""
    return (config.alpha >= m.alpha and size[0] >= m.size[0] and size[1] >= m.size[1]
            and config.output_stride <= m.output_stride and config.aspp_filters >= m.aspp_filters
            and config.decoder_filters >= m.decoder_filters)
