"""code/benchmarks/cpu_jobs.py: its summary, and that each worker gets its slot's threads."""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_summary_gives_median_range_and_ratio_to_the_first_layout():
    from cpu_jobs import summary_lines

    lines = summary_lines({1: [92.0, 98.0, 95.0], 3: [126.0, 130.0, 128.0]})
    assert lines[0] == "1 job(s): median   95.0 img/s (range 92.0-98.0)  1.00x"
    assert lines[1] == "3 job(s): median  128.0 img/s (range 126.0-130.0)  1.35x"


def test_a_layout_sums_its_workers_each_on_its_share_of_the_cores(monkeypatch):
    import cpu_jobs
    from tgssalt import fold_pool

    started = []

    class Worker:
        returncode = 0

        def __init__(self, command, env, **kwargs):
            started.append((command, env))

        def communicate(self):
            return json.dumps({"img_s": 40.0 + len(started)}) + "\n", ""

    monkeypatch.setattr(cpu_jobs.subprocess, "Popen", Worker)
    monkeypatch.setattr(fold_pool, "usable_cores", lambda: 2)
    assert cpu_jobs.run_layout(3, "c.json", 8, 5.0) == 3 * 43.0
    assert [env["TF_NUM_INTRAOP_THREADS"] for _, env in started] == ["1", "1", "1"]
    command = started[0][0]
    assert "--worker" in command and command[command.index("--jobs") + 1] == "3"
    started.clear()
    cpu_jobs.run_layout(1, "c.json", 8, 5.0)  # one job: the frameworks' own thread settings
    assert started[0][1].get("TF_NUM_INTRAOP_THREADS") == os.environ.get("TF_NUM_INTRAOP_THREADS")
