"""From the device back to training: `edgeseg run --collect`, the CVAT round trip, `train --init`."""

import csv
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import error_lines, run_edgeseg


def rows(folder: Path) -> list[dict]:
    with (folder / "frames.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_margin_uncertainty_is_zero_when_sure_and_one_when_tied():
    from edgeseg.runtime.run.collect import margin_uncertainty

    sure = np.zeros((4, 4, 3), np.float32)
    sure[..., 1] = 50.0
    tied = np.zeros((4, 4, 3), np.float32)
    tied[..., :2] = 5.0
    assert margin_uncertainty(sure) == pytest.approx(0.0, abs=1e-6)
    assert margin_uncertainty(tied) == pytest.approx(1.0, abs=1e-6)
    half = np.concatenate([sure[:2], tied[:2]])
    assert margin_uncertainty(half) == pytest.approx(0.5, abs=1e-6)


def test_collect_on_a_clip_keeps_frames_and_drafts_skips_duplicates_and_stops_at_the_maximum(exported, video, tmp_path):
    int8 = exported["files"]["int8"]["path"]
    folder, masks = tmp_path / "site", tmp_path / "masks"
    # the clip is 4 frames twice over: the second pass is near-duplicates of the first
    result = run_edgeseg("run", int8, "--source", video, "--collect", folder, "--collect-when", "every:1",
                         "--collect-gap", "0", "--save-masks", masks)
    assert result.returncode == 0, result.stderr[-2000:]
    kept = rows(folder)
    assert [r["frame"] for r in kept] == ["0", "1", "2", "3"] and {r["reason"] for r in kept} == {"every:1"}
    assert "4 near duplicate" in result.stdout
    for r in kept:  # the draft is the model's own mask, the image the frame
        draft = cv2.imread(str(folder / "train" / "masks" / f"{r['name']}.png"), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(draft, cv2.imread(str(masks / f"{r['name']}.png"), cv2.IMREAD_UNCHANGED))
        assert cv2.imread(str(folder / "train" / "images" / f"{r['name']}.jpg")).shape == (64, 64, 3)
        assert 0 <= float(r["uncertainty"]) <= 1
    assert (folder / "classes.txt").read_text().split()[0] == "sky"
    check = run_edgeseg("data", "check", folder)
    assert check.returncode == 0 and "train: 4 pairs" in check.stdout, check.stdout + check.stderr

    # the same folder again: it is continued (no name reused) and bounded by --collect-max
    again = run_edgeseg("run", int8, "--source", video, "--collect", folder, "--collect-when", "every:1",
                        "--collect-gap", "0", "--collect-dedup", "0", "--collect-max", "6")
    assert again.returncode == 0, again.stderr[-2000:]
    names = [r["name"] for r in rows(folder)]
    assert len(names) == 6 and len(set(names)) == 6
    assert len(list((folder / "train" / "images").iterdir())) == 6
    assert "collecting stops" in again.stderr


def test_collect_keeps_the_most_uncertain_frame_of_each_window(exported, synth_root, tmp_path):
    from edgeseg.runtime.model.segmenter import Segmenter
    from edgeseg.runtime.run.collect import margin_uncertainty

    int8 = exported["files"]["int8"]["path"]
    images = sorted((synth_root / "train" / "images").iterdir())
    folder = tmp_path / "site"
    result = run_edgeseg("run", int8, "--source", synth_root / "train" / "images", "--collect", folder,
                         "--collect-top", "1", "--collect-window", "4", "--collect-gap", "0", "--collect-dedup", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    seg = Segmenter(int8, threads=1)
    scores = []
    for path in images:
        p = seg.infer(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
        scores.append(margin_uncertainty(seg.frame_logits(p)))
    expected = [images[w + int(np.argmax(scores[w:w + 4]))].stem for w in range(0, len(images), 4)]
    kept = rows(folder)
    assert [r["name"] for r in kept] == expected
    assert [float(r["score"]) for r in kept] == pytest.approx([max(scores[w:w + 4]) for w in range(0, len(images), 4)], abs=1e-4)


def test_collect_disagreement_with_the_float_model(exported, video, tmp_path):
    int8, fp32 = exported["files"]["int8"]["path"], exported["files"]["fp32"]["path"]
    folder = tmp_path / "site"
    result = run_edgeseg("run", int8, "--source", video, "--compare", fp32, "--compare-every", "2",
                         "--collect", folder, "--collect-when", "disagree", "--collect-threshold", "0",
                         "--collect-gap", "0", "--collect-dedup", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    kept = rows(folder)
    assert [r["frame"] for r in kept] == ["0", "2", "4", "6"]  # the frames the float model ran on
    assert all(r["reason"] == "disagree" and 0 <= float(r["disagreement"]) <= 1 for r in kept)


@pytest.mark.parametrize("args, words", [
    (["--collect-top", "2"], "--collect-top needs --collect DIR"),
    (["--collect", "{tmp}/c", "--collect-when", "disagree"], "--collect-when disagree needs --compare"),
    (["--collect", "{tmp}/c", "--collect-when", "sometimes"], "--collect-when must be one of"),
    (["--collect", "{tmp}/c", "--collect-when", "every:x"], "every:N takes a whole number"),
    (["--collect", "{tmp}/c", "--collect-threshold", "0.5", "--collect-top", "2"], "--collect-threshold keeps every frame"),
    (["--collect", "{tmp}/mine"], "is not empty and is not an edgeseg collection"),
    (["--collect", "{tmp}/mine/notes.txt"], "is a file"),
])
def test_collect_refusals_are_one_line_and_write_nothing(exported, video, tmp_path, args, words):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", video, *args)
    assert result.returncode != 0
    said = error_lines(result.stderr)
    assert len(said) == 1 and words in said[0], result.stderr[-2000:]
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and not (tmp_path / "c").exists()


def test_collect_into_a_collection_of_other_classes_is_refused(exported, video, tmp_path):
    from edgeseg.core.collection import prepare

    prepare(tmp_path / "c", ["a", "b"], [(1, 2, 3), (4, 5, 6)])
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", video, "--collect", tmp_path / "c")
    said = error_lines(result.stderr)
    assert result.returncode != 0 and len(said) == 1 and "collected for other classes" in said[0], result.stderr


@pytest.fixture
def collected(exported, video, tmp_path):
    folder = tmp_path / "site"
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", video, "--collect", folder,
                         "--collect-when", "every:1", "--collect-gap", "0")
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


def test_cvat_round_trip_puts_fixed_labels_in_and_keeps_the_drafts(collected, tmp_path):
    archive = tmp_path / "task.zip"
    result = run_edgeseg("data", "to-cvat", collected, archive)
    assert result.returncode == 0, result.stderr
    names, colors = zip(*[(line.split()[0], tuple(map(int, line.split()[1:])))
                          for line in (collected / "classes.txt").read_text().splitlines()])
    with zipfile.ZipFile(archive) as z:
        labelmap = z.read("labelmap.txt").decode().splitlines()
        stems = z.read("ImageSets/Segmentation/default.txt").decode().split()
        first = cv2.imdecode(np.frombuffer(z.read(f"SegmentationClass/{stems[0]}.png"), np.uint8), cv2.IMREAD_COLOR)
        members = {n: z.read(n) for n in z.namelist()}
    assert labelmap[1] == "background:0,0,0::" and labelmap[2] == f"{names[0]}:{','.join(map(str, colors[0]))}::"
    assert len(stems) == 4
    draft = cv2.imread(str(collected / "train" / "masks" / f"{stems[0]}.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.cvtColor(first, cv2.COLOR_BGR2RGB), np.asarray(colors, np.uint8)[draft])

    # the person fixes the first frame: its top rows become class 2, a corner background (ignore)
    fixed = cv2.cvtColor(first, cv2.COLOR_BGR2RGB)
    fixed[:10] = colors[2]
    fixed[-5:, -5:] = 0
    ok, png = cv2.imencode(".png", cv2.cvtColor(fixed, cv2.COLOR_RGB2BGR))
    members[f"SegmentationClass/{stems[0]}.png"] = png.tobytes()
    back = tmp_path / "fixed.zip"
    with zipfile.ZipFile(back, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    result = run_edgeseg("data", "from-cvat", back, collected)
    assert result.returncode == 0, result.stderr
    label = cv2.imread(str(collected / "train" / "masks" / f"{stems[0]}.png"), cv2.IMREAD_UNCHANGED)
    expected = draft.copy()
    expected[:10] = 2
    expected[-5:, -5:] = 255
    assert np.array_equal(label, expected)
    assert np.array_equal(cv2.imread(str(collected / "drafts" / f"{stems[0]}.png"), cv2.IMREAD_UNCHANGED), draft)
    again = run_edgeseg("data", "from-cvat", back, collected)
    assert again.returncode == 1 and "pass --force" in error_lines(again.stderr)[0]
    assert np.array_equal(cv2.imread(str(collected / "drafts" / f"{stems[0]}.png"), cv2.IMREAD_UNCHANGED), draft)


def test_cvat_import_refuses_unknown_colours_and_labels_before_writing(collected, tmp_path):
    archive = tmp_path / "task.zip"
    assert run_edgeseg("data", "to-cvat", collected, archive).returncode == 0
    before = {p.name: p.read_bytes() for p in (collected / "train" / "masks").iterdir()}
    with zipfile.ZipFile(archive) as z:
        members = {n: z.read(n) for n in z.namelist()}
    stem = sorted(n for n in members if n.startswith("SegmentationClass/"))[-1]
    odd = np.full((64, 64, 3), (1, 2, 3), np.uint8)
    for case, change, words in [
        ("colour", {stem: cv2.imencode(".png", odd)[1].tobytes()}, "colour 3,2,1 is no label"),
        ("label", {"labelmap.txt": members["labelmap.txt"] + b"unicorn:9,9,9::\n"}, "label 'unicorn' is not a class"),
    ]:
        bad = tmp_path / f"{case}.zip"
        with zipfile.ZipFile(bad, "w") as z:
            for name, data in {**members, **change}.items():
                z.writestr(name, data)
        result = run_edgeseg("data", "from-cvat", bad, collected)
        assert result.returncode == 1 and words in error_lines(result.stderr)[0], result.stderr
    assert {p.name: p.read_bytes() for p in (collected / "train" / "masks").iterdir()} == before
    assert not (collected / "drafts").exists()


def test_train_init_starts_from_the_run_and_mixes_its_data(run_dir, collected, tmp_path):
    import yaml

    from edgeseg.models import load_run_model

    ft = tmp_path / "ft"
    result = run_edgeseg("train", "--init", run_dir, "--data", collected, "--run-dir", ft,
                         "--epochs", "1", "--steps-per-epoch", "2", "--lr", "1e-12")
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = yaml.safe_load((ft / "config.yaml").read_text())
    base = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["init"] == str(run_dir) and cfg["model"] == base["model"]
    assert cfg["data"]["root"] == str(collected) and cfg["data"]["mix"]["share"] == 0.5
    assert cfg["data"]["mix"]["root"] == base["data"]["root"] and cfg["data"]["val_root"] == base["data"]["root"]
    assert cfg["loss"]["class_weights"] == base["loss"]["class_weights"] and cfg["optim"]["ema"] is None
    assert "mixing 16 frames" in result.stderr
    size = tuple(base["data"]["crop_size"])
    start, _ = load_run_model(run_dir, size)
    tuned, _ = load_run_model(ft, size)
    kernels = [(a, b) for w, a, b in zip(start.weights, start.get_weights(), tuned.get_weights()) if "kernel" in w.name]
    assert kernels and all(np.allclose(a, b, atol=1e-6) for a, b in kernels)  # lr ~0: the run's weights

    # downstream: evaluate scores the val split of the data it started from; export calibrates
    # on the new frames and checks parity on that val split
    scored = run_edgeseg("evaluate", ft, "--json", tmp_path / "e.json")
    assert scored.returncode == 0, scored.stderr[-2000:]
    exported = run_edgeseg("export", ft, "--precisions", "int8", "--calib-size", "4")
    assert exported.returncode == 0, exported.stderr[-2000:]
    report = json.loads((ft / "export" / "export.json").read_text())
    assert report["parity_frames"]["frames"] > 0 and report["ok"]

    no_mix = tmp_path / "nomix"
    result = run_edgeseg("train", "--init", run_dir, "--data", collected, "--run-dir", no_mix, "--data-mix", "0",
                         "--epochs", "1", "--steps-per-epoch", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert yaml.safe_load((no_mix / "config.yaml").read_text())["data"]["mix"] is None


@pytest.mark.parametrize("args, words", [
    (["--init", "{run}"], "give them with --data DIR"),
    (["--init", "{run}", "--data", "{site}", "--alpha", "0.5"], "--alpha does not apply"),
    (["--init", "{tmp}/none", "--data", "{site}"], "run directory not found"),
    (["--init", "{run}", "--data", "{site}", "--data-mix", "1.5"], "the share must be in [0, 1)"),
    (["--data", "{site}", "--data-mix", "0.3"], "without --init give PATH:SHARE"),
    (["--init", "{run}", "--data", "{voc}"], "other classes"),
])
def test_train_init_refusals(run_dir, collected, tmp_path, args, words):
    from conftest import make_voc

    voc = make_voc(tmp_path / "voc", {"train": [(64, 64)] * 2, "val": [(64, 64)]})
    args = [a.replace("{run}", str(run_dir)).replace("{site}", str(collected)).replace("{tmp}", str(tmp_path))
            .replace("{voc}", str(voc)) for a in args]
    result = run_edgeseg("train", *args, "--run-dir", tmp_path / "out", "--epochs", "1", "--steps-per-epoch", "1")
    said = error_lines(result.stderr)
    assert result.returncode != 0 and len(said) == 1 and words in said[0], result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


class _Meta:
    class_names = ["a", "b", "c"]
    colors = [(10, 0, 0), (0, 10, 0), (0, 0, 10)]
    output = "logits"


def _frame(i, t):
    from edgeseg.runtime.sources.frame import Frame

    image = np.full((24, 32, 3), (i * 37) % 256, np.uint8)  # distinct grey levels: no duplicates
    return Frame(image, f"f{i:03d}", i, t)


def test_window_keeps_its_best_frame_first_then_the_best_far_enough_from_it(tmp_path):
    from edgeseg.runtime.run.collect import Collector
    from edgeseg.runtime.run.collect_options import CollectPolicy

    warned = []
    gaps = [5 - 4.9 * np.exp(-((i - 15) / 3) ** 2) for i in range(30)]  # two classes closest at frame 15
    c = Collector(tmp_path / "c", _Meta, CollectPolicy(top=3, window=30, gap=2.0, dedup=0), lambda *a, **k: warned.append(a),
                  "m.tflite", live=False)
    for i, gap in enumerate(gaps):
        logits = np.zeros((4, 4, 3), np.float32)
        logits[..., 1], logits[..., 2] = -gap, -100
        c.offer(_frame(i, 0.1 * i), np.zeros((24, 32), np.uint8), lambda lg=logits: lg)
    summary = c.close()
    kept = [int(r["frame"]) for r in rows(tmp_path / "c")]
    assert 15 in kept and len(kept) == 1  # the rest of the top 3 lie within 2 s of it
    assert summary["saved"] == 1 and summary["skipped"]["too_soon"] == 2 and not warned


def test_cvat_labelmap_of_a_model_with_a_background_class_keeps_it_apart_from_ignore(tmp_path):
    from edgeseg.core.collection import prepare
    from edgeseg.data.cvat import export_cvat, import_cvat

    root = tmp_path / "voc-site"
    prepare(root, ["background", "person"], [(0, 0, 0), (192, 128, 128)])
    ids = np.zeros((8, 8), np.uint8)
    ids[2:5, 2:5] = 1
    ids[0, :] = 255
    cv2.imwrite(str(root / "train" / "masks" / "x.png"), ids)
    cv2.imwrite(str(root / "train" / "images" / "x.jpg"), np.zeros((8, 8, 3), np.uint8))
    export_cvat(root, tmp_path / "t.zip")
    with zipfile.ZipFile(tmp_path / "t.zip") as z:
        lines = z.read("labelmap.txt").decode().splitlines()
    assert lines[1:] == ["ignore:224,224,192::", "background:0,0,0::", "person:192,128,128::"]
    cv2.imwrite(str(root / "train" / "masks" / "x.png"), np.zeros((8, 8), np.uint8))  # the draft differs
    assert import_cvat(tmp_path / "t.zip", root) == 1
    assert np.array_equal(cv2.imread(str(root / "train" / "masks" / "x.png"), cv2.IMREAD_UNCHANGED), ids)
    assert (root / "drafts" / "x.png").is_file()
