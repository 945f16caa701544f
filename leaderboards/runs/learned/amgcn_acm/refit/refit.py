"""Is a run's alternately trained learned solver stale on its final model? Refit it on the
frozen model for N steps with a fresh Adam and loss-weight ramp (SolverTrainer on the run's
schedule, LR overrides its learning rate) and compare test accuracy and evaluations at loose
tolerances with the shipped solver. Writes JSON to stdout's last line.

    python leaderboards/runs/learned/amgcn_acm/refit/refit.py leaderboards/runs/learned/amgcn_acm/learned 4 10,30
"""
import copy
import json
import os
import sys
import time
from pathlib import Path

import torch

from dear.learned.problems import ignn_problems
from dear.learned.training import SolverTrainConfig, SolverTrainer
from dear.pareto import _accuracy, _load_nodecls
from dear.solvers.learned import learned_solvers

torch.set_num_threads(1)
run = Path(sys.argv[1])
seed = int(sys.argv[2])
ft_steps = [int(s) for s in sys.argv[3].split(",")]
cfg, res, data, x, build = _load_nodecls(run, torch.device("cpu"))
lr = {"lr": float(os.environ["LR"])} if "LR" in os.environ else {}
tcfg = SolverTrainConfig.from_dict({**(cfg.solver_training or {}), **lr})
print("schedule", tcfg)


def sweep(model, tag):
    out = []
    for tol in (0.3, 0.1, 0.03, 0.01):
        for layer in model.layers:
            layer.eq.tol, layer.eq.max_iter = tol, 300
        with torch.no_grad():
            model.eval()
            logits = model(x, data.edge_index)
        st = model.solver_stats()
        out.append({"tol": tol, "test_accuracy": _accuracy(logits, data.y, data.test_mask, False),
                    "nfe": sum(int(s["forward_nfe"]) for s in st)})
    print(tag, " ".join(f"{o['tol']:g}:{o['test_accuracy']:.1f}/{o['nfe']}" for o in out), flush=True)
    return out


base = build(seed)
record = {"run": str(run), "seed": seed, "shipped": sweep(copy.deepcopy(base), "native"), "refit": {}}
for n in ft_steps:
    m = copy.deepcopy(base)
    tr = SolverTrainer(m, learned_solvers(m), tcfg, planned_steps=n)
    probs = ignn_problems(m, x, data.edge_index, tcfg)
    t = time.perf_counter()
    tr.fit(lambda: probs, n)
    secs = time.perf_counter() - t
    record["refit"][str(n)] = {"seconds": secs, "lr": tcfg.lr, "curve": sweep(m, f"native+{n} ({secs:.1f}s)")}
print(json.dumps(record))
