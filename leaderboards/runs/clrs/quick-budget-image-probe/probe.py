"""Probe: decode the image f(z*) at evaluation (as training decodes the phantom step's output)
instead of the first-hit iterate z*. Same checkpoints; write=False; prints score and iterations."""
import sys, json
from pathlib import Path
import torch
from dear.implicit import Equilibrium
from dear.evaluate import evaluate_run
orig = Equilibrium.forward
MODE = {"image": False}
def patched(self, z0, *args, batch=None, num_graphs=None, subset_args=None, **kw):
    z = orig(self, z0, *args, batch=batch, num_graphs=num_graphs, subset_args=subset_args, **kw)
    if MODE["image"] and not torch.is_grad_enabled():
        z = self.f(z, *args, **kw)
    return z
Equilibrium.forward = patched
torch.set_num_threads(1)
out = {}
for run in sys.argv[1:]:
    row = {}
    for mode in (False, True):
        MODE["image"] = mode
        r = evaluate_run(Path(run), sizes=[64], repeats=1, warmup=0, write=False)["results"]["64"]
        row["image" if mode else "iterate"] = round(100 * r["score"], 1)
    out[run] = row
    print(run.split("runs/")[-1], row, flush=True)
