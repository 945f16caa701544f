"""The ``dear nodecls`` command: ``dear nodecls train --dataset NAME --model MODEL --out DIR``,
or ``dear nodecls train --out DIR`` alone to resume or rebuild the run DIR holds.

:func:`register_cli` adds the command to the main ``dear`` parser. Building the parser imports
nothing heavy (no torch, no PyG); the handler imports what it needs. User mistakes raise
``ValueError`` subclasses (or ``DatasetNotFoundError``) whose message is one line, which the
main CLI prints as ``error: ...``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["MODEL_CHOICES", "SOLVER_CHOICES", "build_config", "cmd_train", "register_cli", "saved_run_config"]

# Listed here (not imported) so that building the parser stays cheap; a test checks they match
# the registries.
MODEL_CHOICES = ("ignn", "gcn", "gat", "sgc", "appnp", "jknet", "gcnii", "mlp")
SOLVER_CHOICES = ("picard", "anderson", "broyden", "learned", "learned_nn")
# What says where things are or run, not what is trained: the only flags `--out DIR` alone takes.
_LOCATION_FLAGS = ("out", "quiet", "device", "data_root", "cache_dir")


def _split(text: str) -> int | float | str:
    """``60`` -> 60, ``0.06`` -> 0.06, ``public`` -> "public"."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _key_value(text: str) -> tuple[str, Any]:
    """argparse type for ``KEY=VALUE`` (:func:`dear.config.parse_key_value`)."""
    from dear.config import ConfigError, parse_key_value  # noqa: PLC0415

    try:
        return parse_key_value(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``nodecls`` (with its ``train`` subcommand) to ``subparsers``; returns its parser."""
    nodecls = subparsers.add_parser(
        "nodecls", help="node classification: IGNN and explicit GNN baselines",
        description="Node classification with the implicit IGNN (solved by the dear engine) and "
        "PyG baselines. See docs/nodecls.md.",
    )
    sub = nodecls.add_subparsers(dest="nodecls_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser(
        "train", help="train one model on one dataset for several seeds; writes OUT/results.json",
        description="Full-batch training with early stopping on validation accuracy; the best "
        "validation checkpoint is tested. Finished seeds in OUT are skipped on rerun.",
    )
    _add_train_arguments(p)
    p.set_defaults(func=cmd_train)
    return nodecls


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``dear nodecls train``."""
    p.add_argument("--dataset", default=None,
                   help="e.g. amgcn:citeseer (see dear.nodecls.available_datasets()); without it, "
                   "`--out DIR` alone resumes or rebuilds the run DIR holds with the settings its results.json records")
    p.add_argument("--model", default="ignn", choices=MODEL_CHOICES,
                   help="ignn (default): the implicit GNN; the others are explicit baselines")
    p.add_argument("--solver", default=None, choices=SOLVER_CHOICES,
                   help="ignn forward/adjoint solver (default: picard); learned / learned_nn: IGNN-Solver, trained "
                   "alternately with the model (docs/learned-solver.md)")
    p.add_argument("--solver-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="solver option, repeatable (e.g. m=6 for anderson; steps=8, keep=0.5 for learned)")
    p.add_argument("--solver-train", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="learned solver training / alternating schedule option, repeatable "
                   "(warmup_epochs, first_steps, every, steps, final_steps, unroll, lr, ...; node "
                   "classification defaults: first_steps=8 every=100 steps=2 unroll=2, the rest as "
                   "SolverTrainConfig)")
    p.add_argument("--seeds", type=int, default=5, help="number of model seeds (default: 5)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed .. first-seed + seeds - 1 (default: 0)")
    p.add_argument("--out", required=True, help="output directory (results.json, seeds/)")
    p.add_argument("--split", type=_split, default=None, help="dataset split (default: the dataset's standard one)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the validation draw (default: 0)")
    p.add_argument("--data-root", default=None, help="data directory (default: $DEAR_DATA)")
    p.add_argument("--cache-dir", default=None, help="dataset cache (default: $DEAR_CACHE or ~/.cache/dear)")
    p.add_argument("--data-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (e.g. num_nodes=1000 for sbm)")
    p.add_argument("--epochs", type=int, default=500, help="maximum epochs (default: 500)")
    p.add_argument("--patience", type=int, default=100, help="early-stopping patience in epochs (default: 100)")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default: 0.01)")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="L2 weight decay (default: 5e-4)")
    p.add_argument("--normalize-features", default="auto", choices=("auto", "yes", "no"),
                   help="row-normalise features; auto: only non-negative ones (default: auto)")
    p.add_argument("--sparse-features", default="auto", choices=("auto", "yes", "no"),
                   help="store features as CSR; auto: when under 5%% are non-zero and the model's "
                        "first layer is linear (default: auto)")
    p.add_argument("--hidden", type=int, default=None, help="hidden width (default: the model's)")
    p.add_argument("--dropout", type=float, default=None, help="dropout (default: the model's)")
    p.add_argument("--num-layers", type=int, default=None, help="layers; implicit layers for ignn")
    p.add_argument("--kappa", type=float, default=None, help="ignn: ||W||_inf <= kappa/lambda_pf; 0 = off (default: 0.9)")
    p.add_argument("--tol", type=float, default=None, help="ignn: relative residual tolerance (default: 3e-6)")
    p.add_argument("--max-iter", type=int, default=None, help="ignn: solver iteration cap (default: 300)")
    p.add_argument("--model-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="any other model option, repeatable (e.g. heads=4 for gat)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--timing-repeats", type=int, default=10, help="timed inference passes (median)")
    p.add_argument("--timing-warmup", type=int, default=3, help="untimed passes before timing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    large = p.add_argument_group("large graphs (docs/scale-out.md); default: full-batch training")
    large.add_argument("--sampler", default=None, choices=("random", "cluster"),
                       help="train on induced subgraphs of node partitions: random (no extra packages) or "
                       "cluster (METIS, needs pyg-lib or torch-sparse)")
    large.add_argument("--num-parts", type=int, default=None, help="partitions of the graph (default: 8)")
    large.add_argument("--parts-per-step", type=int, default=None,
                       help="parts per optimiser step, shared by the torchrun processes (default: their number)")
    large.add_argument("--eval-mode", default=None, choices=("full", "parts"),
                       help="validate and test on the full graph (default) or part by part")


def build_config(args: argparse.Namespace):
    """The :class:`~dear.nodecls.train.NodeClsConfig` described by parsed arguments."""
    from dear.nodecls.train import NodeClsConfig  # noqa: PLC0415

    model_opts = dict(args.model_opt)
    solver_opts = dict(getattr(args, "solver_opt", []) or [])
    if solver_opts:
        given = model_opts.get("solver_options")
        if given is not None and not isinstance(given, dict):
            from dear.nodecls.train import NodeClsConfigError  # noqa: PLC0415

            raise NodeClsConfigError(f"model option solver_options={given!r} must be a JSON object ({{...}}) or null")
        model_opts["solver_options"] = {**(given or {}), **solver_opts}
    return NodeClsConfig(
        dataset=args.dataset, model=args.model, split=args.split, data_seed=args.data_seed,
        data_root=args.data_root, cache_dir=args.cache_dir, dataset_options=dict(args.data_opt),
        seeds=args.seeds, first_seed=args.first_seed, epochs=args.epochs, patience=args.patience,
        lr=args.lr, weight_decay=args.weight_decay, normalize_features=args.normalize_features, sparse_features=args.sparse_features,
        hidden=args.hidden, dropout=args.dropout, num_layers=args.num_layers, solver=args.solver,
        tol=args.tol, max_iter=args.max_iter, kappa=args.kappa, model_options=model_opts,
        solver_training=dict(getattr(args, "solver_train", []) or []),
        device=args.device, timing_warmup=args.timing_warmup, timing_repeats=args.timing_repeats,
        sampler=getattr(args, "sampler", None), num_parts=getattr(args, "num_parts", None),
        parts_per_step=getattr(args, "parts_per_step", None), eval_mode=getattr(args, "eval_mode", None),
    ).validate()


def _train_parser() -> argparse.ArgumentParser:
    """A fresh ``dear nodecls train`` parser, to read its defaults."""
    p = argparse.ArgumentParser(add_help=False)
    _add_train_arguments(p)
    return p


def saved_run_config(args: argparse.Namespace):
    """``dear nodecls train --out DIR`` alone: the configuration the run in DIR was made with
    (its ``results.json`` ``config``), to finish its missing seeds or, where their weights are
    missing (runs committed under leaderboards/runs/ keep results, not weights), to train them
    again. Only flags that say where data, cache and device are may be given beside it; a
    setting flag would silently start another configuration, so it is refused.

    Raises:
        NodeClsConfigError: no run in DIR, setting flags given, or an unreadable results file.
    """
    import dataclasses  # noqa: PLC0415
    import json  # noqa: PLC0415

    from dear.nodecls.train import NodeClsConfig, NodeClsConfigError  # noqa: PLC0415

    parser = _train_parser()
    given = [a.option_strings[0] for a in parser._actions
             if a.option_strings and a.dest not in _LOCATION_FLAGS
             and getattr(args, a.dest, None) != parser.get_default(a.dest)]
    if given:
        raise NodeClsConfigError(f"without --dataset the run's results.json fixes every setting; drop "
                                 f"{', '.join(given)}, or give --dataset to start a run (with another --out)")
    path = Path(args.out) / "results.json"
    if not path.is_file():
        raise NodeClsConfigError(f"--out {args.out} holds no node-classification run (no results.json); "
                                 "give --dataset (and --model, ...) to start one")
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NodeClsConfigError(f"{path} is not readable JSON ({e})") from None
    cfg = NodeClsConfig.from_results(results, path)
    where = {k: getattr(args, k) for k in ("device", "data_root", "cache_dir")
             if getattr(args, k) != parser.get_default(k)}
    cfg = dataclasses.replace(cfg, **where).validate() if where else cfg
    _note_other_numerics(Path(args.out), results, cfg)
    return cfg


def _note_other_numerics(run_dir: Path, results: dict[str, Any], cfg: Any) -> None:
    """Before seeds whose weights are missing are trained again (a committed run): say when this
    machine's numerics or this checkout's code differ from the run's record, as those seeds will
    then be other samples (:func:`dear.io.rebuild_notes`)."""
    import sys  # noqa: PLC0415

    from dear.io import rebuild_notes  # noqa: PLC0415
    from dear.nodecls.train import seed_files  # noqa: PLC0415

    seeds = [r.get("seed") for r in results.get("per_seed") or [] if isinstance(r, dict)]
    if not any(not seed_files(run_dir, s)[1].exists() for s in seeds if isinstance(s, int)):
        return
    for note in rebuild_notes(run_dir, results, cfg.device):
        print(note, file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    """Handler of ``dear nodecls train``: run, then print a one-line summary."""
    from dear.nodecls.train import run  # noqa: PLC0415

    cfg = build_config(args) if args.dataset is not None else saved_run_config(args)
    try:
        res = run(cfg, Path(args.out), progress=not args.quiet)
    except KeyboardInterrupt:
        # The main CLI's generic message speaks of CLRS checkpoints; here only whole seeds are
        # saved (seeds/seed_<k>.json and .pt), and an interrupted seed starts again at epoch 1.
        import sys  # noqa: PLC0415

        print(f"interrupted; finished seeds are kept in {Path(args.out) / 'seeds'}, the seed in progress "
              "restarts from its first epoch: run the same command to resume", file=sys.stderr)
        return 130
    acc, secs = res["test_accuracy"], res["inference_seconds"]["median"]
    line = (f"{res['dataset']} (split {res['split']}) {res['model']}"
            f"{' [' + res['solver'] + ']' if res['solver'] else ''}: test {res['metric']} "
            f"{acc['mean']:.2f} +- {acc['std']:.2f} over {len(res['seeds'])} seed(s); "
            f"inference {secs * 1e3:.2f} ms")
    if res["iterations"] is not None:
        line += f", {res['iterations']['mean']:.1f} solver iterations"
    learned = [r["learned_solver"] for r in res["per_seed"] if r.get("learned_solver")]
    if learned:
        frac = sum(r["fraction_of_model_training"] for r in learned) / len(learned)
        rates = [r["inference"]["fallback_rate"] for r in learned if r["inference"]["fallback_rate"] is not None]
        line += f" (solver training {100 * frac:.1f}% of model training"
        cut = [r["last_fit"] for r in learned if (r.get("last_fit") or {}).get("stopped_by_budget")]
        if cut:  # the max_share cap shortened the last fit of some seeds
            lo, hi = min(c["steps"] for c in cut), max(c["steps"] for c in cut)
            line += (f"; last fit cut to {lo if lo == hi else f'{lo}-{hi}'} of {cut[0]['planned_steps']} steps by the "
                     f"{100 * learned[0]['config']['max_share']:g}% cap in {len(cut)} seed(s)")
        line += f", fallback in {100 * sum(rates) / len(rates):.0f}% of inference solves)" if rates else ")"
    from dear.distributed import is_main  # noqa: PLC0415

    if is_main():  # under torchrun every rank returns the results; one prints them
        print(line + f"; wrote {Path(args.out) / 'results.json'}")
    return 0
