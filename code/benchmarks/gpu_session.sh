#!/usr/bin/env bash
# The toolkit's first GPU measurements (issue 17), prepared to run in one go on a GPU machine
# without network (the device tool's H100 or H200: JAX and PyTorch installed, no Keras, no TF).
#
# 1. Here, on the CPU machine, once per session (reads ../shared beside the checkout, or
#    DEVICE_WHEELS and TGS_DATA):
#        bash code/benchmarks/gpu_session.sh prepare
#    copies the Keras wheels (keras, namex, optree) into .whl/, adds the smp wheel
#    (segmentation-models-pytorch, pure Python; torch, timm and torchvision are there) when pip
#    can download it, and packs the TGS data into data/tgs.npz (both ignored by git; about
#    42 MiB together for the 3,200 + 2,000-image subset, under the 64 MiB a call carries).
# 2. There, with the device tool:
#        run(command="bash code/benchmarks/gpu_session.sh run", carry=[".whl", "data/tgs.npz"],
#            timeout_s=600)
#    or a subset of the steps, e.g. `run fold` then `run bench-resnet34 bench-unet predict` in
#    two calls when the fold needs the whole budget (docs/gpu.md has the plan and estimates).
#
# Steps of `run`, in this order, each under `timeout` within GPU_SESSION_SECONDS (default 570 s
# for the whole call; the fold gets what is left):
#   bench-resnet34  ResNet34 U-Net at 128 px, fp32 and bf16, ours vs smp (cap 150 s)
#   bench-unet      the from-scratch U-Net (unet-resnet.json) at batch 16 and BIG_BATCH (512),
#                   fp32 and bf16 (cap 240 s: batch 512 did not finish in 120 s on an H100)
#   predict         18,000 random images x 4 folds x flip TTA (cap 90 s)
#   fold            unet-resnet.json fold 0 on the packed data, its full 20 + 50 epochs
#   recipe          (only when named) the shipped recipe's configs and unet-resnet.json, every
#                   fold at once on the GPU, then their ensembles and the recipe's blend
#   seeds           (only when named) RECIPE's configs under each of SEEDS on FOLDS (default 0),
#                   every training at once, then run_seeds.py's table: a 3-seed A/B on the GPU
# Writes under $OUT (at most 8 files come back): session.log (everything), results.jsonl (each
# gpu_check JSON line), nvidia-smi.txt, dmon.txt (GPU load every 2 s), and the fold's
# fold-metrics.json, fold-stage1-log.csv and fold-stage2-log.csv (per-epoch, also when cut).
#
# GPU_SESSION_TINY=1 shrinks everything (--quick --allow-cpu, 40 images packed, 64 predicted; no
# step caps, 1800 s in all) to know on a CPU that it runs:
#   GPU_SESSION_TINY=1 TGS_DATA=/work/shared/tgs bash code/benchmarks/gpu_session.sh prepare
#   GPU_SESSION_TINY=1 OUT=/tmp/gpu-out PY=.venv/bin/python bash code/benchmarks/gpu_session.sh run
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
PY_SET=${PY:-}
PY=${PY:-python3}
TINY=${GPU_SESSION_TINY:-0}
NPZ=data/tgs.npz
CONFIGS=code/train-config

