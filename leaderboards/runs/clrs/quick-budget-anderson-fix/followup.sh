#!/bin/bash
# After retrain.sh / nar_seed0.sh: (1) NAR insertion sort seeds 1-2 (their quick-budget
# checkpoints are gone, and the permutation-pointer scoring changed in cc0f11c); (2) the runs whose
# evaluation changed since they were evaluated are evaluated again with the code of $HEAD_WT:
# insertion sort (permutation scoring, cc0f11c) and Floyd-Warshall DEAR (graphs that hit the
# 160-iteration cap now return their lowest-residual iterate, e20735f). Every other run's
# evaluation is unchanged by those commits (all its graphs converge; no permutation output).
# Usage: WT=/tmp/wt_fix HEAD_WT=/tmp/wt_head bash followup.sh
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
for s in 1 2; do
  d=$HERE/runs/insertion_sort/nar/seed$s
  [ -f $d/train_summary.json ] && continue
  echo "$(date +%T) train insertion_sort nar seed $s"
  PYTHONPATH=${WT:-/tmp/wt_fix} python -m dear.cli train --algorithm insertion_sort --model nar --protocol dear \
     --profile quick --seed $s --out $d --quiet || echo "train failed $s"
done
while pgrep -f "bash (retrain|nar_seed0).sh" > /dev/null; do sleep 20; done
for d in $HERE/runs/insertion_sort/*/seed* $HERE/runs/floyd_warshall/dear/seed*; do
  echo "$(date +%T) evaluate $d"
  PYTHONPATH=${HEAD_WT:-/tmp/wt_head} python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1 \
     || echo "eval failed $d"
  python -c "import json;r=json.load(open('$d/results.json'));x=r['results']['64'];print('$d', r['git_commit'][:8], x['score'], x['iterations'])"
done
echo "$(date +%T) done"
