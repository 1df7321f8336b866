"""code/benchmarks/cpu_settings.py: its summary and how it passes a setting to the benchmark."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_summary_gives_median_range_and_ratio_to_the_first_setting():
    from cpu_settings import summary_lines

    found = {
        "default": {"train_img_s": [62.0, 96.0, 94.0], "predict_img_s": [150.0, 170.0, 160.0]},
        "interop1": {"train_img_s": [80.0, 81.0, 77.0], "predict_img_s": [176.0, 176.0, 176.0]},
    }
    lines = summary_lines(found)
    assert len(lines) == 4
    assert "default" in lines[0] and "median   94.0" in lines[0] and "(range 62.0-96.0)" in lines[0]
    assert lines[0].endswith("1.00x")
    assert "interop1" in lines[1] and "median   80.0" in lines[1] and lines[1].endswith("0.85x")
    assert lines[2].startswith("predict") and lines[3].endswith("1.10x")  # 176 / 160


def test_each_setting_reaches_the_benchmark_process(monkeypatch):
    import cpu_settings

    seen = {}

    def fake_run(command, capture_output, env, text):
        seen.update(env=env, command=command)
        return type("Done", (), {"returncode": 0, "stdout": 'table\n{"train_img_s": 1}\n'})()

    monkeypatch.setattr(cpu_settings.subprocess, "run", fake_run)
    setting = cpu_settings.COMPARISONS["threads"]["interop1"]
    assert cpu_settings.measure(setting, "demo.json", 3) == {"train_img_s": 1}
    assert seen["env"]["TF_NUM_INTEROP_THREADS"] == "1"
    assert seen["command"][-4:] == ["--steps", "3", "--repeats", "3"]
