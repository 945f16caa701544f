"""Probe: DEAR's stopping rule with a per-node residual (max over nodes of ||r_i|| / RMS_i ||f_i||),
size-invariant, against the global relative residual; existing checkpoints, test at n=64."""
import json, sys, torch
from pathlib import Path
torch.set_num_threads(1)
import dear.solvers.base as base
from dear.evaluate import load_run, evaluate_size
orig = base.graph_residual
def node_max(r, fx, batch, num_graphs, stop_mode):
    rr = torch.linalg.vecdot(r, r)
    mx = rr.new_zeros(num_graphs).scatter_reduce(0, batch, rr, "amax", include_self=False)
    cnt = rr.new_zeros(num_graphs).index_add_(0, batch, torch.ones_like(rr))
    den = base.graph_sq_norm(fx, batch, num_graphs) / cnt.clamp_min(1)
    return (mx / (den + 1e-12)).sqrt()
mode = sys.argv[1]; runs = sys.argv[2:]
if mode == "node": base.graph_residual = node_max
dev = torch.device("cpu")
for rd in runs:
    cfg, model, _ = load_run(Path(rd), dev)
    res, _ = evaluate_size(cfg, model, 64, dev, repeats=1, warmup=0)
    print(json.dumps({"run": rd, "mode": mode, "score": round(100 * res["score"], 2), "iters": round(res["iterations"]["mean"], 2)}), flush=True)
