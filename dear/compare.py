"""DEAR against unrolled NAR baselines, side by side: train what is missing, evaluate, tabulate.

Runs live in ``OUT/<algorithm>/<model>/seed<k>/``; finished runs and existing results are
reused, so an interrupted comparison picks up where it stopped. Results are reused (and shown)
only at the sizes asked for, or at the protocol's test size when none are: a run's results file
may hold other sizes too (``dear evaluate --sizes`` adds them). Arguments that only evaluation
would refuse (sizes, test count, sweep tolerances) are checked before anything is trained
(:func:`check_arguments`). ``OUT/compare.json`` holds the
table: per algorithm and model, the score mean and std over seeds, seconds per sample, solver
iterations beside the true trace lengths, and DEAR's speed-up over NAR; plus, for DEAR, a
tolerance sweep (score and seconds per sample at each tolerance).

Spreading the (algorithm, model, seed) runs (``docs/scale-out.md``): ``workers=N`` starts N
processes (each pinned to its own GPU when several are visible) and ``torchrun
--nproc-per-node N`` gives one to each rank. Either way every process walks the job list and
takes a run only while holding its lock file ``OUT/.locks/<algorithm>.<model>.seed<k>.lock``
(``filelock``), so no run is trained or evaluated twice at once, and a finished run (its
``train_summary.json`` and results files) is skipped, so a stopped sweep resumes where it
stopped. Rank 0 (or the calling process) then waits for the runs still held, and tabulates.
With ``workers=1`` outside ``torchrun`` nothing of this runs: one process does everything in
order, as it always did.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dear.config import TrainConfig, replace
from dear.evaluate import check_tol, evaluate_run, evaluation_sizes, results_name
from dear.io import atomic_write_text
from dear.training import RunError, config_mismatch, is_complete, train

#: A job: (algorithm, model, seed).
Job = tuple[str, str, int]


def run_dir(out: Path, algorithm: str, model: str, seed: int) -> Path:
    return Path(out) / algorithm / model / f"seed{seed}"


def _size_keys(algorithm: str, protocol: str, sizes: Sequence[int] | None, num_test: int | None) -> list[str]:
    """The ``results`` keys the table reads for one algorithm: the sizes asked for, or the
    protocol's test size when none were (never whatever a results file happens to hold)."""
    return [str(n) for n in evaluation_sizes(algorithm, protocol, sizes, num_test)]


def _cut(res: dict[str, Any], sizes: Sequence[int] | None) -> dict[str, Any] | None:
    """``res`` with only the sizes the table reads, or None if it lacks one of them (or is not
    a results file this code can read: it is then evaluated again)."""
    try:
        keys = _size_keys(res["algorithm"], res["protocol"], sizes, (res.get("config") or {}).get("num_test"))
        held = res["results"]
        if not all(k in held for k in keys):
            return None
        return {**res, "results": {k: held[k] for k in keys}}
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _saved_results(path: Path, tol: float | None, sizes: Sequence[int] | None) -> dict[str, Any] | None:
    """The run's results file for ``tol``, cut to ``sizes`` (the protocol's test size when
    None), if it holds all of them. A file may hold more sizes (``dear evaluate --sizes`` adds
    them); older files keyed by node count match wherever that is the size."""
    try:
        res = json.loads((path / results_name(tol)).read_text())
    except (OSError, ValueError):  # missing or unreadable: evaluated (and rewritten)
        return None
    return _cut(res, sizes) if isinstance(res, dict) else None


@dataclass(frozen=True)
class Timing:
    """How ``dear evaluate`` times each run: ``warmup`` untimed passes after the scoring pass
    (which itself runs every batch once), then ``repeats`` timed passes, median reported.
    Fewer passes suit slow unrolled baselines on big test graphs (a 192-step NAR on n=64)."""

    repeats: int = 5
    warmup: int = 1

    def __post_init__(self) -> None:
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f"timing needs repeats >= 1 and warmup >= 0, got {self.repeats} and {self.warmup}")


def _results(path: Path, tol: float | None, sizes: Sequence[int] | None, device: str,
             timing: Timing = Timing()) -> dict[str, Any]:
    res = _saved_results(path, tol, sizes)
    if res is not None:
        return res
    res = _cut(evaluate_run(path, sizes=sizes, tol=tol, device=device, repeats=timing.repeats, warmup=timing.warmup),
               sizes)
    if res is None:  # evaluate_run writes every size asked for; this would be a bug here
        raise RunError(f"evaluating {path} did not give results at the sizes asked for ({sizes})")
    return res


