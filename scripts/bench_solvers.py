"""Benchmark dear.solvers against torchdeq's solvers on a batched GNN step map, and the memory
of an equilibrium training step.

The map is a gated max-aggregation MPNN step (DEAR's processor shape, without LayerNorm) with
random weights scaled so the map is contractive, on a PyG-style batch of Erdos-Renyi graphs:

    m_i  = max_{j -> i} relu(W_s h_j + W_t h_i + w_e e_ji + b)        (self loops included)
    g_i  = sigmoid(G_h h_i + G_m m_i + c_i)
    f(h)_i = g_i * tanh(U h_i + V m_i + u_i) + (1 - g_i) * h_i

Speed: every solver must bring **every graph** under the same relative tolerance
``||f(z)-z||_g / ||f(z)||_g < tol``. torchdeq treats dim 0 as the batch, so it is run in three
layouts and each row says which:

* ``nodes``: z as ``[num_nodes, hidden]`` (what a PyG model hands it): mixing and stopping per
  node; every node under tol implies every graph under tol;
* ``dense``: z padded to ``[num_graphs, max_nodes, hidden]`` (``to_dense_batch`` before and after
  every call of f): per-graph mixing and stopping, like ours, at the price of padding;
* ``flat``: the whole batch as one sample: one global residual; its tolerance is tightened by
  halving (search not timed) until the worst graph meets tol -- an oracle setting in
  torchdeq's favour.

For each: function evaluations (counted by wrapping f), wall-clock and process CPU time (median
of repeats after warm-up; each repeat is a round over all solvers, so load changes on a shared
machine hit all of them alike; CUDA synchronised), and the worst per-graph relative residual of
the returned state (measured afterwards with one more evaluation, the same way for every
solver). On a CPU shared with other jobs, ``--threads 1`` avoids intra-op thread contention,
which otherwise inflates every small operation unpredictably.

Memory: peak memory of a training step (forward + backward) of dear.implicit.Equilibrium with
``ift`` and ``phantom`` backward at 10 and 100 solver iterations (tol=0, so exactly that many;
the ift adjoint runs as many), and ``unroll`` over 10 and 100 steps as the contrast. On CUDA: torch.cuda.max_memory_allocated; on CPU: the peak of
live tensor storage created during the step, tracked by a TorchDispatchMode (LiveTensorBytes).

    python scripts/bench_solvers.py                      # CPU-sized default (64 graphs)
    python scripts/bench_solvers.py --graphs 256 --label full   # the issue's configuration
    python scripts/bench_solvers.py --device cuda

Results are printed and merged into ``--out`` (JSON keyed by ``--label``), written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch_geometric.utils import scatter  # noqa: E402

from dear.implicit import Equilibrium  # noqa: E402
from dear.solvers import graph_residual, solve  # noqa: E402


# --------------------------------------------------------------------------- the step map
def random_graph_batch(num_graphs: int, min_size: int, max_size: int, p_min: float, p_max: float,
                       seed: int, device: torch.device) -> dict[str, Any]:
    """Undirected Erdos-Renyi graphs with self loops, concatenated PyG-style."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(min_size, max_size + 1, (num_graphs,), generator=gen)
    edges, offset = [], 0
    for n in sizes.tolist():
        p = p_min + (p_max - p_min) * float(torch.rand((), generator=gen))
        upper = torch.triu(torch.rand(n, n, generator=gen) < p, diagonal=1)
        adj = upper | upper.T | torch.eye(n, dtype=torch.bool)
        edges.append(adj.nonzero().T + offset)
        offset += n
    edge_index = torch.cat(edges, dim=1)
    batch = torch.repeat_interleave(torch.arange(num_graphs), sizes)
    return {
        "sizes": sizes, "batch": batch.to(device), "edge_index": edge_index.to(device),
        "edge_attr": torch.rand(edge_index.shape[1], 1, generator=gen).to(device),
        "num_nodes": int(sizes.sum()), "num_graphs": num_graphs,
    }


