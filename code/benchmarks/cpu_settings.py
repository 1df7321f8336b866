"""TensorFlow's CPU settings against each other, for a config's model, in fresh processes.

    python code/benchmarks/cpu_settings.py --compare onednn|threads [--config demo.json]
        [--steps 8] [--rounds 2]
    python code/benchmarks/cpu_settings.py --compare onednn --config best.json --steps 4 --rounds 1
    python code/benchmarks/cpu_settings.py --compare threads --config best64-longest.json
        --steps 10 --rounds 6

Each round runs `code/benchmark.py` (training and flip-TTA prediction img/s, random images of
the config's size) once per setting of the comparison, each in a fresh process with that
setting's environment: TensorFlow reads these variables once, at import.

- `onednn`: its default Eigen kernels (`TF_ENABLE_ONEDNN_OPTS=0`) against oneDNN's (`=1`, what
  the package sets unless told otherwise; `tgssalt/__init__.py`). TensorFlow turns oneDNN on by
  itself only on CPUs with AVX-512 VNNI, BF16 or AMX: there both settings but `0` run oneDNN.
- `threads`: TensorFlow's default thread pools (one intra-op and one inter-op thread per core)
  against a single inter-op thread, with the intra-op pool left at its default or set to 2.

The last lines give, per setting, the median and range over the rounds and the ratio of medians
to the first setting: on a shared machine the spread says as much as the median.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
COMPARISONS = {
    "onednn": {
        "eigen": {"TF_ENABLE_ONEDNN_OPTS": "0"},
        "onednn": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    },
    "threads": {
        "default": {},
        "interop1": {"TF_NUM_INTEROP_THREADS": "1"},
        "interop1-intra2": {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "2"},
    },
}
PHASES = ("train_img_s", "predict_img_s")


def measure(env: dict, config: str, steps: int) -> dict:
    """`code/benchmark.py`'s JSON summary, run in a fresh process with `env` added."""
    env = {**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(CODE / "benchmark.py"), "--config-file", config]
    command += ["--steps", str(steps), "--repeats", "3"]
    out = subprocess.run(command, capture_output=True, env=env, text=True)
    if out.returncode:
        sys.exit(f"error: {' '.join(command)} failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary_lines(found: dict) -> list[str]:
    """Per phase and setting: the median over the rounds, their range, and the ratio of the
    median to the first setting's. `found` maps setting -> phase -> img/s per round."""
    lines = []
    for phase in PHASES:
        first = statistics.median(next(iter(found.values()))[phase])
        for label, rounds in found.items():
            median = statistics.median(rounds[phase])
            lines.append(
                f"{phase.split('_')[0]:8s}{label:16s} median {median:6.1f} img/s "
                f"(range {min(rounds[phase]):.1f}-{max(rounds[phase]):.1f})  {median / first:.2f}x"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", choices=sorted(COMPARISONS), required=True)
    parser.add_argument("--config", default="demo.json", help="a file in code/train-config")
    parser.add_argument("--steps", type=int, default=8, help="training batches per repeat")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    config = str(CODE / "train-config" / args.config)
    settings = COMPARISONS[args.compare]
    found = {label: {phase: [] for phase in PHASES} for label in settings}
    for round_ in range(args.rounds):
        for label, env in settings.items():
            summary = measure(env, config, args.steps)
            for phase in PHASES:
                found[label][phase].append(summary[phase])
            print(
                f"round {round_ + 1} {label:16s} train {summary['train_img_s']:7.1f} img/s  "
                f"predict {summary['predict_img_s']:7.1f} img/s  ({summary['device']})",
                flush=True,
            )
    print("\n".join(summary_lines(found)))


if __name__ == "__main__":
    main()
