#!/bin/bash
cd /work/main
export OMP_NUM_THREADS=1
for a in mst_prim minimum bellman_ford binary_search_dear; do
  d=/work/jobs/long/runs/$a/dear-steps1800/seed0
  for t in 0.05 0.02; do
    [ -f $d/results_tol$t.json ] && continue
    python -m dear.cli evaluate $d --sizes 64 --tol $t --repeats 1 --warmup 0 > $d/eval_tol$t.log 2>&1 || echo "fail $a $t"
    ls $d
    echo "$a $t done $(date +%T)"
  done
done
