#!/bin/bash
# DEAR retrained with the fixed Anderson (commit 531e2a8, run from a clean worktree of it so that
# concurrent edits of the checkout cannot leak in), quick profile, same data and seeds as
# ../quick-budget; one thread, beside other jobs (training seconds are not the profile's).
# Usage: WT=/tmp/wt_fix SEEDS="0 1 2" ALGOS="..." bash retrain.sh
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=${WT:-/tmp/wt_fix} OMP_NUM_THREADS=1
for s in ${SEEDS:-0 1 2}; do
 for a in ${ALGOS:-binary_search_dear mst_prim minimum bellman_ford dag_shortest_paths bfs}; do
  d=$HERE/runs/$a/dear/seed$s
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a seed $s"
  python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed $s --out $d --quiet \
     || { echo "train failed $a $s"; continue; }
  python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a $s"
  python -c "import json;r=json.load(open('$d/results.json'))['results']['64'];print('$a', $s, r['score'], r['iterations'])"
 done
done
echo "$(date +%T) done"
