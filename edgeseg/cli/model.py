"""`edgeseg model summary`."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeseg.cli.common import VERBOSE_HELP, handle_errors, setup_logging
from edgeseg.cli.train import Head

app = typer.Typer(help="Inspect model architectures.", no_args_is_help=True)


@app.command()
@handle_errors
def summary(
    num_classes: Annotated[int, typer.Option(min=2, help="Output classes.")] = 11,
    backbone: Annotated[str, typer.Option(help="mobilenetv2 or resnet50.")] = "mobilenetv2",
    alpha: Annotated[float, typer.Option(help="MobileNetV2 width multiplier.")] = 1.0,
    output_stride: Annotated[int, typer.Option(help="16 or 8.")] = 16,
    head: Annotated[Head, typer.Option(help="ASPP/decoder convolutions.")] = Head.separable,
    input_size: Annotated[str, typer.Option(help="HxW (height x width), multiple of the output stride.")] = "368x480",
    layers: Annotated[bool, typer.Option(help="Also print the Keras layer table.")] = False,
    macs: Annotated[bool, typer.Option(help="Count multiply-adds from the graph (slower).")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
):
    """Parameters and multiply-adds of a DeepLabv3+ configuration."""
    setup_logging(verbose)
    from edgeseg.config import ModelConfig
    from edgeseg.core.geometry import parse_size
    from edgeseg.models import build_deeplabv3plus
    from edgeseg.models.deeplabv3plus import count_params

    config = ModelConfig(backbone=backbone, alpha=alpha, output_stride=output_stride, head=head.value)
    size = config.check_input_size(parse_size(input_size, "--input-size"))
    model = build_deeplabv3plus(config, num_classes, size)
    if layers:
        model.summary(print_fn=typer.echo)
    trainable = int(sum(int(w.shape.num_elements()) for w in model.trainable_weights))
    typer.echo(f"DeepLabv3+ {backbone} alpha={alpha} OS{output_stride} {head.value} head, "
               f"{size[0]}x{size[1]} (HxW), {num_classes} classes")
    typer.echo(f"parameters: {count_params(model):,} ({trainable:,} trainable)")
    if macs:
        from edgeseg.models.cost import count_macs

        typer.echo(f"multiply-adds per frame: {count_macs(model) / 1e9:.3f} G")
