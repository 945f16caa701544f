"""Semantic checks of one leaderboard entry: names, task, protocol, scores, fingerprint, verification.

Every check raises :class:`~dear.leaderboard.schema.EntryRejected` with a one-line reason. The
board-level checks (duplicates, file location, stale tables) are in
:mod:`dear.leaderboard.board`, because they need the other entries.

The split fingerprint is never taken on trust: it is recomputed here from the task and the
protocol alone. For CLRS tasks that is ``clrs_tasks.fingerprint(task, split_config(...))``,
a hash of the split's definition (no data is sampled); for node classification it is the
fingerprint ``dear.nodecls.load_dataset`` computes from the local source files.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.util
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from dear.leaderboard.schema import EntryRejected, check_schema
from dear.leaderboard.tracks import CLRS30, TRACKS, Track, get_track

if TYPE_CHECKING:
    from clrs_tasks import SplitConfig

MIN_SEEDS = 3

# What ``submit --verify`` runs, per track kind; a verification record must state one of these
# (a record written by hand, e.g. "trust me", is not a verification).
VERIFY_METHODS = {
    "clrs": "dear.evaluate.load_run + evaluate_size on the entry's test split (the code of dear evaluate), "
            "scores compared per seed",
    "nodecls": "best-validation weights reloaded, one eval-mode forward, test accuracy compared per seed",
}

# Characters with a meaning in Markdown tables or HTML. Names and every other string that is
# rendered into a table must avoid them, so an entry can never add markup, links, columns or
# rows to a table.
_MARKUP = set("<>|[]`*_~#\\!&{}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LINK = re.compile(r"^https://[A-Za-z0-9.-]+(?::\d+)?(?:/[A-Za-z0-9._~:/?#@!$&*+,;=%-]*)?$")
# A default variant names every training setting off its default (convert.py), so a tuned
# configuration's runs past 120 characters (IGNN on Flickr: 123).
_MAX_LEN = {"model.name": 60, "model.variant": 200, "submitter": 80}


def check_text(value: str, where: str, max_len: int = 160) -> None:
    """Reject a string that would be rendered into a table but could inject Markdown or HTML, or
    that names a path (``/``, ``..``), or is empty, padded or too long."""
    if not value.strip() or value != value.strip():
        raise EntryRejected("name", f"{where} must be non-empty without leading or trailing spaces, got {value!r}")
    if len(value) > max_len:
        raise EntryRejected("name", f"{where} is {len(value)} characters; at most {max_len}")
    bad = sorted({c for c in value if c in _MARKUP or not c.isprintable()})
    if bad or "://" in value or "www." in value.lower():
        shown = ", ".join(repr(c) for c in bad) or "a URL"
        raise EntryRejected("name", f"{where} {value!r} contains {shown}, which would inject Markdown/HTML "
                                    "into the table; use letters, digits, spaces and . , + - = : ( ) %")
    if "/" in value or ".." in value:
        raise EntryRejected("path", f"{where} {value!r} contains '/' or '..', which would name a path outside "
                                    "the track folder")


def check_link(value: str | None) -> None:
    """A link, if given, is a plain ``https://`` URL without characters that break a Markdown link."""
    if value is None:
        return
    if not _LINK.match(value):
        raise EntryRejected("name", f"link {value!r} must be a plain https:// URL without spaces, quotes, "
                                    "brackets, parentheses or '<>|'")


def check_date(value: str, where: str = "date") -> None:
    try:
        if not _DATE.match(value):
            raise ValueError
        _dt.date.fromisoformat(value)
    except ValueError:
        raise EntryRejected("schema", f"{where} must be a date YYYY-MM-DD, got {value!r}") from None


