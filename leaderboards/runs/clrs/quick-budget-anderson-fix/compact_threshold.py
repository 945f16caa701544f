"""DEAR evaluation seconds with different compact_below thresholds (alternated rounds).

Evaluates a DEAR run's test split (100 graphs, n = 64) with the solver loop's compact_below set
to each value, rounds alternating the order, one thread; prints one JSON line (the seconds of
every pass and their medians). compact_threshold.jsonl holds the lines measured on 2026-12-01
(two runs side by side on the 2-core CPU, binary search alone):

    python compact_threshold.py RUN_DIR 0.5,0.75,1.0 3 >> compact_threshold.jsonl
"""
import sys, time, functools, json, torch
import clrs_tasks as ct
import dear.implicit as imp
from dear.solvers.base import run_solver
from dear.evaluate import load_run
from dear.training import load_data
torch.set_num_threads(1)
cfg, model, _ = load_run(sys.argv[1], torch.device("cpu"))
ds = load_data(cfg, "test")
bs = cfg.batch_size
batches = [ct.collate([ds[i] for i in range(s, min(s + bs, len(ds)))]) for s in range(0, len(ds), bs)]
values = [float(v) for v in sys.argv[2].split(",")]
def run(cb):
    imp.run_solver = functools.partial(run_solver, compact_below=cb)
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            model(b)
    return time.perf_counter() - t0
run(values[0])
secs = {v: [] for v in values}
for r in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3):
    for v in (values if r % 2 == 0 else values[::-1]):
        secs[v].append(run(v))
print(json.dumps({"run": sys.argv[1], "seconds": secs, "median": {v: sorted(s)[len(s)//2] for v, s in secs.items()}}))
