"""Speed and score of our ``nar-hints`` Triplet-GMPNN against dm-clrs's own ``BaselineModel``.

One script, one CPU, the same data in the same order (GitHub issue 4):

* **Data.** The official CLRS-30 train split at n=16 (``clrs_tasks``, protocol ``official``:
  1000 samples, seed 1, dm-clrs's own sampler and processing), edge policy ``complete`` (all
  pairs, as the CLRS baselines message-pass). The batch of step ``s`` is
  :func:`dear.training.batch_indices` (``--seed``, ``s``), the same one ``dear train`` draws,
  collated once with :func:`clrs_tasks.collate`; dm-clrs gets *the same batch* converted back
  with :func:`clrs_tasks.to_clrs` (dm-clrs's arrays, bit for bit, hints zero-padded to the
  batch's longest trace exactly as dm-clrs's sampler pads them). So both models see identical
  samples in the same order.
* **Models.** Ours: :func:`dear.training.build` on a :class:`dear.config.TrainConfig` with model
  ``nar-hints``, processor ``triplet_gmpnn`` (triplet latents to the decoders, as dm-clrs),
  hidden 128, teacher forcing 0 (dm-clrs's default), ``--init dmclrs`` (Haiku's initialisation,
  :mod:`dear.reasoners.init`; ``--init torch`` for PyTorch's), Adam lr 1e-3, gradient clipping
  1.0; a step is :func:`dear.training.model_loss`,
  backward, ``clip_grad_norm_``, ``Adam.step`` -- the lines of :func:`dear.training.train`.
  dm-clrs: ``clrs.models.BaselineModel`` with ``clrs.get_processor_factory('triplet_gmpnn',
  use_ln=True, nb_triplet_fts=8, nb_heads=1)`` and the defaults of dm-clrs's
  ``clrs/examples/run.py`` (hidden 128, ``encoded_decoded`` hints, ``hint_teacher_forcing=0``,
  ``hint_repred_mode='soft'``, ``encoder_init='xavier_on_scalars'``, no LSTM, dropout 0, lr 1e-3,
  grad clip 1.0, one message-passing step per hint); a step is ``BaselineModel.feedback``
  (its jitted value-and-grad plus optax update).
* **Timing.** Both models train for ``--steps`` steps, interleaved step by step on the same
  batch (the order alternates each step), so load changes on a shared machine hit both alike.
  Each step is timed alone: wall clock (``perf_counter``) and process CPU time around forward +
  backward + optimiser update only. Data loading is excluded for both: the batch is collated,
  converted and (for JAX) ``jax.device_put`` before the clock starts. JAX: the clock is read
  after ``jax.block_until_ready`` on the loss, the new parameters and the optimiser state;
  torch: after ``torch.cuda.synchronize`` when on CUDA (plain CPU otherwise). dm-clrs compiles
  once per distinct array shape (the padded trajectory length ``T`` of a batch): a step whose
  shapes JAX has not seen is a *compile step*, reported separately (its wall time, and that
  minus the median of later steps of the same shape as the compile estimate). The per-step
  medians are taken over the **same step indices** for both: steps ``>= --warmup`` that are not
  compile steps, i.e. every timed JAX step reuses a compiled executable. Medians per ``T`` are
  reported too.
* **Score.** After ``--steps`` steps (the same for both; final weights, no model selection) the
  official test split (n=64) is scored with dm-clrs's ``clrs.evaluate``: ours through
  ``clrs_tasks.Evaluator`` on ``predictions_for_scoring`` (as :func:`dear.training.validate`), dm-clrs through
  ``BaselineModel.predict`` + ``clrs.evaluate`` on the same test graphs via ``to_clrs``.

Thread settings: ``--threads`` (default 1) sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
``torch.set_num_threads`` and ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=N`` before torch and JAX are imported (existing values of these
variables are kept and recorded), and pins the process to N cores (``dear.runtime.pin_cores``;
``--no-pin`` leaves it unpinned). The pin matters: jaxlib runs work on threads these flags do
not reach, so unpinned on our 2-core machine dm-clrs took 1.6 cores of CPU time per wall second
where ours took one (1,129 ms CPU in a 694 ms step), and the wall-clock ratio measured how idle
the other core was, not the two implementations. Results are printed as a table and merged
into ``--out`` (JSON keyed by algorithm), written atomically, with the load average before and
after.

    python scripts/bench_vs_dmclrs.py                              # bfs, 150 steps
    python scripts/bench_vs_dmclrs.py --algorithms bfs bellman_ford --steps 500
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _set_threads(threads: int) -> dict[str, str]:
    """Thread environment, set before torch / JAX / TensorFlow are imported."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                                       f"intra_op_parallelism_threads={threads}")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS", "JAX_PLATFORMS")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithms", nargs="+", default=["bfs"], help="CLRS tasks (default: bfs)")
    p.add_argument("--steps", type=int, default=150,
                   help="training steps of each model (default: 150, a few CPU minutes per algorithm on one thread)")
    p.add_argument("--warmup", type=int, default=5,
                   help="first steps left out of the medians for both models (default: 5)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--teacher-forcing", type=float, default=0.0,
                   help="hint teacher forcing of both models (dm-clrs run.py default: 0.0)")
    p.add_argument("--init", choices=("dmclrs", "torch"), default="dmclrs",
                   help="our parameter initialisation (default: dmclrs, Haiku's, as the model we compare to)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-batch-size", type=int, default=32, help="test batch size of both models")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads of torch and XLA, and the number of cores the process is pinned to "
                        "(default: 1)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the process to --threads cores (JAX may then use more cores than torch)")
    p.add_argument("--device", default="cpu", help="torch device for our model (default: cpu)")
    p.add_argument("--out", type=Path, default=Path("leaderboards/runs/bench/bench_vs_dmclrs.json"))
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error(f"--threads must be at least 1, got {a.threads}")
    return a