def slug(text: str) -> str:
    """Lower-case letters and digits joined by single hyphens (used in file names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _canonical(text: str) -> str:
    return " ".join(text.split()).casefold()


# ----------------------------------------------------------------------------- protocol


def protocol_key(entry: Mapping[str, Any]) -> str:
    """What defines the test split an entry was scored on; entries are ranked together only when
    their keys are equal (e.g. ``dear n=64`` and ``dear n=128`` are separate tables)."""
    p = entry["protocol"]
    over = p.get("overrides") or {}
    if get_track(entry["track"]).kind == "nodecls":
        opts = ",".join(f"{k}={json.dumps(plain_number(over[k]), sort_keys=True)}" for k in sorted(over))
        return f"split={plain_number(p['split'])};{opts}"
    sizes = over.get("sizes")
    key = str(p["name"])
    if sizes is not None:
        key += " n=" + ",".join(str(s) for s in sizes)
    if over.get("num_samples") is not None:
        key += f" samples={over['num_samples']}"
    return key


def plain_number(value: Any) -> Any:
    """An integral float as the int it equals (``60.0`` -> ``60``), anything else as it is, so a
    split or option written either way keys the same test split. Validation also rejects the
    float spelling; this keeps the duplicate check right even for entries it never saw."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """The identity of an entry: two entries with equal keys are duplicates."""
    return (entry["track"], entry["task"], protocol_key(entry), _canonical(entry["model"]["name"]),
            _canonical(entry["model"]["variant"]))


def entry_filename(entry: Mapping[str, Any]) -> str:
    """``<task>--<model>--<variant>--<hash>.json``: readable, and unique per :func:`entry_key`
    (the hash covers the whole key, so names that slug alike cannot overwrite each other)."""
    digest = hashlib.sha256("\x1f".join(entry_key(entry)).encode()).hexdigest()[:10]
    return (f"{slug(entry['task'])}--{slug(entry['model']['name'])[:40]}--"
            f"{slug(entry['model']['variant'])[:60]}--{digest}.json")


def _check_clrs_protocol(entry: Mapping[str, Any], track: Track) -> dict[str, Any]:
    from clrs_tasks import PROTOCOLS  # noqa: PLC0415

    p = entry["protocol"]
    if p["name"] not in PROTOCOLS:
        raise EntryRejected("protocol", f"protocol.name {p['name']!r} is not a CLRS protocol; valid: "
                                        f"{', '.join(PROTOCOLS)}")
    if p["split"] != "test":
        raise EntryRejected("protocol", f"protocol.split must be 'test' (leaderboards rank test scores), got "
                                        f"{p['split']!r}")
    over = dict(p["overrides"])
    unknown = sorted(set(over) - set(track.overrides))
    if unknown:
        raise EntryRejected("protocol", f"protocol.overrides.{unknown[0]} is not allowed on track {track.name}; "
                                        f"allowed: {', '.join(track.overrides) or '(none)'}")
    if "sizes" in over:
        s = over["sizes"]
        if not (isinstance(s, list) and len(s) == 1 and isinstance(s[0], int) and not isinstance(s[0], bool)
                and s[0] >= 1):
            raise EntryRejected("protocol", f"protocol.overrides.sizes must be a list of one positive int, got {s!r}")
    if "num_samples" in over:
        n = over["num_samples"]
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise EntryRejected("protocol", f"protocol.overrides.num_samples must be a positive int, got {n!r}")
    default = clrs_test_config(entry["task"], p["name"], {})
    for name, value in (("sizes", tuple(over.get("sizes", ()))), ("num_samples", over.get("num_samples"))):
        if name in over and value == getattr(default, name):
            raise EntryRejected("protocol", f"protocol.overrides.{name} equals the protocol's default; leave it out "
                                            "so that equal splits are described alike")
    return over


def _check_nodecls_protocol(entry: Mapping[str, Any]) -> dict[str, Any]:
    p = entry["protocol"]
    if p["name"] != "standard":
        raise EntryRejected("protocol", f"nodecls protocol.name must be 'standard', got {p['name']!r}")
    over = dict(p["overrides"])
    seed = over.get("seed")
    if not (isinstance(seed, int) and not isinstance(seed, bool)):
        raise EntryRejected("protocol", "nodecls protocol.overrides.seed (the validation draw's seed) must be an int")
    split = p["split"]
    if isinstance(split, bool):
        raise EntryRejected("protocol", f"protocol.split must be a split name or number, got {split!r}")
    if isinstance(split, float) and split.is_integer():
        raise EntryRejected("protocol", f"protocol.split {split!r} must be written {int(split)} so that equal "
                                        "splits are described alike")
    from dear.nodecls.datasets.registry import get_spec  # noqa: PLC0415

    defaults = get_spec(entry["task"]).options()
    for name in sorted(k for k in over if k != "seed"):
        if name not in defaults:
            raise EntryRejected("protocol", f"protocol.overrides.{name} is not an option of {entry['task']}; valid: "
                                            f"seed, {', '.join(sorted(defaults)) or '(none)'}")
        value, default = over[name], defaults[name]
        if not _option_type_ok(value, default):
            raise EntryRejected("protocol", f"protocol.overrides.{name} must be {_option_kind(default)} like its "
                                            f"default {default!r}, got {value!r}")
        if value == default:
            raise EntryRejected("protocol", f"protocol.overrides.{name} equals the dataset's default ({default!r}); "
                                            "leave it out so that equal splits are described alike")
    return over


def canonical_dataset_options(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without those equal to the dataset's defaults (a run may state a default
    explicitly; the test split is the same, so its entry must describe it the same way).
    Unknown datasets or options are left for validation to reject."""
    from dear.nodecls.datasets.registry import get_spec  # noqa: PLC0415

    try:
        defaults = get_spec(dataset).options()
    except ValueError:
        return dict(options)
    return {k: v for k, v in options.items()
            if not (k in defaults and _option_type_ok(v, defaults[k]) and v == defaults[k])}


