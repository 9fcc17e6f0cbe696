"""`edgeseg`: train, evaluate and inspect DeepLabv3+ segmentation models."""

from __future__ import annotations

import sys

import typer

from edgeseg import __version__
from edgeseg.cli import data as data_cli
from edgeseg.cli import model as model_cli
from edgeseg.cli.evaluate import evaluate
from edgeseg.cli.export import export
from edgeseg.cli.benchmark import benchmark
from edgeseg.cli.run import run
from edgeseg.cli.train import train

app = typer.Typer(
    name="edgeseg",
    help="DeepLabv3+ semantic segmentation from training to a quantized model on an edge device.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command(no_args_is_help=False)(train)
app.command()(evaluate)
app.command()(export)
app.command()(run)
app.command()(benchmark)
app.add_typer(data_cli.app, name="data")
app.add_typer(model_cli.app, name="model")


def _version(value: bool):
    if value:
        typer.echo(f"edgeseg {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")):
    """DeepLabv3+ semantic segmentation from training to a quantized model on an edge device."""


def _click_exception():
    try:
        from typer._click.exceptions import ClickException  # typer >= 0.20 vendors click
    except ImportError:  # pragma: no cover - older typer
        from click.exceptions import ClickException
    return ClickException


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; usage errors (a bad option value, a missing argument) come out as one line
    ``edgeseg: error: ...`` with exit code 2, like the errors the commands raise themselves."""
    ClickException = _click_exception()
    try:
        rv = app(args=argv, prog_name="edgeseg", standalone_mode=False)
    except ClickException as e:
        message = " ".join(e.format_message().split())
        ctx = getattr(e, "ctx", None)
        where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"edgeseg: error: {message}{where}", err=True)
        return e.exit_code
    except typer.Abort:
        typer.echo("edgeseg: interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


def entry_point():
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
