#!/bin/bash
# Seed-0 DEAR checkpoints for paired timing (paired_timing_all.json) of the six algorithms whose
# runs/ checkpoints are not on this machine (checkpoints are not committed). Same profile,
# data, seed and thread count (one) as runs/, later code (HEAD_WT); its score and iterations are
# recorded next to the timing, as they differ from runs/ (float summation order differs).
# Usage: HEAD_WT=/tmp/wt_head ALGOS="..." bash timing_dear.sh
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=${HEAD_WT:-/tmp/wt_head} OMP_NUM_THREADS=1
for a in ${ALGOS:-bfs bellman_ford binary_search_dear minimum mst_prim dag_shortest_paths}; do
  d=$HERE/runs-timing/$a/dear/seed0
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a"
  python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed 0 --out $d --quiet \
     || { echo "train failed $a"; continue; }
  python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "import json;r=json.load(open('$d/results.json'))['results']['64'];print('$a', r['score'], r['iterations'])"
done
echo "$(date +%T) done"
