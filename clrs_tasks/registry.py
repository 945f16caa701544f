"""The task registry: every algorithm the loader knows, built-in or user-defined.

A task is a name, its dm-clrs spec (probe name -> (stage, location, type)), the reference
implementation that produces probes, a dm-clrs ``Sampler`` subclass that draws its inputs, and
how message-passing edges are built for it. The 30 CLRS-30 algorithms (plus the two extra specs
dm-clrs ships and DEAR's corrected binary search) are registered lazily from dm-clrs the first
time the registry is read, because importing dm-clrs costs seconds. Users add their own with
:func:`register_task` from their own module, without editing this package.
"""

from __future__ import annotations

import inspect
import re
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from clrs_tasks._clrs import clrs

STAGES = ("input", "output", "hint")
LOCATIONS = ("node", "edge", "graph")
TYPES = (
    "scalar",
    "categorical",
    "mask",
    "mask_one",
    "pointer",
    "should_be_permutation",
    "permutation_pointer",
    "soft_pointer",
)
EDGE_POLICIES = ("adjacency", "complete")

# dm-clrs's reference pipeline (clrs/examples/run.py, PRED_AS_INPUT_ALGOS) moves the constant
# `pred_h` hint of these algorithms to a `pred` input. Copied here because importing run.py
# would define its absl flags.
PRED_AS_INPUT = frozenset(
    {
        "binary_search",
        "minimum",
        "find_maximum_subarray",
        "find_maximum_subarray_kadane",
        "matrix_chain_order",
        "lcs_length",
        "optimal_bst",
        "activity_selector",
        "task_scheduling",
        "naive_string_matcher",
        "kmp_matcher",
        "jarvis_march",
    }
)

# DEAR makes the message-passing graph of these tasks undirected (ANCHORS.md, DEAR section).
DEAR_UNDIRECTED = frozenset({"dfs", "strongly_connected_components", "dag_shortest_paths"})

