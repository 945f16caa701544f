"""A/B: the learned IGNN forward at tol 0.3 with the initializer's fused inference path (new)
against the out-of-place path (old), alternated; plus Picard for the ratio. Medians in ms."""
import sys, time, statistics, copy, json
from pathlib import Path
import torch
import torch.nn.functional as F
from dear.pareto import _load_nodecls, set_forward_solver
from dear.runtime import tune_allocator
from dear.learned.networks import Initializer
torch.set_num_threads(1); tune_allocator()
new_forward = Initializer.forward
def old_forward(self, u):
    out = self.lin2(self.lin1(u))
    if self.skip:
        out = out + u * self.scale + self.shift
    return F.relu(out) if self.activation == "relu" else out
out = {}
for run in sys.argv[1:]:
    cfg, res, data, x, build = _load_nodecls(Path(run), torch.device("cpu"))
    for seed in range(5):
        m = build(seed)
        pic = copy.deepcopy(m)
        for layer in pic.layers: set_forward_solver(layer, "picard")
        for mm in (m, pic):
            for layer in mm.layers: layer.eq.tol = 0.3
        ts = {"picard": [], "learned_old": [], "learned_new": []}
        def fwd(mm):
            with torch.no_grad():
                t = time.perf_counter(); mm(x, data.edge_index); return time.perf_counter() - t
        for _ in range(3): fwd(m); fwd(pic)
        for r in range(20):
            Initializer.forward = old_forward; ts["learned_old"].append(fwd(m))
            Initializer.forward = new_forward; ts["learned_new"].append(fwd(m))
            ts["picard"].append(fwd(pic))
        med = {k: 1e3 * statistics.median(v) for k, v in ts.items()}
        out[f"{cfg.dataset}/seed{seed}"] = med
        print(cfg.dataset, seed, {k: round(v, 2) for k, v in med.items()}, "ratio old %.2f new %.2f" % (med["picard"] / med["learned_old"], med["picard"] / med["learned_new"]), flush=True)
json.dump(out, open(Path(__file__).with_name("ab_raw.json"), "w"), indent=1)  # ab.json: these plus medians
