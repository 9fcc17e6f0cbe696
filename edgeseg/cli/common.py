"""Shared CLI plumbing: typed errors to one line on stderr and an exit code."""

from __future__ import annotations

import functools
import logging
import sys
from enum import Enum

import typer

from edgeseg.errors import EdgesegError


TRAINING_MODULES = {"tensorflow", "tf_keras", "tensorflow_model_optimization"}


class Format(str, Enum):
    camvid = "camvid"
    cityscapes = "cityscapes"
    voc = "voc"
    folder = "folder"
    synthetic = "synthetic"
    tfrecord = "tfrecord"


def fail(message: str, code: int = 1):
    typer.echo(f"edgeseg: error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func):
    """Turn library errors into ``edgeseg: error: ...`` on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgesegError as e:
            fail(str(e), e.exit_code)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] in TRAINING_MODULES:
                fail(f"this command needs TensorFlow ({e.name} is not installed): pip install 'edgeseg[train]'")
            raise
        except KeyboardInterrupt:
            typer.echo("edgeseg: interrupted", err=True)
            raise typer.Exit(130)
    return wrapper


def setup_logging(verbose: bool = False) -> None:
    """edgeseg's own messages on stderr; other libraries' loggers are left alone."""
    log = logging.getLogger("edgeseg")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


def quiet_tensorflow() -> None:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
