"""End-to-end training on tiny generated data: CLI run, evaluate, resume after a real kill,
MirroredStrategy over two logical CPUs."""

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import REPO, error_lines, run_edgeseg

TINY = ["--alpha", "0.35", "--crop-size", "64x64", "--batch-size", "4", "--aspp-filters", "32",
        "--decoder-filters", "32", "--format", "synthetic"]


def _history_epochs(run_dir):
    with open(run_dir / "history.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained_run(synth_root, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    result = run_edgeseg("train", "--data", synth_root, "--run-dir", run_dir, *TINY,
                         "--epochs", "2", "--steps-per-epoch", "5", "--lr", "5e-3")
    assert result.returncode == 0, result.stderr[-2000:]
    return run_dir, result


def test_train_writes_a_complete_run(trained_run):
    run_dir, result = trained_run
    for name in ("config.yaml", "dataset.json", "best.h5", "last.h5", "best.json", "summary.json", "history.csv"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 10 and 0.0 <= summary["val_miou"] <= 1.0
    assert set(summary["per_class_iou"]) == {"sky", "building", "road", "sidewalk", "tree", "car", "pole"}
    assert "best mIoU on val" in result.stdout
    config = (run_dir / "config.yaml").read_text()
    assert "eval_size:\n  - 64\n  - 64" in config  # resolved from the val frames
    assert "class_weights:\n  - " in config  # median-frequency weights resolved and saved
    assert list((run_dir / "logs").iterdir())  # TensorBoard


def test_evaluate_reports_the_same_miou_as_training(trained_run, tmp_path):
    run_dir, _ = trained_run
    out = tmp_path / "eval.json"
    png = tmp_path / "overlays.png"
    first = run_dir / "halved.h5"  # another model of the run (weights files are read from inside runs)
    from edgeseg.config import TrainConfig
    from edgeseg.models import load_run_model

    model, _ = load_run_model(run_dir, (64, 64), run_dir / "last.h5")
    classifier = model.get_layer("classifier")
    kernel, bias = classifier.get_weights()
    classifier.set_weights([kernel, bias + np.linspace(0, 2, bias.size)])  # another (worse) model
    model.save_weights(str(first))
    try:
        result = run_edgeseg("evaluate", run_dir, first, "--json", out, "--overlays", png, "--samples", "2")
    finally:
        first.unlink()
    assert result.returncode == 0, result.stderr[-2000:]
    best_row, other = json.loads(out.read_text())["models"]
    best = json.loads((run_dir / "best.json").read_text())
    assert best_row["kind"] == "keras" and best_row["miou"] == pytest.approx(best["miou"], abs=1e-6)
    assert best_row["frames"] == 4 and TrainConfig.load(run_dir / "config.yaml").data.eval_size == (64, 64)
    assert other["miou"] != best_row["miou"]  # a different model, scored on the same frames
    assert other["drop_points"] == pytest.approx(100 * (best_row["miou"] - other["miou"]))
    import cv2

    grid = cv2.imread(str(png))
    assert grid.shape[1] == 3 * 64 + 8 and grid.shape[0] == 2 * 64 + 4


def test_existing_run_is_not_overwritten(trained_run):
    run_dir, _ = trained_run
    result = run_edgeseg("train", "--run-dir", run_dir, *TINY, "--epochs", "1")
    assert result.returncode != 0
    assert "already holds a run; pass --resume" in error_lines(result.stderr)[0]


def test_resume_after_kill_continues_from_last_epoch(synth_root, tmp_path):
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "edgeseg.cli.main", "train", "--data", str(synth_root), "--run-dir",
           str(run_dir), *TINY, "--epochs", "6", "--steps-per-epoch", "6", "--val-every", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            history = run_dir / "history.csv"
            if history.is_file() and len(_history_epochs(run_dir)) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail("training ended before it could be killed")
            time.sleep(0.2)
        else:
            pytest.fail("no epoch finished in time")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = _history_epochs(run_dir)
    assert max(done_before) < 5, "killed too late to test resuming"
    result = run_edgeseg("train", "--run-dir", run_dir, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = _history_epochs(run_dir)
    resumed = epochs[len(done_before):]
    assert resumed[0] >= max(done_before), f"restarted from scratch: {epochs}"
    assert resumed[-1] == 5
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 36


def test_mirrored_strategy_over_two_logical_cpus(synth_root, tmp_path):
    script = textwrap.dedent(f"""
        import os
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from edgeseg.config import TrainConfig
        from edgeseg.train import train
        cfg = TrainConfig().override(
            data__root={str(synth_root)!r}, data__crop_size=[64, 64], data__batch_size=4,
            model__alpha=0.35, model__aspp_filters=32, model__decoder_filters=32,
            optim__epochs=1, optim__steps_per_epoch=3, strategy="mirrored")
        summary = train(cfg, {str(tmp_path / 'mirrored')!r}, verbose=0)
        print("REPLICAS", summary["replicas"], "MIOU", summary["val_miou"])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REPLICAS 2" in result.stdout


def _free_ports(n):
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_workers(args, ports):
    procs = []
    for index in range(len(ports)):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config)}
        procs.append(subprocess.Popen([sys.executable, "-m", "edgeseg.cli.main", "train", *map(str, args)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                      cwd=REPO, start_new_session=True))
    return procs


def _h5_arrays(path):
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.array(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_multiworker_two_processes_finish_agree_and_resume_after_kill(synth_root, tmp_path):
    """Two real workers on 127.0.0.1 (MultiWorkerMirroredStrategy over gRPC): killed together
    mid-run, restarted with --resume, both continue from the chief's last backup, the chief writes
    the run and the workers end with the same weights."""
    run_dir = tmp_path / "mw"
    args = ["--data", synth_root, "--run-dir", run_dir, "--alpha", "0.35", "--crop-size", "64x64",
            "--batch-size", "4", "--aspp-filters", "16", "--decoder-filters", "16", "--epochs", "5",
            "--steps-per-epoch", "4", "--strategy", "multiworker"]
    procs = _start_workers(args, _free_ports(2))
    try:
        deadline = time.time() + 240
        while not (run_dir / "history.csv").is_file() or len(_history_epochs(run_dir)) < 2:
            if any(p.poll() is not None for p in procs):
                pytest.fail("a worker ended before it could be killed:\n" + procs[0].communicate()[0][-3000:])
            if time.time() > deadline:
                pytest.fail("no epoch finished in time")
            time.sleep(0.2)
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    before = _history_epochs(run_dir)
    before_worker = _history_epochs(run_dir / "worker-1")
    assert max(before) < 4, "killed too late to test resuming"

    procs = _start_workers(["--run-dir", run_dir, "--resume"], _free_ports(2))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]
    for history, done in ((_history_epochs(run_dir), before), (_history_epochs(run_dir / "worker-1"), before_worker)):
        resumed = history[len(done):]
        assert resumed and resumed[0] >= 1 and resumed[0] >= max(done) - 1, f"restarted from scratch: {history}"
        assert resumed[-1] == 4
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 20
    assert not (run_dir / "worker-1" / "summary.json").exists()  # only the chief writes the run
    chief, worker = _h5_arrays(run_dir / "last.h5"), _h5_arrays(run_dir / "worker-1" / "last.h5")
    assert chief.keys() == worker.keys() and len(chief) > 50
    for name in chief:
        assert (chief[name] == worker[name]).all(), name
    assert "resuming" in outputs[0]


def test_resume_of_a_finished_run_retrains_nothing(trained_run):
    run_dir, _ = trained_run
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}
    result = run_edgeseg("train", "--run-dir", run_dir, "--resume")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "has finished its 2 epochs" in result.stdout and "nothing to resume" in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()} == before


def test_resume_with_options_it_would_ignore_is_refused(trained_run):
    run_dir, _ = trained_run
    result = run_edgeseg("train", "--run-dir", run_dir, "--resume", "--epochs", "9", "--lr", "1e-2")
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        "edgeseg: error: --resume continues the run with its saved config; --epochs, --lr would be ignored: "
        "drop them, or start a new run"]


@pytest.mark.parametrize("options, flags", [
    (["--seed", "0"], "--seed would be ignored"),
    (["--warmup-steps", "0", "--no-photometric"], "--photometric, --warmup-steps would be ignored"),
    (["--no-xla"], "--xla would be ignored"),
])
def test_falsy_values_count_as_given(trained_run, options, flags):
    """`--seed 0` is an option given, like `--seed 3` (typer's parameter source, not the value)."""
    run_dir, _ = trained_run
    result = run_edgeseg("train", "--run-dir", run_dir, "--resume", *options)
    assert result.returncode == 2, result.stdout
    assert error_lines(result.stderr) == [
        f"edgeseg: error: --resume continues the run with its saved config; {flags}: drop them, or start a new run"]
    result = run_edgeseg("train", "--qat", "--from", run_dir, *options)
    said = error_lines(result.stderr)
    assert result.returncode == 2 and len(said) == 1 and flags.split(" would")[0] in said[0], result.stderr
    assert " apply (it takes --from" in said[0]