class GatedMaxMPNN(nn.Module):
    """The contractive gated max-aggregation step described in the module docstring.

    ``contraction`` bounds the Lipschitz constant of the candidate branch
    (``||U|| + ||V|| (||W_s|| + ||W_t||)``); the gate keeps part of the old state, so the map
    contracts at roughly ``1 - g (1 - contraction)`` per step: slow for Picard on purpose.
    """

    def __init__(self, hidden: int, graphs: dict[str, Any], contraction: float, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)

        def mat(norm: float) -> nn.Parameter:
            w = torch.randn(hidden, hidden, generator=gen)
            return nn.Parameter(w * (norm / torch.linalg.matrix_norm(w, 2)))

        self.W_s, self.W_t = mat(contraction / 4), mat(contraction / 4)
        self.U, self.V = mat(contraction / 2), mat(1.0)
        self.G_h, self.G_m = mat(0.1), mat(0.1)
        self.w_e = nn.Parameter(torch.randn(1, hidden, generator=gen))
        self.b = nn.Parameter(0.1 * torch.randn(hidden, generator=gen))
        n = graphs["num_nodes"]
        # input injections (what the encoders would produce), fixed per node
        self.register_buffer("u", torch.randn(n, hidden, generator=gen))
        self.register_buffer("c", torch.randn(n, hidden, generator=gen) - 1.0)
        self.src, self.dst = graphs["edge_index"][0], graphs["edge_index"][1]
        self.edge_attr = graphs["edge_attr"]

    def forward(self, h: Tensor) -> Tensor:
        msg = torch.relu((h @ self.W_s.T)[self.src] + (h @ self.W_t.T)[self.dst]
                         + self.edge_attr @ self.w_e + self.b)
        m = scatter(msg, self.dst, dim=0, dim_size=h.shape[0], reduce="max")
        gate = torch.sigmoid(h @ self.G_h.T + m @ self.G_m.T + self.c)
        cand = torch.tanh(h @ self.U.T + m @ self.V.T + self.u)
        return gate * cand + (1.0 - gate) * h


class Counted:
    """Wraps f to count evaluations the same way for every solver."""

    def __init__(self, f: Callable[[Tensor], Tensor]) -> None:
        self.f, self.calls = f, 0

    def __call__(self, z: Tensor) -> Tensor:
        self.calls += 1
        return self.f(z)


# --------------------------------------------------------------------------- solver runners
def worst_graph_residual(step: nn.Module, z: Tensor, graphs: dict[str, Any]) -> float:
    with torch.no_grad():
        fz = step(z)
        rel = graph_residual(fz - z, fz, graphs["batch"], graphs["num_graphs"], "rel")
    return float(rel.max())


def make_runners(step: nn.Module, graphs: dict[str, Any], args: argparse.Namespace) -> dict[str, Callable]:
    """name -> run(f_counted, z0) returning the solution [N, hidden]."""
    batch, num_graphs = graphs["batch"], graphs["num_graphs"]
    tol, max_iter = args.tol, args.max_iter
    runners: dict[str, Callable] = {}

    def ours(method: str, **opts: Any) -> Callable:
        def run(f: Callable, z0: Tensor, _tol: float = tol) -> Tensor:
            return solve(f, z0, batch, method=method, tol=_tol, max_iter=max_iter, stop_mode="rel",
                         num_graphs=num_graphs, **opts).z
        return run

    runners["dear anderson"] = ours("anderson", m=6, lam=1e-4)
    runners["dear picard"] = ours("picard")
    runners["dear broyden"] = ours("broyden")

    try:
        from torchdeq.solver import get_solver as td_get
    except ImportError:
        print("torchdeq not installed (pip install torchdeq): comparing dear's solvers only")
        return runners

    from torch_geometric.utils import to_dense_batch

    def td(name: str, layout: str, lam: float = 1e-4) -> Callable:
        solver = td_get(name)
        opts = {"m": 6, "lam": lam} if name == "anderson" else {}
        dense0, mask = to_dense_batch(torch.zeros_like(step.u), batch, batch_size=num_graphs)
        rows = mask.view(-1).nonzero().squeeze(1)  # padded position of every node, computed once

        def f_dense(f: Callable, zd: Tensor) -> Tensor:
            flat = zd.reshape(-1, zd.shape[-1])
            out = torch.zeros_like(flat).index_copy_(0, rows, f(flat.index_select(0, rows)))
            return out.view_as(zd)

        def run(f: Callable, z0: Tensor, _tol: float = tol) -> Tensor:
            with torch.no_grad():
                if layout == "nodes":
                    z, _, _ = solver(f, z0, max_iter=max_iter, tol=_tol, stop_mode="rel", **opts)
                    return z
                if layout == "flat":
                    shape = z0.shape
                    z, _, _ = solver(lambda y: f(y.view(shape)).view(1, -1), z0.reshape(1, -1),
                                     max_iter=max_iter, tol=_tol, stop_mode="rel", **opts)
                    return z.view(shape)
                zd0 = torch.zeros_like(dense0).view(-1, z0.shape[-1]).index_copy_(0, rows, z0).view_as(dense0)
                z, _, _ = solver(lambda zd: f_dense(f, zd), zd0, max_iter=max_iter, tol=_tol,
                                 stop_mode="rel", **opts)
                return z.reshape(-1, z0.shape[-1]).index_select(0, rows)
        return run

    for layout in ("nodes", "dense", "flat"):
        runners[f"torchdeq anderson [{layout}]"] = td("anderson", layout)
    # torchdeq's absolute lambda=1e-4 swamps small residuals; a tuned lambda isolates the
    # per-iteration cost from that algorithmic difference.
    for layout in ("nodes", "dense"):
        runners[f"torchdeq anderson [{layout}, lam={args.tuned_lam:g}]"] = td("anderson", layout, args.tuned_lam)
    for layout in ("nodes", "dense", "flat"):
        runners[f"torchdeq fixed_point_iter [{layout}]"] = td("fixed_point_iter", layout)
    return runners


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_f(step: nn.Module, z: Tensor, device: torch.device, repeats: int = 20) -> float:
    """Median seconds of one evaluation of the map: the floor under every solver's cost."""
    times = []
    for _ in range(repeats + 2):
        sync(device)
        t0 = time.perf_counter()
        step(z)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:])


