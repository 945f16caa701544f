"""Rendering a track's entries as its ``README.md``.

The output is a pure function of the entries (no clock, no paths), so ``dear leaderboard
validate`` can re-render and compare: a table that no longer matches its entries fails CI.

Layout of one track (documented in ``docs/leaderboards.md``):

* one section per test split (``protocol_key``): entries scored on different splits are never
  ranked together;
* a ranking table: one row per (model name, variant), one column per task, each cell the
  mean +- sample std over seeds in percent, marked ``✓`` when checkpoints reproduced every seed;
* **mean over tasks** is the unweighted mean of the row's per-task means *over the tasks it
  covers*, shown with its coverage ``k/N`` (N: the 30 CLRS-30 algorithms on ``clrs-ood``, the
  section's columns elsewhere). Missing tasks are not counted as zero and not imputed;
* **mean over families** (``clrs-ood`` only): per CLRS-30 family, the mean over the row's covered
  algorithms of that family; then the mean over the covered families, with coverage ``k/8``;
* rows are sorted by coverage (more tasks first, since means over different task sets are not
  comparable), then by mean over tasks, descending;
* an entries table with everything else: seeds, timing and hardware, solver iterations beside
  the traces' own steps, training budget, code version (``+ uncommitted`` when the runs were
  made from source changes no commit holds), submitter, date, verification, link.
"""

from __future__ import annotations

import statistics
from collections import OrderedDict
from typing import Any, Mapping, Sequence

from dear.leaderboard.tracks import CLRS30, CLRS_FAMILIES, Track, family_of
from dear.leaderboard.validation import clrs_test_config, option_label, protocol_key

VERIFIED = "✓"
MISSING = "–"


def _cell(text: str) -> str:
    """Defensive: validated text never holds these, but a table cell must not be able to."""
    if "|" in text or "\n" in text:
        raise ValueError(f"refusing to render {text!r} into a table cell")
    return text


def _pct(track: Track, value: float) -> float:
    return track.metric.to_percent(value)


def _verified_seeds(entry: Mapping[str, Any]) -> int:
    v = entry.get("verification")
    return 0 if v is None else len({s["seed"] for s in v["seeds"]})


def _mark(entry: Mapping[str, Any]) -> str:
    n = len(entry["scores"]["per_seed"])
    k = _verified_seeds(entry)
    return f" {VERIFIED}" if k == n else (f" ({VERIFIED} {k}/{n})" if k else "")


def _row_key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return (" ".join(entry["model"]["name"].split()).casefold(), " ".join(entry["model"]["variant"].split()).casefold())


