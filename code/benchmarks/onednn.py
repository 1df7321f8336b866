"""TensorFlow's CPU kernels: oneDNN against its default Eigen kernels, for a config's model.

    python code/benchmarks/onednn.py [--config demo.json] [--steps 8] [--rounds 2]
    python code/benchmarks/onednn.py --config best.json --steps 4 --rounds 1

Each round runs `code/benchmark.py` (training and flip-TTA prediction img/s, random images of
the config's size) twice, in fresh processes: with `TF_ENABLE_ONEDNN_OPTS=0` (Eigen) and `=1`
(oneDNN, what the package sets unless told otherwise; `tgssalt/__init__.py`). TensorFlow reads
the variable once, at import, and turns oneDNN on by itself only on CPUs with AVX-512 VNNI, BF16
or AMX: there both settings but `0` run oneDNN. The last lines are the ratios oneDNN / Eigen
(medians over the rounds).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
SETTINGS = {"eigen": "0", "onednn": "1"}
PHASES = ("train_img_s", "predict_img_s")


def measure(setting: str, config: str, steps: int) -> dict:
    """`code/benchmark.py`'s JSON summary, run in a fresh process with oneDNN set `setting`."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": setting, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, str(CODE / "benchmark.py"), "--config-file", config]
    command += ["--steps", str(steps), "--repeats", "3"]
    out = subprocess.run(command, capture_output=True, env=env, text=True)
    if out.returncode:
        sys.exit(f"error: {' '.join(command)} failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="demo.json", help="a file in code/train-config")
    parser.add_argument("--steps", type=int, default=8, help="training batches per repeat")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    config = str(CODE / "train-config" / args.config)
    found = {label: {phase: [] for phase in PHASES} for label in SETTINGS}
    for round_ in range(args.rounds):
        for label, setting in SETTINGS.items():
            summary = measure(setting, config, args.steps)
            for phase in PHASES:
                found[label][phase].append(summary[phase])
            print(
                f"round {round_ + 1} {label:7s} train {summary['train_img_s']:7.1f} img/s  "
                f"predict {summary['predict_img_s']:7.1f} img/s  ({summary['device']})",
                flush=True,
            )
    for phase in PHASES:
        median = {label: statistics.median(v[phase]) for label, v in found.items()}
        print(f"{phase.split('_')[0]}: oneDNN / Eigen {median['onednn'] / median['eigen']:.2f}x")


if __name__ == "__main__":
    main()
