"""Run one of the toolkit's scripts without MLflow: a stand-in `mlflow` that records nothing is
put in first, so the run's metrics JSON and epoch logs are its only record. For machines that
have no MLflow (the GPU machine of code/benchmarks/gpu_session.sh); used everywhere alike, so
a CPU test takes the same path.

    python code/benchmarks/untracked.py code/train_fold.py --config-file ... --cv-currentfold 0
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python code/benchmarks/untracked.py SCRIPT [ARGS...]")
    from tgssalt.gpu_workloads import untracked_mlflow

    sys.modules["mlflow"] = untracked_mlflow()
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
