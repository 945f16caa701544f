"""The leaderboard entry schema (``dear.leaderboard.entry/1``), as data, and its checker.

One table, :data:`FIELDS`, drives both the structural check every entry goes through and the
field list in ``docs/leaderboards.md`` (a test keeps the two in step). The check is strict:
missing required fields, wrong types and *unknown* fields are all schema violations, because a
versioned format that silently accepts extra keys stops being a format. A future change of
meaning bumps :data:`SCHEMA` (``.../2``) rather than reinterpreting old files.

Structural checks live here; semantic ones (ranges, seeds, fingerprints, names, duplicates) in
:mod:`dear.leaderboard.validation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

SCHEMA = "dear.leaderboard.entry/1"


class EntryRejected(ValueError):
    """A leaderboard entry that cannot be accepted; the message is one line naming the reason.

    ``reason`` is a short machine-readable category (``schema``, ``score``, ``seeds``,
    ``fingerprint``, ``duplicate``, ``name``, ``path``, ``verify``, ...), used by tests and by
    ``dear leaderboard validate``'s summary.
    """

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(f"rejected ({reason}): {message}")


# JSON kinds: what ``type()`` of a parsed JSON value may be for each name.
_KINDS: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Field:
    """One field of the entry format.

    Attributes:
        kinds: allowed JSON kinds (``str``, ``int``, ``number``, ``bool``, ``object``, ``list``,
            ``null``).
        required: whether the key must be present (``null`` may still be allowed by ``kinds``).
        doc: what the field means (rendered in the docs).
        children: for objects with a fixed set of keys, their fields; ``None`` means any keys
            (free-form objects such as package versions or hardware).
        items: for lists, the fields of each item (each item must be an object).
    """

    kinds: tuple[str, ...]
    required: bool
    doc: str
    children: Mapping[str, "Field"] | None = None
    items: Mapping[str, "Field"] | None = None


def _f(kinds: str, doc: str, required: bool = True, children: Mapping[str, Field] | None = None,
       items: Mapping[str, Field] | None = None) -> Field:
    return Field(tuple(kinds.split("|")), required, doc, children, items)


FIELDS: dict[str, Field] = {
    "schema": _f("str", f"format version, exactly `{SCHEMA}`"),
    "track": _f("str", "the track (folder under `leaderboards/`): `clrs-ood`, `nodecls` or `user-tasks`"),
    "task": _f("str", "the algorithm (CLRS tracks, a registered task name) or the dataset (`nodecls`, a "
                      "registered dataset name)"),
    "model": _f("object", "what was evaluated", children={
        "name": _f("str", "model name shown in the table (e.g. `DEAR`, `NAR`, `IGNN`, `GCN`)"),
        "variant": _f("str", "what distinguishes this configuration (processor, solver, tolerance, budget)"),
        "architecture": _f("str", "the model id the code knows (`dear`, `nar`, `nar-hints`, `nar-lt`, `ignn`, "
                                  "`gcn`, ...)"),
    }),
    "protocol": _f("object", "which test split was scored", children={
        "name": _f("str", "CLRS: `official` or `dear`; nodecls: `standard`"),
        "split": _f("str|int|number", "CLRS: `test`; nodecls: the dataset split (e.g. `60` labels per class, "
                                      "`public`, `official`)"),
        "overrides": _f("object", "CLRS: test-split overrides (`sizes`, and on `user-tasks` `num_samples`); "
                                  "nodecls: `seed` (the validation draw) and dataset options"),
        "description": _f("str", "one line describing the split, shown as the table's heading"),
    }),
    "split_fingerprint": _f("str", "sha256 of the test split, as `clrs_tasks.fingerprint` / "
                                   "`dear.nodecls` compute it; must equal the one computed locally"),
    "metric": _f("object", "the metric, fixed by the track", children={
        "name": _f("str", "`clrs_score` (CLRS tracks) or `accuracy` (nodecls)"),
        "unit": _f("str", "`fraction` (0..1) or `percent` (0..100)"),
        "averaging": _f("str", "how one seed's score is computed from the test split"),
    }),
    "scores": _f("object", "the per-seed scores and their summary", children={
        "per_seed": _f("list", "one item per model seed (at least 3, distinct seeds)", items={
            "seed": _f("int", "model seed"),
            "score": _f("number", "that seed's test score, finite and within the metric's range"),
        }),
        "mean": _f("number", "mean of the per-seed scores (checked)"),
        "std": _f("number", "sample standard deviation (n - 1) of the per-seed scores (checked)"),
    }),
    "timing": _f("object", "inference time, how it was measured, and where", children={
        "value": _f("number|null", "seconds (median over seeds of each seed's median); null if not measured"),
        "unit": _f("str", "e.g. `seconds per test graph`, `seconds per full-graph forward`"),
        "method": _f("str", "warm-up, repeats, what is excluded (data loading)"),
        "hardware": _f("object", "device, CPU, threads, GPU name (from `dear.io.hardware`)"),
    }),
    "solver": _f("object|null", "solver iterations at inference (implicit or unrolled models); null for "
                                "explicit models", children={
        "name": _f("str", "root finder (`anderson`, `picard`, ...) or `unrolled`"),
        "tol": _f("number|null", "its tolerance, if any"),
        "iterations_mean": _f("number|null", "processor applications per test graph (mean over seeds)"),
        "iterations_max": _f("number|null", "their maximum over seeds"),
        "reference_steps_mean": _f("number|null", "CLRS: the traces' own mean number of steps, for comparison"),
    }),
    "training": _f("object", "the training budget", children={
        "budget": _f("str", "one line: steps or epochs, batch, training set, profile"),
        "steps": _f("int|null", "optimiser steps (CLRS)"),
        "epochs": _f("int|null", "maximum epochs (nodecls)"),
        "batch_size": _f("int|null", "graphs per step (CLRS)"),
        "num_train": _f("int|null", "training samples (CLRS)"),
        "seconds_mean": _f("number|null", "measured training wall-clock per seed, when known"),
        "hardware": _f("object|null", "where it was trained"),
    }),
    "code_version": _f("object", "the code that produced the numbers", children={
        "dear": _f("str", "the `dear` package version"),
        "git_commit": _f("str|null", "git commit, when run from a checkout"),
        "git_uncommitted": _f("list|null", "source files of `dear/` and `clrs_tasks/` that differed from "
                                           "`git_commit` when the runs were trained or evaluated (`[]`: none); "
                                           "a non-empty list means no commit holds that code, so `verify "
                                           "--rebuild --run-code` cannot replay the runs. Absent or null: not "
                                           "recorded (runs before 2026-12-02, or not made in a checkout)",
                              required=False),
    }),
    "versions": _f("object", "package versions (python, torch, torch-geometric, dm-clrs, numpy, dear)"),
    "submitter": _f("str", "who submitted the entry"),
    "date": _f("str", "submission date, `YYYY-MM-DD`"),
    "link": _f("str|null", "optional `https://` link (paper, code)", required=False),
    "task_module": _f("str|null", "`user-tasks`: path (relative to the repository) of the Python file that "
                                  "registers the task; validation imports it", required=False),
    "verification": _f("object|null", "set by `submit --verify`: the claim re-evaluated from checkpoints",
                       required=False, children={
        "method": _f("str", "what was run"),
        "tolerance": _f("number", "largest accepted |claimed - reproduced|, in the metric's unit"),
        "device": _f("str", "where it was re-evaluated"),
        "date": _f("str", "when, `YYYY-MM-DD`"),
        "seeds": _f("list", "one item per verified seed", items={
            "seed": _f("int", "model seed"),
            "claimed": _f("number", "the entry's score for that seed"),
            "reproduced": _f("number", "the score the checkpoint gave"),
            "checkpoint_sha256": _f("str", "sha256 of the checkpoint file"),
        }),
    }),
    "source": _f("object|null", "provenance: what the entry was converted from (free-form)", required=False),
    "config": _f("object|null", "the run's full resolved configuration (free-form)", required=False),
}


def _kind_ok(value: Any, kinds: tuple[str, ...]) -> bool:
    if isinstance(value, bool):  # bool is an int in Python, but not in JSON
        return "bool" in kinds
    return any(isinstance(value, _KINDS[k]) for k in kinds)


def _check(obj: Mapping[str, Any], fields: Mapping[str, Field], where: str) -> None:
    unknown = sorted(set(obj) - set(fields))
    if unknown:
        raise EntryRejected("schema", f"unknown field {where}{unknown[0]} (this is {SCHEMA}; valid fields "
                                      f"here: {', '.join(fields)})")
    for name, spec in fields.items():
        path = f"{where}{name}"
        if name not in obj:
            if spec.required:
                raise EntryRejected("schema", f"missing field {path} ({spec.doc})")
            continue
        value = obj[name]
        if not _kind_ok(value, spec.kinds):
            raise EntryRejected("schema", f"field {path} must be {' or '.join(spec.kinds)}, got "
                                          f"{type(value).__name__}")
        if isinstance(value, dict) and spec.children is not None:
            _check(value, spec.children, f"{path}.")
        if isinstance(value, list) and spec.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise EntryRejected("schema", f"field {path}[{i}] must be an object, got {type(item).__name__}")
                _check(item, spec.items, f"{path}[{i}].")


def check_schema(entry: Any) -> None:
    """Raise :class:`EntryRejected` (reason ``schema``) unless ``entry`` has the exact structure of
    :data:`FIELDS`: every required field, the right JSON kinds, no unknown fields."""
    if not isinstance(entry, dict):
        raise EntryRejected("schema", f"an entry must be a JSON object, got {type(entry).__name__}")
    if entry.get("schema") != SCHEMA:
        raise EntryRejected("schema", f"field schema must be {SCHEMA!r}, got {entry.get('schema')!r}")
    _check(entry, FIELDS, "")


def field_paths(fields: Mapping[str, Field] = FIELDS, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """Every field as (dotted path, :class:`Field`), parents before children (lists as ``[]``)."""
    for name, spec in fields.items():
        path = f"{prefix}{name}"
        yield path, spec
        if spec.children is not None:
            yield from field_paths(spec.children, f"{path}.")
        if spec.items is not None:
            yield from field_paths(spec.items, f"{path}[].")


def schema_markdown() -> str:
    """The field table of ``docs/leaderboards.md`` (regenerate it with this when FIELDS changes)."""
    lines = ["| field | type | required | meaning |", "| --- | --- | --- | --- |"]
    for path, spec in field_paths():
        lines.append(f"| `{path}` | {' or '.join(spec.kinds)} | {'yes' if spec.required else 'no'} | {spec.doc} |")
    return "\n".join(lines)