def _option_kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an int"
    if isinstance(default, float):
        return "a number"
    return f"a {type(default).__name__}"


def _option_type_ok(value: Any, default: Any) -> bool:
    """Whether a dataset option's value has its default's JSON type (ints for int options, any
    finite number for float ones, booleans for flags); options defaulting to ``None`` take anything."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, type(default))


# ---------------------------------------------------------------------------------- tasks


def task_module_path(relpath: str, base: Path) -> Path:
    """The file a ``task_module`` names, refusing anything outside ``base`` or not a ``.py`` file."""
    path = Path(relpath)
    if path.is_absolute() or ".." in path.parts or path.suffix != ".py":
        raise EntryRejected("path", f"task_module {relpath!r} must be a relative path to a .py file inside the "
                                    "repository")
    full = (base / path).resolve()
    try:
        full.relative_to(base.resolve())
    except ValueError:
        raise EntryRejected("path", f"task_module {relpath!r} resolves outside the repository") from None
    if not full.is_file():
        raise EntryRejected("task", f"task_module {relpath!r} does not exist under {base}")
    return full


def load_task_module(relpath: str, base: Path) -> None:
    """Import the file that registers a user task, by path, as a module named after its stem.

    The module name matters: a user task's fingerprint covers the qualified names of its
    algorithm and sampler, so the file must be imported under the same name it had when the
    entry was made (``python examples/x/run.py`` imports ``examples/x/task.py`` as ``task``).
    Only files inside ``base`` (the repository holding the boards) are imported. Callers import
    it only when the task is not registered, so it is (re-)executed even if a module of that
    name was imported before (and its task since unregistered).
    """
    full = task_module_path(relpath, base)
    name = full.stem
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise EntryRejected("task", f"task_module {relpath!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's module failed: say which and why, in one line
        sys.modules.pop(name, None)
        raise EntryRejected("task", f"importing task_module {relpath!r} failed: {type(e).__name__}: {e}") from None


def _check_task(entry: Mapping[str, Any], track: Track, base: Path) -> None:
    task = entry["task"]
    if track.tasks == "clrs30":
        if task not in CLRS30:
            raise EntryRejected("task", f"{task!r} is not a CLRS-30 algorithm, so it cannot go on {track.name}; "
                                        "tasks outside CLRS-30 go on user-tasks")
        return
    if track.tasks == "datasets":
        from dear.nodecls import available_datasets  # noqa: PLC0415

        if task not in available_datasets():
            raise EntryRejected("task", f"unknown dataset {task!r}; registered: {', '.join(available_datasets())}")
        return
    import clrs_tasks as ct  # noqa: PLC0415

    if entry.get("task_module"):
        task_module_path(entry["task_module"], base)
        if task not in ct.list_tasks():
            load_task_module(entry["task_module"], base)
    try:
        t = ct.get_task(task)
    except ct.UnknownTaskError:
        raise EntryRejected("task", f"task {task!r} is not registered; give task_module (the file that "
                                    "registers it) in the entry, or --task-module to submit") from None
    if t.clrs30:
        raise EntryRejected("task", f"{task!r} is a CLRS-30 algorithm; submit it to clrs-ood")
    if t.origin != "dm-clrs" and not entry.get("task_module"):
        raise EntryRejected("task", f"{task!r} is a user-registered task; the entry must name the file that "
                                    "registers it (task_module)")


# ---------------------------------------------------------------------------- fingerprint


def clrs_test_config(task: str, protocol: str, overrides: Mapping[str, Any]) -> "SplitConfig":
    """The :class:`clrs_tasks.SplitConfig` of a CLRS test split with the allowed overrides."""
    import clrs_tasks as ct  # noqa: PLC0415

    kw: dict[str, Any] = {}
    if "sizes" in overrides:
        kw["sizes"] = tuple(overrides["sizes"])
    if "num_samples" in overrides:
        kw["num_samples"] = int(overrides["num_samples"])
    return ct.split_config(ct.get_task(task), "test", protocol, **kw)


def describe_clrs_split(task: str, protocol: str, overrides: Mapping[str, Any]) -> str:
    """A one-line description of the test split, e.g. ``dear protocol, test: n = 64, 100 graphs, seed 3``."""
    cfg = clrs_test_config(task, protocol, overrides)
    sizes = ", ".join(str(s) for s in cfg.sizes)
    return f"{protocol} protocol, test: n = {sizes}, {cfg.num_samples} graphs, seed {cfg.seed}"


def describe_nodecls_split(dataset: str, split: Any, overrides: Mapping[str, Any]) -> str:
    """A one-line description of a node-classification split, e.g. ``amgcn:citeseer, split 60,
    validation draw seed 0`` or ``sbm, split 20, validation draw seed 0, num nodes 2000``."""
    extra = "".join(f", {option_label(k)} {json.dumps(overrides[k], sort_keys=True)}"
                    for k in sorted(overrides) if k != "seed")
    return f"{dataset}, split {split}, validation draw seed {overrides.get('seed')}{extra}"


def option_label(name: str) -> str:
    """A dataset option's name as tables show it (``num_nodes`` -> ``num nodes``): ``_`` is
    Markdown emphasis, which rendered text may not hold, and these names come from the code."""
    return str(name).replace("_", " ")


@functools.lru_cache(maxsize=64)
def _nodecls_fingerprint(dataset: str, split: Any, options_json: str) -> str:
    from dear.nodecls import load_dataset  # noqa: PLC0415

    options = json.loads(options_json)
    seed = options.pop("seed")
    return load_dataset(dataset, split=split, seed=seed, **options).fingerprint


def expected_fingerprint(entry: Mapping[str, Any]) -> str:
    """The split fingerprint computed locally for the entry's task and protocol."""
    track = get_track(entry["track"])
    p = entry["protocol"]
    if track.kind == "clrs":
        import clrs_tasks as ct  # noqa: PLC0415

        cfg = clrs_test_config(entry["task"], p["name"], p["overrides"])
        return ct.fingerprint(ct.get_task(entry["task"]), cfg)
    from dear.nodecls import DatasetNotFoundError  # noqa: PLC0415

    try:
        return _nodecls_fingerprint(entry["task"], p["split"], json.dumps(p["overrides"], sort_keys=True))
    except DatasetNotFoundError as e:
        raise EntryRejected("fingerprint", f"cannot compute the split fingerprint locally: {e}") from None
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, OverflowError) as e:
        # the loaders' own checks raise ValueError; an option value they do not check (a string
        # where a number belongs) fails deeper, as TypeError or a torch error: the same mistake
        msg = " ".join(str(e).split())[:300]
        raise EntryRejected("protocol", f"dataset {entry['task']!r} rejects the protocol: {type(e).__name__}: "
                                        f"{msg}") from None


