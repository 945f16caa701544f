#!/bin/bash
# Quick profile with --lr-schedule cosine, DEAR and NAR. WORKER=0/1 take every other job.
cd /work/main
export OMP_NUM_THREADS=1
ROOT=${ROOT:-/work/jobs/cosine/runs}
i=0
for s in ${SEEDS:-0 1 2}; do
for a in ${ALGOS:-binary_search_dear insertion_sort minimum}; do
 for m in dear nar; do
  i=$((i+1)); [ -z "$WORKER" ] || [ $((i % 2)) = "$WORKER" ] || continue
  d=$ROOT/$a/$m/seed$s
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a $m seed $s"
  python -m dear.cli train --algorithm $a --model $m --protocol dear --profile quick --seed $s --out $d --quiet \
     --lr-schedule cosine || { echo "train failed $a $m"; continue; }
  python -m dear.cli evaluate $d --sizes 64 --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "import json;r=json.load(open('$d/results.json'));t=json.load(open('$d/train_summary.json'));print('$a', '$m', $s, r['results']['64']['score'], r['results']['64']['iterations'], round(t['seconds_this_call']))"
 done
done
done
echo "$(date +%T) done"
