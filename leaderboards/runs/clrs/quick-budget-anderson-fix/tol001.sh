#!/bin/bash
# Probe: DEAR trained at solver tolerance 0.01 (the profile's is 0.1), evaluated at 0.1 (the
# reference table's) and at 0.01; quick profile otherwise, one thread each, two runs side by
# side. Results in runs-tol0.01/ALGO/dear/seedK (results_tol0.1.json, results.json).
# Usage: ALGO=binary_search_dear SEEDS="0 1 2" bash tol001.sh
# OUT=DIR (default runs-tol0.01) puts the runs elsewhere: the quick profile's gradient changed
# (5-step phantom since c6d0579), so runs of the current profile go to runs-tol0.01-phantom5.
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
for s in ${SEEDS:-0 1 2}; do
  d=$HERE/${OUT:-runs-tol0.01}/${ALGO:-binary_search_dear}/dear/seed$s
  [ -f $d/results.json ] && continue
  python -m dear.cli train --algorithm ${ALGO:-binary_search_dear} --model dear --protocol dear --profile quick \
    --seed $s --tol 0.01 --out $d --quiet || continue
  python -m dear.cli evaluate $d --repeats 1 --warmup 0 --tol 0.1
  python -m dear.cli evaluate $d --repeats 1 --warmup 0
done
