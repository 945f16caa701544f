#!/bin/bash
# DEAR retrained with the 5-step phantom gradient (--phantom-steps 5 --phantom-tau 0.5) on the
# fixed Anderson, quick profile otherwise, one thread per run; results in
# runs-phantom5/ALGO/dear/seedK. WORKER=0/1 of WORKERS=2 take every other job (run two side by
# side); rerunning skips finished runs.
# Usage: WORKER=0 bash phantom5.sh   (with PYTHONPATH at a clean worktree of the commit measured)
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1
i=0
for a in ${ALGOS:-mst_prim dag_shortest_paths minimum bellman_ford strongly_connected_components binary_search_dear bfs dfs insertion_sort floyd_warshall}; do
  for s in ${SEEDS:-0 1 2}; do
    i=$((i+1)); [ -z "$WORKER" ] || [ $((i % ${WORKERS:-2})) = "$WORKER" ] || continue
    d=$HERE/runs-phantom5/$a/dear/seed$s
    [ -f $d/results.json ] && continue
    echo "$(date +%T) train $a seed $s"
    python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed $s \
      --phantom-steps 5 --phantom-tau 0.5 --out $d --quiet || { echo "train failed $a $s"; continue; }
    python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a $s"
    python -c "import json;r=json.load(open('$d/results.json'))['results']['64'];t=json.load(open('$d/train_summary.json'));print('$a', $s, r['score'], r['iterations'], round(t['seconds_this_call']))"
  done
done
echo "$(date +%T) done"