def bench_solvers(step: nn.Module, graphs: dict[str, Any], args: argparse.Namespace,
                  device: torch.device) -> tuple[list[dict[str, Any]], float]:
    """Warm-up, then ``repeats`` rounds; each round runs every solver once (interleaved, so
    load changes on a shared machine hit all solvers alike). Wall-clock and process CPU time."""
    z0 = torch.zeros(graphs["num_nodes"], args.hidden, device=device)
    runners = {name: run for name, run in make_runners(step, graphs, args).items()
               if not args.solvers or any(key and key in name for key in args.solvers.split(";"))}
    tols = {}
    for name, run in runners.items():
        tols[name] = args.tol
        if "[flat" in name:  # oracle: tighten the global tol until every graph meets tol
            for _ in range(30):
                z = run(step, z0, tols[name])
                if worst_graph_residual(step, z, graphs) < args.tol:
                    break
                tols[name] /= 2
        for _ in range(args.warmup):
            run(step, z0, tols[name])
    f_seconds = time_f(step, z0, device)
    times = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    nfe, worst = {}, {}
    for _ in range(args.repeats):
        for name, run in runners.items():
            f = Counted(step)
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            z = run(f, z0, tols[name])
            sync(device)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            nfe[name] = f.calls
            worst[name] = worst_graph_residual(step, z, graphs)
    rows = []
    for name in runners:
        wall = statistics.median(times[name])
        row = {
            "solver": name, "nfe": nfe[name], "seconds_median": wall,
            "cpu_seconds_median": statistics.median(cpu[name]),
            "ms_per_evaluation": 1000 * wall / nfe[name],
            "seconds_all": [round(t, 4) for t in times[name]],
            "worst_graph_rel_residual": worst[name],
            "every_graph_under_tol": worst[name] < args.tol,
            "hit_max_iter": nfe[name] >= args.max_iter,
        }
        if tols[name] != args.tol:
            row["global_tol_needed"] = tols[name]
        rows.append(row)
    base = next((r for r in rows if r["solver"] == "dear anderson"), None)
    print(f"  one evaluation of f: {1000 * f_seconds:.1f} ms (median)")
    for r in rows:
        if base is not None:
            r["seconds_over_dear_anderson"] = r["seconds_median"] / base["seconds_median"]
            r["cpu_seconds_over_dear_anderson"] = r["cpu_seconds_median"] / base["cpu_seconds_median"]
        print(f"  {r['solver']:<38} nfe {r['nfe']:4d}  {1000 * r['seconds_median']:9.1f} ms "
              f"({r['ms_per_evaluation']:6.1f} ms/eval)  x{r.get('seconds_over_dear_anderson', 1.0):5.2f}  "
              f"worst graph {r['worst_graph_rel_residual']:.2e}"
              + ("" if r["every_graph_under_tol"] else "  (NOT under tol)")
              + ("  [hit max_iter]" if r["hit_max_iter"] else "")
              + (f"  [global tol {r['global_tol_needed']:.1e}]" if "global_tol_needed" in r else ""),
              flush=True)
    return rows, f_seconds


