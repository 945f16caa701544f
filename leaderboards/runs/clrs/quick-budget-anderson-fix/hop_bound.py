"""How few solver iterations can any DEAR take on BFS and Bellman-Ford, against NAR's steps?

A one-hop processor (DEAR's MPNN: each application passes messages along the edges once)
started from a state that does not depend on the graph's edges (h(0) = 0, or a node-wise
learned initializer) holds after k applications only what lies within k hops. Anderson (and
the learned solver) mix earlier iterates, which lie within fewer hops. The node-pointer answer
`pi(v)` of BFS and Bellman-Ford changes with the source `s`, so the iterate that decodes it
must lie at least `d(s, v)` hops (unweighted, along the message-passing edges) from the start.
The engine counts an iteration per evaluation of the map and accepts the iterate whose image
it has just evaluated, so the iterate `x_k` (k hops) is accepted at iteration k + 1:

* a graph whose every node is answered correctly needs at least `ecc(s) + 1` iterations
  (`ecc(s)`: the largest finite hop distance from the source);
* after `k` iterations at most the nodes with `d(s, v) <= k - 1`, or unreachable (they point
  to themselves), can be right: an accuracy ceiling whatever the weights.

NAR runs `max(T - 1, 1)` steps for a trace of length T (dm-clrs's count). This script
measures both on the reference table's test split (dear protocol, 100 graphs at n = 64) and
writes `hop_bound.json`: per algorithm, mean NAR steps, the mean lower bound on DEAR's
iterations, the speed ceiling at equal per-iteration cost (their ratio; measured 0.99x,
`per_iteration_cost.json`), DEAR's accuracy ceiling if it stopped at NAR's step count, and,
for Bellman-Ford, the hop depth of its shortest-path trees (what a processor that relaxes one
hop per application needs).

    python hop_bound.py
"""
import json
import statistics
from collections import deque
from pathlib import Path

import numpy as np

from dear.config import TrainConfig
from dear.training import load_data

HERE = Path(__file__).resolve().parent
ALGORITHMS = ("bfs", "bellman_ford")


def hop_distances(edge_index: np.ndarray, n: int, source: int) -> np.ndarray:
    """Unweighted distances from `source` along the message direction (row 0 -> row 1);
    unreachable nodes get -1."""
    out = [[] for _ in range(n)]
    for a, b in edge_index.T:
        if a != b:
            out[a].append(b)
    dist = np.full(n, -1)
    dist[source] = 0
    queue = deque([source])
    while queue:
        u = queue.popleft()
        for v in out[u]:
            if dist[v] < 0:
                dist[v] = dist[u] + 1
                queue.append(v)
    return dist


def tree_depth(pi: np.ndarray, source: int) -> int:
    """The hop depth of the pointer tree `pi` rooted at `source` (nodes pointing to
    themselves other than the source are unreachable and left out)."""
    depth = 0
    for v in range(len(pi)):
        d, u = 0, v
        while u != source and pi[u] != u and d <= len(pi):
            u, d = int(pi[u]), d + 1
        if u == source:
            depth = max(depth, d)
    return depth


def measure(algorithm: str) -> dict:
    cfg = TrainConfig.load(HERE / "runs" / algorithm / "nar" / "seed0" / "config.json")
    ds = load_data(cfg, "test")
    rows = []
    for g in ds:
        n = int(g.num_nodes)
        source = int(g.input_s.argmax())
        dist = hop_distances(g.edge_index.numpy(), n, source)
        ecc = int(dist.max())
        nar_steps = max(int(g.length) - 1, 1)
        k = nar_steps  # DEAR stopping after NAR's step count holds (k - 1)-hop iterates
        ceiling = float(((dist >= 0) & (dist <= k - 1) | (dist < 0)).mean())
        row = {"nar_steps": nar_steps, "ecc": ecc, "dear_min_iterations": ecc + 1,
               "dear_ceiling_at_nar_steps": ceiling}
        if algorithm == "bellman_ford":
            row["sp_tree_depth"] = tree_depth(g.output_pi.numpy(), source)
        rows.append(row)

    def mean(key: str) -> float:
        return statistics.fmean(r[key] for r in rows)

    out = {
        "num_graphs": len(rows),
        "nar_steps_mean": mean("nar_steps"),
        "ecc_mean": mean("ecc"),
        "dear_min_iterations_mean": mean("dear_min_iterations"),
        "speed_ceiling": mean("nar_steps") / mean("dear_min_iterations"),
        "graphs_where_dear_min_exceeds_nar": sum(r["dear_min_iterations"] > r["nar_steps"] for r in rows),
        "graphs_where_dear_min_equals_nar": sum(r["dear_min_iterations"] == r["nar_steps"] for r in rows),
        "dear_accuracy_ceiling_at_nar_steps": mean("dear_ceiling_at_nar_steps"),
        "nar_steps_minus_ecc": sorted({r["nar_steps"] - r["ecc"] for r in rows}),
    }
    if algorithm == "bellman_ford":
        out["sp_tree_depth_mean"] = mean("sp_tree_depth")
        out["nar_steps_minus_sp_tree_depth"] = sorted({r["nar_steps"] - r["sp_tree_depth"] for r in rows})
    measured = {}
    for model in ("dear", "nar"):
        res = json.loads((HERE / "runs" / algorithm / model / "seed0" / "results.json").read_text())
        r64 = res["results"]["64"]
        measured[model] = {"score": r64["score"], "iterations_mean": r64["iterations"]["mean"]}
    out["measured_seed0"] = measured
    return out


if __name__ == "__main__":
    result = {"what": __doc__.split("\n\n")[0], "how": "python hop_bound.py",
              "algorithms": {a: measure(a) for a in ALGORITHMS}}
    (HERE / "hop_bound.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["algorithms"], indent=1))
