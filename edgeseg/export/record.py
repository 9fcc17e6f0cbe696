"""``export.json`` as the record of what an export wrote: each file with its checksum and the
settings it was made from, so that an export stopped half-way (a full disk, a power cut) is
completed by running it again, without making or overwriting the files it finished."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg import __version__
from edgeseg.core.errors import ConfigError
from edgeseg.export.formats import EXPORT_FORMATS
from edgeseg.rundir import RunDir

if TYPE_CHECKING:
    from edgeseg.export.exporter import ExportOptions


def sha256_of(path: Path) -> str:
    """The file's SHA-256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> dict | None:
    """What changes when a weights file is written again (None: there is none)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return {"path": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_settings(run: RunDir, options: ExportOptions, name: str) -> dict:
    """Everything a format's file is made from: the same settings and weights make the same file,
    so a file an earlier export recorded with these settings need not be made again."""
    row = EXPORT_FORMATS[name]
    try:
        weights = _stamp(run.weights())
    except ConfigError:
        weights = None
    out = {"edgeseg": __version__, "weights": weights, "decoder_interpolation": options.decoder_interpolation}
    if row.qat:
        out["qat_weights"] = _stamp(run.qat_weights)
    if row.integer_io:
        out["io"] = options.io
    if row.calibration:
        out["calibration"] = {"data": str(options.calib_data) if options.calib_data else None,
                              "format": options.calib_format, "split": options.calib_split,
                              "size": options.calib_size, "select": options.calib_select, "seed": options.seed,
                              "manifest": str(options.calib_manifest) if options.calib_manifest else None}
    if name == "int8" and options.keep_float:
        out["keep_float"] = list(options.keep_float)
    if row.file == "onnx" and row.calibration:
        out["onnx_int8"] = options.onnx_int8
    return out


def previous_report(path: Path, run: RunDir) -> dict | None:
    """The export.json in the output folder if an export of this run wrote it ({} when there is
    none); None for anything else (a file of the user's, another run's record)."""
    if not path.exists():
        return {}
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict) or report.get("run") != str(run.path):
        return None
    return report


def finished_files(previous: dict, targets: dict, run: RunDir, options: ExportOptions) -> dict:
    """The formats whose file an earlier export recorded as written, with the settings asked now,
    and that is still the file it wrote (its checksum)."""
    done = {}
    for name, target in targets.items():
        row = (previous.get("files") or {}).get(name)
        if (isinstance(row, dict) and row.get("path") == str(target) and target.is_file()
                and row.get("settings") == file_settings(run, options, name)
                and row.get("sha256") == sha256_of(target)):
            done[name] = row
    return done
