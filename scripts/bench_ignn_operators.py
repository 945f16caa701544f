"""IGNN step cost with the propagation product in COO (``torch.sparse.mm``, the code before
2026-11-30) against cached CSR with its transpose (``dear.sparse_ops``, the current code).

Same model, same features (CSR where the trainer stores them), a fixed number of solver
iterations (tolerance 0) so both variants do exactly the same arithmetic; the two variants
alternate round by round in one process, so load on the machine hits both alike. Reports the
median seconds of an eval forward and of a training step (forward, IFT backward with a fixed
number of adjoint iterations, optimiser step), and checks that both variants give the same
outputs and gradients.

    OMP_NUM_THREADS=1 python scripts/bench_ignn_operators.py --datasets amgcn:citeseer amgcn:flickr
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable

import torch

import dear.nodecls.ignn as ignn_module
from dear.io import write_measurement
from dear.nodecls import load_dataset
from dear.nodecls.ignn import IGNN
from dear.nodecls.train import NodeClsConfig, model_features

VARIANTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "coo": lambda adj, h: torch.sparse.mm(adj, h),
    "csr": ignn_module._spmm,
}


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(dataset: str, iterations: int, rounds: int, hidden: int) -> dict[str, Any]:
    cfg = NodeClsConfig(dataset=dataset, model="ignn")
    data = load_dataset(dataset)
    x = model_features(data, cfg)
    torch.manual_seed(0)
    model = IGNN(x.shape[1], int(data.num_classes), hidden=hidden, tol=0.0, max_iter=iterations,
                 backward_tol=0.0, backward_max_iter=iterations)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    y, mask = data.y, data.train_mask

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(x, data.edge_index)

    def train_step() -> None:
        model.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x, data.edge_index)[mask], y[mask])
        loss.backward()
        opt.step()

    # identical results: outputs and gradients of one step from the same weights
    ref: dict[str, Any] = {}
    for name, fn in VARIANTS.items():
        ignn_module._spmm = fn
        model.load_state_dict(state)
        model.train()
        torch.manual_seed(1)
        out = model(x, data.edge_index)
        out[mask].logsumexp(1).sum().backward()
        ref[name] = (out.detach(), [p.grad.clone() for p in model.parameters()])
        model.zero_grad()
    same = torch.allclose(ref["coo"][0], ref["csr"][0], rtol=1e-4, atol=1e-5) and all(
        torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(ref["coo"][1], ref["csr"][1]))

    times: dict[str, dict[str, list[float]]] = {v: {"forward": [], "train_step": []} for v in VARIANTS}
    for name, fn in VARIANTS.items():  # warm-up (and the cached operators)
        ignn_module._spmm = fn
        forward()
        train_step()
    for _ in range(rounds):
        for name, fn in VARIANTS.items():
            ignn_module._spmm = fn
            model.load_state_dict(state)
            times[name]["forward"].append(_timed(forward))
            times[name]["train_step"].append(_timed(train_step))
    ignn_module._spmm = VARIANTS["csr"]
    med = {v: {k: statistics.median(t) for k, t in d.items()} for v, d in times.items()}
    return {"dataset": dataset, "num_nodes": int(data.num_nodes), "num_edges": int(data.edge_index.shape[1]),
            "features": list(x.shape), "feature_layout": str(x.layout), "hidden": hidden,
            "solver_iterations": iterations, "rounds": rounds, "same_outputs_and_gradients": bool(same),
            "median_seconds": med,
            "speedup_csr_over_coo": {k: med["coo"][k] / med["csr"][k] for k in ("forward", "train_step")},
            "seconds": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["amgcn:citeseer", "amgcn:acm", "amgcn:blogcatalog", "amgcn:flickr"])
    ap.add_argument("--iterations", type=int, default=20, help="solver iterations per solve (forward and adjoint)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--out", default="leaderboards/runs/nodecls/operators/bench.json")
    args = ap.parse_args(argv)
    rows = []
    for ds in args.datasets:
        r = measure(ds, args.iterations, args.rounds, args.hidden)
        rows.append(r)
        m, s = r["median_seconds"], r["speedup_csr_over_coo"]
        print(f"{ds}: forward {m['coo']['forward']:.3f}s -> {m['csr']['forward']:.3f}s ({s['forward']:.2f}x), "
              f"train step {m['coo']['train_step']:.3f}s -> {m['csr']['train_step']:.3f}s ({s['train_step']:.2f}x), "
              f"same results: {r['same_outputs_and_gradients']}", flush=True)
    out = write_measurement(args.out, {"results": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
