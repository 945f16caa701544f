"""Forward latency of the seed-0 BlogCatalog and Citeseer models (ab.json beside it). With
BEFORE=<checkout of an older commit> it imports dear from there instead of the installed one."""
import os, sys, copy, statistics, json
if os.environ.get("BEFORE"):
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower() and "editable" not in repr(f).lower()]
    sys.path.insert(0, os.environ["BEFORE"])
import torch
from pathlib import Path
torch.set_num_threads(1)
from dear.runtime import tune_allocator; tune_allocator()
import dear; src = dear.__file__
from dear.pareto import _load_nodecls, set_forward_solver
from dear.nodecls.train import time_inference
out = {"src": src}
for run, tol in (("learned-noprop-unroll2/amgcn_blogcatalog/learned", 0.3), ("learned-noprop-unroll2/amgcn_citeseer/learned", 0.1)):
    cfg, res, data, x, build = _load_nodecls(Path(__file__).resolve().parents[2] / run, torch.device("cpu"))
    base = build(0)
    for name in ("picard", "learned"):
        m = copy.deepcopy(base)
        for layer in m.layers:
            if name != "learned": set_forward_solver(layer, name)
            layer.eq.tol, layer.eq.max_iter = tol, 300
        t = time_inference(m, x, data.edge_index, warmup=3, repeats=15)
        out[f"{run.split('/')[1]}:{name}"] = statistics.median(t) * 1e3
print(json.dumps(out))
