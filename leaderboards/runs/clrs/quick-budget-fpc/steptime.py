"""Training-step seconds of DEAR with and without fixed-point correction (fpc 2), quick-profile
model and data (batch 32, n 8..16), alternated steps from the same weights, one thread."""
import sys, time, statistics, json, copy
import torch
import clrs_tasks as ct
from dear.config import profile_config
from dear.training import build, load_data, batch_indices
torch.set_num_threads(1)
out = {}
for algo in sys.argv[1:]:
    cfg = profile_config("quick", algorithm=algo, model="dear")
    data = load_data(cfg, "train")
    torch.manual_seed(0)
    models = {"plain": build(cfg, data.spec)}
    models["fpc2"] = copy.deepcopy(models["plain"]); models["fpc2"].fpc_states = 2
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    ts = {k: [] for k in models}
    for step in range(24):
        batch = ct.collate([data[int(i)] for i in batch_indices(len(data), 32, 0, step)])
        for k in (("plain", "fpc2") if step % 2 == 0 else ("fpc2", "plain")):
            m = models[k]; m.train()
            t = time.perf_counter()
            o, st = m(batch); loss = m.loss(batch, o, st)
            opts[k].zero_grad(); loss.backward(); opts[k].step()
            ts[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v[4:]) for k, v in ts.items()}
    out[algo] = {"median_step_seconds": med, "fpc2_over_plain": med["fpc2"] / med["plain"]}
    print(algo, {k: round(1e3 * v, 1) for k, v in med.items()}, "ratio %.2f" % (med["fpc2"] / med["plain"]), flush=True)
json.dump(out, open(sys.argv[0].replace("steptime.py", "steptime.json"), "w"), indent=1)
