"""Speed/accuracy (Pareto) curves of fixed-point solvers on trained implicit models.

``dear pareto nodecls RUN_DIR`` takes a ``dear nodecls train`` run of IGNN (its
``results.json`` and per-seed weights) and, for every seed, solves the *same trained model*
with each solver while sweeping the tolerance (or the iteration budget), recording test
accuracy, inference seconds (warm-up, then the median of timed passes, every solver's points
timed in the same interleaved rounds so a shared machine's drift does not favour one solver)
and function evaluations. Classic solvers replace the forward solver; a learned
variant the run does not contain (e.g. ``learned_nn`` on a ``learned`` run) is trained on the
frozen model first (no labels; its training seconds are reported). Writes ``pareto.json`` and,
with matplotlib (the ``bench`` extra), ``pareto.png`` (accuracy against seconds, one curve per
solver).

``dear pareto dear RUN_DIR [RUN_DIR ...]`` sweeps the tolerance of trained DEAR runs (CLRS
score against seconds per sample, with solver iterations), one curve per run.

Equal-accuracy speed-ups: the reference accuracy is Picard's at the tightest tolerance swept;
for each solver, its fastest point whose accuracy is within ``margin`` (0.5) points of that
reference, and the ratio of Picard's fastest such point to it (``speedup_vs_picard``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import statistics
from pathlib import Path
from typing import Any, Sequence

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported by the functions, so `dear --help` stays cheap
    import torch
    from torch import nn

__all__ = ["DEFAULT_TOLS", "dear_pareto", "equal_accuracy_speedups", "nodecls_pareto", "plot_curves",
           "set_forward_solver"]

DEFAULT_TOLS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6)
SCHEMA = "dear.pareto/1"


def set_forward_solver(layer: nn.Module, method: Any, options: dict[str, Any] | None = None) -> None:
    """Make an :class:`~dear.nodecls.ignn.IGNNLayer` solve its forward with ``method`` (a name
    or a learned solver module), replacing whatever it had (a registered solver submodule too)."""
    eq = layer.eq
    if "method" in eq._modules:
        del eq._modules["method"]
    eq.method = method
    eq.solver_options = dict(options or {})


def _load_nodecls(run_dir: Path, device: "torch.device", dataset_options: dict[str, Any] | None = None):
    """The run's config, results, data, model features and a per-seed model builder.

    ``dataset_options`` overrides the run's own (e.g. ``{"num_nodes": 1_000_000}`` runs a model
    trained on a small SBM graph on a larger one from the same generator)."""
    import torch  # noqa: PLC0415

    from dear.nodecls import load_dataset  # noqa: PLC0415
    from dear.nodecls.baselines import build_nodecls_model  # noqa: PLC0415
    from dear.nodecls.train import NodeClsConfig, check_split_sizes, model_features, seed_files  # noqa: PLC0415

    res_path = run_dir / "results.json"
    if not res_path.exists():
        raise FileNotFoundError(f"{run_dir} has no results.json; train it with `dear nodecls train --out {run_dir}`")
    try:
        res = json.loads(res_path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{res_path} is not readable JSON ({e})") from None
    # Not a nodecls results file (e.g. a CLRS run directory): one line, not a TypeError.
    cfg = NodeClsConfig.from_results(res, res_path)
    if dataset_options:
        cfg = dataclasses.replace(cfg, dataset_options={**cfg.dataset_options, **dataset_options}).validate()
    if cfg.model != "ignn":
        raise ValueError(f"{run_dir} holds a {cfg.model} run; Pareto curves need an implicit model (ignn)")
    data = load_dataset(cfg.dataset, root=cfg.data_root, split=cfg.split, cache_dir=cfg.cache_dir,
                        seed=cfg.data_seed, **cfg.dataset_options)
    check_split_sizes(data, cfg.dataset)
    x = model_features(data, cfg).to(device)
    data = data.to(device)
    multilabel = bool(getattr(data, "multilabel", False))
    num_classes = int(data.y.shape[1]) if multilabel else int(data.num_classes)

    def build(seed: int) -> "nn.Module":
        path = seed_files(run_dir, seed)[1]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing (runs committed under leaderboards/runs/ keep results, not "
                                    f"weights); `dear nodecls train --out {run_dir}` trains the seeds without "
                                    "weights again with the settings its results.json records")
        model = build_nodecls_model(cfg.model, x.shape[1], num_classes, **cfg.model_kwargs()).to(device)
        try:
            model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path} is not a checkpoint of this run's model ({first})") from None
        model.eval()
        return model

    return cfg, res, data, x, build


def _accuracy(logits: "torch.Tensor", y: "torch.Tensor", mask: "torch.Tensor", multilabel: bool) -> float:
    from dear.nodecls.train import _metric  # noqa: PLC0415

    return _metric(logits[mask], y[mask], multilabel)


def seed_mean_point(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One curve point from the same point of several seeds: mean (and sample std) test
    accuracy, median seconds, mean evaluations, converged only if every seed converged, mean
    fallback rate over the seeds that report one."""
    fb = [r["fallback_rate"] for r in rows if r["fallback_rate"] is not None]
    return {"test_accuracy": statistics.fmean(r["test_accuracy"] for r in rows),
            "test_accuracy_std": statistics.stdev([r["test_accuracy"] for r in rows]) if len(rows) > 1 else 0.0,
            "seconds": statistics.median(r["seconds"] for r in rows),
            "nfe": statistics.fmean(r["nfe"] for r in rows),
            "converged": all(r["converged"] for r in rows),
            "fallback_rate": statistics.fmean(fb) if fb else None}