args = parse_args() if __name__ == "__main__" else None
THREAD_ENV = _set_threads(args.threads if args is not None else 1)
from dear.runtime import pin_cores, tune_allocator  # noqa: E402  (after the thread environment is set)

PINNED_CORES = pin_cores(args.threads) if args is not None and not args.no_pin else None

import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import clrs_tasks as ct  # noqa: E402
from clrs_tasks._clrs import clrs as _clrs  # noqa: E402
from dear.config import TrainConfig  # noqa: E402
from dear.io import atomic_write_text, git_commit, hardware, resolve_device, versions  # noqa: E402
from dear.training import batch_indices, build, load_data, model_loss  # noqa: E402


# --------------------------------------------------------------------------- helpers
def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _quantiles(xs: list[float]) -> dict[str, float] | None:
    if len(xs) < 4:
        return None
    q = statistics.quantiles(xs, n=4)
    return {"p25": q[0], "p50": q[1], "p75": q[2], "min": min(xs), "max": max(xs), "mean": statistics.fmean(xs)}


def _versions() -> dict[str, str]:
    return versions(extra=("jax", "jaxlib", "dm-haiku", "optax", "tensorflow"))


def _shape_key(feedback: Any) -> tuple:
    """The array shapes (and dtypes) JAX's jit cache is keyed on for a feedback batch."""
    import jax  # noqa: PLC0415

    leaves = jax.tree_util.tree_leaves(feedback)
    return tuple((tuple(x.shape), str(x.dtype)) for x in leaves)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- models
def our_config(algorithm: str, a: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        algorithm=algorithm, model="nar-hints", protocol="official", profile="quick", seed=a.seed,
        num_train=None, num_val=None, num_test=None, edge_policy="complete", processor="triplet_gmpnn",
        hidden=a.hidden, steps=a.steps, batch_size=a.batch_size, lr=a.lr, grad_clip=a.grad_clip,
        init=a.init, device=a.device, extra={"teacher_forcing": a.teacher_forcing},
    ).validate()


def dmclrs_params(a: argparse.Namespace, checkpoint_path: str) -> dict[str, Any]:
    """dm-clrs ``run.py``'s model parameters (its flag defaults) with our sizes."""
    c = _clrs()
    return dict(
        processor_factory=c.get_processor_factory("triplet_gmpnn", use_ln=True, nb_triplet_fts=8, nb_heads=1),
        hidden_dim=a.hidden, encode_hints=True, decode_hints=True, encoder_init="xavier_on_scalars",
        use_lstm=False, learning_rate=a.lr, grad_clip_max_norm=a.grad_clip, checkpoint_path=checkpoint_path,
        freeze_processor=False, dropout_prob=0.0, hint_teacher_forcing=a.teacher_forcing,
        hint_repred_mode="soft", nb_msg_passing_steps=1,
    )


def _printable(params: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in params.items() if k not in ("processor_factory", "checkpoint_path")}
    out["processor_factory"] = "clrs.get_processor_factory('triplet_gmpnn', use_ln=True, nb_triplet_fts=8, nb_heads=1)"
    return out


def _concat(trees: list[Any]) -> Any:
    import jax  # noqa: PLC0415

    return jax.tree_util.tree_map(lambda *x: np.concatenate(x, 0), *trees)


