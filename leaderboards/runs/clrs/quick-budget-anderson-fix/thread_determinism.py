"""Same seed and data, different torch thread counts: bit-identical only for the same count.

Trains BFS NAR (dear protocol cut to 256 graphs, hidden 128, batch 32, 60 steps) with the thread
counts given, in fresh processes, and appends the validation loss and a checksum of the weights
to thread_determinism.json:  python thread_determinism.py 1 1 2
"""
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import sys, json, tempfile, torch
from pathlib import Path
from dear.config import profile_config
from dear.training import train
torch.set_num_threads(int(sys.argv[1]))
cfg = profile_config("quick", algorithm="bfs", model="nar", num_train=256, num_val=32, steps=60, batch_size=32,
                     hidden=128, eval_every=60, device="cpu", protocol="dear")
with tempfile.TemporaryDirectory() as d:
    r = train(cfg, Path(d), progress=False)
    sd = torch.load(Path(d) / "checkpoint_last.pt", weights_only=False)["model"]
    print(json.dumps({"threads": int(sys.argv[1]), "val_loss": r.best_val["loss"], "val_score": r.best_val["score"],
                      "weight_sum": float(sum(v.double().sum() for v in sd.values()))}))
"""

out = Path(__file__).with_name("thread_determinism.json")
rows = []
for t in sys.argv[1:]:
    env = {"OMP_NUM_THREADS": t}
    res = subprocess.run([sys.executable, "-c", CHILD, t], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, **env})
    rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    print(rows[-1])
out.write_text(json.dumps({"what": __doc__.split("\n\n")[0], "runs": rows}, indent=1) + "\n")
