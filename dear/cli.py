"""The ``dear`` command: train, evaluate and compare reasoners on CLRS tasks; a demo.

User mistakes (unknown algorithm, bad option, missing run directory) print one ``error:`` line
and exit with status 2. Ctrl-C during training saves a checkpoint; the same command resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from dear.config import BACKWARDS, DEAR_STOP_MODES, INITS, LR_SCHEDULES, MODELS, PROCESSORS, PROFILES


def _csv(kind):
    def parse(text: str):
        try:
            return [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__} values, got {text!r}") from None
    return parse


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--protocol", default=None, choices=("official", "dear"), help="data protocol (default: the profile's)")
    p.add_argument("--profile", default="quick", choices=PROFILES,
                   help="quick: one algorithm in minutes on a CPU; paper: the DEAR paper's settings (for a GPU)")
    p.add_argument("--processor", default=None, choices=PROCESSORS,
                   help="message-passing processor (default mpnn: DEAR's gated max-aggregation MPNN)")
    p.add_argument("--init", default=None, choices=INITS,
                   help="parameter initialisation: dmclrs (Haiku's, as dm-clrs's models; quick profile's default) "
                        "or torch (PyTorch's; paper profile's default)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps, exactly (default: the profile's; quick: 600 under its step budget)")
    p.add_argument("--step-budget", type=int, default=None,
                   help="processor-step budget: min(steps, budget / mean trace length) optimiser steps; "
                        "0: none (default: quick 7200, paper none)")
    p.add_argument("--batch-size", type=int, default=None, help="training graphs per optimiser step (default 32)")
    p.add_argument("--hidden", type=int, default=None, help="hidden size of encoders, processor and decoders (default 128)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: quick 1e-3, paper 3e-4)")
    p.add_argument("--lr-schedule", default=None, choices=LR_SCHEDULES,
                   help="constant (default) or cosine: decays --lr to 0 over the run's steps")
    p.add_argument("--num-train", type=int, default=None, help="training samples")
    p.add_argument("--solver", default=None, help="root finder for dear (see dear.solvers.available()); learned: "
                   "IGNN-Solver trained alternately with the model (docs/learned-solver.md)")
    p.add_argument("--solver-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="option of the dear solver, repeatable (e.g. steps=6, keep=0.5 for learned)")
    p.add_argument("--solver-train", action="append", default=[], metavar="KEY=VALUE",
                   help="learned solver training / alternating schedule option, repeatable (warmup_epochs counts "
                   "optimiser steps here; first_steps, every, steps, final_steps, lr, ...)")
    p.add_argument("--tol", type=float, default=None, help="relative residual tolerance for dear")
    p.add_argument("--stop-mode", default=None, choices=DEAR_STOP_MODES,
                   help="what --tol bounds per graph (dear): rel, the graph's relative residual (default, the DEAR "
                   "paper's), or node, the worst node's (the same stop at every graph size; docs/engine.md)")
    p.add_argument("--max-iter", type=int, default=None, help="solver iteration cap in training (dear)")
    p.add_argument("--max-iter-test", type=int, default=None, help="solver iteration cap at test (dear)")
    p.add_argument("--backward", default=None, choices=BACKWARDS, help="gradient through the equilibrium (dear)")
    p.add_argument("--phantom-steps", type=int, default=None,
                   help="damped steps of the phantom gradient (dear, --backward phantom; quick profile 5, "
                        "paper profile 1, the DEAR paper's)")
    p.add_argument("--phantom-tau", type=float, default=None,
                   help="damping of the phantom steps, in (0, 1] (dear; quick profile 0.5, paper profile 1.0)")
    p.add_argument("--jac-reg", type=float, default=None,
                   help="weight of the Jacobian regulariser at the equilibrium (dear; default 1e-4, 0: off); larger "
                   "makes the learnt map more contractive, so solves take fewer iterations")
    p.add_argument("--noise", type=float, default=None,
                   help="std of the Gaussian noise added to the processor's output at every solver iteration in "
                   "training (dear; default 1e-3, 0: off)")
    p.add_argument("--fpc-states", type=int, default=None,
                   help="fixed-point correction (dear): also supervise the outputs decoded from this many "
                   "intermediate solver iterates, weighted --fpc-gamma ** (distance from the end) (default 0: off)")
    p.add_argument("--fpc-gamma", type=float, default=None,
                   help="decay of the fixed-point correction's weights, in (0, 1] (dear; default 0.8)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="optimiser steps between validations; the best-by-validation checkpoint is kept "
                   "(default: quick 100, paper one epoch, 312)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")


def _add_alignment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--align-weight", type=float, default=None,
                   help="weight of DEAR's alignment regulariser (the paper: 0.01); needs --align-teacher")
    p.add_argument("--align-teacher", default=None, metavar="NAR_RUN_DIR",
                   help="a finished no-hint nar run of the same algorithm and hidden size whose trajectory "
                   "DEAR's solver trajectory is matched to (dear only)")


def _key_values(items: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings to a dict (:func:`dear.config.parse_key_value`)."""
    from dear.config import parse_key_value  # noqa: PLC0415

    return dict(parse_key_value(item) for item in items or [])