# --------------------------------------------------------------------------- memory
class LiveTensorBytes(TorchDispatchMode):
    """Peak bytes of live CPU tensor storage created inside the ``with`` block.

    Every operator output passes through ``__torch_dispatch__`` (backward included: the
    autograd engine runs CPU work under the caller's dispatch modes); each new storage is
    counted once and uncounted when it is freed (a weakref callback). Storages that existed
    before the block (weights, inputs) are not counted. Checked against torch.profiler's memory
    timeline on small cases (identical peaks); used because that timeline takes many minutes to
    build for a long profile.
    """

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self._live:
                    nbytes = storage.nbytes()
                    self.current += nbytes
                    self.peak = max(self.peak, self.current)
                    self._live[key] = weakref.ref(storage, lambda _, k=key, n=nbytes: self._free(k, n))
        return out

    def _free(self, key: int, nbytes: int) -> None:
        if self._live.pop(key, None) is not None:
            self.current -= nbytes


def peak_memory_bytes(fn: Callable[[], None], device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before,
                "torch.cuda.max_memory_allocated minus memory allocated before the step")
    with LiveTensorBytes() as tracker:
        fn()
    return tracker.peak, (
        "CPU: peak bytes of live tensor storage allocated during the step (forward + backward), "
        "tracked by a TorchDispatchMode with weakref frees (LiveTensorBytes in this script; "
        "identical to torch.profiler's memory timeline on small checks); weights and inputs "
        "allocated before the step are not counted")


def bench_memory(step: nn.Module, graphs: dict[str, Any], args: argparse.Namespace,
                 device: torch.device) -> dict[str, Any]:
    z0 = torch.zeros(graphs["num_nodes"], args.hidden, device=device)
    target = torch.randn(graphs["num_nodes"], args.hidden, generator=torch.Generator().manual_seed(1)).to(device)
    rows, method = [], ""
    # unroll (backprop through the iterations) is the contrast that shows the tracker sees growth
    for backward in ("ift", "phantom", "unroll"):
        peaks = {}
        for iters in (10, 100):
            layer = Equilibrium(step, method="anderson", tol=0.0, max_iter=iters, backward=backward,
                                phantom_steps=args.phantom_steps, unroll_steps=iters)

            def train_step() -> None:
                step.zero_grad(set_to_none=True)
                z = layer(z0, batch=graphs["batch"], num_graphs=graphs["num_graphs"])
                ((z - target) ** 2).mean().backward()

            train_step()  # warm-up (allocates .grad, first-call caches)
            peaks[iters], method = peak_memory_bytes(train_step, device)
            nfe_b = layer.last_stats.backward.nfe if layer.last_stats.backward is not None else 0
            print(f"  {backward:<8} {iters:4d} solver iterations: peak {peaks[iters] / 2**20:8.1f} MiB "
                  f"(forward nfe {layer.last_stats.forward.nfe}, adjoint nfe {nfe_b})", flush=True)
        rows.append({"backward": backward, "peak_mib_10": peaks[10] / 2**20,
                     "peak_mib_100": peaks[100] / 2**20, "growth": peaks[100] / peaks[10]})
        print(f"  {backward:<8} growth 10 -> 100 iterations: {rows[-1]['growth']:.3f}x", flush=True)
    return {"method": method, "phantom_steps": args.phantom_steps, "rows": rows}


