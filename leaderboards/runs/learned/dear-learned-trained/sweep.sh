#!/bin/bash
# Tolerance sweep for summary.py's equal-score comparison: evaluates every finished
# learned-trained run here (ALGO/seedK) and its Anderson-trained counterpart (in place, in
# leaderboards/runs/clrs/quick-budget-anderson-fix/runs-phantom5/ALGO/dear/seedK) at each
# tolerance of TOLS (results_tol<TOL>.json beside results.json, which holds the training
# tolerance 0.1). WORKER=0/1 of WORKERS=2 take every other run; rerunning skips what exists.
# OUT=DIR sweeps a variant's runs (default: this folder).
# Usage: WORKER=0 bash sweep.sh   (with PYTHONPATH at a clean worktree of the commit measured)
HERE=$(cd "$(dirname "$0")" && pwd)
ANDERSON=$HERE/../../clrs/quick-budget-anderson-fix/runs-phantom5
OUT=${OUT:-$HERE}
export OMP_NUM_THREADS=1
i=0
for d in $OUT/*/seed*; do
  [ -f $d/results.json ] || continue
  a=$(basename $(dirname $d)); s=$(basename $d)
  for run in $d $ANDERSON/$a/dear/$s; do
    [ $run = $d ] && who=learned-trained || who=anderson-trained
    i=$((i+1)); [ -z "$WORKER" ] || [ $((i % ${WORKERS:-2})) = "$WORKER" ] || continue
    for t in ${TOLS:-0.3 0.2 0.05}; do
      [ -f $run/results_tol$t.json ] && continue
      python -m dear.cli evaluate $run --tol $t --repeats 1 --warmup 0 > /dev/null 2>&1 || echo "eval failed $run $t"
    done
    echo "$(date +%T) swept $a $s $who"
  done
done
echo "$(date +%T) done"
