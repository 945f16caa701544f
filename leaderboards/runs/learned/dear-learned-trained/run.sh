#!/bin/bash
# DEAR trained with the learned solver in the loop (--solver learned: the alternating schedule of
# Appendix B.2, DEAR's defaults in dear/learned/reasoning.py), quick profile otherwise (5-step
# phantom gradient, fixed Anderson as fallback), one thread per run; results in
# ALGO/seedK. Compared by summary.py with the Anderson-trained runs of the same seeds
# (leaderboards/runs/clrs/quick-budget-anderson-fix/runs-phantom5/). WORKER=0/1 of WORKERS=2 take
# every other job (run two side by side); rerunning skips finished runs.
# OUT=DIR (default: this folder) and EXTRA="--solver-train KEY=VALUE ..." for variants.
# Usage: WORKER=0 bash run.sh   (with PYTHONPATH at a clean worktree of the commit measured)
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$HERE}
export OMP_NUM_THREADS=1
i=0
for s in ${SEEDS:-0}; do
  for a in ${ALGOS:-bellman_ford mst_prim dag_shortest_paths insertion_sort binary_search_dear dfs strongly_connected_components bfs minimum floyd_warshall}; do
    i=$((i+1)); [ -z "$WORKER" ] || [ $((i % ${WORKERS:-2})) = "$WORKER" ] || continue
    d=$OUT/$a/seed$s
    [ -f $d/results.json ] && continue
    echo "$(date +%T) train $a seed $s"
    python -m dear.cli train --algorithm $a --model dear --protocol dear --profile quick --seed $s \
      --solver learned $EXTRA --out $d --quiet || { echo "train failed $a $s"; continue; }
    python -m dear.cli evaluate $d --repeats 1 --warmup 0 > $d/eval.log 2>&1 || echo "eval failed $a $s"
    python -c "import json;r=json.load(open('$d/results.json'))['results']['64'];t=json.load(open('$d/train_summary.json'));print('$a', $s, r['score'], r['iterations'], round(t['seconds_this_call']))"
  done
done
echo "$(date +%T) done"
