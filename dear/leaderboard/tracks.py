"""Leaderboard tracks: what each board ranks, which tasks it accepts, its metric and range.

A track is a folder under ``leaderboards/`` holding one JSON file per entry and a rendered
``README.md``. Tracks are defined here, in code, rather than by the folders themselves, so that
an entry cannot invent a track (or a metric range) that validation would then trust.

CLRS-30 families follow the CLRS benchmark paper (Velickovic et al., ICML 2022, section 3 and
appendix): sorting, searching, divide and conquer, greedy, dynamic programming, graphs,
strings, geometry. ``docs/leaderboards.md`` lists the same mapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TrackKind = Literal["clrs", "nodecls"]

# The CLRS benchmark paper's eight algorithm families, in the paper's order.
CLRS_FAMILIES: dict[str, tuple[str, ...]] = {
    "sorting": ("insertion_sort", "bubble_sort", "heapsort", "quicksort"),
    "searching": ("minimum", "binary_search", "quickselect"),
    "divide and conquer": ("find_maximum_subarray_kadane",),
    "greedy": ("activity_selector", "task_scheduling"),
    "dynamic programming": ("matrix_chain_order", "lcs_length", "optimal_bst"),
    "graphs": (
        "dfs", "bfs", "topological_sort", "articulation_points", "bridges", "strongly_connected_components",
        "mst_kruskal", "mst_prim", "bellman_ford", "dijkstra", "dag_shortest_paths", "floyd_warshall",
    ),
    "strings": ("naive_string_matcher", "kmp_matcher"),
    "geometry": ("segments_intersect", "graham_scan", "jarvis_march"),
}

_FAMILY_OF = {algo: fam for fam, algos in CLRS_FAMILIES.items() for algo in algos}
CLRS30 = tuple(a for algos in CLRS_FAMILIES.values() for a in algos)


def family_of(algorithm: str) -> str | None:
    """The CLRS-30 family of ``algorithm`` (``None`` for tasks outside CLRS-30)."""
    return _FAMILY_OF.get(algorithm)


@dataclass(frozen=True)
class Metric:
    """How a track scores an entry.

    Attributes:
        name: the metric's name as entries must state it.
        unit: ``fraction`` (0..1) or ``percent`` (0..100); tables show both as percent.
        low, high: the closed range every per-seed score must lie in.
        averaging: how one seed's score is computed (stated in every rendered table).
        verify_tolerance: default ``--verify`` tolerance, in the metric's unit.
        max_verify_tolerance: the loosest tolerance a verification record may use and still
            count as verified (so an entry cannot claim "verified within 1.0").
    """

    name: str
    unit: str
    low: float
    high: float
    averaging: str
    verify_tolerance: float
    max_verify_tolerance: float

    def to_percent(self, value: float) -> float:
        return value * 100.0 if self.unit == "fraction" else value


CLRS_SCORE = Metric(
    name="clrs_score", unit="fraction", low=0.0, high=1.0,
    averaging="dm-clrs's clrs.evaluate on the whole test split: each output probe's metric pooled "
              "over all test graphs (F1 for masks, accuracy for pointers, mask_one and categoricals, "
              "MSE for scalars), then the mean over output probes",
    verify_tolerance=0.005, max_verify_tolerance=0.02,
)

NODE_ACCURACY = Metric(
    name="accuracy", unit="percent", low=0.0, high=100.0,
    averaging="percentage of test nodes classified correctly, one full-batch forward with the "
              "best-validation weights",
    verify_tolerance=0.5, max_verify_tolerance=2.0,
)


@dataclass(frozen=True)
class Track:
    """One leaderboard.

    Attributes:
        name: folder name under ``leaderboards/``.
        kind: ``clrs`` (entries come from ``dear evaluate`` results) or ``nodecls``
            (from ``dear nodecls train`` results).
        title: heading of the rendered table.
        description: one paragraph for the rendered README.
        metric: the track's :class:`Metric`.
        tasks: ``clrs30`` (only the 30 CLRS-30 algorithms), ``non_clrs30`` (any registered
            task outside CLRS-30, user-registered ones included) or ``datasets`` (registered
            node-classification datasets).
        column: what a column is (``algorithm``, ``task``, ``dataset``), for headings.
        families: whether tables also show the mean over CLRS-30 families.
        timing_unit: the unit every entry's timing must use (so a column compares like with like).
        overrides: the test-split overrides an entry may declare (beyond the protocol's
            defaults); ``sizes`` lets CLRS entries report larger OOD sizes, ``num_samples``
            lets user tasks use a smaller test set. Entries with different overrides are
            never ranked in the same table.
    """

    name: str
    kind: TrackKind
    title: str
    description: str
    metric: Metric
    tasks: str
    column: str
    families: bool
    timing_unit: str
    overrides: tuple[str, ...]


TRACKS: dict[str, Track] = {
    "clrs-ood": Track(
        name="clrs-ood", kind="clrs", title="CLRS-30, out-of-distribution test",
        description="Models trained on small graphs (n <= 16) and tested on the protocol's larger test "
                    "graphs (n = 64 by default; 128, 256, 512 as separate tables), one column per "
                    "CLRS-30 algorithm.",
        metric=CLRS_SCORE, tasks="clrs30", column="algorithm", families=True,
        timing_unit="seconds per test graph", overrides=("sizes",),
    ),
    "nodecls": Track(
        name="nodecls", kind="nodecls", title="Node classification",
        description="Transductive node classification, one column per dataset and split: implicit "
                    "models (IGNN family, solved by the dear engine) beside explicit PyG baselines.",
        metric=NODE_ACCURACY, tasks="datasets", column="dataset", families=False,
        timing_unit="seconds per full-graph forward", overrides=(),
    ),
    "user-tasks": Track(
        name="user-tasks", kind="clrs", title="Tasks outside CLRS-30",
        description="Algorithms that are not among the 30 CLRS-30 ones: dm-clrs's extra specs, DEAR's "
                    "corrected binary search, and algorithms users register from their own modules "
                    "(see docs/adding-an-algorithm.md). Scored with dm-clrs's evaluation like CLRS-30.",
        metric=CLRS_SCORE, tasks="non_clrs30", column="task", families=False,
        timing_unit="seconds per test graph", overrides=("sizes", "num_samples"),
    ),
}


class UnknownTrackError(ValueError):
    """A track name that is not defined; the message lists the defined ones."""


def get_track(name: str) -> Track:
    """The track called ``name``; unknown names raise :class:`UnknownTrackError` listing the valid ones."""
    try:
        return TRACKS[name]
    except (KeyError, TypeError):
        raise UnknownTrackError(f"unknown track {name!r}; valid: {', '.join(TRACKS)}") from None
