#!/bin/bash
# The test-tolerance sweeps and validation choices of finished paper-profile DEAR runs, on one
# pinned core (what summarize_paper_cpu.py reads beside results.json):
#   results_tol<T>.json               the run's own rule (rel) at 0.01, 0.05, 0.2
#   results_stopnode[_tol<T>].json    the worst-node rule at 0.1, 0.05, 0.2, 0.3
#   tol_on_validation[_stopnode].json the tolerance chosen on validation under each rule
#
#   bash leaderboards/runs/clrs/paper-cpu/sweep.sh CORE RUN_DIR [RUN_DIR ...]
# Resumable: files already there are not made again.
set -u
if [ $# -lt 2 ]; then sed -n 2,9p "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi
core=$1; shift
cd "$(dirname "$0")/../../../.." || exit 1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { taskset -c "$core" "$@" || { echo "error: $* failed" >&2; exit 1; }; }
for dir in "$@"; do
  [ -f "$dir/results.json" ] || { echo "error: $dir is not a finished, evaluated run (no results.json)" >&2; exit 1; }
  for t in 0.01 0.05 0.2; do
    [ -f "$dir/results_tol$t.json" ] || run dear evaluate "$dir" --tol "$t" --quiet --repeats 1
  done
  [ -f "$dir/results_stopnode.json" ] || run dear evaluate "$dir" --stop-mode node --quiet --repeats 1
  for t in 0.05 0.2 0.3; do
    [ -f "$dir/results_stopnode_tol$t.json" ] || run dear evaluate "$dir" --stop-mode node --tol "$t" --quiet --repeats 1
  done
  [ -f "$dir/tol_on_validation.json" ] || run python scripts/tol_on_validation.py "$dir" --tols 0.2,0.1,0.05,0.02,0.01
  [ -f "$dir/tol_on_validation_stopnode.json" ] ||
    run python scripts/tol_on_validation.py "$dir" --tols 0.3,0.2,0.1,0.05 --stop-mode node
done
echo "$(date +%T) sweeps done"
