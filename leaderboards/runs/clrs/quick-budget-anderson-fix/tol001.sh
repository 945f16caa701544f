#!/bin/bash
# Probe: DEAR trained at solver tolerance 0.01 (the profile's is 0.1), evaluated at 0.1 (the
# reference table's) and at 0.01; quick profile otherwise, one thread each, two runs side by
# side. Results in runs-tol0.01/ALGO/dear/seedK (results_tol0.1.json, results.json).
# Usage: ALGO=binary_search_dear SEEDS="0 1 2" bash tol001.sh
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
for s in ${SEEDS:-0 1 2}; do
  d=$HERE/runs-tol0.01/${ALGO:-binary_search_dear}/dear/seed$s
  [ -f $d/results.json ] && continue
  python -m dear.cli train --algorithm ${ALGO:-binary_search_dear} --model dear --protocol dear --profile quick \
    --seed $s --tol 0.01 --out $d --quiet || continue
  python -m dear.cli evaluate $d --repeats 1 --warmup 0 --tol 0.1
  python -m dear.cli evaluate $d --repeats 1 --warmup 0
done