# --------------------------------------------------------------------------- main
def git_state() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        def git(*cmd: str) -> str:
            return subprocess.run(["git", *cmd], capture_output=True, text=True, check=True,
                                  cwd=root).stdout.strip()
        return {"git_commit": git("rev-parse", "HEAD"), "git_dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--graphs", type=int, default=64, help="graphs in the batch (issue: 256)")
    ap.add_argument("--min-size", type=int, default=16)
    ap.add_argument("--max-size", type=int, default=64)
    ap.add_argument("--p-min", type=float, default=0.1, help="ER edge probability drawn per graph")
    ap.add_argument("--p-max", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--contraction", type=float, default=0.9)
    ap.add_argument("--tol", type=float, default=1e-4, help="relative tolerance every graph must meet")
    ap.add_argument("--max-iter", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--phantom-steps", type=int, default=1)
    ap.add_argument("--tuned-lam", type=float, default=1e-8,
                    help="lambda of the extra, tuned torchdeq Anderson rows")
    ap.add_argument("--solvers", default="",
                    help="semicolon-separated substrings (names contain commas): run only the solvers "
                         "whose name contains one, e.g. 'dear anderson;torchdeq anderson [dense]'")
    ap.add_argument("--skip-solvers", action="store_true", help="only the memory benchmark")
    ap.add_argument("--skip-memory", action="store_true", help="only the solver benchmark")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default=None, help="key of this run in the JSON (default: graphs<N>_<device>)")
    ap.add_argument("--out", default="leaderboards/runs/engine/bench_solvers.json")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda was asked for but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    label = args.label or f"graphs{args.graphs}_{device.type}"

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    graphs = random_graph_batch(args.graphs, args.min_size, args.max_size, args.p_min, args.p_max,
                                args.seed, device)
    step = GatedMaxMPNN(args.hidden, graphs, args.contraction, args.seed).to(device)
    print(f"[{label}] {args.graphs} graphs, {graphs['num_nodes']} nodes, "
          f"{graphs['edge_index'].shape[1]} edges (self loops included), hidden {args.hidden}, "
          f"rel tol {args.tol:g}, device {device}, {torch.get_num_threads()} threads", flush=True)

    out = Path(args.out)
    graph_stats = {"num_graphs": args.graphs, "num_nodes": graphs["num_nodes"],
                   "num_edges": int(graphs["edge_index"].shape[1]),
                   "max_nodes_per_graph": int(graphs["sizes"].max())}
    if not args.skip_solvers:
        print("solvers (every graph to the same relative tolerance):")
        with torch.no_grad():
            solver_rows, f_seconds = bench_solvers(step, graphs, args, device)
        speed: dict[str, Any] = {
            "timing": "wall-clock (perf_counter) and process CPU time per solve, median of --repeats "
                      "rounds after --warmup; rounds interleave the solvers; CUDA synchronised",
            "f_ms_median": 1000 * f_seconds,
            "solvers": solver_rows,
        }
        td_anderson = [r for r in solver_rows if r["solver"].startswith("torchdeq anderson")]
        if td_anderson and "seconds_over_dear_anderson" in td_anderson[0]:
            speed["speedup_dear_anderson_vs_torchdeq_anderson"] = {
                r["solver"]: r["seconds_over_dear_anderson"] for r in td_anderson}
        save(out, label, "speed", speed, args, graph_stats, device)
    if not args.skip_memory:
        print("memory of a training step (forward + backward):")
        save(out, label, "memory", bench_memory(step, graphs, args, device), args, graph_stats, device)
    return 0


def environment(device: torch.device) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        td_version = version("torchdeq")
    except Exception:  # not installed
        td_version = None
    return {
        "torch": torch.__version__, "torchdeq": td_version, "python": platform.python_version(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine()),
        "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), **git_state(),
        "load_average_1_5_15_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def save(out: Path, label: str, section: str, data: dict[str, Any], args: argparse.Namespace,
         graph_stats: dict[str, Any], device: torch.device) -> None:
    """Merge one section of one run into the JSON file, atomically (temp file + rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = json.loads(out.read_text()) if out.exists() else {}
    doc["benchmark"] = ("dear.solvers vs torchdeq on a contractive gated max-aggregation MPNN step; "
                        "time to bring every graph under the relative tolerance; peak memory of an "
                        "Equilibrium training step")
    run = doc.setdefault("runs", {}).setdefault(label, {})
    run["graph_stats"] = graph_stats
    run[section] = {"config": {k: v for k, v in vars(args).items() if k not in ("out", "label")},
                    **data, "environment": environment(device)}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, out)
    print(f"wrote {out} [{label}/{section}]", flush=True)


if __name__ == "__main__":
    sys.exit(main())