def _config_from(args: argparse.Namespace, **fixed):
    from dear.config import profile_config  # noqa: PLC0415

    solver_opts = _key_values(getattr(args, "solver_opt", []))
    if solver_opts:
        fixed.setdefault("extra", {})["solver_options"] = solver_opts
    solver_train = _key_values(getattr(args, "solver_train", []))
    if solver_train:
        fixed["solver_training"] = solver_train
    return profile_config(
        args.profile, protocol=args.protocol, processor=args.processor, init=getattr(args, "init", None),
        steps=args.steps, step_budget=args.step_budget, batch_size=args.batch_size,
        hidden=args.hidden, lr=args.lr, lr_schedule=getattr(args, "lr_schedule", None), num_train=args.num_train,
        solver=args.solver, tol=args.tol, stop_mode=getattr(args, "stop_mode", None),
        max_iter=args.max_iter, max_iter_test=args.max_iter_test, backward=args.backward,
        jac_reg=getattr(args, "jac_reg", None), noise=getattr(args, "noise", None),
        phantom_steps=getattr(args, "phantom_steps", None), phantom_tau=getattr(args, "phantom_tau", None),
        fpc_states=getattr(args, "fpc_states", None), fpc_gamma=getattr(args, "fpc_gamma", None),
        eval_every=args.eval_every, device=args.device, align_weight=getattr(args, "align_weight", None),
        align_teacher=getattr(args, "align_teacher", None), **fixed,
    )


def _settings_given(args: argparse.Namespace, only: frozenset[str] | None = None) -> list[str]:
    """The training-setting flags of ``args`` that differ from their defaults (``--seed`` included);
    with ``only``, just those whose destination is in it."""
    probe = argparse.ArgumentParser(add_help=False)
    _add_train_options(probe)
    _add_alignment_options(probe)
    flags = [(a.dest, a.option_strings[0]) for a in probe._actions]
    flags.append(("seed", "--seed"))
    return [flag for dest, flag in flags
            if (only is None or dest in only) and getattr(args, dest, None) != probe.get_default(dest)]


def _refuse_dear_only_settings(args: argparse.Namespace, models: Sequence[str], flag: str = "--model") -> None:
    """``dear train --model nar --solver learned`` would train a NAR that never reads the solver
    and record a config that says it used one (``dear compare --models nar,nar-hints --tol 0.05``
    would silently ignore it): refuse DEAR's own settings when no model given is ``dear``."""
    from dear.config import DEAR_ONLY_FIELDS, ConfigError  # noqa: PLC0415

    if "dear" in models:
        return
    given = _settings_given(args, only=DEAR_ONLY_FIELDS | {"solver_opt", "solver_train"})
    if given:
        them = "it" if len(given) == 1 else "them"
        named = f"{flag} {','.join(models)} {'is' if len(models) == 1 else 'are'}"
        raise ConfigError(f"only --model dear reads {', '.join(given)} (DEAR's solver, gradient and "
                          f"regularisers); {named} unrolled: drop {them} or add dear")


def _saved_run_config(args: argparse.Namespace):
    """``dear train --out DIR`` alone: the config of the run DIR holds, to resume it or, where
    its checkpoints are missing (a run committed under leaderboards/runs/, whose weights are not
    committed), to train it again from the start with the settings and seed it was made with."""
    from dear.config import ConfigError, TrainConfig  # noqa: PLC0415

    if args.algorithm is not None or args.model is not None:
        raise ConfigError("give both --algorithm and --model to start a run, or neither to resume or "
                          "rebuild the run --out holds")
    cfg_path = Path(args.out) / "config.json"
    if not cfg_path.exists():
        raise ConfigError(f"--out {args.out} holds no run (no config.json); give --algorithm and --model to start one")
    given = _settings_given(args)
    if given:
        raise ConfigError(f"without --algorithm and --model the run's config.json fixes every setting; drop "
                          f"{', '.join(given)}, or start another run with --algorithm, --model and another --out")
    cfg = TrainConfig.load(cfg_path)
    _note_other_numerics(Path(args.out), cfg.device)
    return cfg


def _note_other_numerics(run_dir: Path, device: str) -> None:
    """Before a finished run without its weights (a committed run) is trained again: say when
    this machine's numerics or this checkout's code differ from its record (:func:`dear.io.rebuild_notes`)."""
    import json  # noqa: PLC0415

    from dear.io import rebuild_notes  # noqa: PLC0415

    if (run_dir / "checkpoint_last.pt").exists():
        return  # a resume: training reports a change of numerics itself
    try:
        summary = json.loads((run_dir / "train_summary.json").read_text())
    except (OSError, ValueError):
        return
    for note in rebuild_notes(run_dir, summary if isinstance(summary, dict) else {}, device):
        print(note, file=sys.stderr)


