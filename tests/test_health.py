"""Device health on a fake sysfs tree and fake vcgencmd / nvpmodel commands."""

import json
import os
import sys

import pytest

from conftest import run_edgeseg
from edgeseg.runtime.run.health import HealthMonitor, cpu_frequency, cpu_temperature


def sysfs(root, temps, freqs_khz):
    for i, (kind, milli) in enumerate(temps):
        zone = root / f"sys/class/thermal/thermal_zone{i}"
        zone.mkdir(parents=True)
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    for i, khz in enumerate(freqs_khz):
        d = root / f"sys/devices/system/cpu/cpu{i}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{khz}\n")
    return root


def command(bin_dir, name, script):
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{script}\n")
    path.chmod(0o755)


def test_temperature_prefers_the_cpu_zone_and_frequency_the_fastest_core(tmp_path):
    root = sysfs(tmp_path, [("gpu-thermal", 71000), ("cpu-thermal", 63500)], [600000, 1800000, 1500000])
    assert cpu_temperature(root) == 63.5
    assert cpu_frequency(root) == 1800.0
    other = sysfs(tmp_path / "x86", [("acpitz", 40000), ("x86_pkg_temp", 55000)], [])
    assert cpu_temperature(other) == 55.0 and cpu_frequency(other) is None
    assert cpu_temperature(tmp_path / "nothing") is None


def test_pi_throttling_flags_and_a_single_warning(tmp_path, monkeypatch, edgeseg_log):
    root = sysfs(tmp_path / "root", [("cpu-thermal", 84000)], [1000000])
    state = tmp_path / "throttled"
    state.write_text("0x0")
    command(tmp_path / "bin", "vcgencmd",
            f"import sys; assert sys.argv[1:] == ['get_throttled']; print('throttled=' + open({str(state)!r}).read())")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monitor = HealthMonitor(root)
    first = monitor.sample()
    assert first.throttled == [] and first.throttled_since_boot is False and first.cpu_temp_c == 84.0
    state.write_text("0x50006")  # frequency capped + throttled now; under-voltage and throttling since boot
    second = monitor.sample()
    assert second.throttled == ["frequency capped", "throttled"] and second.throttled_since_boot
    assert "THROTTLED: frequency capped, throttled" in second.line() and "84C 1000MHz" in second.line()
    monitor.sample()
    assert sum("limiting itself" in m for m in edgeseg_log) == 1  # warned once, when it started


def test_jetson_power_mode(tmp_path, monkeypatch):
    command(tmp_path / "bin", "nvpmodel", "import sys; assert sys.argv[1:] == ['-q']; print('NV Power Mode: 15W'); print('2')")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    health = HealthMonitor(tmp_path).sample()
    assert health.power_mode == "15W" and health.throttled is None
    assert health.line() == "mode 15W"


def test_run_reports_health_in_the_status_line_and_stats(exported, synth_root, tmp_path):
    root = sysfs(tmp_path / "root", [("cpu-thermal", 71250)], [1500000])
    command(tmp_path / "bin", "vcgencmd", "print('throttled=0x4')")
    stats = tmp_path / "stats.json"
    result = run_edgeseg("run", exported["files"]["int8"]["path"], "--source", synth_root / "val" / "images", "--loop",
                         "--max-frames", "400", "--stats-json", stats,
                         env={"EDGESEG_SYSROOT": str(root), "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-2000:]
    health = json.loads(stats.read_text())["health"]
    assert health["cpu_temp_c"] == pytest.approx(71.25) and health["cpu_mhz"] == 1500.0
    assert health["throttled"] == ["throttled"] and health["max_cpu_temp_c"] == pytest.approx(71.25)
    assert "the board is limiting itself (throttled)" in result.stderr
