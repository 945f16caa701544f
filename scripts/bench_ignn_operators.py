"""IGNN step cost with the sparse products done three ways: the propagation in COO
(``torch.sparse.mm``, the code before 2026-11-30), cached CSR with its transpose through
PyTorch's CSR kernel (``csr``, the code until the 30th's evening), and the same CSR operators
through ``dear.sparse_ops.csr_mm``'s weighted ``embedding_bag`` on CPU (``bag``, the current
code; it also takes the CSR feature injection ``X Omega^T``).

Same model, same features (CSR where the trainer stores them), a fixed number of solver
iterations (tolerance 0) so every variant does the same arithmetic; the variants alternate
within each round, in reversed order every other round, in one process, so load on the machine
hits all alike. Reports the median seconds of an eval forward and of a training step (forward,
IFT backward with a fixed number of adjoint iterations, optimiser step), and checks that every
variant gives the same outputs and gradients.

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
import dear.sparse_ops as sparse_ops
from dear.io import write_measurement
from dear.nodecls import load_dataset
from dear.nodecls.ignn import IGNN
from dear.nodecls.train import NodeClsConfig, model_features

_SPMM = ignn_module._spmm
_BAG = sparse_ops._BAG_DTYPES
#: name -> (IGNN's propagation product, the dtypes csr_mm sends through embedding_bag)
VARIANTS: dict[str, tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], tuple]] = {
    "coo": (lambda adj, h: torch.sparse.mm(adj, h), ()),
    "csr": (_SPMM, ()),
    "bag": (_SPMM, _BAG),
}


def _use(name: str) -> None:
    ignn_module._spmm, sparse_ops._BAG_DTYPES = VARIANTS[name]


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
    for name in VARIANTS:
        _use(name)
        model.load_state_dict(state)
        model.train()
        torch.manual_seed(1)
        out = model(x, data.edge_index)
        out[mask].logsumexp(1).sum().backward()
        ref[name] = (out.detach(), [p.grad.clone() for p in model.parameters()])
        model.zero_grad()
    same = all(torch.allclose(ref["coo"][0], ref[v][0], rtol=1e-4, atol=1e-5) and all(
        torch.allclose(a, b, rtol=1e-3, atol=1e-6) for a, b in zip(ref["coo"][1], ref[v][1])) for v in VARIANTS)

    times: dict[str, dict[str, list[float]]] = {v: {"forward": [], "train_step": []} for v in VARIANTS}
    for name in VARIANTS:  # warm-up (and the cached operators)
        _use(name)
        forward()
        train_step()
    for r in range(rounds):
        for name in (list(VARIANTS) if r % 2 == 0 else list(VARIANTS)[::-1]):
            _use(name)
            model.load_state_dict(state)
            times[name]["forward"].append(_timed(forward))
            times[name]["train_step"].append(_timed(train_step))
    _use("bag")
    med = {v: {k: statistics.median(t) for k, t in d.items()} for v, d in times.items()}
    return {"dataset": dataset, "num_nodes": int(data.num_nodes), "num_edges": int(data.edge_index.shape[1]),
            "features": list(x.shape), "feature_layout": str(x.layout), "hidden": hidden,
            "solver_iterations": iterations, "rounds": rounds, "same_outputs_and_gradients": bool(same),
            "median_seconds": med,
            "speedup_csr_over_coo": {k: med["coo"][k] / med["csr"][k] for k in ("forward", "train_step")},
            "speedup_bag_over_csr": {k: med["csr"][k] / med["bag"][k] for k in ("forward", "train_step")},
            "seconds": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["amgcn:citeseer", "amgcn:acm", "amgcn:blogcatalog", "amgcn:flickr"])
    ap.add_argument("--iterations", type=int, default=20, help="solver iterations per solve (forward and adjoint)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--out", default="leaderboards/runs/nodecls/operators/bench_bag.json")
    args = ap.parse_args(argv)
    rows = []
    for ds in args.datasets:
        r = measure(ds, args.iterations, args.rounds, args.hidden)
        rows.append(r)
        m = r["median_seconds"]
        print(f"{ds}: forward coo / csr / bag {m['coo']['forward']:.3f} / {m['csr']['forward']:.3f} / "
              f"{m['bag']['forward']:.3f} s, train step {m['coo']['train_step']:.3f} / {m['csr']['train_step']:.3f} / "
              f"{m['bag']['train_step']:.3f} s, same results: {r['same_outputs_and_gradients']}", flush=True)
    out = write_measurement(args.out, {"results": rows})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
