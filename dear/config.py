"""Training configuration: a typed dataclass, profiles, a JSON file format, CLI overrides.

Every run writes its fully resolved configuration to ``RUN_DIR/config.json``; a run directory
can be resumed or evaluated from that file alone.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

MODELS = ("dear", "nar", "nar-hints", "nar-lt")
PROCESSORS = ("mpnn", "triplet_gmpnn", "gatv2")
BACKWARDS = ("phantom", "ift", "unroll")
# parameter initialisation schemes (dear.reasoners.init implements them)
INITS = ("torch", "dmclrs")
PROFILES = ("quick", "paper")
LR_SCHEDULES = ("constant", "cosine")


class ConfigError(ValueError):
    """A configuration mistake: names the field and the valid choices."""


#: Spellings :func:`parse_key_value` reads as booleans, case-insensitively (JSON alone knows only
#: lower-case ``true``/``false``; ``False`` or ``no`` would otherwise stay a truthy string).
BOOL_WORDS = {"true": True, "yes": True, "false": False, "no": False}


def parse_key_value(text: str) -> tuple[str, Any]:
    """A command-line ``KEY=VALUE`` option: the key with dashes as underscores, the value read
    as JSON when it parses (numbers, true/false, lists), ``true``/``false``/``yes``/``no`` in any
    case as booleans, else kept as the string. Whether the value has the type the option
    needs is checked where it is used (:func:`check_option_types`)."""
    if "=" not in text:
        raise ConfigError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if value.strip().lower() in BOOL_WORDS:
        return key, BOOL_WORDS[value.strip().lower()]
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _expected_types(annotation: Any, default: Any) -> tuple[set[type], bool] | None:
    """The plain types a parameter accepts (``bool``, ``int``, ``float``, ``str``, ``dict``,
    ``list``) and whether ``None`` is allowed, from its annotation (evaluated or a string), or
    from its default's type when unannotated; ``None`` when nothing can be said (``Any``,
    callables, unknown classes: those options are left to the target to check)."""
    import inspect  # noqa: PLC0415
    import types  # noqa: PLC0415
    import typing  # noqa: PLC0415

    plain = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict, "list": list, "tuple": list,
             "Mapping": dict, "Sequence": list}
    if annotation is inspect.Parameter.empty:
        if isinstance(default, (bool, int, float, str)):
            return {type(default)}, False
        return None
    if isinstance(annotation, str):  # not evaluable here: read the simple spellings
        names = [part.strip().split("[")[0].split(".")[-1] for part in annotation.split("|")]
        allowed = {plain.get(n) for n in names if n not in ("None", "Optional")}
        if None in allowed or not allowed:
            return None
        return allowed, "None" in names
    args = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = list(typing.get_args(annotation))
    allowed = set()
    none_ok = False
    for a in args:
        if a is type(None):
            none_ok = True
            continue
        origin = typing.get_origin(a) or a
        if origin in (bool, int, float, str):
            allowed.add(origin)
        elif isinstance(origin, type) and issubclass(origin, (dict, collections.abc.Mapping)):
            allowed.add(dict)
        elif isinstance(origin, type) and issubclass(origin, (list, tuple, collections.abc.Sequence)) \
                and not issubclass(origin, str):
            allowed.add(list)
        else:
            return None  # Any, a class, a callable: not ours to judge
    return (allowed, none_ok) if allowed else None


def _describe(allowed: set[type], none_ok: bool) -> str:
    words = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
             dict: "a JSON object ({...})", list: "a JSON list ([...])"}
    order = [bool, int, float, str, dict, list]
    kinds = [words[t] for t in order if t in allowed and not (t is int and float in allowed)]
    if none_ok:
        kinds.append("null")
    return " or ".join(kinds)


def value_matches(value: Any, allowed: set[type], none_ok: bool) -> bool:
    """Whether ``value`` is one of ``allowed`` (an int passes for a float, a bool never for a
    number; floats must be finite), or ``None`` where allowed."""
    if value is None:
        return none_ok
    if isinstance(value, bool):
        return bool in allowed
    if isinstance(value, int):
        return int in allowed or float in allowed
    if isinstance(value, float):
        return float in allowed and math.isfinite(value)
    if isinstance(value, str):
        return str in allowed
    if isinstance(value, Mapping):
        return dict in allowed
    if isinstance(value, (list, tuple)):
        return list in allowed
    return False


def check_option_types(target: Any, options: Mapping[str, Any], what: str) -> None:
    """Check ``options`` against the keyword parameters of ``target`` (a function, a class or
    a dataclass): every value must have the type the parameter's annotation (or, unannotated,
    its default) says. Options the target does not name, and parameters typed ``Any`` or with
    a class type, are not judged here.

    Why: options arrive from ``KEY=VALUE`` strings and JSON files, and a value of the wrong
    type either fails deep inside (a traceback from a tensor constructor) or, worse, is used
    (the string ``"False"`` is truthy). One check at the boundary names the option instead.

    Raises:
        ConfigError: ``"{what} option NAME=VALUE must be TYPE"``, for the first bad option.
    """
    import inspect  # noqa: PLC0415

    try:
        sig = inspect.signature(target, eval_str=True)
    except Exception:  # noqa: BLE001  annotations naming what only type checkers import
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):
            return
    params = sig.parameters
    for name, value in options.items():
        p = params.get(name)
        if p is None or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        expected = _expected_types(p.annotation, p.default)
        if expected is None:
            continue
        allowed, none_ok = expected
        none_ok = none_ok or (p.default is None and p.default is not inspect.Parameter.empty)
        if not value_matches(value, allowed, none_ok):
            shown = json.dumps(value) if value is None or isinstance(value, bool) else repr(value)
            raise ConfigError(f"{what} option {name}={shown} must be {_describe(allowed, none_ok)}")


#: Stopping rules a DEAR run may use (:data:`dear.solvers.base.STOP_MODES` less ``"abs"``, whose
#: tolerance would depend on the hidden states' scale).
DEAR_STOP_MODES = ("rel", "node")

#: Config fields :func:`dear.training.build` passes to the ``dear`` model as keyword options.
DEAR_MODEL_OPTIONS = ("solver", "tol", "stop_mode", "max_iter", "max_iter_test", "backward", "phantom_steps",
                      "phantom_tau", "jac_reg", "noise", "fpc_states", "fpc_gamma")
#: Fields only the ``dear`` model reads: its model options plus the alignment regulariser and the
#: learned-solver training. Two runs of another model that differ only in these are the same
#: run: ``dear compare`` reuses an unrolled baseline when only DEAR's settings changed.
DEAR_ONLY_FIELDS = frozenset(DEAR_MODEL_OPTIONS) | {"align_weight", "align_teacher", "solver_training"}


@dataclass
class TrainConfig:
    """Everything that defines a training run. Defaults are the ``quick`` profile's, except the
    fields :func:`profile_config` sets per profile (``init``, ``step_budget``, and the quick
    profile's 5-step phantom gradient): build configs with it."""

    algorithm: str = "bfs"
    model: str = "dear"
    protocol: str = "dear"
    profile: str = "quick"
    seed: int = 0
    # data
    num_train: int | None = 2000  # None: the protocol's own count
    num_val: int | None = None
    num_test: int | None = None
    edge_policy: str = "adjacency"
    # model
    processor: str = "mpnn"
    hidden: int = 128
    # parameter initialisation: "torch" (PyTorch's defaults) or "dmclrs" (Haiku's, as dm-clrs's
    # models; trains markedly faster on Bellman-Ford, see dear.reasoners.init)
    init: str = "torch"
    # optimisation
    steps: int = 600  # optimiser steps (at most; see step_budget)
    # Processor-step budget: when set, a run takes min(steps, round(step_budget / L)) optimiser
    # steps, L the mean number of processor steps the unrolled baseline takes per training
    # graph (trace length - 1); the same for every model of an algorithm (resolved_steps).
    step_budget: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    # "constant", or "cosine": lr * (1 + cos(pi * step / steps)) / 2, a pure function of the
    # step (so a resumed run continues the same curve)
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    # equilibrium (dear)
    solver: str = "anderson"
    tol: float = 0.1
    # what tol bounds, per graph (dear.solvers.graph_residual): "rel" (the DEAR paper's: the whole
    # graph's relative residual) or "node" (the worst node's, which does not loosen with graph size)
    stop_mode: str = "rel"
    max_iter: int = 40
    max_iter_test: int = 160
    backward: str = "phantom"
    phantom_steps: int = 1
    phantom_tau: float = 1.0
    jac_reg: float = 1e-4
    noise: float = 1e-3
    # fixed-point correction (dear): supervise the outputs of this many intermediate solver
    # iterates too, weighted fpc_gamma ** (distance from the end); 0: off
    fpc_states: int = 0
    fpc_gamma: float = 0.8
    # alignment regulariser (dear): weight, and the no-hint NAR run (directory or its
    # checkpoint_best.pt) whose trajectory the solver's is matched to; the paper uses 0.01
    align_weight: float = 0.0
    align_teacher: str | None = None
    # learned solver (solver="learned" / "learned_nn"): training and alternating schedule,
    # fields of dear.learned.training.SolverTrainConfig (docs/learned-solver.md)
    solver_training: dict[str, Any] = field(default_factory=dict)
    # bookkeeping
    eval_every: int = 100
    device: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        from clrs_tasks import PROTOCOLS, get_task  # noqa: PLC0415

        get_task(self.algorithm)  # unknown names list the known ones
        _choice("model", self.model, MODELS)
        _choice("protocol", self.protocol, PROTOCOLS)
        _choice("profile", self.profile, PROFILES)
        _choice("processor", self.processor, PROCESSORS)
        _choice("backward", self.backward, BACKWARDS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _choice("edge_policy", self.edge_policy, ("adjacency", "complete"))
        _choice("init", self.init, INITS)
        _choice("stop_mode", self.stop_mode, DEAR_STOP_MODES)
        if "init" in self.extra:
            raise ConfigError("set the initialisation with the config's `init` field (--init), not extra")
        from dear.solvers import available as available_solvers  # noqa: PLC0415
        from dear.solvers.learned import is_learned  # noqa: PLC0415

        _choice("solver", self.solver, tuple(available_solvers()))
        learned = is_learned(self.solver)
        if self.solver_training:
            if not learned or self.model != "dear":
                raise ConfigError("solver_training needs --model dear with --solver learned or learned_nn")
            from dear.learned.training import SolverTrainConfig  # noqa: PLC0415

            check_option_types(SolverTrainConfig, self.solver_training, "solver_training")
            try:
                SolverTrainConfig.from_dict(self.solver_training)
            except ValueError as e:
                raise ConfigError(str(e)) from None
            if self.solver_training.get("max_share") is not None:
                raise ConfigError("solver_training max_share is for node classification (dear nodecls train); "
                                  "DEAR's resumable training has no single clock to take a share of")
        if self.step_budget is not None and self.step_budget < 1:
            raise ConfigError(f"step_budget must be >= 1, got {self.step_budget} (no budget: --step-budget 0, or None in a config)")
        for name in ("hidden", "steps", "batch_size", "max_iter", "max_iter_test", "eval_every", "phantom_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "tol"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
            if not math.isfinite(getattr(self, name)):  # `--lr inf`: every weight NaN after one step
                raise ConfigError(f"{name} must be finite, got {getattr(self, name)}")
        if not 0.0 < float(self.phantom_tau) <= 1.0:
            raise ConfigError(f"phantom_tau must lie in (0, 1], got {self.phantom_tau}")
        if self.fpc_states < 0:
            raise ConfigError(f"fpc_states must be >= 0, got {self.fpc_states}")
        if not 0.0 < float(self.fpc_gamma) <= 1.0:
            raise ConfigError(f"fpc_gamma must lie in (0, 1], got {self.fpc_gamma}")
        if self.fpc_states > 0 and (self.model != "dear" or self.backward == "unroll" or learned):
            raise ConfigError("fixed-point correction (--fpc-states) needs --model dear with a classic solver "
                              "(anderson, picard, broyden) and --backward phantom or ift")
        if self.align_weight > 0 or self.align_teacher:
            if self.model != "dear":
                raise ConfigError("the alignment regulariser (align_weight, align_teacher) applies to --model dear only")
            if not (self.align_weight > 0 and self.align_teacher):
                raise ConfigError("the alignment regulariser needs both --align-weight > 0 and --align-teacher "
                                  "(a finished no-hint NAR run of the same algorithm and hidden size)")
            if self.backward == "unroll" or learned:
                raise ConfigError("the alignment regulariser needs a classic solver's trajectory: use --solver "
                                  "anderson, picard or broyden with --backward phantom or ift")
        for name in ("jac_reg", "noise", "grad_clip", "align_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be finite, got {getattr(self, name)}")
        solver_options = self.extra.get("solver_options")
        if solver_options is not None and self.model == "dear":
            if not isinstance(solver_options, Mapping):
                raise ConfigError(f"solver_options must be a JSON object of the solver's options, got {solver_options!r}")
            check_option_types(solver_option_target(self.solver), solver_options, f"solver {self.solver}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        from dear.io import atomic_write_text  # noqa: PLC0415

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return cls(**dict(d))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ConfigError(f"no config file at {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from None


def solver_option_target(solver: str) -> Any:
    """What a solver's options are passed to, for :func:`check_option_types`: the learned
    solver's constructor (``learned_nn`` takes the same options) or the registered class."""
    from dear.solvers import get_solver  # noqa: PLC0415
    from dear.solvers.learned import LearnedSolver, is_learned  # noqa: PLC0415

    return LearnedSolver.__init__ if is_learned(solver) else get_solver(solver).__init__


def _choice(name: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


# The DEAR paper's settings (ANCHORS.md): 10,000 samples, batch 32, 100 epochs, Adam 3e-4,
# clip 1.0, Anderson to rel. tol 0.1 with at most 40 iterations in training and 160 at test.
_PAPER = {
    "protocol": "dear", "num_train": None, "steps": 100 * (10_000 // 32), "batch_size": 32, "lr": 3e-4,
    "grad_clip": 1.0, "eval_every": 10_000 // 32, "hidden": 128,
}
# Quick: one algorithm in <= 5 minutes on 2 CPU cores, still learning something real. Haiku's
# initialisation (init="dmclrs") because 600 steps are few: measured on the dear protocol,
# seed 0, it lifts DEAR on Bellman-Ford from 0.883 to 0.919 and on minimum from 0.880 to 0.940
# (NAR on Bellman-Ford 0.917 -> 0.931); runs trained before this change keep init="torch" in
# their config.json (leaderboards/runs/clrs/quick/ holds those, quick-dmclrs/ the new ones).
# The step budget keeps long-trace algorithms inside the 5 minutes: the unrolled baseline
# backpropagates through every step of every trace, so its cost is optimiser steps x mean trace
# length. 7,200 = 600 steps at 12 processor steps per graph (the array algorithms at n <= 16):
# measured alone on 2 cores, NAR on dfs (35 steps per graph) took 458 s for 600 optimiser steps
# and strongly connected components (67) 596 s; under the budget they take 206 and 108 steps
# (142 s and 91 s), DAG shortest paths 500 (179 s), and every algorithm whose traces average
# <= 12 steps keeps its 600 (docs/reasoners.md, "Quick profile").
QUICK_STEP_BUDGET = 7200
# DEAR's backward: a 5-step damped phantom gradient (z <- 0.5 z + 0.5 P(z), five times from the
# detached equilibrium) instead of the paper's one step. At 600 steps the cruder one-step
# estimate learns less: with the fixed Anderson, 3 seeds on the ten algorithms, DEAR is within
# 1 point of NAR or better on 7 of 10 instead of 5 (DAG shortest paths -4.1 -> -0.5, SCC -1.2
# -> +0.1; none of the five already there dropped out), for about 1.5-2x the training seconds
# (every algorithm still under the 5 minutes) and more solver iterations on some
# (docs/reasoners.md, "The quick profile's 5-step phantom gradient"). Only DEAR reads these
# fields; the paper profile keeps one step.
QUICK_PHANTOM = {"phantom_steps": 5, "phantom_tau": 0.5}
_QUICK: dict[str, Any] = {"init": "dmclrs", "step_budget": QUICK_STEP_BUDGET, **QUICK_PHANTOM}


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) under ``cfg.lr_schedule``; ``cfg.steps``
    is the run's resolved step count."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, cfg.steps) / max(1, cfg.steps)))
    return cfg.lr


def profile_config(profile: str, **overrides: Any) -> TrainConfig:
    """The profile's configuration with ``overrides`` (None values are ignored) applied.

    An explicit ``steps`` means exactly that many steps: it drops the profile's step budget
    unless ``step_budget`` is given too (``step_budget=0`` drops it as well)."""
    _choice("profile", profile, PROFILES)
    base = dict(_PAPER if profile == "paper" else _QUICK)
    if overrides.get("steps") is not None and overrides.get("step_budget") is None:
        base.pop("step_budget", None)
    base.update({k: v for k, v in overrides.items() if v is not None})
    if base.get("step_budget") == 0:
        base["step_budget"] = None
    base["profile"] = profile
    return TrainConfig.from_dict(base).validate()


def resolved_steps(cfg: TrainConfig, lengths: Any) -> int:
    """Optimiser steps of a run: ``cfg.steps``, or fewer under ``cfg.step_budget`` given the
    training graphs' trace ``lengths`` (``min(steps, round(budget / mean(max(length - 1, 1))))``,
    at least 1). Depends on the data only, so every model and every resume of a run agree."""
    if cfg.step_budget is None or len(lengths) == 0:
        return cfg.steps
    per_graph = sum(max(int(n) - 1, 1) for n in lengths) / len(lengths)
    return max(1, min(cfg.steps, round(cfg.step_budget / per_graph)))


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    return dataclasses.replace(cfg, **changes).validate()
