"""Keeping C++ libraries' start-up lines out of the user's terminal.

TensorFlow and LiteRT write lines such as ``I0000 ... oneDNN``, ``E0000 ... failed call to
cuInit`` or ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file
descriptor 2, where no Python log level reaches. They read like failures on a machine without a
GPU; ``--verbose`` (``EDGESEG_VERBOSE=1``) lets them through.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from contextlib import contextmanager

_lock = threading.Lock()


def verbose() -> bool:
    return os.environ.get("EDGESEG_VERBOSE") == "1"


@contextmanager
def captured_stderr(log: list | None = None, echo_on_error: bool = False, fds: tuple[int, ...] = (2,)):
    """Point file descriptor 2 (and the other ``fds``: LiteRT's GPU accelerator also talks on 1)
    at a temporary file for the block; what was written goes into ``log``, and, with
    ``echo_on_error``, to the terminal too if the block raises. Does nothing when verbose. Other
    threads' output is captured too while the block runs, so keep it short."""
    if verbose():
        yield
        return
    with _lock:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in fds}
        with tempfile.TemporaryFile(mode="w+b") as sink:
            for fd in fds:
                os.dup2(sink.fileno(), fd)
            failed = True
            try:
                yield
                failed = False
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                    os.close(copy)
                sink.seek(0)
                text = sink.read().decode(errors="replace")
                if log is not None:
                    log.append(text)
                if failed and echo_on_error and text:
                    sys.stderr.write(text)
