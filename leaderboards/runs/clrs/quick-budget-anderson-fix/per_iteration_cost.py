"""Cost of one DEAR solver iteration against one unrolled NAR step at equal processor
evaluations: untrained models of the same config (binary search, quick profile, n = 64 test
split), DEAR forced to exactly K Anderson iterations (tolerance 0), NAR unrolled for its true
steps (6 here); alternated passes, one thread. Writes per_iteration_cost.json.

    python per_iteration_cost.py [K] [ROUNDS]
"""
import json
import sys
import time
from pathlib import Path

import torch

import clrs_tasks as ct
from dear.config import TrainConfig
from dear.training import build, load_data

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
K = int(sys.argv[1]) if len(sys.argv) > 1 else 6
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
cfg = TrainConfig.load(HERE / "runs" / "binary_search_dear" / "dear" / "seed0" / "config.json")
ds = load_data(cfg, "test")
batches = [ct.collate([ds[i] for i in range(s, min(s + cfg.batch_size, len(ds)))])
           for s in range(0, len(ds), cfg.batch_size)]
torch.manual_seed(0)
dear = build(cfg, ds.spec).eval()
dear.equilibrium.tol, dear.equilibrium.eval_max_iter = 0.0, K
cfg.model = "nar"
nar = build(cfg, ds.spec).eval()


def one_pass(model):
    nfe = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for b in batches:
            nfe.append(int(model(b)[1]["nfe"]))
    return time.perf_counter() - t0, nfe


one_pass(dear), one_pass(nar)  # warm-up
seconds = {"dear": [], "nar": []}
nfe = {}
for r in range(ROUNDS):
    for name, m in ((("dear", dear), ("nar", nar)) if r % 2 == 0 else (("nar", nar), ("dear", dear))):
        t, n = one_pass(m)
        seconds[name].append(t)
        nfe[name] = n
out = {"what": __doc__.split("\n\n")[0], "K": K, "num_graphs": len(ds), "seconds_per_pass": seconds,
       "nfe_per_batch": nfe, "ratio_of_medians": sorted(seconds["dear"])[ROUNDS // 2] / sorted(seconds["nar"])[ROUNDS // 2]}
(HERE / "per_iteration_cost.json").write_text(json.dumps(out, indent=1) + "\n")
print(out)
