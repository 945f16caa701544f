#!/bin/bash
# DEAR with the paper's alignment regulariser (0.01) against the quick-budget NAR teachers, seed $SEED
cd /work/main
export OMP_NUM_THREADS=1
SEED=${SEED:-0}
for a in ${ALGOS:-bellman_ford minimum mst_prim binary_search_dear dag_shortest_paths}; do
  d=/work/jobs/aligned/runs/$a/dear/seed$SEED
  echo "$(date +%T) train $a seed $SEED"
  python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed $SEED --out $d --quiet \
     --align-weight 0.01 --align-teacher leaderboards/runs/clrs/quick-budget/$a/nar/seed$SEED || { echo "train failed $a"; continue; }
  python -m dear.cli evaluate $d --sizes 64 --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "import json;r=json.load(open('$d/results.json'));print('$a', r['results']['64']['score'], r['results']['64']['iterations'])"
done
echo "$(date +%T) done"