def check_arguments(base: TrainConfig, algorithms: Sequence[str], models: Sequence[str], seeds: int,
                    sizes: Sequence[int] | None = None, tol_sweep: Sequence[float] = ()) -> None:
    """Refuse, before anything is trained, arguments that would fail only at evaluation (or
    give an empty table): no algorithms or models, ``seeds < 1``, a test size or test count
    the split refuses (``base.num_test``), a sweep tolerance that is not a finite number > 0."""
    for name, names in (("algorithms", algorithms), ("models", models)):
        if isinstance(names, str):
            raise TypeError(f"{name} must be a list of names, got the string {names!r}")
        if not names:
            raise ValueError(f"no {name} given; name at least one")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    for tol in tol_sweep:
        check_tol(tol, "a tol_sweep tolerance")
    n = base.num_test
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"num_test (test graphs, --num-test) must be an integer >= 1, got {n!r}")
    for algo in algorithms:
        evaluation_sizes(algo, base.protocol, sizes, base.num_test)


def jobs_of(algorithms: Sequence[str], models: Sequence[str], seeds: int) -> list[Job]:
    """Every (algorithm, model, seed) run of a comparison, in table order."""
    return [(a, m, s) for a in algorithms for m in models for s in range(seeds)]


def check_reusable(base: TrainConfig, jobs: Sequence[Job], out: Path) -> None:
    """Refuse, before anything runs, an ``out`` whose existing runs were trained with other
    settings: reusing them would put another configuration's numbers in this table."""
    bad = []
    for algo, model, seed in jobs:
        d = run_dir(out, algo, model, seed)
        diff = config_mismatch(replace(base, algorithm=algo, model=model, seed=seed), d)
        if diff:
            bad.append(f"{d} ({', '.join(diff)})")
    if bad:
        shown = "; ".join(bad[:3]) + (f"; and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise RunError(f"{len(bad)} run(s) under {out} were trained with other settings: {shown}. "
                       "Use another --out directory, or the settings those runs were trained with.")


def job_done(out: Path, job: Job, sizes: Sequence[int] | None, tol_sweep: Sequence[float]) -> bool:
    """Whether a run is trained and every results file the table reads is on disk."""
    algo, model, seed = job
    d = run_dir(out, algo, model, seed)
    if not is_complete(d) or _saved_results(d, None, sizes) is None:
        return False
    return model != "dear" or all(_saved_results(d, tol, sizes) is not None for tol in tol_sweep)


def _lock_path(out: Path, job: Job) -> Path:
    algo, model, seed = job
    return Path(out) / ".locks" / f"{algo}.{model}.seed{seed}.lock"


def run_jobs(base: TrainConfig, jobs: Sequence[Job], out: Path, sizes: Sequence[int] | None = None,
             tol_sweep: Sequence[float] = (), *, worker: int = 0, blocking: bool = False,
             progress: bool = False, timing: Timing = Timing()) -> list[Job]:
    """Train and evaluate the jobs not yet done, each under its lock; returns those done here.

    ``blocking=False`` skips a job another process holds (a worker's pass); ``blocking=True``
    waits for it, then finishes whatever that process left (the final pass of rank 0 or the
    calling process: a worker that died releases its lock and its run resumes from its
    checkpoint). Workers start at different offsets of the list so they rarely contend.
    """
    from filelock import FileLock, Timeout  # noqa: PLC0415

    out = Path(out)
    jobs = list(jobs)
    if not jobs:
        return []
    k = worker % len(jobs)
    done_here: list[Job] = []
    for job in jobs[k:] + jobs[:k]:
        if job_done(out, job, sizes, tol_sweep):
            continue
        path = _lock_path(out, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=-1 if blocking else 0)
        except Timeout:
            continue  # another process is on it
        try:
            if job_done(out, job, sizes, tol_sweep):  # finished while we waited
                continue
            algo, model, seed = job
            d = run_dir(out, algo, model, seed)
            if not is_complete(d):
                train(replace(base, algorithm=algo, model=model, seed=seed), d, progress=progress, distributed=False)
            _results(d, None, sizes, base.device, timing)
            if model == "dear":
                for tol in tol_sweep:
                    _results(d, tol, sizes, base.device, timing)
            done_here.append(job)
        finally:
            lock.release()
    return done_here


def _worker_main(base: dict[str, Any], jobs: list[Job], out: str, sizes: list[int] | None,
                 tol_sweep: list[float], worker: int, workers: int, timing: Timing = Timing()) -> None:
    """Entry point of a ``workers=N`` process: pin a GPU or a share of the CPU, run a pass."""
    import torch  # noqa: PLC0415

    cfg = TrainConfig.from_dict(base)
    try:
        if cfg.device in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
            torch.cuda.set_device(worker % torch.cuda.device_count())
        elif "OMP_NUM_THREADS" not in os.environ:  # N processes must not each take every core
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
        for job in run_jobs(cfg, jobs, Path(out), sizes, tol_sweep, worker=worker, timing=timing):
            print(f"[worker {worker}] {job[0]}/{job[1]} seed {job[2]}: trained and evaluated", flush=True)
    except BaseException:  # noqa: BLE001  reported here; the parent finishes the job itself
        traceback.print_exc()
        sys.exit(1)