def _columns(track: Track, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {e["task"] for e in entries}
    if track.families:
        order = [a for a in CLRS30 if a in present]
        return order + sorted(present - set(order))
    return sorted(present)


def _hardware(hw: Mapping[str, Any]) -> str:
    if hw.get("gpu"):
        return str(hw["gpu"])
    cores = hw.get("cpu_count")
    threads = hw.get("torch_threads")
    out = f"CPU ({hw['cpu_model']})" if hw.get("cpu_model") else "CPU"  # recorded since 2026-12-01
    if cores is not None:
        out += f", {cores} cores"
    if threads is not None:
        out += f", {threads} thread{'s' if threads != 1 else ''}"
    return out


def _rank_table(track: Track, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    cols = _columns(track, entries)
    rows: "OrderedDict[tuple[str, str], dict[str, Mapping[str, Any]]]" = OrderedDict()
    for e in entries:
        rows.setdefault(_row_key(e), {})[e["task"]] = e
    universe = len(CLRS30) if track.families else len(cols)
    ranked = []
    for key, by_task in rows.items():
        means = {t: _pct(track, e["scores"]["mean"]) for t, e in by_task.items()}
        overall = statistics.fmean(means.values())
        fam_mean = None
        if track.families:
            fams: dict[str, list[float]] = {}
            for t, m in means.items():
                fam = family_of(t)
                if fam is not None:
                    fams.setdefault(fam, []).append(m)
            if fams:
                fam_mean = (statistics.fmean(statistics.fmean(v) for v in fams.values()), len(fams))
        first = next(iter(by_task.values()))
        ranked.append((-len(means), -overall, key, first, by_task, overall, fam_mean))
    ranked.sort(key=lambda r: (r[0], r[1], r[2]))

    head = ["#", "model", "variant", f"mean over {track.column}s (covered/{universe})"]
    if track.families:
        head.append(f"mean over families (covered/{len(CLRS_FAMILIES)})")
    head += [f"`{c}`" for c in cols]
    head.append("verified")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for i, (_, _, _, first, by_task, overall, fam_mean) in enumerate(ranked, 1):
        cells = [str(i), _cell(first["model"]["name"]), _cell(first["model"]["variant"]),
                 f"{overall:.1f} ({len(by_task)}/{universe})"]
        if track.families:
            cells.append(MISSING if fam_mean is None else f"{fam_mean[0]:.1f} ({fam_mean[1]}/{len(CLRS_FAMILIES)})")
        for c in cols:
            e = by_task.get(c)
            if e is None:
                cells.append(MISSING)
            else:
                cells.append(f"{_pct(track, e['scores']['mean']):.1f} ± {_pct(track, e['scores']['std']):.1f}{_mark(e)}")
        full = sum(1 for e in by_task.values() if _verified_seeds(e) == len(e["scores"]["per_seed"]))
        cells.append(f"{full}/{len(by_task)}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _entries_table(track: Track, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    unit = "ms per test graph" if track.kind == "clrs" else "ms per forward"
    its = "solver iterations (trace steps)" if track.kind == "clrs" else "solver iterations"
    head = [track.column, "model", "variant", "score (%)", "seeds", f"inference ({unit})", "hardware", its,
            "training budget", "code", "submitter", "date", "verified", "link"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    order = {t: i for i, t in enumerate(_columns(track, entries))}
    for e in sorted(entries, key=lambda e: (order[e["task"]], -e["scores"]["mean"], _row_key(e))):
        s = e["scores"]
        t = e["timing"]
        sol = e.get("solver")
        if sol is None or sol.get("iterations_mean") is None:
            it = MISSING
        else:
            it = f"{sol['name']}: {sol['iterations_mean']:.1f}"
            if sol.get("reference_steps_mean") is not None:
                it += f" ({sol['reference_steps_mean']:.1f})"
        code = e["code_version"]["dear"] + (f" @ {e['code_version']['git_commit'][:8]}"
                                            if e["code_version"].get("git_commit") else "")
        if e["code_version"].get("git_uncommitted"):  # made from changes no commit holds
            code += " + uncommitted"
        k, n = _verified_seeds(e), len(s["per_seed"])
        ver = MISSING if not k else f"{VERIFIED} {k}/{n} seeds (tol {e['verification']['tolerance']:g})"
        cells = [f"`{e['task']}`", _cell(e["model"]["name"]), _cell(e["model"]["variant"]),
                 f"{_pct(track, s['mean']):.2f} ± {_pct(track, s['std']):.2f}", str(n),
                 MISSING if t["value"] is None else f"{t['value'] * 1000:.3g}", _cell(_hardware(t["hardware"])), it,
                 _cell(e["training"]["budget"]), code, _cell(e["submitter"]), e["date"], ver,
                 f"[link]({e['link']})" if e.get("link") else MISSING]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def section_title(track: Track, entry: Mapping[str, Any]) -> str:
    """Heading of the section holding ``entry`` (one section per :func:`protocol_key`)."""
    p = entry["protocol"]
    over = p["overrides"]
    if track.kind == "nodecls":
        extra = "".join(f", {option_label(k)} {over[k]}" for k in sorted(over) if k != "seed")
        return f"Split {p['split']}, validation draw seed {over.get('seed')}{extra}"
    sizes = clrs_test_config(entry["task"], p["name"], over).sizes
    title = f"`{p['name']}` protocol, test split, n = {', '.join(str(n) for n in sizes)}"
    if "num_samples" in over:
        title += f", {over['num_samples']} graphs"
    return title


def _families_note() -> list[str]:
    lines = ["CLRS-30 families (as in the CLRS benchmark paper):", ""]
    for fam, algos in CLRS_FAMILIES.items():
        lines.append(f"- {fam}: " + ", ".join(f"`{a}`" for a in algos))
    return lines


def render_track(track: Track, entries: Sequence[Mapping[str, Any]]) -> str:
    """The track's README.md for the given (already validated) entries."""
    out = [
        f"# Leaderboard: {track.title} (`{track.name}`)",
        "",
        "<!-- Generated by `dear leaderboard render` from the JSON entries in this folder. Do not edit by hand. -->",
        "",
        track.description,
        "",
        f"**Metric.** `{track.metric.name}`: {track.metric.averaging}. Shown in percent: the mean over seeds "
        "± the sample standard deviation (n - 1) over seeds; every entry has at least 3 seeds.",
        "",
        f"**Means.** *Mean over {track.column}s* is the unweighted mean of a row's per-{track.column} means over "
        f"the {track.column}s it covers; coverage is shown as covered/total and missing {track.column}s "
        f"({MISSING}) are neither counted as zero nor imputed. Rows are sorted by coverage first (means over "
        "different sets are not comparable), then by that mean."
        + (" *Mean over families* averages, per CLRS-30 family, the covered algorithms of that family, then "
           "averages the covered families." if track.families else ""),
        "",
        f"**Verified.** {VERIFIED} marks a cell whose every seed was re-evaluated from its checkpoint by "
        "`dear leaderboard submit --verify` and reproduced the claimed score within the stated tolerance; "
        "the last column counts fully verified cells.",
        "",
    ]
    if not entries:
        out += ["No entries yet. Submit one with `dear leaderboard submit RESULTS.json --model-name NAME` "
                "(see docs/leaderboards.md).", ""]
    sections: "OrderedDict[str, list[Mapping[str, Any]]]" = OrderedDict()
    for e in sorted(entries, key=protocol_key):
        sections.setdefault(protocol_key(e), []).append(e)
    for group in sections.values():
        descriptions = sorted({e["protocol"]["description"] for e in group})
        out += [f"## {section_title(track, group[0])}", ""]
        out += ["Test split" + ("s" if len(descriptions) > 1 else "") + ": " + "; ".join(descriptions) + ".", ""]
        out += _rank_table(track, group) + [""]
        out += ["### Entries", ""] + _entries_table(track, group) + [""]
    if track.families:
        out += _families_note() + [""]
    return "\n".join(out)
