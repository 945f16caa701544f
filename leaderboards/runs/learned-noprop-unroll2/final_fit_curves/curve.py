import sys, copy, time, json, torch
from pathlib import Path
torch.set_num_threads(1)
from dear.runtime import tune_allocator; tune_allocator()
from dear.pareto import _load_nodecls, _accuracy
from dear.learned.problems import ignn_problems
from dear.learned.training import SolverTrainConfig, SolverTrainer
from dear.solvers.learned import learned_solvers
run = Path(sys.argv[1]); seed = int(sys.argv[2])
cfg, res, data, x, build = _load_nodecls(run, torch.device("cpu"))
m = build(seed)
sol = learned_solvers(m)
torch.manual_seed(seed)
for s in sol:
    for mod in s.modules():
        if hasattr(mod, "reset_parameters") and mod is not s: mod.reset_parameters()
def evals(tag):
    out = {}
    for tol in (0.3, 0.1):
        for l in m.layers: l.eq.tol, l.eq.max_iter = tol, 300
        with torch.no_grad():
            m.eval(); lg = m(x, data.edge_index)
        out[tol] = (round(_accuracy(lg, data.y, data.test_mask, bool(getattr(data, 'multilabel', False))), 2), sum(int(s['forward_nfe']) for s in m.solver_stats()))
    return out
c = SolverTrainConfig(first_steps=8, every=100, steps=2, unroll=2)
tr = SolverTrainer(m, sol, c, planned_fits=0)
probs = ignn_problems(m, x, data.edge_index, c)
for i in range(8): tr.fit(lambda: probs, 1)
print("after first", evals("f"), flush=True)
tr.restart(30)
log = []
for i in range(1, 31):
    r = tr.fit(lambda: probs, 1)
    row = {"step": i, "loss": round(r["loss"], 5), "init": round(r["init"], 5), "last": round(r["last_rel_error"], 5)}
    if i in (5, 10, 15, 20, 30): row["evals"] = evals(i)
    print(row, flush=True); log.append(row)