prepare() {
    [ -z "${PY_SET:-}" ] && [ -x .venv/bin/python ] && PY=.venv/bin/python  # the project's venv
    local wheels=${DEVICE_WHEELS:-$ROOT/../shared/device-wheels}
    local data=${TGS_DATA:-$ROOT/../shared/tgs}
    mkdir -p .whl
    cp -f "$wheels"/*.whl .whl/ || { echo "error: no wheels in $wheels (set DEVICE_WHEELS)" >&2; return 2; }
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp -d .whl segmentation-models-pytorch==0.6.0 \
        || echo "note: smp wheel not downloaded; the smp columns will say why" >&2
    local limit=()
    [ "$TINY" = 1 ] && limit=(--limit 40)
    rm -f "$NPZ"
    "$PY" code/benchmarks/pack_data.py pack "$data" "$NPZ" "${limit[@]}" || return 2
    du -ch .whl "$NPZ" | tail -1
}

install_wheels() {
    # The device's python3 has JAX and torch but no Keras: install the carried wheels.
    if ! "$PY" -c "import keras" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl || return 2
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    fi
}

# step NAME CAP_SECONDS COMMAND...: run it within its cap and what is left of the session.
step() {
    local name=$1 cap=$2 left budget rc started=$SECONDS
    shift 2
    left=$((TOTAL - (SECONDS - START) - 10))
    [ "$TINY" = 1 ] && cap=$left # a CPU is slow: only the session's total applies
    budget=$((cap < left ? cap : left))
    if [ "$budget" -lt 30 ]; then
        echo "== $name: skipped, ${left} s left"
        return
    fi
    echo "== $name (at most ${budget} s): $*"
    timeout -k 10 "$budget" "$@" | tee "$WORK/$name.out"
    rc=${PIPESTATUS[0]}
    tail -n 1 "$WORK/$name.out" | grep '^{' >>"$OUT/results.jsonl"
    echo "== $name: exit $rc after $((SECONDS - started)) s$([ "$rc" = 124 ] && echo ' (cut at its budget)')"
}

run_steps() {
    local check=("$PY" code/gpu_check.py) bench=(--steps 50 --repeats 3) unet=(--steps 30 --repeats 3)
    local resnet34=(--size 128) big=(--batch-sizes "16,${BIG_BATCH:-512}") n=18000
    if [ "$TINY" = 1 ]; then
        check+=(--quick --allow-cpu)
        bench=() unet=() resnet34=() big=() n=64
    fi
    for name in "$@"; do
        case $name in
        bench-resnet34)
            XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 step "$name" 150 "${check[@]}" "${bench[@]}" \
                "${resnet34[@]}" --config-file "$CONFIGS/unet-pretrained-encoder-resnet34.json" ;;
        bench-unet)
            step "$name" 240 "${check[@]}" "${unet[@]}" "${big[@]}" --no-smp \
                --config-file "$CONFIGS/unet-resnet.json" ;;
        predict)
            step "$name" 90 "${check[@]}" --no-speed --predict "$n" ;;
        fold)
            fresh_data || continue
            step "$name" 100000 "${check[@]}" --no-speed --train-fold --data-folder "$WORK/data" \
                --outputs-folder "$WORK/outputs"
            cp "$WORK"/outputs/models/*-metrics.json "$OUT/fold-metrics.json" 2>/dev/null
            for stage in stage1 stage2; do
                cp "$WORK"/outputs/figures/*-"$stage"-log.csv "$OUT/fold-$stage-log.csv" 2>/dev/null
            done ;;
        recipe) recipe_step ;;
        seeds) seeds_step ;;
        *) echo "error: unknown step $name (bench-resnet34, bench-unet, predict, fold, recipe, seeds)" >&2 ;;
        esac
    done
}

# fresh_data: the packed data unpacked into an empty $WORK/data, and no $WORK/outputs yet.
fresh_data() {
    rm -rf "$WORK/data" "$WORK/outputs"
    "$PY" code/benchmarks/pack_data.py unpack "$NPZ" "$WORK/data"
}

# ensemble_step NAME CONFIG...: ensemble.py on the configs' folds (a blend when several), as a step.
ensemble_step() {
    local name=$1
    shift
    step "$name" 100000 "$PY" code/benchmarks/untracked.py code/ensemble.py --config-file "$@" \
        --data-folder "$WORK/data" --outputs-folder "$WORK/outputs"
}

# recipe_configs DIR NAME...: the configs' paths; with GPU_SESSION_TINY, shrunk copies in DIR
# (2 + 2 epochs at 32 px, same names, so the run layout is the real one).
recipe_configs() {
    local dir=$1 c
    shift
    for c in "$@"; do
        if [ "$TINY" = 1 ]; then
            "$PY" -c 'import json, sys
c = json.load(open(sys.argv[1]))
c["input"]["size"] = 32
for s in ("stage1", "stage2"):
    c[s]["epochs"] = 2
json.dump(c, open(sys.argv[2], "w"))' "$CONFIGS/$c.json" "$dir/$c.json" && echo "$dir/$c.json"
        else
            echo "$CONFIGS/$c.json"
        fi
    done
}

# launch_folds ARRAY DEADLINE NICE FOLDS CONFIG...: train those folds of each config in the
# background until $SECONDS reaches DEADLINE, one log each; their pids are appended to ARRAY.
launch_folds() {
    local -n pids=$1
    local deadline=$2 niceness=$3 folds=$4 cfg k
    shift 4
    for cfg in "$@"; do
        for k in $folds; do
            nice -n "$niceness" timeout -k 10 "$((deadline - SECONDS))" "$PY" \
                code/benchmarks/untracked.py code/train_fold.py --config-file "$cfg" \
                --cv-currentfold "$k" --data-folder "$WORK/data" --outputs-folder "$WORK/outputs" \
                >"$(fold_log "$cfg" "$k")" 2>&1 &
            pids+=($!)
        done
    done
}

fold_log() { echo "$WORK/outputs/logs/$(basename "$1" .json)-cvfold$2.log"; }

# wait_compiled CAP LOG...: until every log shows its second epoch (the first epoch's training
# and validation programs are compiled, so in JAX's shared persistent cache) or CAP seconds pass.
wait_compiled() {
    local until=$((SECONDS + $1)) log
    shift
    for log in "$@"; do
        until grep -q "^Epoch 2/" "$log" 2>/dev/null || [ "$SECONDS" -ge "$until" ]; do sleep 2; done
    done
}

# training_setup: the environment of many JAX trainings sharing the GPU (each takes memory as it
# needs it, not 75% at start; one persistent compilation cache for all), freshly unpacked data,
# an empty configs folder and a logs folder.
training_setup() {
    export XLA_PYTHON_CLIENT_PREALLOCATE=false OMP_NUM_THREADS=1
    export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$WORK/jax-cache}
    export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
    fresh_data || return
    rm -rf "$WORK/configs"
    mkdir -p "$WORK/outputs/logs" "$WORK/configs"
}

# archive NAME [PATH...]: $OUT/NAME.tar.gz of the trainings' logs, metrics, config and ensemble
# JSONs, epoch CSVs and the PATHs, all under $WORK/outputs.
archive() {
    local name=$1
    shift
    tar -czf "$OUT/$name.tar.gz" -C "$WORK/outputs" logs \
        $(cd "$WORK/outputs" && ls -d models/*.json figures/*.csv "$@" 2>/dev/null)
}

# train_staggered DEADLINE: every fold of recipe_cfgs and extra_cfgs (EXTRA niced) in the
# background, pids into recipe_pids and extra_pids (the caller's). Folds of one config compile
# identical programs: the first fold of each compiles them into JAX's persistent cache alone
# (STAGGER_SECONDS at most), the other folds then load them.
train_staggered() {
    local deadline=$1 first=${FOLDS%% *} rest=${FOLDS#* } cfg
    local -a leaders=()
    [ "$rest" = "$FOLDS" ] && rest=""
    launch_folds recipe_pids "$deadline" 0 "$first" "${recipe_cfgs[@]}"
    launch_folds extra_pids "$deadline" 5 "$first" "${extra_cfgs[@]}"
    for cfg in "${recipe_cfgs[@]}" "${extra_cfgs[@]}"; do leaders+=("$(fold_log "$cfg" "$first")"); done
    wait_compiled "${STAGGER_SECONDS:-90}" "${leaders[@]}"
    echo "== first folds compiled after $((SECONDS - started)) s; the other folds start"
    launch_folds recipe_pids "$deadline" 0 "$rest" "${recipe_cfgs[@]}"
    launch_folds extra_pids "$deadline" 5 "$rest" "${extra_cfgs[@]}"
}

# The shipped recipe (RECIPE: its configs, blended when several; default the best config measured
# out of fold) and EXTRA configs (default the original's unet-resnet.json at its 20 + 50 epochs),
# all folds at once, then each config's fold ensemble and the recipe's blend (ensemble.py, out
# of fold). ENSEMBLE_SECONDS (default 100) are kept for the recipe's ensemble; EXTRA trains
# niced and its ensembles run in what is left.
# Back: $OUT/recipe.tar.gz (metrics and ensemble JSONs, epoch logs, submissions, each run's log).
recipe_step() {
    local reserve=${ENSEMBLE_SECONDS:-100} budget started=$SECONDS pid
    local -a recipe_cfgs extra_cfgs
    FOLDS=${FOLDS:-0 1 2 3}
    training_setup || return
    mapfile -t recipe_cfgs < <(recipe_configs "$WORK/configs" ${RECIPE:-best64-small2-emptyhalf})
    mapfile -t extra_cfgs < <(recipe_configs "$WORK/configs" ${EXTRA-unet-resnet})
    budget=$((TOTAL - (SECONDS - START) - reserve))
    echo "== recipe: ${recipe_cfgs[*]} + ${extra_cfgs[*]:-nothing}, folds $FOLDS, ${budget} s to train"
    local -a recipe_pids=() extra_pids=()
    train_staggered $((SECONDS + budget))
    for pid in "${recipe_pids[@]}"; do wait "$pid"; done
    echo "== recipe trained after $((SECONDS - started)) s"
    grep -h "validation score" "$WORK"/outputs/logs/*.log
    ensemble_step ensemble-recipe "${recipe_cfgs[@]}"
    for pid in "${extra_pids[@]}"; do wait "$pid"; done  # not `wait`: dmon runs on
    for cfg in "${extra_cfgs[@]}"; do ensemble_step "ensemble-$(basename "$cfg" .json)" "$cfg"; done
    archive recipe submissions
    echo "== recipe: $((SECONDS - started)) s"
}

# seed_configs DIR CONFIG...: each config under each of SEEDS (`seeds.seed_config`: the
# config's own seed is the config itself, another a renamed copy written to DIR), seed by seed.
seed_configs() {
    local dir=$1
    shift
    "$PY" - "$dir" "$SEEDS" "$@" <<'PYTHON'
import sys
from pathlib import Path

sys.path.insert(0, "code")
from tgssalt.config import load_config, save_config
from tgssalt.layout import base_run
from tgssalt.seeds import seed_config

folder, seeds, *paths = sys.argv[1:]
for seed in map(int, seeds.split()):
    for path in paths:
        config = load_config(path)
        copy = seed_config(config, seed)
        if copy is not config:
            path = Path(folder) / f"{base_run(copy)}.json"
            save_config(copy, path)
        print(path)
PYTHON
}

# A 3-seed comparison on the GPU: RECIPE's configs (the baseline first) under each of SEEDS
# (e.g. "5678 1 2") on FOLDS (default 0), every training at once in its own process. The first
# seed's trainings compile into JAX's shared cache first (STAGGER_SECONDS at most), the others
# then load from it. Then run_seeds.py prints each fold's mean and std and the comparison table
# (it trains nothing when every training finished). Back: $OUT/seeds.tar.gz.
seeds_step() {
    local started=$SECONDS n_configs pid
    local -a base_cfgs copies followers recipe_cfgs extra_cfgs=() recipe_pids=() extra_pids=()
    : "${SEEDS:?set SEEDS, e.g. SEEDS=\"5678 1 2\"}"
    FOLDS=${FOLDS:-0}
    training_setup || return
    mapfile -t base_cfgs < <(recipe_configs "$WORK/configs" ${RECIPE:-best64-small2-emptyhalf})
    mapfile -t copies < <(seed_configs "$WORK/configs" "${base_cfgs[@]}")
    n_configs=${#base_cfgs[@]}
    recipe_cfgs=("${copies[@]:0:n_configs}") followers=("${copies[@]:n_configs}")
    local deadline=$((START + TOTAL - ${REPORT_SECONDS:-40}))
    echo "== seeds: ${#copies[@]} configs x seeds, folds $FOLDS, $((deadline - SECONDS)) s to train"
    train_staggered "$deadline"  # the first seed's configs; the other seeds load their programs
    launch_folds recipe_pids "$deadline" 0 "$FOLDS" "${followers[@]}"
    for pid in "${recipe_pids[@]}"; do wait "$pid"; done
    echo "== seeds trained after $((SECONDS - started)) s"
    step seeds-table 100000 "$PY" code/benchmarks/untracked.py code/run_seeds.py \
        --config-file "${base_cfgs[@]}" --seeds "${SEEDS// /,}" --folds "${FOLDS// /,}" \
        --data-folder "$WORK/data" --outputs-folder "$WORK/outputs"
    archive seeds
    echo "== seeds: $((SECONDS - started)) s"
}

run() {
    : "${OUT:?set OUT to the folder for the logs (the device tool sets it)}"
    START=$SECONDS
    TOTAL=${GPU_SESSION_SECONDS:-$([ "$TINY" = 1 ] && echo 1800 || echo 570)}
    WORK=$(mktemp -d /tmp/gpu-session.XXXXXX)
    export KERAS_BACKEND=jax PYTHONUNBUFFERED=1
    exec > >(tee -a "$OUT/session.log") 2>&1
    date -u
    nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi here" | tee "$OUT/nvidia-smi.txt"
    local dmon_pid=
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi dmon -s um -d 2 >"$OUT/dmon.txt" 2>&1 &
        dmon_pid=$!
    fi
    install_wheels || { echo "error: installing .whl/*.whl failed" >&2; return 2; }
    [ -f "$NPZ" ] || echo "warning: $NPZ missing (carry it): the fold step cannot run" >&2
    if [ $# -eq 0 ]; then set -- bench-resnet34 bench-unet predict fold; fi
    run_steps "$@"
    [ -n "$dmon_pid" ] && kill "$dmon_pid" 2>/dev/null
    echo "session: $((SECONDS - START)) s"
}

case ${1:-} in
prepare) prepare ;;
run) shift; run "$@" ;;
*) echo "usage: bash code/benchmarks/gpu_session.sh prepare | run [STEP...]" >&2; exit 2 ;;
esac
