#!/bin/bash
# The `paper` profile on a CPU: train and evaluate a queue of runs on one pinned core, one thread.
#
#   bash leaderboards/runs/clrs/paper-cpu/run.sh CORE ALGO:MODEL:SEED[:LABEL] ...
#
# e.g. `run.sh 1 minimum:dear:0 minimum:nar:0` (DEAR then NAR on core 1), or
# `TRAIN_ARGS="--tol 0.05" run.sh 0 binary_search_dear:dear:0:tol0.05` (a DEAR variant trained
# at another tolerance, in ALGO/dear-tol0.05/seed0; summarize_paper_cpu.py reports it as such).
# Resumable: `dear train` resumes from the run's checkpoint and finished runs (results.json) are
# skipped, so after an interruption the same command carries on. Two queues side by side, one
# per core, is how the runs in this folder were made (see README.md).
set -u
if [ $# -lt 2 ]; then
  sed -n 2,11p "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
core=$1; shift
cd "$(dirname "$0")/../../../.." || exit 1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
here=leaderboards/runs/clrs/paper-cpu
for job in "$@"; do
  IFS=: read -r algo model seed label <<< "$job"
  if [ -z "$algo" ] || [ -z "$model" ] || ! [[ "$seed" =~ ^[0-9]+$ ]]; then
    echo "error: job '$job' is not ALGO:MODEL:SEED[:LABEL]" >&2; exit 2
  fi
  dir=$here/$algo/$model${label:+-$label}/seed$seed
  if [ -f "$dir/results.json" ]; then echo "$(date +%T) $dir: done already"; continue; fi
  echo "$(date +%T) $dir: train (core $core)"
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
  taskset -c "$core" dear train --algorithm "$algo" --model "$model" --profile paper --seed "$seed" \
    ${TRAIN_ARGS:-} --out "$dir" || { echo "error: training $dir failed" >&2; exit 1; }
  echo "$(date +%T) $dir: evaluate"
  taskset -c "$core" dear evaluate "$dir" --quiet || { echo "error: evaluating $dir failed" >&2; exit 1; }
done
echo "$(date +%T) queue done"