# --------------------------------------------------------------------------- one algorithm
def bench_algorithm(algorithm: str, a: argparse.Namespace) -> dict[str, Any]:
    import jax  # noqa: PLC0415

    c = _clrs()
    device = resolve_device(a.device)
    cfg = our_config(algorithm, a)
    t0 = time.perf_counter()
    train_ds = load_data(cfg, "train")
    test_ds = load_data(cfg, "test")
    data_seconds = time.perf_counter() - t0
    print(f"[{algorithm}] data: train {len(train_ds)} graphs n={int(train_ds.num_nodes_per_graph.max())}, "
          f"test {len(test_ds)} graphs n={int(test_ds.num_nodes_per_graph.max())} ({data_seconds:.1f} s)", flush=True)

    def batch_of(step: int):
        idx = batch_indices(len(train_ds), cfg.batch_size, cfg.seed, step)
        return ct.collate([train_ds[int(i)] for i in idx])

    # ours
    torch.manual_seed(cfg.seed)
    ours = build(cfg, train_ds.spec).to(device)
    opt = torch.optim.Adam(ours.parameters(), lr=cfg.lr)
    ours.train()
    ours_params = sum(p.numel() for p in ours.parameters())

    # dm-clrs: the spec of the processed split, initialised on the first training batch
    spec = train_ds.spec.clrs_spec()
    first = ct.to_clrs(batch_of(0))
    tmp = tempfile.mkdtemp(prefix="bench_vs_dmclrs_")
    params = dmclrs_params(a, tmp)
    theirs = c.models.BaselineModel(spec=spec, dummy_trajectory=first, **params)
    t0 = time.perf_counter()
    theirs.init(first.features, cfg.seed + 1)
    init_seconds = time.perf_counter() - t0
    theirs_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(theirs.params)))
    rng_keys = list(jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.steps + 1))
    print(f"[{algorithm}] parameters: ours {ours_params:,}, dm-clrs {theirs_params:,}", flush=True)

    rows: list[dict[str, Any]] = []
    seen: dict[tuple, int] = {}
    load_before = os.getloadavg()
    t_train = time.perf_counter()
    for step in range(cfg.steps):
        # data, untimed: one batch, both layouts, on their devices
        batch = batch_of(step)
        fb = ct.to_clrs(batch)
        key = _shape_key(fb)
        compile_step = key not in seen
        if compile_step:
            seen[key] = step
        fb = jax.device_put(fb)
        jax.block_until_ready(fb)
        batch = batch.to(device)
        T = int(fb.features.hints[0].data.shape[0])

        def run_ours() -> tuple[float, float, float]:
            _sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            loss, _ = model_loss(ours, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(ours.parameters(), cfg.grad_clip)
            opt.step()
            _sync(device)
            w1, c1 = time.perf_counter(), time.process_time()
            return w1 - w0, c1 - c0, float(loss.detach())

        def run_theirs() -> tuple[float, float, float]:
            w0, c0 = time.perf_counter(), time.process_time()
            loss = theirs.feedback(rng_keys[step], fb)
            jax.block_until_ready((loss, theirs._device_params, theirs._device_opt_state))
            w1, c1 = time.perf_counter(), time.process_time()
            return w1 - w0, c1 - c0, float(loss)

        if step % 2 == 0:
            o, t = run_ours(), run_theirs()
        else:
            t, o = run_theirs(), run_ours()
        if not (np.isfinite(o[2]) and np.isfinite(t[2])):
            raise RuntimeError(f"non-finite loss at step {step}: ours {o[2]}, dm-clrs {t[2]}")
        rows.append({"step": step, "T": T, "max_length": int(batch.length.max()), "compile_step": compile_step,
                     "ours_s": o[0], "ours_cpu_s": o[1], "ours_loss": o[2],
                     "dmclrs_s": t[0], "dmclrs_cpu_s": t[1], "dmclrs_loss": t[2]})
        if step % 50 == 0 or step == cfg.steps - 1:
            print(f"[{algorithm}] step {step:4d} T={T:3d} ours {o[0] * 1e3:7.1f} ms loss {o[2]:.4f} | "
                  f"dm-clrs {t[0] * 1e3:8.1f} ms{' (compile)' if compile_step else ''} loss {t[2]:.4f}", flush=True)
    train_wall = time.perf_counter() - t_train
    load_after_train = os.getloadavg()

    timed = [r for r in rows if r["step"] >= a.warmup and not r["compile_step"]]
    compiles = []
    for r in (r for r in rows if r["compile_step"]):
        later = [x["dmclrs_s"] for x in rows if x["T"] == r["T"] and not x["compile_step"]]
        m = _median(later)
        compiles.append({"step": r["step"], "T": r["T"], "first_call_s": r["dmclrs_s"],
                         "later_median_s": m, "compile_estimate_s": r["dmclrs_s"] - m if m is not None else None})
    per_T: dict[str, Any] = {}
    for T in sorted({r["T"] for r in timed}):
        rs = [r for r in timed if r["T"] == T]
        per_T[str(T)] = {"steps": len(rs), "ours_median_s": _median([r["ours_s"] for r in rs]),
                         "dmclrs_median_s": _median([r["dmclrs_s"] for r in rs])}

    # score on the official test split (n=64), final weights
    test_batches = [ct.collate([test_ds[i] for i in range(s, min(s + a.eval_batch_size, len(test_ds)))])
                    for s in range(0, len(test_ds), a.eval_batch_size)]
    t0 = time.perf_counter()
    outs, preds = [], []
    eval_key = jax.random.PRNGKey(cfg.seed + 2)
    for b in test_batches:
        fb = ct.to_clrs(b)
        eval_key, k = jax.random.split(eval_key)
        p, _ = theirs.predict(k, fb.features)
        preds.append(jax.device_get(p))
        outs.append(fb.outputs)
    theirs_test = {k: float(v) for k, v in c.evaluate(_concat(outs), _concat(preds)).items()}
    theirs_eval_s = time.perf_counter() - t0
    # ours: what dear.training.validate does (clrs_tasks.Evaluator on predictions_for_scoring), kept
    # here to report every output's score, not just the mean
    from dear.reasoners import predictions_for_scoring  # noqa: PLC0415

    t0 = time.perf_counter()
    ours.eval()
    ours_eval = ct.Evaluator()
    with torch.no_grad():
        for b in test_batches:
            b = b.to(device)
            out, _ = ours(b)
            ours_eval.add(b.cpu(), {k: v.cpu() for k, v in predictions_for_scoring(b, out).items()})
    ours_test = {k: float(v) for k, v in ours_eval.result().items()}
    ours_eval_s = time.perf_counter() - t0
    load_after = os.getloadavg()

    med = {k: _median([r[k] for r in timed]) for k in ("ours_s", "dmclrs_s", "ours_cpu_s", "dmclrs_cpu_s")}
    ratio = med["ours_s"] / med["dmclrs_s"] if med["ours_s"] and med["dmclrs_s"] else None
    cpu_ratio = med["ours_cpu_s"] / med["dmclrs_cpu_s"] if med["ours_cpu_s"] and med["dmclrs_cpu_s"] else None
    score_gap = ours_test["score"] - theirs_test["score"]
    return {
        "algorithm": algorithm,
        "data": {"protocol": "official", "edge_policy": cfg.edge_policy, "train_graphs": len(train_ds),
                 "train_fingerprint": train_ds.fingerprint, "test_graphs": len(test_ds),
                 "test_fingerprint": test_ds.fingerprint,
                 "train_n": sorted({int(x) for x in train_ds.num_nodes_per_graph.tolist()}),
                 "test_n": sorted({int(x) for x in test_ds.num_nodes_per_graph.tolist()}),
                 "same_batches": "step s: dear.training.batch_indices(seed, s), collated once; dm-clrs gets "
                                 "clrs_tasks.to_clrs of that batch"},
        "ours": {"config": cfg.to_dict(), "parameters": ours_params, "device": str(device)},
        "dmclrs": {"model": "clrs.models.BaselineModel", "params": _printable(params), "parameters": theirs_params,
                   "init_seconds": init_seconds, "spec": {k: list(v) for k, v in spec.items()},
                   "jax_devices": [str(d) for d in jax.devices()]},
        "timing": {
            "method": "per step, interleaved (order alternating), wall perf_counter and process_time around "
                      "forward+backward+update; data prepared and device_put before; JAX blocked on loss, params, "
                      "opt state; medians over the same step indices for both (step >= warmup, not a dm-clrs compile step)",
            "warmup_steps": a.warmup, "timed_steps": len(timed),
            "ours_median_s": med["ours_s"], "dmclrs_median_s": med["dmclrs_s"],
            "ours_cpu_median_s": med["ours_cpu_s"], "dmclrs_cpu_median_s": med["dmclrs_cpu_s"],
            "ours_over_dmclrs_wall": ratio, "ours_over_dmclrs_cpu": cpu_ratio,
            "ours_quantiles_s": _quantiles([r["ours_s"] for r in timed]),
            "dmclrs_quantiles_s": _quantiles([r["dmclrs_s"] for r in timed]),
            "per_T": per_T,
            "dmclrs_compile": {"distinct_shapes": len(compiles), "steps": compiles,
                               "total_first_call_s": sum(x["first_call_s"] for x in compiles),
                               "total_compile_estimate_s": sum(x["compile_estimate_s"] or 0.0 for x in compiles)},
            "train_loop_wall_s": train_wall,
            "samples": rows,
        },
        "score": {"steps": cfg.steps, "weights": "final (no model selection)", "eval_batch_size": a.eval_batch_size,
                  "ours": ours_test["score"], "dmclrs": theirs_test["score"], "ours_minus_dmclrs": score_gap,
                  "ours_outputs": ours_test, "dmclrs_outputs": theirs_test,
                  "ours_eval_s": ours_eval_s, "dmclrs_eval_s_incl_compile": theirs_eval_s},
        "targets": {"ours_no_slower_wall": ratio is not None and ratio <= 1.0,
                    "score_within_2_points": abs(score_gap) <= 0.02},
        "load_average": {"before_train": list(load_before), "after_train": list(load_after_train),
                         "after_eval": list(load_after)},
    }


def table(results: dict[str, Any]) -> str:
    head = (f"{'algorithm':<16} {'steps':>5} {'ours ms':>8} {'dmclrs ms':>9} {'ratio':>6} {'ours cpu':>8} "
            f"{'dm cpu':>7} {'compile s':>9} {'ours score':>10} {'dm score':>8} {'diff':>6}")
    lines = [head, "-" * len(head)]
    for name, r in results.items():
        t, s = r["timing"], r["score"]
        lines.append(f"{name:<16} {s['steps']:>5} {t['ours_median_s'] * 1e3:8.1f} {t['dmclrs_median_s'] * 1e3:9.1f} "
                     f"{t['ours_over_dmclrs_wall']:6.2f} {t['ours_cpu_median_s'] * 1e3:8.1f} "
                     f"{t['dmclrs_cpu_median_s'] * 1e3:7.1f} {t['dmclrs_compile']['total_compile_estimate_s']:9.1f} "
                     f"{s['ours']:10.3f} {s['dmclrs']:8.3f} {s['ours_minus_dmclrs']:+6.3f}")
    lines.append("ms: median per training step (batch 32) over the same steps; ratio: ours / dm-clrs wall; "
                 "cpu: process CPU time; compile: dm-clrs's XLA compile estimate, all shapes; "
                 "score: CLRS test score (n=64) after the same steps")
    return "\n".join(lines)


def main(a: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore", message=".*donated buffers.*")
    warnings.filterwarnings("ignore", message=".*[Dd]onation.*")
    torch.set_num_threads(a.threads)
    # As the dear CLI and the other timing scripts do (recorded as hardware.allocator_tuned; the
    # process-wide malloc setting applies to XLA's host buffers as much as to torch's). Results
    # before 2026-12-01 were measured without it.
    tune_allocator()
    for name in a.algorithms:  # fail early on unknown names, one line listing the known ones
        try:
            ct.get_task(name)
        except ct.UnknownTaskError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    results = {}
    meta = {
        "script": "scripts/bench_vs_dmclrs.py", "argv": sys.argv[1:], "git_commit": git_commit(),
        "versions": _versions(), "hardware": hardware(resolve_device(a.device)),
        "threads": {"env": THREAD_ENV, "torch_intra_op": torch.get_num_threads(),
                    "torch_inter_op": torch.get_num_interop_threads(), "pinned_cores": PINNED_CORES},
        "load_average_start": list(os.getloadavg()),
    }
    for name in a.algorithms:
        results[name] = bench_algorithm(name, a)
        print(table({name: results[name]}), flush=True)
    meta["load_average_end"] = list(os.getloadavg())

    existing: dict[str, Any] = {}
    if a.out.exists():
        try:
            existing = json.loads(a.out.read_text())
        except json.JSONDecodeError:
            existing = {}
    runs = existing.get("runs", {})
    for name, r in results.items():
        runs[name] = {**r, "meta": meta}
    doc = {"description": "dear nar-hints Triplet-GMPNN vs dm-clrs BaselineModel triplet_gmpnn: per-step training "
                          "time (batch 32, hidden 128, n=16) and CLRS test score at equal steps; see "
                          "scripts/bench_vs_dmclrs.py", "runs": runs}
    atomic_write_text(a.out, json.dumps(doc, indent=1))
    print()
    print(table(results))
    print(f"written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(args))
