#!/bin/bash
# NAR seed 0 retrained on this commit (NAR has no solver: the Anderson fix does not touch it) so
# that paired timings can run against the fixed-Anderson DEAR of runs/ (checkpoints are not
# committed). Same profile, data and seed as ../quick-budget; its score must equal that run's.
# Usage: WT=/tmp/wt_fix ALGOS="..." bash nar_seed0.sh
HERE=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=${WT:-/tmp/wt_fix} OMP_NUM_THREADS=1
for a in ${ALGOS:-bfs bellman_ford binary_search_dear minimum mst_prim insertion_sort floyd_warshall dag_shortest_paths dfs strongly_connected_components}; do
  d=$HERE/runs/$a/nar/seed0
  [ -f $d/results.json ] && continue
  echo "$(date +%T) train $a nar seed 0"
  python -m dear.cli train --algorithm $a --model nar --protocol dear --profile quick --seed 0 --out $d --quiet \
     || { echo "train failed $a"; continue; }
  python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a"
  python -c "
import json;r=json.load(open('$d/results.json'))['results']['64'];o=json.load(open('$HERE/../quick-budget/$a/nar/seed0/results.json'))['results']['64']
print('$a', 'score', r['score'], 'quick-budget', o['score'], 'equal' if r['score']==o['score'] else 'DIFFERENT')"
done
echo "$(date +%T) done"
