#!/bin/bash
# The worst-node stopping rule (--stop-mode node) against the DEAR paper's graph-level one (rel)
# on the quick profile's reference DEAR configs (quick-budget-anderson-fix/runs-phantom5: 5-step
# phantom gradient, tolerance 0.1), one pinned core, one thread:
#   ALGO/dear/seedN       the reference config retrained here (stop_mode rel), evaluated with rel
#                         (results.json) and with node at test only (results_stopnode.json);
#   ALGO/dear-node/seedN  the same config with stop_mode node, trained and tested with it.
# Resumable: finished steps are skipped. ALGOS, SEEDS, CORE and VARIANTS ("dear dear-node" by
# default; "dear" for the paired test-only comparison alone) select the work.
#   CORE=0 SEEDS="0 1 2" ALGOS="binary_search_dear mst_prim minimum" bash leaderboards/runs/clrs/node-stop/run.sh
set -u
cd "$(dirname "$0")/../../../.." || exit 1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
here=leaderboards/runs/clrs/node-stop
ref=leaderboards/runs/clrs/quick-budget-anderson-fix/runs-phantom5
core=${CORE:-0}
run() { taskset -c "$core" "$@"; }
for seed in ${SEEDS:-0 1 2}; do
  for algo in ${ALGOS:-binary_search_dear mst_prim minimum}; do
    src=$ref/$algo/dear/seed$seed/config.json
    [ -f "$src" ] || { echo "error: no reference config $src" >&2; exit 1; }
    for variant in ${VARIANTS:-dear dear-node}; do
      dir=$here/$algo/$variant/seed$seed
      mkdir -p "$dir"
      if [ ! -f "$dir/config.json" ]; then
        mode=rel; [ "$variant" = dear-node ] && mode=node
        python -c "import json,sys; c=json.load(open('$src')); c['stop_mode']='$mode'; json.dump(c, open('$dir/config.json','w'), indent=1)"
      fi
      if [ ! -f "$dir/train_summary.json" ]; then
        echo "$(date +%T) train $dir"
        run dear train --out "$dir" --quiet || { echo "error: training $dir failed" >&2; exit 1; }
      fi
      [ -f "$dir/results.json" ] || run dear evaluate "$dir" --quiet --repeats 3 > /dev/null || exit 1
      if [ "$variant" = dear ] && [ ! -f "$dir/results_stopnode.json" ]; then
        run dear evaluate "$dir" --stop-mode node --quiet --repeats 3 > /dev/null || exit 1
      fi
      python - "$dir" <<'PY'
import json, sys
from pathlib import Path
d = Path(sys.argv[1])
for name in ("results.json", "results_stopnode.json"):
    p = d / name
    if p.exists():
        r = json.loads(p.read_text())["results"]["64"]
        print(f"  {d} {name}: score {100 * r['score']:.1f}, iterations {r['iterations']['mean']:.2f}")
PY
    done
  done
done
echo "$(date +%T) done"
