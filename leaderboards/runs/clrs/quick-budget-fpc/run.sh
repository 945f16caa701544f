#!/bin/bash
# DEAR, quick profile, seed $SEED, with fixed-point correction:
#   fpc<N>: --fpc-states N (gamma 0.8);  fpc<N>g<G>: --fpc-states N --fpc-gamma 0.G
# Two runs side by side with one thread each (WORKER=0 / WORKER=1 take every other job).
# Results: $ROOT/<algorithm>/dear-<variant>/seed<SEED>/results.json (test: 100 graphs at n = 64).
cd /work/main
export OMP_NUM_THREADS=1
SEED=${SEED:-0}
ROOT=${ROOT:-/work/jobs/fpc/runs}
i=0
for a in ${ALGOS:-binary_search_dear mst_prim minimum dag_shortest_paths bellman_ford}; do
 for v in ${VARIANTS:-fpc2}; do
  i=$((i+1)); [ -z "$WORKER" ] || [ $((i % 2)) = "$WORKER" ] || continue
  case $v in
    fpc*g*) n=${v#fpc}; g=${n#*g}; n=${n%g*}; flags="--fpc-states $n --fpc-gamma 0.$g" ;;
    fpc*) flags="--fpc-states ${v#fpc}" ;;
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
