#!/usr/bin/env bash
# Command 1: the whole pipeline on synthetic data, on a CPU, in minutes (README.md: measured times).
#
#   bash code/demo.sh
#
# Creates .venv (if absent) and installs requirements.txt, writes a synthetic TGS-like data set
# to data/demo (if absent), trains fold 0 of code/train-config/demo.json on it, and prints the
# fold's submission path and validation competition score. Outputs go to outputs/.
# Runs on TensorFlow unless KERAS_BACKEND says otherwise. Budget: under 8 minutes on a 2-core
# CPU, installation included (README.md says what it took on the machine it was measured on).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=code/venv.sh
source code/venv.sh

ensure_venv requirements.txt
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"  # TensorFlow's start-up chatter

DATA=data/demo
RUN=demo-1-cvfold0  # the config's name "demo-%s" with its version 1, fold 0
if [ ! -f "$DATA/train.csv" ]; then
    echo "Writing synthetic data to $DATA"
    # train.csv is written last, so without it any files there are from an interrupted run.
    overwrite=()
    [ -e "$DATA" ] && overwrite=(--overwrite)
    "$VENV_PY" code/make_synthetic_data.py --out "$DATA" --train 600 --test 150 --seed 0 \
        ${overwrite[@]+"${overwrite[@]}"}
else
    echo "Using the data already in $DATA (delete it to regenerate)"
fi

echo "Training $RUN (two stages, then validation and test prediction)"
"$VENV_PY" code/train_fold.py --config-file code/train-config/demo.json --data-folder "$DATA" \
    --cv-currentfold 0

echo
echo "Submission: outputs/submissions/$RUN-submission.csv"
"$VENV_PY" - "outputs/models/$RUN-metrics.json" <<'PY'
import json
import sys

m = json.load(open(sys.argv[1]))
print(
    f"Validation score: {m['validation_score']:.4f} at threshold {m['threshold']:.3f} "
    f"(all-empty baseline {m['empty_baseline_score']:.4f}; metrics in {sys.argv[1]})"
)
PY