def spread(base: TrainConfig, jobs: Sequence[Job], out: Path, sizes: Sequence[int] | None = None,
           tol_sweep: Sequence[float] = (), workers: int = 1, progress: bool = True,
           start_method: str = "spawn", timing: Timing = Timing()) -> None:
    """Run ``jobs`` on ``workers`` processes, then finish in this process whatever they left
    (a failed worker's runs resume here, raising its error if it recurs).

    ``start_method="spawn"`` (default) starts fresh interpreters, the only safe choice once
    CUDA is initialised; ``"fork"`` (Linux) skips their start-up when the parent has already
    imported everything and uses no GPU (the tests).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and not all(job_done(out, job, sizes, tol_sweep) for job in jobs):
        ctx = multiprocessing.get_context(start_method)
        procs = [ctx.Process(target=_worker_main, name=f"dear-compare-worker-{k}",
                             args=(base.to_dict(), list(jobs), str(out), None if sizes is None else list(sizes),
                                   list(tol_sweep), k, workers, timing))
                 for k in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        for k, p in enumerate(procs):
            if p.exitcode != 0:
                print(f"dear compare: worker {k} exited with code {p.exitcode}; finishing its runs here",
                      file=sys.stderr)
    run_jobs(base, jobs, out, sizes, tol_sweep, blocking=True, progress=progress, timing=timing)


def _mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def compare(base: TrainConfig, algorithms: Sequence[str], models: Sequence[str], seeds: int, out: Path,
            sizes: Sequence[int] | None = None, tol_sweep: Sequence[float] = (), progress: bool = True,
            workers: int = 1, timing: Timing = Timing()) -> dict[str, Any] | None:
    """Train what is missing, evaluate, write ``OUT/compare.json`` and return the table.

    ``workers > 1`` spreads the runs over that many processes; under ``torchrun`` each rank
    takes runs and rank 0 tabulates (the other ranks return ``None``). See the module doc.
    """
    from dear.distributed import env_rank, launched_by_torchrun, rank_device  # noqa: PLC0415

    out = Path(out)
    check_arguments(base, algorithms, models, seeds, sizes, tol_sweep)
    jobs = jobs_of(algorithms, models, seeds)
    check_reusable(base, jobs, out)
    if launched_by_torchrun():
        if workers > 1:
            raise ValueError("--workers and torchrun both start processes; use one of them")
        rank = env_rank()
        rank_device(base.device)  # pin this rank's GPU; runs keep device "auto"/"cuda" in their config
        run_jobs(base, jobs, out, sizes, tol_sweep, worker=rank, progress=progress and rank == 0, timing=timing)
        if rank != 0:
            return None
        run_jobs(base, jobs, out, sizes, tol_sweep, blocking=True, progress=progress, timing=timing)
    elif workers != 1:
        spread(base, jobs, out, sizes, tol_sweep, workers=workers, progress=progress, timing=timing)
    table: dict[str, Any] = {}
    for algo in algorithms:
        table[algo] = {}
        keys = _size_keys(algo, base.protocol, sizes, base.num_test)  # every run's results are cut to these
        for model in models:
            per_seed = []
            for seed in range(seeds):
                cfg = replace(base, algorithm=algo, model=model, seed=seed)
                d = run_dir(out, algo, model, seed)
                if not is_complete(d):
                    train(cfg, d, progress=progress)
                per_seed.append(_results(d, None, sizes, base.device, timing))
            entry: dict[str, Any] = {}
            for n in keys:
                rs = [r["results"][n] for r in per_seed]
                entry[n] = {
                    "score": _mean_std([r["score"] for r in rs]),
                    "per_seed": [r["score"] for r in rs],
                    "seconds_per_sample": statistics.median(r["seconds_per_sample"] for r in rs),
                    "iterations_mean": statistics.fmean(r["iterations"]["mean"] for r in rs) if rs[0]["iterations"] else None,
                    "true_steps_mean": rs[0]["true_steps"]["mean"],
                }
                fb = [r["fallback_fraction"] for r in rs if r.get("fallback_fraction") is not None]
                if fb:  # learned solver: share of graphs that needed the classic fallback
                    entry[n]["fallback_fraction"] = statistics.fmean(fb)
            if model == "dear" and tol_sweep:
                sweep = {}
                for tol in tol_sweep:
                    rs = [_results(run_dir(out, algo, model, s), tol, sizes, base.device, timing) for s in range(seeds)]
                    sweep[f"{tol:g}"] = {n: {"score": _mean_std([r["results"][n]["score"] for r in rs]),
                                             "seconds_per_sample": statistics.median(r["results"][n]["seconds_per_sample"] for r in rs),
                                             "iterations_mean": statistics.fmean(r["results"][n]["iterations"]["mean"] for r in rs)}
                                         for n in keys}
                entry["tol_sweep"] = sweep
            table[algo][model] = entry
            table[algo].setdefault("trained_steps", {})[model] = [r.get("trained_steps") for r in per_seed]
        if "dear" in table[algo] and "nar" in table[algo]:
            table[algo]["dear_speedup_over_nar"] = {
                n: table[algo]["nar"][n]["seconds_per_sample"] / table[algo]["dear"][n]["seconds_per_sample"]
                for n in keys
            }
    result = {"profile": base.profile, "protocol": base.protocol, "seeds": seeds, "models": list(models),
              "algorithms": list(algorithms), "base_config": base.to_dict(), "table": table}
    summary = dear_vs_nar(table)
    if summary:
        result["dear_vs_nar"] = summary
    atomic_write_text(out / "compare.json", json.dumps(result, indent=1))
    return result


def dear_vs_nar(table: dict[str, Any], margin: float = 0.01, big: float = 5.0) -> dict[str, Any]:
    """Per test size, the algorithms where DEAR's mean score is within ``margin`` (score units:
    0.01 is one point) of NAR's or better, where DEAR is faster per sample, and where it is at
    least ``big`` times faster: the DEAR paper's claims, counted over the table's rows that
    have both models. Empty when no row has both."""
    out: dict[str, Any] = {}
    big_key = f"at_least_{big:g}x"
    for algo, entry in table.items():
        if "dear" not in entry or "nar" not in entry:
            continue
        for n, speedup in entry.get("dear_speedup_over_nar", {}).items():
            row = out.setdefault(n, {"algorithms": [], "within_margin_or_better": [], "faster": [],
                                     big_key: [], "margin": margin, "big": big})
            row["algorithms"].append(algo)
            if entry["dear"][n]["score"]["mean"] >= entry["nar"][n]["score"]["mean"] - margin:
                row["within_margin_or_better"].append(algo)
            if speedup > 1.0:
                row["faster"].append(algo)
            if speedup >= big:
                row[big_key].append(algo)
    return out


def format_table(result: dict[str, Any]) -> str:
    lines = []
    models = result["models"]
    head = f"{'algorithm':<30} {'steps':>7} {'n':>4} " + " ".join(f"{m + ' score':>18} {m + ' s/sample':>13}" for m in models)
    if "dear" in models and "nar" in models:
        head += f" {'speed-up':>9} {'dear iters':>10} {'true steps':>10}"
    lines.append(head)
    for algo, entry in result["table"].items():
        sizes = [k for k in entry[models[0]] if k != "tol_sweep"]
        # optimiser steps the runs took (one number when every run of the row agrees)
        took = sorted({t for m in models for t in entry.get("trained_steps", {}).get(m, []) if t is not None})
        steps = "/".join(str(t) for t in took) if took else "?"
        for n in sizes:
            row = f"{algo:<30} {steps:>7} {n:>4} "
            for m in models:
                e = entry[m][n]
                row += f" {100 * e['score']['mean']:7.2f} ± {100 * e['score']['std']:5.2f}   {e['seconds_per_sample']:13.2e}"
            if "dear_speedup_over_nar" in entry:
                d = entry["dear"][n]
                row += f" {entry['dear_speedup_over_nar'][n]:8.2f}x {d['iterations_mean']:10.1f} {d['true_steps_mean']:10.1f}"
            lines.append(row)
        sweep = entry.get("dear", {}).get("tol_sweep")
        if sweep:
            for tol, per_n in sweep.items():
                for n, e in per_n.items():
                    lines.append(f"{'':<30} {'':>7} {n:>4}   dear tol {tol:<6} score {100 * e['score']['mean']:6.2f}  "
                                 f"{e['seconds_per_sample']:.2e} s/sample  {e['iterations_mean']:.1f} iters")
    for n, row in result.get("dear_vs_nar", {}).items():
        total = len(row["algorithms"])
        big = row["big"]
        lines.append(
            f"n={n}: DEAR within {100 * row['margin']:g} point(s) of NAR or better on {len(row['within_margin_or_better'])}/{total}"
            f", faster per sample on {len(row['faster'])}/{total}"
            f", at least {big:g}x faster on {len(row[f'at_least_{big:g}x'])}/{total}")
    return "\n".join(lines)