def cmd_train(args: argparse.Namespace) -> int:
    from dear.training import train  # noqa: PLC0415

    if args.algorithm is None or args.model is None:
        cfg = _saved_run_config(args)
    else:
        _refuse_dear_only_settings(args, [args.model])
        cfg = _config_from(args, algorithm=args.algorithm, model=args.model,
                           seed=0 if args.seed is None else args.seed)
    from dear.distributed import is_main  # noqa: PLC0415

    res = train(cfg, Path(args.out), progress=not args.quiet)  # DDP over all ranks under torchrun
    if is_main():
        print(f"{cfg.algorithm}/{cfg.model} seed {cfg.seed}: {res.steps} steps; best validation at step "
              f"{res.best_step}: loss {res.best_val['loss']:.4f}, score {res.best_val['score']:.3f}; run in {args.out}")
    return 0


def _add_timing_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=_positive_int, default=5, help="timed passes over the test set (median reported)")
    p.add_argument("--warmup", type=_non_negative_int, default=1,
                   help="untimed passes after the scoring pass (which already runs every batch once)")


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def cmd_evaluate(args: argparse.Namespace) -> int:
    from dear.evaluate import evaluate_run, format_results  # noqa: PLC0415

    res = evaluate_run(Path(args.run_dir), sizes=args.sizes, tol=args.tol, stop_mode=args.stop_mode,
                       device=args.device or "auto", repeats=args.repeats, warmup=args.warmup, progress=not args.quiet)
    print(format_results(res))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from dear.compare import Timing, compare, format_table  # noqa: PLC0415

    base = _config_from(args)
    res = compare(base, args.algorithms, args.models, args.seeds, Path(args.out), sizes=args.sizes,
                  tol_sweep=args.tol_sweep, progress=not args.quiet, workers=args.workers,
                  timing=Timing(repeats=args.repeats, warmup=args.warmup))
    if res is None:  # a torchrun rank other than 0: rank 0 prints the table
        return 0
    print(format_table(res))
    print(f"wrote {Path(args.out) / 'compare.json'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dear.compare import compare, format_table  # noqa: PLC0415
    from dear.config import profile_config  # noqa: PLC0415

    base = profile_config("quick", steps=args.steps, num_train=args.num_train, num_test=args.num_test,
                          eval_every=max(1, args.steps // 4))
    print(f"demo: DEAR vs NAR on {args.algorithm} ({args.steps} steps each, {args.num_train} training graphs, "
          f"DEAR protocol; {args.num_test} test graphs at n=64; DEAR also at tolerances 0.3 and 0.03)")
    res = compare(base, [args.algorithm], ["dear", "nar"], 1, Path(args.out), tol_sweep=(0.3, 0.03))
    if res is not None:  # None on torchrun ranks other than 0
        print(format_table(res))
    return 0


#: The commands defined here whose path arguments are checked up front (:func:`_check_paths`).
_PATH_COMMANDS = ("train", "evaluate", "compare", "demo")


def _check_paths(args: argparse.Namespace) -> None:
    """Refuse path arguments that would go wrong silently or with a traceback: an empty one
    (an unset shell variable: the current directory would become the run) and an ``--out``
    that is, or lies under, an existing file (no run directory can be made there)."""
    from dear.config import ConfigError  # noqa: PLC0415

    for attr, flag in (("out", "--out"), ("run_dir", "RUN_DIR"), ("align_teacher", "--align-teacher")):
        value = getattr(args, attr, None)
        if value is not None and not str(value).strip():
            raise ConfigError(f"{flag} is empty; give a directory")
    out = getattr(args, "out", None)
    if out is not None:
        for p in (Path(out), *Path(out).parents):
            if p.exists():
                if not p.is_dir():
                    raise ConfigError(f"--out {out}: {p} is a file, not a directory; give a directory for the run")
                break


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dear",
        description="Deep Equilibrium Algorithmic Reasoners: train, evaluate and compare equilibrium and "
        "unrolled reasoners on CLRS-30 (data: see `clrs-tasks`).",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", help="train one model on one algorithm (resumable)",
                       description="Train one model on one algorithm into --out (resumable: the same command "
                       "continues an interrupted run). `dear train --out DIR` alone resumes the run DIR holds "
                       "with the settings of its config.json, or trains it again from the start where its "
                       "checkpoints are missing (runs committed under leaderboards/runs/ keep results, not weights).")
    p.add_argument("--algorithm", default=None, help="required to start a run")
    p.add_argument("--model", default=None, choices=MODELS, help="required to start a run")
    p.add_argument("--seed", type=int, default=None, help="default 0")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_train_options(p)
    _add_alignment_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run; writes RUN_DIR/results.json (adding to the sizes there)")
    p.add_argument("run_dir", help="a finished `dear train` run directory")
    p.add_argument("--sizes", type=_csv(int), default=None,
                   help="test sizes, e.g. 64,128 (default: the protocol's); added to the run's results.json, "
                   "replacing only these sizes")
    p.add_argument("--tol", type=float, default=None,
                   help="override DEAR's solver tolerance (a finite number > 0; writes results_tol<TOL>.json)")
    p.add_argument("--stop-mode", default=None, choices=DEAR_STOP_MODES,
                   help="override what DEAR's tolerance bounds (rel or node; writes results_stop<MODE>.json, "
                   "results_stop<MODE>_tol<TOL>.json with --tol)")
    _add_timing_options(p)
    p.add_argument("--device", default=None, help="auto (default: CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="DEAR vs NAR side by side (trains what is missing)")
    p.add_argument("--algorithms", type=_csv(str), required=True, help="comma-separated, e.g. bfs,bellman_ford")
    p.add_argument("--models", type=_csv(str), default=["dear", "nar"],
                   help=f"comma-separated, of {', '.join(MODELS)} (default: dear,nar)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per algorithm and model: 0..N-1 (default 1)")
    p.add_argument("--sizes", type=_csv(int), default=None, help="test sizes, e.g. 64,128 (default: the protocol's)")
    p.add_argument("--tol-sweep", type=_csv(float), default=[0.5, 0.2, 0.1, 0.05],
                   help="DEAR test tolerances for the speed/accuracy sweep (default 0.5,0.2,0.1,0.05; empty: none)")
    p.add_argument("--out", default="runs/compare", help="where runs and compare.json go (default runs/compare); "
                   "finished runs there are reused")
    p.add_argument("--workers", type=int, default=1,
                   help="processes training and evaluating runs in parallel, one GPU each when several are "
                   "visible (default 1; under torchrun each rank is a worker). See docs/scale-out.md")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_timing_options(p)
    _add_train_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("demo", help="a small DEAR vs NAR comparison on one algorithm (minutes on a CPU)")
    p.add_argument("--algorithm", default="bfs", help="default bfs")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps per model (default 300)")
    p.add_argument("--num-train", type=int, default=500, help="training graphs (default 500)")
    p.add_argument("--num-test", type=int, default=32, help="test graphs at n=64 (the full DEAR protocol uses 100)")
    p.add_argument("--out", default="runs/demo", help="where the two runs go (default runs/demo)")
    p.set_defaults(func=cmd_demo)

    from dear.nodecls.cli import register_cli  # noqa: PLC0415

    register_cli(sub)
    from dear.leaderboard.cli import register_cli as register_leaderboard_cli  # noqa: PLC0415

    register_leaderboard_cli(sub)
    from dear.pareto import register_cli as register_pareto_cli  # noqa: PLC0415

    register_pareto_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before a command runs (building the parser imports torch, PyG and every
        # subcommand: seconds): nothing was started, so nothing to keep or resume.
        print("interrupted before anything started", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from dear.runtime import tune_allocator  # noqa: PLC0415

    tune_allocator()  # large CPU tensors: reuse freed blocks (dear/runtime.py; DEAR_MALLOC_TUNING=0 opts out)
    if args.version:
        from dear import __version__  # noqa: PLC0415

        print(__version__)
        return 0
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if getattr(args, "command", None) == "compare":
        from clrs_tasks import get_task  # noqa: PLC0415
        from dear.config import ConfigError  # noqa: PLC0415

        try:
            for a in args.algorithms:
                get_task(a)
            bad = [m for m in args.models if m not in MODELS]
            if bad:
                raise ConfigError(f"unknown model {bad[0]!r}; valid: {', '.join(MODELS)}")
            _refuse_dear_only_settings(args, args.models, "--models")
        except (KeyError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    try:
        if args.command in _PATH_COMMANDS:
            _check_paths(args)
        return args.func(args)
    # our errors (config, run, task) are ValueErrors; the OSErrors are paths that cannot be used
    except (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError, IsADirectoryError,
            PermissionError) as e:
        if os.environ.get("DEAR_DEBUG"):
            raise
        print(f"error: {e} (set DEAR_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        # dear train (also inside compare/demo) stops at a step boundary and its message says
        # what it saved; any other interrupt gets the generic line
        signum = getattr(e, "signum", None)
        message = str(e) or "interrupted; finished runs and checkpoints are kept, run the same command to resume"
        print(f"interrupted: {message}" if str(e) else message, file=sys.stderr)
        return 128 + (signum or 2)  # 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
    sys.exit(main())
