"""Evaluating a trained run: CLRS scores per test size, inference timing, solver iterations.

``results.json`` schema (``schema_version`` 1; documented field by field in
``docs/reasoners.md``, "results.json")::

    {"schema_version": 1, "algorithm", "model", "seed", "protocol", "processor", "tol", "stop_mode",
     "results": {"<size>": {"score", "outputs": {name: value}, "num_graphs", "nodes",
                            "seconds_per_sample", "timing": {"method", "repeats", "warmup", "batch_size", "seconds": [...]},
                            "iterations": {"mean", "max"}, "true_steps": {"mean", "max"},
                            "nfe": {"mean"}, "converged_fraction", "fallback_fraction"}},
     "checkpoint": {"step", "val"}, "trained_steps", "training_finished", "fingerprints": {"<size>": sha256},
     "versions", "hardware", "git_commit", "git_uncommitted", "config"}

``results`` and ``fingerprints`` are keyed by the test size asked for (``--sizes``, else the
protocol's test size); ``nodes`` is the largest node count of that split's graphs, which is
the size for DEAR's algorithms but not for all tasks (optimal_bst: size + 1). Files written
before the key was the size are keyed by ``nodes``; they read the same wherever the two agree.
``iterations`` are the processor applications per graph (DEAR: solver iterations until that
graph's first iterate under tolerance; NAR: its unrolled steps); ``true_steps`` are the traces'
own lengths, reported beside them and never given to DEAR. ``nfe.mean`` is a mean per test
*batch*, not per graph: the processor evaluations the solver made on a whole batch (NAR: the
batch's longest unroll), averaged over the batches. ``trained_steps`` is the number of optimiser steps the
run took (its ``train_summary.json``; ``config.steps`` is the cap, which a ``step_budget`` may
lower), null for a run without a summary; ``training_finished`` is false when the run has no
``train_summary.json`` (stopped before its last step: the best checkpoint *so far* was scored,
and a warning says so). ``fallback_fraction`` (DEAR with a learned solver, else null) is the
share of test graphs whose solve needed the classic fallback after the K learned steps. Timing:
the test batches are collated and moved to the device first (data loading excluded); the
scoring pass runs every batch once, then ``warmup`` more untimed passes (default 1), then
``repeats`` timed passes (CUDA synchronised before reading clocks); the median pass divided by
the number of graphs is ``seconds_per_sample``.

Evaluating other sizes of the same run adds them to its results file: sizes evaluated again are
replaced, the others kept, as long as everything their numbers depend on is unchanged (config,
checkpoint, tolerance and stop mode, hardware, package versions: :data:`SAME_EVALUATION`). Otherwise the file
is replaced and a note on stderr names the sizes it no longer holds.
"""

from __future__ import annotations

import json
import math
import numbers
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

import clrs_tasks as ct
from dear.config import DEAR_STOP_MODES, TrainConfig
from dear.io import atomic_write_text, code_provenance, hardware, resolve_device, versions
from dear.training import RunError, build, load_data

SCHEMA_VERSION = 1


#: Top-level fields of a results file that must be unchanged for newly evaluated sizes to be
#: added to it: what the numbers of the sizes already there depend on (the file has one of each).
SAME_EVALUATION = ("schema_version", "algorithm", "model", "seed", "protocol", "processor", "tol", "stop_mode",
                   "checkpoint", "config", "hardware", "versions")


def check_tol(tol: Any, name: str = "tol") -> float:
    """``tol`` as a float, refused unless a finite number > 0 (what ``dear train`` accepts):
    0 would run every graph to the iteration cap, and inf or nan would stop at once."""
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"{name} must be a number, got {tol!r}")
    if not math.isfinite(tol) or tol <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {tol!r}")
    return float(tol)


def evaluation_sizes(algorithm: str, protocol: str, sizes: Sequence[int] | None = None,
               num_test: int | None = None) -> list[int]:
    """The test sizes an evaluation covers, each checked against the test split it would
    build (so a bad size or test count is refused before any model runs): ``sizes`` in order,
    duplicates dropped, or, for ``None``, the protocol's test size (the largest, should a
    protocol ever mix several). These are the keys of a results file's ``results``."""
    task = ct.get_task(algorithm)
    if sizes is None:
        return [max(ct.split_config(task, "test", protocol, num_samples=num_test).sizes)]
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise TypeError(f"sizes must be a list of integers (or None for the protocol's test size), got {sizes!r}")
    if not sizes:
        raise ValueError("sizes is empty; give at least one test size, or none at all for the protocol's")
    out: list[int] = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must be integers, got {s!r}")
        try:
            ct.split_config(task, "test", protocol, sizes=int(s), num_samples=num_test)
        except ValueError as e:
            raise ValueError(f"{algorithm} test split at size {s}: {e}") from None
        if int(s) not in out:
            out.append(int(s))
    return out


