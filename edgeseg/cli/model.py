"""`edgeseg model summary`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgeseg.cli.common import VERBOSE_HELP, choices, handle_errors, setup_logging
from edgeseg.cli.train import Head, _ints

Target = choices("Target", ("imx500",))

app = typer.Typer(help="Inspect model architectures.", no_args_is_help=True)


@app.command()
@handle_errors
def summary(
    num_classes: Annotated[int, typer.Option(min=2, help="Output classes.")] = 11,
    backbone: Annotated[str, typer.Option(help="mobilenetv2 or resnet50.")] = "mobilenetv2",
    alpha: Annotated[float, typer.Option(help="MobileNetV2 width multiplier.")] = 1.0,
    output_stride: Annotated[int, typer.Option(help="16 or 8.")] = 16,
    head: Annotated[Head, typer.Option(help="ASPP/decoder convolutions.")] = Head.separable,
    aspp_rates: Annotated[Optional[str], typer.Option(help="ASPP atrous rates, e.g. 6,12 (default: the paper's for the output stride).")] = None,
    input_size: Annotated[str, typer.Option(help="HxW (height x width), multiple of the output stride.")] = "368x480",
    target: Annotated[Optional[Target], typer.Option(help="Say whether the device is known to take this configuration (imx500: the Raspberry Pi AI Camera); exit 1 when it is known not to.")] = None,
    layers: Annotated[bool, typer.Option(help="Also print the Keras layer table.")] = False,
    macs: Annotated[bool, typer.Option(help="Count multiply-adds from the graph (slower).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Parameters and multiply-adds of a DeepLabv3+ configuration, and with --target whether the
    device takes it.

    [bold]Examples[/bold]

      edgeseg model summary --num-classes 11 --input-size 256x256 --aspp-rates 6,12 --target imx500
    """
    setup_logging(verbose)
    from edgeseg.config import ModelConfig
    from edgeseg.core.geometry import parse_size
    from edgeseg.models import build_deeplabv3plus
    from edgeseg.models.deeplabv3plus import count_params

    config = ModelConfig(backbone=backbone, alpha=alpha, output_stride=output_stride, head=head.value,
                         atrous_rates=_ints(aspp_rates, "--aspp-rates"))
    size = config.check_input_size(parse_size(input_size, "--input-size"))
    verdict = None
    if target is not None:  # before the model is built: the verdict needs no TensorFlow
        from edgeseg.export.imx500.limits import check_imx500

        verdict = check_imx500(config, num_classes, size)
    model = build_deeplabv3plus(config, num_classes, size)
    if layers:
        model.summary(print_fn=typer.echo)
    trainable = int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
    typer.echo(f"DeepLabv3+ {backbone} alpha={alpha} OS{output_stride} {head.value} head, ASPP rates "
               f"{'/'.join(map(str, config.aspp_rates))}, {size[0]}x{size[1]} (HxW), {num_classes} classes")
    typer.echo(f"parameters: {count_params(model):,} ({trainable:,} trainable)")
    if macs:
        from edgeseg.models.cost import count_macs

        typer.echo(f"multiply-adds per frame: {count_macs(model) / 1e9:.3f} G")
    if verdict is not None:
        typer.echo(verdict.line())
        if verdict.refused:
            raise typer.Exit(1)
