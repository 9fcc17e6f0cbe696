"""Shared CLI plumbing: typed errors to one line on stderr and an exit code."""

from __future__ import annotations

import functools
import logging
import sys
from enum import Enum

import typer

from edgeseg.config import DATASET_FORMATS, DECODER_UPSAMPLING
from edgeseg.core.errors import EdgesegError


TRAINING_MODULES = {"tensorflow", "tf_keras", "tensorflow_model_optimization"}


def choices(name: str, values) -> type[Enum]:
    """An Enum of ``values`` for an option: typer lists them in --help and refuses others. Made
    from the tuple the library validates against, so the two cannot disagree."""
    return Enum(name, {v: v for v in values}, type=str)


Format = choices("Format", DATASET_FORMATS)
Interp = choices("Interp", DECODER_UPSAMPLING)


def flags_phrase(flags: list[str], singular: str, plural: str) -> str:
    """``--a does nothing`` / ``--a, --b do nothing``: a one-line error names every stray flag."""
    return f"{', '.join(flags)} {singular if len(flags) == 1 else plural}"


def fail(message: str, code: int = 1):
    """A failure the command met (a missing file, a camera that does not open): exit 1."""
    typer.echo(f"edgeseg: error: {message}", err=True)
    raise typer.Exit(code)


def model_file_problem(path) -> str | None:
    """Why ``path`` is not a model file to run (None: it is a file): missing, or a folder (a
    training run, an export folder), said with what to give instead."""
    from pathlib import Path

    path = Path(path)
    if path.is_file():
        return None
    if not path.is_dir():
        return f"model not found: {path}"
    if (path / "config.yaml").is_file():
        return f"{path} is a training run, not a model file: export it (edgeseg export {path}) and give a .tflite or .onnx file"
    inside = sorted(p.name for p in path.iterdir() if p.suffix in (".tflite", ".onnx"))
    listed = f" (it holds {', '.join(inside[:4])}{', ...' if len(inside) > 4 else ''})" if inside else ""
    return f"{path} is a folder, not a model file: give a .tflite or .onnx file{listed}"


def usage(message: str):
    """Options that do not go together or mean nothing here: exit 2, like a bad option value."""
    fail(message, 2)


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


VERBOSE_HELP = "Also show the start-up and diagnostic lines of TensorFlow, OpenCV and LiteRT."


def setup_logging(verbose: bool = False) -> None:
    """edgeseg's own messages on stderr, and the C++ libraries' start-up chatter (TensorFlow's
    ``I0000``/``E0000 ... cuInit`` lines, OpenCV's ``[ WARN:0@...]``) kept out of the terminal
    unless ``verbose``: it reads like failures on any machine without a GPU or camera. Must run
    before TensorFlow or OpenCV is imported."""
    import os

    if verbose:
        os.environ["EDGESEG_VERBOSE"] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
        # FFmpeg's own lines (a stream that refuses each reconnect attempt, "moov atom not found")
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    log = logging.getLogger("edgeseg")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.DEBUG if verbose else logging.INFO)


def provider_list(text: str | None) -> list[str] | None:
    """--providers tensorrt,cuda,cpu as a list (None: the backend's default)."""
    return [p.strip().lower() for p in text.split(",") if p.strip()] if text else None