# DEAR's ten algorithms, in the paper's order; used by the `dear` protocol docs and the CLI.
DEAR_TASKS = (
    "bellman_ford",
    "floyd_warshall",
    "dag_shortest_paths",
    "mst_prim",
    "bfs",
    "dfs",
    "strongly_connected_components",
    "binary_search_dear",
    "minimum",
    "insertion_sort",
)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownTaskError(KeyError, ValueError):
    """Raised for a task name that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


@dataclass(frozen=True)
class Task:
    """One registered algorithm.

    Attributes:
        name: registry name (lowercase, digits and underscores).
        spec: the dm-clrs spec *before* dm-clrs's processing (pred-as-input, permutations).
        algorithm: reference implementation ``algorithm(*sampled_inputs) -> (result, probes)``.
        sampler_class: a ``clrs.Sampler`` subclass drawing the algorithm's inputs.
        edge_policy: default message-passing edge set, ``"adjacency"`` or ``"complete"``.
        undirected: make the adjacency edge set undirected (DEAR does this for DFS, SCC, DAG-SP).
        pred_as_input: move the constant ``pred_h`` hint to a ``pred`` input, as dm-clrs does.
        num_samples_multiplier: CLRS-30's val/test multiplier for algorithms with few signals.
        clrs30: whether the task is one of the 30 CLRS-30 algorithms.
        description: one line shown by ``clrs-tasks list``.
        origin: where it was registered from (``dm-clrs`` or the user's module); fingerprinted.
    """

    name: str
    spec: Mapping[str, tuple[str, str, str]]
    algorithm: Callable[..., Any]
    sampler_class: type
    edge_policy: str = "adjacency"
    undirected: bool = False
    pred_as_input: bool = False
    num_samples_multiplier: int = 1
    clrs30: bool = False
    description: str = ""
    origin: str = "user"
    sampler_kwargs: tuple[str, ...] = field(default=(), compare=False)

    @property
    def output_types(self) -> dict[str, str]:
        """Output probe name -> type, before dm-clrs processing."""
        return {k: v[2] for k, v in self.spec.items() if v[0] == "output"}

    def accepted_sampler_kwargs(self) -> tuple[str, ...]:
        """Keyword arguments the sampler's ``_sample_data`` accepts (besides ``length``)."""
        return self.sampler_kwargs


_LOCK = threading.RLock()
_TASKS: dict[str, Task] = {}
_BUILTINS_LOADED = False


def _validate_spec(name: str, spec: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"task {name!r}: spec must be a non-empty mapping name -> (stage, location, type)")
    clean: dict[str, tuple[str, str, str]] = {}
    for probe, entry in spec.items():
        try:
            stage, location, type_ = (str(x) for x in entry)
        except (TypeError, ValueError):
            raise ValueError(
                f"task {name!r}: spec entry {probe!r} must be a (stage, location, type) triple, got {entry!r}"
            ) from None
        if stage not in STAGES:
            raise ValueError(f"task {name!r}: probe {probe!r} has stage {stage!r}; valid: {', '.join(STAGES)}")
        if location not in LOCATIONS:
            raise ValueError(
                f"task {name!r}: probe {probe!r} has location {location!r}; valid: {', '.join(LOCATIONS)}"
            )
        if type_ not in TYPES:
            raise ValueError(f"task {name!r}: probe {probe!r} has type {type_!r}; valid: {', '.join(TYPES)}")
        clean[str(probe)] = (stage, location, type_)
    if not any(v[0] == "output" for v in clean.values()):
        raise ValueError(f"task {name!r}: spec has no output probe; a task must have at least one")
    return clean


def _sampler_kwargs(sampler_class: type) -> tuple[str, ...]:
    params = inspect.signature(sampler_class._sample_data).parameters  # noqa: SLF001
    return tuple(p for p in params if p not in ("self", "length"))


def _make_task(
    name: str,
    spec: Mapping[str, Any],
    algorithm: Callable[..., Any],
    sampler: type,
    edge_policy: str,
    undirected: bool,
    pred_as_input: bool,
    num_samples_multiplier: int,
    clrs30: bool,
    description: str,
    origin: str,
) -> Task:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"task name {name!r} must be lowercase letters, digits and underscores, starting with a letter")
    clean_spec = _validate_spec(name, spec)
    if not callable(algorithm):
        raise TypeError(f"task {name!r}: algorithm must be callable, got {type(algorithm).__name__}")
    base = clrs().Sampler
    if not (isinstance(sampler, type) and issubclass(sampler, base)):
        raise TypeError(f"task {name!r}: sampler must be a subclass of clrs.Sampler, got {sampler!r}")
    if edge_policy not in EDGE_POLICIES:
        raise ValueError(f"task {name!r}: edge_policy {edge_policy!r}; valid: {', '.join(EDGE_POLICIES)}")
    if pred_as_input and clean_spec.get("pred_h") != ("hint", "node", "pointer"):
        raise ValueError(f"task {name!r}: pred_as_input needs a ('hint', 'node', 'pointer') probe named 'pred_h'")
    if int(num_samples_multiplier) < 1:
        raise ValueError(f"task {name!r}: num_samples_multiplier must be >= 1")
    return Task(
        name=name,
        spec=MappingProxyType(clean_spec),
        algorithm=algorithm,
        sampler_class=sampler,
        edge_policy=edge_policy,
        undirected=bool(undirected),
        pred_as_input=bool(pred_as_input),
        num_samples_multiplier=int(num_samples_multiplier),
        clrs30=bool(clrs30),
        description=description,
        origin=origin,
        sampler_kwargs=_sampler_kwargs(sampler),
    )


