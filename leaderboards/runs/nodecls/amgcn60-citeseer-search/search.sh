#!/bin/bash
# Validation search for IGNN on AM-GCN Citeseer (60 labels per class), seed 0, Picard: which
# model settings the learned-solver comparison should use (issue 6's accuracy target is the
# IGNN-Solver paper's 75.60). Chosen on validation accuracy only; summary.py ranks them.
# One config per line: NAME then `dear nodecls train` options. Rerunning skips finished ones.
# Usage: WORKER=0 bash search.sh   (WORKERS=2 by default; PYTHONPATH at a clean worktree;
# DEAR_DATA=../shared/data where the default data root does not find it)
# Another dataset: DATASET=amgcn:flickr OUT=DIR CONFIGS=DIR/configs.txt BASE="options every
# config shares" (later options win, so BASE may replace the epochs too).
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
export OMP_NUM_THREADS=1
i=0
while read -r name opts; do
  [ -z "$name" ] && continue
  i=$((i+1)); [ -z "$WORKER" ] || [ $((i % ${WORKERS:-2})) = "$WORKER" ] || continue
  [ -f $OUT/$name/results.json ] && continue
  python -m dear.cli nodecls train --dataset ${DATASET:-amgcn:citeseer} --model ignn --solver picard --seeds 1 \
    --epochs 200 --patience 50 --quiet $BASE $opts --out $OUT/$name > /dev/null 2>&1 || echo "failed $name"
  python -c "import json;r=json.load(open('$OUT/$name/results.json'));print('$name', r['val_accuracy']['mean'], r['test_accuracy']['mean'])"
done < ${CONFIGS:-$HERE/configs.txt}
echo "$(date +%T) done"
