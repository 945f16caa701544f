#!/bin/bash
# binary search, DEAR retrained with the fixed Anderson at training tolerance TOL (default 0.05;
# evaluation at the paper's 0.1 and at TOL); seeds run two at a time, one thread each.
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=${WT:-/tmp/wt_fix} OMP_NUM_THREADS=1
TOL=${TOL:-0.05}
one() {
  d=$HERE/runs-tol$TOL/binary_search_dear/dear/seed$1
  [ -f $d/results_tol0.1.json ] && return
  python -m dear.cli train --algorithm binary_search_dear --model dear --protocol dear --profile quick --seed $1 \
      --tol $TOL --out $d --quiet > /dev/null 2>&1 || { echo "train failed seed $1"; return; }
  python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1
  python -m dear.cli evaluate $d --tol 0.1 --repeats 1 --warmup 0 > $d/eval_tol0.1.log 2>&1
  python -c "import json
for f in ('results.json','results_tol0.1.json'):
    r=json.load(open('$d/'+f))['results']['64']; print('seed $1', f, r['score'], r['iterations'])"
}
one 0 & one 1 & wait
one 2
echo done