def _one_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line (torch's state-dict errors span many)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _run_config(run_dir: Path) -> TrainConfig:
    if not (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} is not a run directory (no config.json); train one with `dear train --out DIR`")
    return TrainConfig.load(run_dir / "config.json")


def load_run(run_dir: Path, device: torch.device, tol: float | None = None,
             stop_mode: str | None = None) -> tuple[TrainConfig, torch.nn.Module, dict]:
    """The run's config and its best checkpoint's model (on ``device``, eval mode); ``tol`` and
    ``stop_mode`` override a DEAR run's stopping rule (the config returned says so).

    A checkpoint that cannot be read (truncated, overwritten) or that does not fit the model
    the run's ``config.json`` describes (copied from another run) is a :class:`RunError` naming
    the file, not torch's traceback."""
    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)
    ckpt_path = run_dir / "checkpoint_best.pt"
    if not ckpt_path.exists():
        if (run_dir / "train_summary.json").exists():  # finished, weights not kept (a committed run)
            raise RunError(f"{run_dir} finished training but holds no checkpoint_best.pt (runs committed under "
                           f"leaderboards/runs/ keep results, not weights); `dear train --out {run_dir}` trains "
                           "it again from its config.json and seed")
        raise RunError(f"{run_dir} has no checkpoint_best.pt yet; finish training first (`dear train --out "
                       f"{run_dir}` resumes it)")
    if tol is not None:
        tol = check_tol(tol)
        if cfg.model != "dear":
            raise RunError("--tol only applies to dear runs")
        cfg.tol = tol
    if stop_mode is not None:
        if stop_mode not in DEAR_STOP_MODES:
            raise RunError(f"unknown stop mode {stop_mode!r}; valid: {', '.join(DEAR_STOP_MODES)}")
        if cfg.model != "dear":
            raise RunError("--stop-mode only applies to dear runs")
        cfg.stop_mode = stop_mode
    retrain = f"restore it from a copy, or retrain the run (delete {run_dir} and run `dear train` again)"
    try:
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        state = ckpt["model"]
    except Exception as e:  # noqa: BLE001  a damaged pickle can raise almost anything
        raise RunError(f"{ckpt_path} is corrupt or unreadable ({type(e).__name__}: {_one_line(e)}); {retrain}") from None
    val = load_data(cfg, "val", num_samples=1)
    model = build(cfg, val.spec).to(device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise RunError(f"{ckpt_path} does not fit the model {run_dir / 'config.json'} describes ({_one_line(e)}); "
                       f"was it copied from another run? {retrain}") from None
    model.eval()
    return cfg, model, ckpt


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate_size(cfg: TrainConfig, model: torch.nn.Module, size: int | None, device: torch.device,
                  repeats: int = 5, warmup: int = 1, batch_size: int | None = None,
                  progress: bool = False) -> tuple[dict[str, Any], str]:
    """Score ``model`` on the test split at ``size`` (the protocol's when ``None``), then time
    ``warmup`` untimed and ``repeats`` timed passes over the same device batches. ``progress``:
    a bar over the passes, advanced between them (outside the timed region)."""
    from clrs_tasks.progress import progress_bar  # noqa: PLC0415
    from dear.reasoners import predictions_for_scoring  # noqa: PLC0415

    overrides = {} if size is None else {"sizes": size}
    ds = load_data(cfg, "test", **overrides)
    bs = batch_size or cfg.batch_size
    batches = [ct.collate([ds[i] for i in range(s, min(s + bs, len(ds)))]).to(device) for s in range(0, len(ds), bs)]
    ev = ct.Evaluator()
    bar = progress_bar(total=1 + warmup + repeats, desc=f"{cfg.algorithm} {cfg.model} n={int(ds.num_nodes_per_graph.max())}",
                       unit="pass", leave=False, disable=not progress)
    iters, steps, nfe, converged, fallback = [], [], [], [], []
    for batch in batches:
        out, stats = model(batch)
        ev.add(batch.cpu(), {k: v.cpu() for k, v in predictions_for_scoring(batch, out).items()})
        it = stats.get("iterations")
        if it is not None:
            iters += torch.as_tensor(it).reshape(-1).tolist()
        steps += batch.length.reshape(-1).tolist()
        if stats.get("nfe") is not None:
            nfe.append(float(stats["nfe"]))
        if stats.get("converged") is not None:
            converged += torch.as_tensor(stats["converged"]).reshape(-1).float().tolist()
        if stats.get("fallback") is not None:  # learned solver: K learned steps were not enough
            fallback += torch.as_tensor(stats["fallback"]).reshape(-1).float().tolist()
    scores = ev.result()
    bar.update(1)
    for _ in range(warmup):
        for batch in batches:
            model(batch)
        bar.update(1)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for batch in batches:
            model(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
        bar.update(1)
    bar.close()
    n_graphs = len(ds)
    res = {
        "score": scores["score"],
        "outputs": {k: v for k, v in scores.items() if k != "score"},
        "num_graphs": n_graphs,
        "nodes": int(ds.num_nodes_per_graph.max()),
        "seconds_per_sample": statistics.median(times) / n_graphs,
        "timing": {"method": "median of timed passes over pre-collated device batches after the scoring pass and "
                             "`warmup` more untimed passes; "
                             "CUDA synchronised; data loading excluded",
                   "repeats": repeats, "warmup": warmup, "batch_size": bs, "seconds": times},
        "iterations": {"mean": statistics.fmean(iters), "max": max(iters)} if iters else None,
        "true_steps": {"mean": statistics.fmean(steps), "max": max(steps)},
        "nfe": {"mean": statistics.fmean(nfe)} if nfe else None,
        "converged_fraction": statistics.fmean(converged) if converged else None,
        "fallback_fraction": statistics.fmean(fallback) if fallback else None,
    }
    return res, ds.fingerprint


def _trained_steps(run_dir: Path) -> int | None:
    try:
        return int(json.loads((run_dir / "train_summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _setting(results: dict[str, Any], key: str) -> str:
    """A :data:`SAME_EVALUATION` field of a results file, canonical, with what files written
    before a field existed meant filled in (a DEAR run's ``stop_mode`` then was ``"rel"``; a
    config's missing fields are their defaults), so adding a field does not split old from new."""
    value = results.get(key)
    if key == "stop_mode" and value is None and results.get("model") == "dear":
        value = "rel"
    elif key == "config" and isinstance(value, dict):
        try:
            value = TrainConfig.from_dict(value).to_dict()
        except (TypeError, ValueError):  # an unknown key: compared as it is
            pass
    return _canonical(value)


def _merge_saved(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` plus the sizes of the results file at ``path`` it did not evaluate, when that
    file comes from the same evaluation setting (:data:`SAME_EVALUATION`); else ``new`` alone,
    with a note on stderr naming the sizes the file loses. An old entry keyed by node count
    (files before the key was the size) whose split fingerprint ``new`` has is the same split:
    it is replaced too."""
    try:
        old = json.loads(path.read_text())
    except FileNotFoundError:
        return new
    except (OSError, ValueError):
        print(f"note: {path} was unreadable; replaced", file=sys.stderr)
        return new
    if not isinstance(old, dict) or not isinstance(old.get("results"), dict):
        return new
    new_fps = set(new["fingerprints"].values())
    old_fps = old.get("fingerprints") if isinstance(old.get("fingerprints"), dict) else {}
    kept = [k for k in old["results"] if k not in new["results"] and old_fps.get(k) not in new_fps]
    differs = [k for k in SAME_EVALUATION if _setting(old, k) != _setting(new, k)]
    if differs:
        if kept:
            print(f"note: {path} held n = {', '.join(kept)} from another evaluation setting ({', '.join(differs)} "
                  f"differ); they are replaced by this evaluation's n = {', '.join(new['results'])}", file=sys.stderr)
        return new

    def by_size(d: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(d.items(), key=lambda kv: int(kv[0]) if kv[0].lstrip("-").isdigit() else math.inf))

    return {**new,
            "results": by_size({**{k: old["results"][k] for k in kept}, **new["results"]}),
            "fingerprints": by_size({**{k: old_fps[k] for k in kept if k in old_fps}, **new["fingerprints"]})}


def results_name(tol: float | None = None, stop_mode: str | None = None) -> str:
    """The results file of an evaluation with these overrides: ``results.json`` for none,
    ``results_tol<tol>.json``, ``results_stop<mode>.json``, ``results_stop<mode>_tol<tol>.json``."""
    parts = ([f"stop{stop_mode}"] if stop_mode is not None else []) + ([f"tol{tol:g}"] if tol is not None else [])
    return "results.json" if not parts else f"results_{'_'.join(parts)}.json"


def evaluate_run(run_dir: Path, sizes: Sequence[int] | None = None, tol: float | None = None, device: str = "auto",
                 repeats: int = 5, warmup: int = 1, write: bool = True, progress: bool = False,
                 stop_mode: str | None = None) -> dict[str, Any]:
    """Evaluate a run on its protocol's test split (or the given sizes); ``progress``: a bar per
    size over its scoring, warm-up and timed passes.

    ``write=True`` adds the sizes to the run's ``results.json`` (with overrides of ``tol`` or
    ``stop_mode``, the file :func:`results_name` gives), replacing only those sizes when the file holds other ones from the same
    evaluation setting (see the module doc), and returns what the file then holds;
    ``write=False`` returns this evaluation's sizes only. A run that has not finished training
    is evaluated (a mid-training checkpoint is sometimes wanted) with a warning on stderr and
    ``training_finished: false``."""
    run_dir = Path(run_dir)
    saved_cfg = _run_config(run_dir)
    keys = evaluation_sizes(saved_cfg.algorithm, saved_cfg.protocol, sizes, saved_cfg.num_test)
    dev = resolve_device(device)
    cfg, model, ckpt = load_run(run_dir, dev, tol, stop_mode)
    finished = (run_dir / "train_summary.json").is_file()
    if not finished:
        print(f"warning: {run_dir} has not finished training (no train_summary.json): scoring its best checkpoint "
              f"so far (step {ckpt.get('step')} of at most {cfg.steps}); the results record "
              "\"training_finished\": false. Run the same `dear train` command to finish it.", file=sys.stderr)
    results, fps = {}, {}
    for size in keys:
        # the protocol's own split when no size was asked for (the same split as its size)
        res, fp = evaluate_size(cfg, model, None if sizes is None else size, dev, repeats=repeats, warmup=warmup,
                                progress=progress)
        results[str(size)], fps[str(size)] = res, fp
    out = {
        "schema_version": SCHEMA_VERSION,
        "algorithm": cfg.algorithm, "model": cfg.model, "seed": cfg.seed, "protocol": cfg.protocol,
        "processor": cfg.processor, "tol": cfg.tol if cfg.model == "dear" else None,
        "stop_mode": cfg.stop_mode if cfg.model == "dear" else None,
        "results": results,
        "checkpoint": {"step": ckpt.get("step"), "val": ckpt.get("val")},
        "trained_steps": _trained_steps(run_dir), "training_finished": finished,
        "fingerprints": fps, "versions": versions(), "hardware": hardware(dev), **code_provenance(),
        "config": cfg.to_dict(),
    }
    if write:
        path = run_dir / results_name(tol, stop_mode)
        out = _merge_saved(path, json.loads(json.dumps(out)))
        atomic_write_text(path, json.dumps(out, indent=1))
    return out


def format_results(res: dict[str, Any]) -> str:
    """A plain-text table of one results dict."""
    lines = [f"{res['algorithm']} / {res['model']} (seed {res['seed']}, {res['protocol']} protocol)"]
    lines.append(f"{'n':>5} {'score':>7} {'s/sample':>10} {'iters mean/max':>15} {'true steps mean/max':>20}  outputs")
    for n, r in res["results"].items():
        it = r["iterations"]
        its = f"{it['mean']:.1f}/{it['max']}" if it else "-"
        ts = f"{r['true_steps']['mean']:.1f}/{r['true_steps']['max']:.0f}"
        outs = ", ".join(f"{k}={v:.3f}" for k, v in r["outputs"].items())
        if r.get("fallback_fraction") is not None:
            outs += f"; fallback in {100 * r['fallback_fraction']:.0f}% of graphs"
        lines.append(f"{n:>5} {r['score']:7.3f} {r['seconds_per_sample']:10.2e} {its:>15} {ts:>20}  {outs}")
    return "\n".join(lines)
