#!/bin/bash
# The fpc2 checkpoints evaluated at tolerances 0.05 and 0.02 (results_tol<t>.json beside results.json).
cd /work/main
export OMP_NUM_THREADS=1
for a in binary_search_dear mst_prim minimum dag_shortest_paths bellman_ford; do
 for s in 0 1 2; do
  d=/work/jobs/fpc/runs/$a/dear-fpc2/seed$s
  for t in 0.05 0.02; do
    [ -f $d/results_tol$t.json ] && continue
    python -m dear.cli evaluate $d --sizes 64 --tol $t --repeats 1 --warmup 0 > $d/eval_tol$t.log 2>&1 || echo "fail $a $s $t"
    echo "$a $s $t done $(date +%T)"
  done
 done
done
