"""`edgeseg run`'s options checked before anything opens: outputs that can be written (and what a
killed run left there), sources and the options that go with them."""

from __future__ import annotations

from pathlib import Path

from edgeseg.cli.common import fail, usage


def check_outputs(save: Path | None, save_masks: Path | None, stats_json: Path | None, collect: Path | None) -> None:
    """Every output path is usable before the model runs (not after the first frame); what a
    killed run left there under a temporary name is removed."""
    from edgeseg.core.collection import images_dir, masks_dir
    from edgeseg.core.files import check_output_file, check_writable_dir, sweep_temporaries
    from edgeseg.runtime.run.recording import VideoSink, is_segment_of

    check_output_file(save, "--save")
    check_output_file(stats_json, "--stats-json")
    if save is not None:
        sweep_temporaries(save.parent, lambda name: name == save.name or is_segment_of(save, name))
        try:
            VideoSink.check(save)
        except OSError as e:
            fail(f"--save: {e}")
    if stats_json is not None:
        sweep_temporaries(stats_json.parent, lambda name: name == stats_json.name)
    if save_masks is not None:
        check_writable_dir(save_masks, "--save-masks")
        sweep_temporaries(save_masks, lambda name: name.endswith(".png"))
    if collect is not None:
        for folder in (images_dir(collect), masks_dir(collect)):
            sweep_temporaries(folder)


def save_fps(source: str | None, live: bool) -> float | None:
    """The rate of a --save video: a video file's own, 15 for images (they have none), None
    (measured as frames are segmented) for cameras and streams."""
    from edgeseg.runtime.run.recording import VideoSink
    from edgeseg.runtime.sources.files import video_fps

    if live:
        return None
    return video_fps(source) or VideoSink.DEFAULT_FPS


def wxh(text: str) -> tuple[int, int]:
    """--camera-size is width x height, as cameras are described (--input-size is HxW)."""
    from edgeseg.core.geometry import parse_size

    w, h = parse_size(text, "--camera-size", order="WxH")
    return w, h


def check_source_options(camera, source, camera_size, camera_fps, camera_mjpg, loop, give_up_after) -> bool:
    """Source options that do not go together, refused before anything opens; whether the
    source is live (a camera, a stream, a GStreamer pipeline)."""
    if (camera is None) == (source is None):
        usage("give one of --camera N or --source FILE|URL|DIR|GLOB")
    live = camera is not None or "://" in (source or "") or (source or "").startswith("gst:")
    if (camera_size or camera_fps or camera_mjpg) and not live:
        usage("--camera-size, --camera-fps and --camera-mjpg apply to cameras and GStreamer sources")
    if camera_mjpg and (camera is None or not camera.replace("/dev/video", "").isdigit()):
        usage("--camera-mjpg applies to USB (V4L2) cameras")
    if loop and live:
        usage("--loop replays a file or folder; a camera or stream goes on by itself")
    if give_up_after is not None and not live:
        usage("--give-up-after applies to cameras and network streams; a file or folder ends by itself")
    return live
