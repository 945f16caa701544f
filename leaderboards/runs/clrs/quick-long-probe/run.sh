#!/bin/bash
# DEAR and NAR, quick profile but STEPS optimiser steps (default 1800 = 3x the quick cap), seed $SEED.
cd /work/main
export OMP_NUM_THREADS=1
SEED=${SEED:-0}
STEPS=${STEPS:-1800}
ROOT=${ROOT:-/work/jobs/long/runs}
for a in ${ALGOS:-binary_search_dear mst_prim minimum}; do
 for m in ${MODELS:-dear nar}; do
  d=$ROOT/$a/$m-steps$STEPS/seed$SEED
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a $m seed $SEED steps $STEPS"
  python -m dear.cli train --algorithm $a --model $m --protocol dear --profile quick --seed $SEED --out $d --quiet \
     --steps $STEPS || { echo "train failed $a $m"; continue; }
  python -m dear.cli evaluate $d --sizes 64 --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "import json;r=json.load(open('$d/results.json'));t=json.load(open('$d/train_summary.json'));print('$a', '$m', r['results']['64']['score'], r['results']['64']['iterations'], round(t['seconds_this_call']))"
 done
done
echo "$(date +%T) done"