# --------------------------------------------------------------------------------- scores


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def summary(scores: list[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) as entries store them."""
    return statistics.fmean(scores), statistics.stdev(scores)


def _check_scores(entry: Mapping[str, Any], track: Track) -> None:
    m = entry["metric"]
    if m["name"] != track.metric.name or m["unit"] != track.metric.unit:
        raise EntryRejected("metric", f"track {track.name} scores {track.metric.name} in {track.metric.unit}, the "
                                      f"entry states {m['name']} in {m['unit']}")
    per_seed = entry["scores"]["per_seed"]
    if len(per_seed) < MIN_SEEDS:
        raise EntryRejected("seeds", f"{len(per_seed)} seed(s); at least {MIN_SEEDS} are required")
    seeds = [s["seed"] for s in per_seed]
    if len(set(seeds)) != len(seeds):
        raise EntryRejected("seeds", f"seeds must be distinct, got {seeds}")
    lo, hi = track.metric.low, track.metric.high
    for s in per_seed:
        x = s["score"]
        if not math.isfinite(x):
            raise EntryRejected("score", f"seed {s['seed']}: score {x!r} is not finite")
        if not lo <= x <= hi:
            raise EntryRejected("score", f"seed {s['seed']}: score {x!r} is outside [{lo:g}, {hi:g}] "
                                         f"({track.metric.name} in {track.metric.unit})")
    mean, std = summary([float(s["score"]) for s in per_seed])
    for name, claimed, actual in (("mean", entry["scores"]["mean"], mean), ("std", entry["scores"]["std"], std)):
        if not (math.isfinite(claimed) and _close(claimed, actual)):
            raise EntryRejected("score", f"scores.{name} is {claimed!r} but the per-seed scores give {actual!r} "
                                         "(std is the sample standard deviation, n - 1)")


def _check_numbers(entry: Mapping[str, Any]) -> None:
    """Solver and training figures a run can actually have: counts of at least 1, non-negative
    iterations and tolerances, positive durations, all finite (``-2`` iterations is a typo or a
    forgery, never a measurement)."""
    def check(where: str, value: Any, low: float, strict: bool = False) -> None:
        if value is None:
            return
        if not (math.isfinite(value) and (value > low if strict else value >= low)):
            bound = f"> {low:g}" if strict else f">= {low:g}"
            raise EntryRejected("score", f"{where} {value!r} must be a finite number {bound} or null")

    sol = entry.get("solver")
    if sol is not None:
        for name in ("tol", "iterations_mean", "iterations_max", "reference_steps_mean"):
            check(f"solver.{name}", sol[name], 0.0)
    tr = entry["training"]
    for name in ("steps", "epochs", "batch_size", "num_train"):
        check(f"training.{name}", tr[name], 1.0)
    check("training.seconds_mean", tr["seconds_mean"], 0.0, strict=True)


def _check_architecture(entry: Mapping[str, Any], track: Track) -> None:
    """``model.architecture`` must name a model this code builds (the track decides which kind)."""
    arch = entry["model"]["architecture"]
    if track.kind == "clrs":
        from dear.config import MODELS as known  # noqa: PLC0415
    else:
        from dear.nodecls.baselines import available_models  # noqa: PLC0415

        known = tuple(available_models())
    if arch not in known:
        raise EntryRejected("schema", f"model.architecture {arch!r} is not a model of track {track.name}; valid: "
                                      f"{', '.join(known)}")


def _check_verification(entry: Mapping[str, Any], track: Track) -> None:
    """A verification record must be what ``submit --verify`` writes and agree with the entry.

    The checkpoints are not committed, so a committed record cannot be re-run here; ``submit``
    never keeps a record it did not make in the same call, so one only reaches the boards
    through ``--verify`` or a hand edit that review sees. What can be checked is checked: the
    method is this code's, the tolerance within the track's maximum, each verified seed is
    reported once with its claimed score, and every seed's checkpoint is a different file
    (one checkpoint copied under several seeds vouches for one model, not several).
    """
    v = entry.get("verification")
    if v is None:
        return
    tol = v["tolerance"]
    if not (math.isfinite(tol) and 0 <= tol <= track.metric.max_verify_tolerance):
        raise EntryRejected("verify", f"verification.tolerance {tol!r} must be in [0, "
                                      f"{track.metric.max_verify_tolerance:g}] for {track.metric.name}")
    if v["method"] != VERIFY_METHODS[track.kind]:
        raise EntryRejected("verify", f"verification.method {v['method']!r} is not what `dear leaderboard submit "
                                      "--verify` runs; only --verify may write a verification record")
    check_date(v["date"], "verification.date")
    claimed = {s["seed"]: s["score"] for s in entry["scores"]["per_seed"]}
    if not v["seeds"]:
        raise EntryRejected("verify", "verification.seeds is empty")
    seeds = [item["seed"] for item in v["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise EntryRejected("verify", f"verification.seeds lists a seed twice: {seeds}")
    hashes: dict[str, int] = {}
    for item in v["seeds"]:
        seed = item["seed"]
        other = hashes.setdefault(item["checkpoint_sha256"], seed)
        if other != seed:
            raise EntryRejected("verify", f"verification of seeds {other} and {seed} used the same checkpoint file "
                                          "(equal sha256); each seed needs its own checkpoint")
        if seed not in claimed or item["claimed"] != claimed[seed]:
            raise EntryRejected("verify", f"verification of seed {seed} does not match the entry's score for it")
        if not (math.isfinite(item["reproduced"]) and abs(item["reproduced"] - item["claimed"]) <= tol):
            raise EntryRejected("verify", f"seed {seed}: claimed {item['claimed']!r}, the checkpoint gave "
                                          f"{item['reproduced']!r} (tolerance {tol:g})")
        if not _HEX64.match(item["checkpoint_sha256"]):
            raise EntryRejected("verify", f"verification of seed {seed}: checkpoint_sha256 is not a sha256")


def rendered_texts(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, text) of every free-text string the tables show."""
    out = [("model.name", entry["model"]["name"]), ("model.variant", entry["model"]["variant"]),
           ("model.architecture", entry["model"]["architecture"]), ("submitter", entry["submitter"]),
           ("training.budget", entry["training"]["budget"]), ("timing.unit", entry["timing"]["unit"]),
           ("protocol.description", entry["protocol"]["description"])]
    for key in ("device", "gpu"):
        value = entry["timing"]["hardware"].get(key)
        if value is not None:
            out.append((f"timing.hardware.{key}", str(value)))
    if entry.get("solver") is not None:
        out.append(("solver.name", entry["solver"]["name"]))
    return out


def validate_entry(entry: Any, base: Path) -> Track:
    """Run every per-entry check; return the entry's track. ``base`` is the repository root
    (the folder holding ``leaderboards/``), against which ``task_module`` paths resolve."""
    check_schema(entry)
    if entry["track"] not in TRACKS:
        raise EntryRejected("path", f"track {entry['track']!r} is not a leaderboard track (no such folder); "
                                    f"valid: {', '.join(TRACKS)}")
    track = TRACKS[entry["track"]]
    for where, text in rendered_texts(entry):
        check_text(text, where, _MAX_LEN.get(where, 160))
    check_link(entry.get("link"))
    check_date(entry["date"])
    _check_task(entry, track, base)
    if track.kind == "clrs":
        over = _check_clrs_protocol(entry, track)
        described = describe_clrs_split(entry["task"], entry["protocol"]["name"], over)
    else:
        over = _check_nodecls_protocol(entry)
        described = describe_nodecls_split(entry["task"], entry["protocol"]["split"], over)
    if entry["protocol"]["description"] != described:
        raise EntryRejected("protocol", f"protocol.description must be {described!r} (derived from the protocol), "
                                        f"got {entry['protocol']['description']!r}")
    _check_scores(entry, track)
    _check_architecture(entry, track)
    _check_numbers(entry)
    uncommitted = entry["code_version"].get("git_uncommitted")
    if uncommitted is not None and not all(isinstance(f, str) and f for f in uncommitted):
        raise EntryRejected("schema", "code_version.git_uncommitted must list file paths (strings), as the runs' "
                                      "records name them")
    if entry["timing"]["unit"] != track.timing_unit:
        raise EntryRejected("schema", f"timing.unit must be {track.timing_unit!r} on track {track.name}, got "
                                      f"{entry['timing']['unit']!r}")
    value = entry["timing"]["value"]
    if value is not None and not (math.isfinite(value) and value > 0):
        raise EntryRejected("score", f"timing.value {value!r} must be a positive finite number of seconds or null")
    fp = entry["split_fingerprint"]
    if not _HEX64.match(fp):
        raise EntryRejected("fingerprint", f"split_fingerprint must be a sha256 hex digest, got {fp!r}")
    local = expected_fingerprint(entry)
    if fp != local:
        raise EntryRejected("fingerprint", f"split fingerprint {fp[:12]}... is not the one computed locally for "
                                           f"{entry['task']} / {protocol_key(entry)} ({local[:12]}...): the "
                                           "scores come from a different test split")
    _check_verification(entry, track)
    return track

