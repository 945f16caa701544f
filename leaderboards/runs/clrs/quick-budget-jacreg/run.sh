#!/bin/bash
# DEAR, quick profile, seed $SEED, with one training option changed per variant:
#   jac<W>: --jac-reg W (default 1e-4);  ift: --backward ift (default phantom, 1 step);
#   tol<DD>: --tol 0.DD in training and at test (default 0.1).
# Two runs side by side with one thread each (WORKER=0 / WORKER=1 take every other job).
# Results: $ROOT/<algorithm>/dear-<variant>/seed<SEED>/results.json (test: 100 graphs at n = 64).
cd /work/main
export OMP_NUM_THREADS=1
SEED=${SEED:-0}
ROOT=${ROOT:-/work/jobs/jacreg/runs}
i=0
for a in ${ALGOS:-bfs bellman_ford binary_search_dear}; do
 for v in ${VARIANTS:-jac1e-2 jac1e-1 jac1}; do
  i=$((i+1)); [ -z "$WORKER" ] || [ $((i % 2)) = "$WORKER" ] || continue
  case $v in
    jac*) flags="--jac-reg ${v#jac}" ;;
    ift) flags="--backward ift" ;;
    tol*) flags="--tol 0.${v#tol}" ;;
    *) echo "unknown variant $v"; exit 2 ;;
  esac
  d=$ROOT/$a/dear-$v/seed$SEED
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a $v seed $SEED"
  python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed $SEED --out $d --quiet \
     $flags || { echo "train failed $a $v"; continue; }
  python -m dear.cli evaluate $d --sizes 64 --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "import json;r=json.load(open('$d/results.json'));print('$a', '$v', r['results']['64']['score'], r['results']['64']['iterations'])"
 done
done
echo "$(date +%T) done"
