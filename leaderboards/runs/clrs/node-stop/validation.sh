#!/bin/bash
# The test tolerance chosen on the validation split (n = 16), under each stopping rule, for the
# quick-profile checkpoints of run.sh (ALGO/dear/seedN, trained with rel at 0.1), and the test
# score (n = 64) at each choice: scripts/tol_on_validation.py --score-test, one pinned core.
# Writes tol_on_validation.json / tol_on_validation_stopnode.json and the results file of the
# chosen setting beside each run; summary.py reports them. Resumable: runs that hold both
# choices are skipped.
#   CORE=1 SEEDS="0 1 2 3 4" ALGOS=binary_search_dear bash leaderboards/runs/clrs/node-stop/validation.sh
set -u
cd "$(dirname "$0")/../../../.." || exit 1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
here=leaderboards/runs/clrs/node-stop
core=${CORE:-0}
for algo in ${ALGOS:-binary_search_dear mst_prim minimum}; do
  for seed in ${SEEDS:-0 1 2}; do
    dir=$here/$algo/dear/seed$seed
    [ -f "$dir/checkpoint_best.pt" ] || { echo "skip $dir: no checkpoint (weights are not committed; run.sh retrains them)"; continue; }
    [ -f "$dir/tol_on_validation.json" ] ||
      taskset -c "$core" python scripts/tol_on_validation.py "$dir" --tols 0.2,0.1,0.05,0.02,0.01 --score-test || exit 1
    [ -f "$dir/tol_on_validation_stopnode.json" ] ||
      taskset -c "$core" python scripts/tol_on_validation.py "$dir" --tols 0.3,0.2,0.1,0.05 --stop-mode node --score-test || exit 1
  done
done
echo "$(date +%T) done"