def nodecls_pareto(run_dir: Path, *, solvers: Sequence[str] = ("picard", "anderson", "learned_nn", "learned"),
                   tols: Sequence[float] = DEFAULT_TOLS, sweep: str = "tol", budgets: Sequence[int] = (),
                   seeds: Sequence[int] | None = None, repeats: int = 5, warmup: int = 2, max_iter: int = 300,
                   solver_training: dict[str, Any] | None = None, device: str = "auto",
                   out: Path | None = None, plot: bool = True, margin: float = 0.5,
                   dataset_options: dict[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """Pareto curves of ``solvers`` on every seed of an IGNN run (see the module docstring).

    ``sweep="tol"`` sweeps ``tols`` (cap ``max_iter``); ``sweep="budget"`` sweeps the iteration
    cap ``budgets`` at tolerance 0 (fixed step counts). Returns the JSON written to
    ``out/pareto.json`` (``out`` defaults to ``run_dir``). ``dataset_options`` evaluates the
    run's models (and their learned solvers, which are GNNs too) on another graph of the same
    generator, e.g. a larger SBM; the JSON records them.

    Each finished seed is kept in ``out/pareto.partial.json`` (:class:`dear.resume.PartialResults`,
    keyed by the seed and its weights' sha256), so an interrupted call, run again with the same
    settings, measures only the seeds it had not finished (``resumed_seeds`` in the JSON; a
    seed's points are always timed together). ``progress`` shows a bar over seeds.
    """
    import torch  # noqa: PLC0415

    from clrs_tasks.progress import progress_bar  # noqa: PLC0415
    from dear.io import atomic_write_text, code_provenance, hardware, resolve_device, sha256_file, versions  # noqa: PLC0415
    from dear.learned.problems import ignn_problems  # noqa: PLC0415
    from dear.learned.training import SolverTrainConfig, SolverTrainer  # noqa: PLC0415
    from dear.nodecls.train import seed_files, time_inference  # noqa: PLC0415
    from dear.resume import PartialResults  # noqa: PLC0415
    from dear.solvers import available  # noqa: PLC0415
    from dear.solvers.learned import LEARNED_SOLVERS, build_learned_solver, learned_solvers  # noqa: PLC0415

    if sweep not in ("tol", "budget"):
        raise ValueError(f"sweep must be tol or budget, got {sweep!r}")
    if sweep == "budget" and not budgets:
        raise ValueError("sweep=budget needs budgets (iteration caps)")
    # Empty lists would write a pareto.json without a single point (or fail in statistics).
    if not solvers:
        raise ValueError("no solvers given (--solvers): name at least one, e.g. picard,anderson")
    if sweep == "tol" and not tols:
        raise ValueError("no tolerances given (--tols): name at least one, e.g. 1e-2,1e-4")
    if seeds is not None and not list(seeds):
        raise ValueError("no seeds given (--seeds): name at least one, or leave --seeds out for all of the run's")
    for t in tols if sweep == "tol" else ():
        if not 0 < t < float("inf"):
            raise ValueError(f"tolerances must be finite numbers > 0, got {t!r}")
    for b in budgets if sweep == "budget" else ():
        if b < 1:
            raise ValueError(f"iteration budgets must be >= 1, got {b!r}")
    if repeats < 1 or warmup < 0:
        raise ValueError(f"timing needs repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for s in solvers:
        if s not in available():
            raise ValueError(f"unknown solver {s!r}; available solvers: {', '.join(available())}")
    run_dir = Path(run_dir)
    dev = resolve_device(device)
    cfg, res, data, x, build = _load_nodecls(run_dir, dev, dataset_options)
    seeds = list(seeds) if seeds is not None else list(res.get("seeds") or [])
    if not seeds:
        raise ValueError(f"{run_dir} has no finished seeds; finish it with `dear nodecls train --out {run_dir}`")
    missing = [s for s in seeds if s not in (res.get("seeds") or [])]
    if missing:
        raise ValueError(f"{run_dir} has no seed(s) {', '.join(map(str, missing))}; its seeds: "
                         f"{', '.join(map(str, res.get('seeds') or []))}")
    multilabel = bool(getattr(data, "multilabel", False))
    native = cfg.resolved_model_options().get("solver")
    points = sweep_values = list(tols) if sweep == "tol" else list(budgets)
    per_seed: dict[str, list[list[dict[str, Any]]]] = {s: [] for s in solvers}
    solver_train: dict[str, list[dict[str, Any]]] = {}

    def set_point(layers: list, v: float | int) -> None:
        for layer in layers:
            if sweep == "tol":
                layer.eq.tol, layer.eq.max_iter = float(v), max_iter
            else:
                layer.eq.tol, layer.eq.max_iter = 0.0, int(v)

    out = Path(out) if out is not None else run_dir
    partial = PartialResults(out / "pareto.partial.json", {
        "kind": "nodecls", "run_dir": str(run_dir.resolve()), "solvers": list(solvers), "sweep": sweep,
        "points": points, "max_iter": max_iter, "repeats": repeats, "warmup": warmup,
        "solver_training": solver_training, "dataset_options": dataset_options, "device": str(dev)}, announce=progress)
    bar = progress_bar(seeds, desc=f"pareto {cfg.dataset}", unit="seed", disable=not progress)
    resumed: list[int] = []
    for seed in bar:
        weights = seed_files(run_dir, seed)[1]
        key = f"seed {seed}, weights {sha256_file(weights)[:16]}" if weights.is_file() else ""  # else build says
        done = partial.get(key) if key else None
        if done is not None:
            resumed.append(seed)
            for name in solvers:
                per_seed[name].append(done["curves"][name])
            for name, row in done["solver_train"].items():
                solver_train.setdefault(name, []).append(row)
            continue
        base = build(seed)
        trained_here: dict[str, dict[str, Any]] = {}  # post-hoc solver fits of this seed
        points_of_seed: list[tuple[nn.Module, list, float | int, dict[str, Any]]] = []
        for name in solvers:
            model = copy.deepcopy(base)
            layers = list(model.layers)
            if name in LEARNED_SOLVERS:
                if name == native and all(bool(s.trained) for s in learned_solvers(model)):
                    pass  # the run's own (alternately trained) solver
                else:
                    opts = dict(cfg.resolved_model_options().get("solver_options") or {}) if native in LEARNED_SOLVERS else {}
                    opts.setdefault("init_activation", "relu")
                    # Its initial weights depend on the seed alone, not on what ran before (other
                    # seeds, or none when a sweep resumes), and the caller's RNG is left as it was.
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(seed)
                        for layer in layers:
                            hidden = layer.eq.f.weight.shape[0]
                            set_forward_solver(layer, build_learned_solver(name, hidden, hidden, **opts).to(dev))
                    tcfg = SolverTrainConfig.from_dict(solver_training or cfg.solver_training or {})
                    trainer = SolverTrainer(model, learned_solvers(model), tcfg, planned_steps=tcfg.first_steps)
                    probs = ignn_problems(model, x, data.edge_index, tcfg)
                    trainer.fit(lambda: probs, tcfg.first_steps)
                    trained_here[name] = {"seed": seed, "steps": trainer.step, "seconds": trainer.seconds}
                    solver_train.setdefault(name, []).append(trained_here[name])
            else:
                for layer in layers:
                    set_forward_solver(layer, name)
            curve = []
            for v in sweep_values:
                set_point(layers, v)
                for s in learned_solvers(model):
                    s.reset_counters()
                with torch.no_grad():
                    model.eval()
                    logits = model(x, data.edge_index)
                stats = model.solver_stats()
                ls = learned_solvers(model)
                solves = sum(s.solves for s in ls)
                curve.append({
                    sweep: v,
                    "test_accuracy": _accuracy(logits, data.y, data.test_mask, multilabel),
                    "val_accuracy": _accuracy(logits, data.y, data.val_mask, multilabel),
                    "seconds": None,  # timed below, interleaved with every other point
                    "nfe": sum(int(s["forward_nfe"]) for s in stats),
                    "residual": max(s["forward_residual_max"] for s in stats),
                    "converged": all(s["forward_converged_frac"] == 1.0 for s in stats),
                    "fallback_rate": (sum(s.fallback_solves for s in ls) / solves) if solves else None,
                })
                points_of_seed.append((model, layers, v, curve[-1]))
            per_seed[name].append(curve)
        # Timing: every (solver, point) of this seed once per round, the order reversed every
        # other round, so drift of a shared machine's speed falls on all points alike instead of
        # on whichever solver was timed last; the median over rounds is the point's seconds.
        for model, layers, v, _ in points_of_seed:
            set_point(layers, v)
            time_inference(model, x, data.edge_index, warmup=warmup, repeats=0)
        times: list[list[float]] = [[] for _ in points_of_seed]
        for r in range(repeats):
            order = range(len(points_of_seed)) if r % 2 == 0 else reversed(range(len(points_of_seed)))
            for i in order:
                model, layers, v, _ = points_of_seed[i]
                set_point(layers, v)
                times[i] += time_inference(model, x, data.edge_index, warmup=0, repeats=1)
        for (_, _, _, row), t in zip(points_of_seed, times):
            row["seconds"] = statistics.median(t)
        del points_of_seed
        partial.put(key, {"curves": {name: per_seed[name][-1] for name in solvers}, "solver_train": trained_here})
    curves = {}
    key = sweep
    for name, runs in per_seed.items():
        pts = []
        for i, v in enumerate(points):
            pts.append({key: v, **seed_mean_point([r[i] for r in runs])})
        curves[name] = pts
    result = {
        "schema": SCHEMA, "kind": "nodecls", "run_dir": str(run_dir), "dataset": cfg.dataset, "split": res.get("split"),
        "dataset_options": cfg.dataset_options, "evaluated_off_training_graph": bool(dataset_options),
        "trained_with": native, "seeds": seeds, "sweep": sweep, "points": points, "max_iter": max_iter,
        "curves": curves, "per_seed": per_seed, "solver_training_post_hoc": solver_train,
        "equal_accuracy": equal_accuracy_speedups(curves, margin=margin),
        "resumed_seeds": resumed,
        "timing": {"repeats": repeats, "warmup": warmup,
                   "method": "median of timed full-graph forwards after warm-up; every (solver, point) of a seed "
                             "timed once per round, rounds alternating in order (interleaved since 2026-11-30)"},
        "versions": versions(), **code_provenance(), "hardware": hardware(dev),
    }
    atomic_write_text(out / "pareto.json", json.dumps(result, indent=1) + "\n")
    partial.done()
    if plot:
        result["plot"] = plot_curves(curves, out / "pareto.png", title=f"{cfg.dataset}: IGNN trained with {native}",
                                     x_key="seconds", y_key="test_accuracy", ylabel="test accuracy (%)")
    return result


def equal_accuracy_speedups(curves: dict[str, list[dict[str, Any]]], margin: float = 0.5,
                            reference: str = "picard", y_key: str = "test_accuracy",
                            t_key: str = "seconds") -> dict[str, Any]:
    """Per solver, the fastest point within ``margin`` of the reference solver's accuracy at its
    last (tightest) point, and the speed-up over the reference's fastest such point."""
    if reference not in curves or not curves[reference]:
        return {}
    target = curves[reference][-1][y_key] - margin
    best = {}
    for name, pts in curves.items():
        ok = [p for p in pts if p[y_key] >= target]
        best[name] = min(ok, key=lambda p: p[t_key]) if ok else None
    ref = best.get(reference)
    out: dict[str, Any] = {"reference": reference, "reference_accuracy": curves[reference][-1][y_key],
                           "margin": margin, "solvers": {}}
    for name, p in best.items():
        out["solvers"][name] = None if p is None else {
            **p, f"speedup_vs_{reference}": (ref[t_key] / p[t_key]) if ref is not None and p[t_key] > 0 else None,
            f"nfe_ratio_vs_{reference}": (ref["nfe"] / p["nfe"]) if ref is not None and p.get("nfe") else None,
        }
    return out


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: Path, *, title: str, x_key: str, y_key: str,
                ylabel: str, xlabel: str = "inference seconds (median)") -> str | None:
    """Accuracy against time, one line per solver, log-scaled time axis. Returns the path
    written, or ``None`` (with a note) when matplotlib is missing (``pip install -e .[bench]``)."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, pts in curves.items():
        xs = [p[x_key] for p in pts]
        ys = [p[y_key] for p in pts]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return str(path)


def dear_pareto(run_dirs: Sequence[Path], *, tols: Sequence[float] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.02),
                sizes: Sequence[int] | None = None, device: str = "auto", repeats: int = 3,
                out: Path = Path("runs/pareto"), plot: bool = True, progress: bool = True) -> dict[str, Any]:
    """CLRS score against seconds per sample while sweeping DEAR's tolerance, one curve per run
    (label: algorithm/solver/seed). Uses :func:`dear.evaluate.evaluate_run` (its timing).

    Each finished (run, tolerance) point is kept in ``out/pareto.partial.json`` (keyed by the run
    and its checkpoint's sha256), so an interrupted call, run again with the same settings,
    evaluates only the points it had not finished (``resumed_points`` in the JSON). ``progress``
    shows a bar over points."""
    from clrs_tasks.progress import progress_bar  # noqa: PLC0415
    from dear.evaluate import evaluate_run  # noqa: PLC0415
    from dear.io import atomic_write_text, code_provenance, hardware, resolve_device, sha256_file, versions  # noqa: PLC0415
    from dear.resume import PartialResults  # noqa: PLC0415

    out = Path(out)
    dev = resolve_device(device)
    partial = PartialResults(out / "pareto.partial.json", {
        "kind": "dear", "tols": list(tols), "sizes": list(sizes) if sizes else None, "repeats": repeats,
        "device": str(dev)}, announce=progress)
    curves: dict[str, list[dict[str, Any]]] = {}
    bar = progress_bar(total=len(run_dirs) * len(tols), desc="pareto dear", unit="point", disable=not progress)
    for d in run_dirs:
        d = Path(d)
        ckpt = d / "checkpoint_best.pt"
        # read once per run; no checkpoint: no key, and evaluate_run says so in one line
        run_key = f"{d.resolve()}, checkpoint {sha256_file(ckpt)[:16]}" if ckpt.is_file() else ""
        pts = []
        label = None
        for tol in tols:
            key = f"{run_key} at tol {tol!r}" if run_key else ""
            done = partial.get(key) if key else None
            if done is None:
                r = evaluate_run(d, sizes=sizes, tol=tol, device=device, repeats=repeats, write=False)
                n = sorted(r["results"], key=int)[-1]  # write=False: only the sizes just evaluated
                rr = r["results"][n]
                done = {"label": f"{r['algorithm']}/{r['config'].get('solver')}/seed{r['seed']}",
                        "point": {"tol": tol, "score": rr["score"], "seconds_per_sample": rr["seconds_per_sample"],
                                  "iterations_mean": (rr["iterations"] or {}).get("mean"),
                                  "nfe_mean": (rr["nfe"] or {}).get("mean"), "size": int(n),
                                  "nodes": int(rr.get("nodes", n)), "fallback_rate": rr.get("fallback_rate")}}
                if key:
                    partial.put(key, done)
            label = label or done["label"]
            pts.append(done["point"])
            bar.update(1)
        curves[label or str(d)] = pts
    bar.close()
    result = {"schema": SCHEMA, "kind": "dear", "runs": [str(d) for d in run_dirs], "tols": list(tols),
              "curves": curves, "resumed_points": len(partial.resumed), "versions": versions(),
              **code_provenance(), "hardware": hardware(dev)}
    atomic_write_text(out / "pareto.json", json.dumps(result, indent=1) + "\n")
    partial.done()
    if plot:
        result["plot"] = plot_curves(curves, out / "pareto.png", title="DEAR: tolerance sweep",
                                     x_key="seconds_per_sample", y_key="score", ylabel="CLRS score",
                                     xlabel="seconds per sample (median)")
    return result


def register_cli(subparsers: Any) -> Any:
    """Add ``dear pareto {nodecls,dear}`` to the main parser."""
    import argparse  # noqa: PLC0415

    def floats(text: str) -> list[float]:
        try:
            return [float(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None

    def ints(text: str) -> list[int]:
        try:
            return [int(t) for t in text.split(",") if t.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None

    def strs(text: str) -> list[str]:
        return [t.strip() for t in text.split(",") if t.strip()]

    p = subparsers.add_parser("pareto", help="speed/accuracy curves of solvers (JSON + PNG)",
                              description="Speed/accuracy Pareto curves: solvers on trained implicit models, "
                              "sweeping tolerance or iteration budget. See docs/learned-solver.md.")
    sub = p.add_subparsers(dest="pareto_command", metavar="KIND")
    sub.required = True
    q = sub.add_parser("nodecls", help="IGNN run: picard, anderson, learned_nn, learned on the same trained model")
    q.add_argument("run_dir", help="a `dear nodecls train --model ignn` run directory")
    q.add_argument("--solvers", type=strs, default=["picard", "anderson", "learned_nn", "learned"],
                   help="comma-separated (default picard,anderson,learned_nn,learned; the learned ones are fitted "
                   "post hoc where the run has none)")
    q.add_argument("--tols", type=floats, default=list(DEFAULT_TOLS),
                   help="relative residual tolerances (with --sweep tol; default 1e-1 down to 3e-6)")
    q.add_argument("--budgets", type=ints, default=[], help="iteration caps (with --sweep budget)")
    q.add_argument("--sweep", choices=("tol", "budget"), default="tol",
                   help="sweep the tolerance (default) or the iteration cap")
    q.add_argument("--seeds", type=ints, default=None, help="model seeds of the run, e.g. 0,1 (default: all of them)")
    q.add_argument("--repeats", type=int, default=5, help="timed inference passes per point (median; default 5)")
    q.add_argument("--max-iter", type=int, default=300, help="iteration cap of the tolerance sweep (default 300)")
    q.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    q.add_argument("--out", default=None, help="output directory (default: the run directory)")
    q.add_argument("--quiet", action="store_true", help="no progress bar or resume notes")
    q.set_defaults(func=_cmd_nodecls)
    q = sub.add_parser("dear", help="DEAR runs: CLRS score vs seconds per sample over a tolerance sweep")
    q.add_argument("run_dirs", nargs="+", help="`dear train --model dear` run directories (one curve each)")
    q.add_argument("--tols", type=floats, default=[0.5, 0.3, 0.2, 0.1, 0.05, 0.02],
                   help="test tolerances (default 0.5,0.3,0.2,0.1,0.05,0.02)")
    q.add_argument("--sizes", type=ints, default=None, help="test sizes, e.g. 64,128 (default: the protocol's)")
    q.add_argument("--repeats", type=int, default=3, help="timed passes per point (median; default 3)")
    q.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    q.add_argument("--out", default="runs/pareto", help="where pareto.json and pareto.png go (default runs/pareto)")
    q.add_argument("--quiet", action="store_true", help="no progress bar or resume notes")
    q.set_defaults(func=_cmd_dear)
    return p


def _cmd_nodecls(args: Any) -> int:
    res = nodecls_pareto(Path(args.run_dir), solvers=args.solvers, tols=args.tols, sweep=args.sweep,
                         budgets=args.budgets, seeds=args.seeds, repeats=args.repeats, max_iter=args.max_iter,
                         device=args.device, out=Path(args.out) if args.out else None, progress=not args.quiet)
    for name, info in (res["equal_accuracy"].get("solvers") or {}).items():
        if info is None:
            print(f"{name:>11}: never within {res['equal_accuracy']['margin']} points of picard")
        else:
            print(f"{name:>11}: {info['test_accuracy']:.2f}% at {info['seconds'] * 1e3:.2f} ms, {info['nfe']:.0f} evals "
                  f"({info['speedup_vs_picard']:.2f}x picard)")
    out = Path(args.out) if args.out else Path(args.run_dir)
    print(f"wrote {out / 'pareto.json'}" + (f" and {res['plot']}" if res.get("plot") else " (no plot: pip install matplotlib)"))
    return 0


def _cmd_dear(args: Any) -> int:
    res = dear_pareto([Path(d) for d in args.run_dirs], tols=args.tols, sizes=args.sizes, device=args.device,
                      repeats=args.repeats, out=Path(args.out), progress=not args.quiet)
    for label, pts in res["curves"].items():
        print(label + ": " + ", ".join(f"tol {p['tol']:g}: {p['score']:.3f} @ {p['seconds_per_sample']:.2e}s"
                                       for p in pts))
    print(f"wrote {Path(args.out) / 'pareto.json'}" + (f" and {res['plot']}" if res.get("plot") else ""))
    return 0
