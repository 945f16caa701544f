#!/bin/bash
# DEAR, quick profile, seed $SEED, phantom gradient variants. WORKER=0/1 take every other job.
cd /work/main
export OMP_NUM_THREADS=1
SEED=${SEED:-0}
ROOT=${ROOT:-/work/jobs/phantom/runs}
i=0
for a in ${ALGOS:-binary_search_dear mst_prim minimum dag_shortest_paths bellman_ford}; do
 for v in ${VARIANTS:-k5t05}; do
  i=$((i+1)); [ -z "$WORKER" ] || [ $((i % 2)) = "$WORKER" ] || continue
  case $v in
    k5t05) flags="--phantom-steps 5 --phantom-tau 0.5" ;;
    k3t1) flags="--phantom-steps 3 --phantom-tau 1.0" ;;
    k2t1) flags="--phantom-steps 2 --phantom-tau 1.0" ;;
    *) echo "unknown variant $v"; exit 2 ;;
  esac
  d=$ROOT/$a/dear-$v/seed$SEED
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a $v seed $SEED"
  python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed $SEED --out $d --quiet \
     $flags || { echo "train failed $a $v"; continue; }
  python -m dear.cli evaluate $d --sizes 64 --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "import json;r=json.load(open('$d/results.json'));t=json.load(open('$d/train_summary.json'));print('$a', '$v', r['results']['64']['score'], r['results']['64']['iterations'], round(t['seconds_this_call']))"
 done
done
echo "$(date +%T) done"
