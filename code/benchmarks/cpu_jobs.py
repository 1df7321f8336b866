"""Training img/s of a config's model as several CPU jobs at once, against one job on all cores.

    python code/benchmarks/cpu_jobs.py --config best64-small2-emptyhalf.json --jobs 1,2,3
        [--rounds 2] [--seconds 60] [--steps 8]

A layout of N jobs runs N worker processes at once (this script with `--worker`), each limited
to an equal share of the usable cores exactly as `run_folds.py --jobs N` limits its folds
(`fold_pool.slot_envs`); one job keeps the frameworks' own thread settings, as `--jobs 1`
trains in its own process. A worker builds and compiles the config's model on random images
(`benchmark.KerasSide`: Adam and binary cross-entropy, the fit a fold runs), trains one warm-up
repeat, waits until every worker of its layout is ready, then trains repeats of --steps batches
for --seconds and reports its img/s. A layout's img/s is the sum over its workers: what a fold
pool trains. The layouts run in turn, round by round, so a slow spell of a shared machine hits
them alike; the last lines give each layout's median, its range and its ratio to the first.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CODE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CODE))


def worker(config_file: str, steps: int, seconds: float, barrier: Path, jobs: int) -> None:
    """Warm up, wait for the layout's other workers, train for `seconds`, print img/s."""
    from tgssalt.benchmark import KerasSide
    from tgssalt.config import load_config

    config = load_config(config_file)
    side = KerasSide(config, config.stage1.batch_size, config.predict.batch_size, steps)
    side.train()
    (barrier / f"ready-{os.getpid()}").touch()
    while len(list(barrier.glob("ready-*"))) < jobs:
        time.sleep(0.05)
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        side.train()
        images += len(side.x)
    print(json.dumps({"img_s": images / (time.perf_counter() - started)}))


def run_layout(jobs: int, config_file: str, steps: int, seconds: float) -> float:
    """The summed img/s of `jobs` workers started together, each in its slot's environment
    (one job: the frameworks' defaults, every core)."""
    from tgssalt.fold_pool import slot_envs

    with tempfile.TemporaryDirectory() as barrier:
        command = [sys.executable, __file__, "--worker", "--config", config_file]
        command += ["--steps", str(steps), "--seconds", str(seconds)]
        command += ["--barrier", barrier, "--jobs", str(jobs)]
        base = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        workers = [
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**base, **env},
            )
            for env in ([{}] if jobs == 1 else slot_envs(jobs, gpus=[]))
        ]
        outputs = [process.communicate() for process in workers]
    for process, (_, err) in zip(workers, outputs, strict=True):
        if process.returncode:
            sys.exit(f"error: a worker failed: {(err.strip().splitlines() or ['?'])[-1]}")
    return sum(json.loads(out.strip().splitlines()[-1])["img_s"] for out, _ in outputs)


def summary_lines(found: dict[int, list[float]]) -> list[str]:
    """Per layout: the median img/s over the rounds, their range, the ratio to the first."""
    first = statistics.median(next(iter(found.values())))
    return [
        f"{jobs} job(s): median {statistics.median(rounds):6.1f} img/s "
        f"(range {min(rounds):.1f}-{max(rounds):.1f})  {statistics.median(rounds) / first:.2f}x"
        for jobs, rounds in found.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="best64-small2-emptyhalf.json")
    parser.add_argument("--jobs", default="1,2,3", help="layouts: jobs at once, comma-separated")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="timed window per layout")
    parser.add_argument("--steps", type=int, default=8, help="training batches per repeat")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # run_layout passes the config's full path
        return worker(args.config, args.steps, args.seconds, args.barrier, int(args.jobs))
    config = str(CODE / "train-config" / args.config)
    found = {int(jobs): [] for jobs in args.jobs.split(",")}
    for round_ in range(args.rounds):
        for jobs, rounds in found.items():
            rounds.append(run_layout(jobs, config, args.steps, args.seconds))
            print(f"round {round_ + 1}: {jobs} job(s) {rounds[-1]:7.1f} img/s", flush=True)
    print("\n".join(summary_lines(found)))


if __name__ == "__main__":
    main()