def register_task(
    name: str,
    *,
    spec: Mapping[str, Any],
    algorithm: Callable[..., Any],
    sampler: type | None = None,
    edge_policy: str = "adjacency",
    undirected: bool = False,
    pred_as_input: bool = False,
    num_samples_multiplier: int = 1,
    description: str = "",
    overwrite: bool = False,
) -> Any:
    """Register an algorithm so every part of the suite can build, load and score it.

    Call it with ``sampler=`` given, or use it as a class decorator on the sampler::

        @register_task("my_algo", spec=MY_SPEC, algorithm=my_algo)
        class MySampler(clrs.Sampler):
            CAN_TRUNCATE_INPUT_DATA = False
            def _sample_data(self, length): ...

    ``algorithm`` must behave like dm-clrs's reference implementations: take the sampled inputs
    and return ``(result, probes)`` with probes finalised by ``clrs.probing``. Registering a name
    that exists raises unless ``overwrite=True``.
    """

    def _register(sampler_class: type) -> type:
        task = _make_task(
            name, spec, algorithm, sampler_class, edge_policy, undirected, pred_as_input,
            num_samples_multiplier, False, description,
            origin=f"{getattr(algorithm, '__module__', '?')}.{getattr(algorithm, '__qualname__', '?')}",
        )
        with _LOCK:
            _load_builtins()
            if name in _TASKS and not overwrite:
                raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
            _TASKS[name] = task
        return sampler_class

    if sampler is None:
        return _register
    _register(sampler)
    return get_task(name)


def unregister_task(name: str) -> None:
    """Remove a user-registered task (built-ins cannot be removed)."""
    task = get_task(name)
    if task.origin == "dm-clrs":
        raise ValueError(f"task {name!r} is built in and cannot be unregistered")
    with _LOCK:
        _TASKS.pop(name, None)


def get_task(name: str) -> Task:
    """Return the registered task, or raise :class:`UnknownTaskError` listing the known names."""
    with _LOCK:
        _load_builtins()
        task = _TASKS.get(name)
        if task is None:
            raise UnknownTaskError(f"unknown algorithm {name!r}; known: {', '.join(sorted(_TASKS))}")
        return task


def list_tasks(clrs30_only: bool = False) -> list[str]:
    """Names of all registered tasks, sorted (only the 30 CLRS-30 ones if ``clrs30_only``)."""
    with _LOCK:
        _load_builtins()
        return sorted(n for n, t in _TASKS.items() if t.clrs30 or not clrs30_only)


def _binary_search_dear_sampler() -> type:
    """DEAR's corrected binary-search sampler: the target never exceeds the largest key.

    dm-clrs's ``SearchSampler`` draws the target from U[low, high] independently of the keys, so
    some targets lie above every key and the expected output is ill-posed; DEAR draws it below the
    largest key instead. Draw order (sorted keys, then target) follows dm-clrs's sampler.
    """
    clrs()
    from clrs._src import samplers as clrs_samplers  # noqa: PLC0415

    class DearSearchSampler(clrs_samplers.SearchSampler):
        CAN_TRUNCATE_INPUT_DATA = True

        def _sample_data(self, length: int, low: float = 0.0, high: float = 1.0):
            arr = self._random_sequence(length=length, low=low, high=high)
            arr.sort()
            x = self._rng.uniform(low=low, high=arr[-1])
            return [x, arr]

    return DearSearchSampler


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    clrs()
    from clrs._src import algorithms, samplers as clrs_samplers, specs  # noqa: PLC0415

    for name in sorted(specs.SPECS):
        if name not in clrs_samplers.SAMPLERS:
            continue
        clrs30 = name in specs.CLRS_30_ALGS
        mult = specs.CLRS_30_ALGS_SETTINGS.get(name, {}).get("num_samples_multiplier", 1) if clrs30 else 1
        _TASKS[name] = _make_task(
            name, specs.SPECS[name], getattr(algorithms, name), clrs_samplers.SAMPLERS[name],
            edge_policy="adjacency", undirected=name in DEAR_UNDIRECTED,
            pred_as_input=name in PRED_AS_INPUT, num_samples_multiplier=mult, clrs30=clrs30,
            description="CLRS-30 algorithm" if clrs30 else "dm-clrs extra spec, not part of CLRS-30",
            origin="dm-clrs",
        )
    _TASKS["binary_search_dear"] = _make_task(
        "binary_search_dear", specs.SPECS["binary_search"], algorithms.binary_search,
        _binary_search_dear_sampler(), edge_policy="adjacency", undirected=False,
        pred_as_input=True, num_samples_multiplier=specs.CLRS_30_ALGS_SETTINGS["binary_search"]["num_samples_multiplier"],
        clrs30=False,
        description="DEAR's binary search: target drawn below the largest key (not CLRS-30)",
        origin="dm-clrs",
    )
    _BUILTINS_LOADED = True
