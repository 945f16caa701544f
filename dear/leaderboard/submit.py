"""``dear leaderboard submit``: results files -> a validated, optionally verified, entry on disk.

Order of work: convert the results into an entry, run every per-entry check (cheap, and it
includes the split fingerprint), refuse duplicates *before* spending time on verification, then
re-evaluate the checkpoints if ``verify`` names any, and finally write the entry and re-render the
track under the track's lock (:meth:`Board.add`).

Verification re-evaluates each checkpoint on the entry's test split with the same code that
``dear evaluate`` uses (:func:`dear.evaluate.load_run` and :func:`dear.evaluate.evaluate_size`,
the two halves of :func:`dear.evaluate.evaluate_run`), with one difference: the test-set size is
taken from the entry's protocol, not from the run's config, so a run trained with a small
``num_test`` is still checked on the official split. The evaluated split's fingerprint must equal
the entry's, and each verified seed's score must be within ``tolerance`` of the claim.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from dear.io import sha256_file
from dear.leaderboard.board import Board
from dear.leaderboard.convert import (
    _PER_SEED_KEYS,
    _with_defaults,
    entry_from_clrs_results,
    entry_from_nodecls_results,
    load_json,
    malformed,
    results_kind,
)
from dear.leaderboard.schema import EntryRejected
from dear.leaderboard.tracks import get_track
from dear.leaderboard.validation import (
    VERIFY_METHODS,
    canonical_dataset_options,
    load_task_module,
    validate_entry,
)


@dataclass
class SubmitResult:
    """What :func:`submit` did: where the entry went (``None`` for a dry run), the entry, and
    notes for the user (e.g. that a ready-made entry's verification record was dropped)."""

    path: Path | None
    entry: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to the repository when inside it (no absolute local paths in entries)."""
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _task_module_rel(task_module: str | Path, base: Path) -> str:
    p = Path(task_module)
    full = p if p.is_absolute() else Path.cwd() / p
    try:
        return full.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        raise EntryRejected("path", f"--task-module {task_module} is outside the repository {base}; the module "
                                    "that registers a task must be committed beside the boards") from None


def build_entry(paths: Sequence[Path], board: Board, *, model_name: str | None = None, variant: str | None = None,
                track: str | None = None, submitter: str | None = None, date: str | None = None,
                link: str | None = None, size: int | None = None,
                task_module: str | Path | None = None) -> dict[str, Any]:
    """Convert results files (or one ready-made entry) into an entry; see :mod:`dear.leaderboard.convert`.

    A ready-made entry's ``verification`` record is dropped: only ``submit --verify`` re-runs
    checkpoints, so a record this code did not just produce is a claim, not a verification.
    """
    return _build_entry(paths, board, model_name=model_name, variant=variant, track=track, submitter=submitter,
                        date=date, link=link, size=size, task_module=task_module)[0]


def _build_entry(paths: Sequence[Path], board: Board, *, model_name: str | None, variant: str | None,
                 track: str | None, submitter: str | None, date: str | None, link: str | None, size: int | None,
                 task_module: str | Path | None) -> tuple[dict[str, Any], list[str]]:
    """:func:`build_entry`, plus notes on what was changed in a ready-made entry."""
    if not paths:
        raise ValueError("give at least one results file")
    docs = [load_json(Path(p)) for p in paths]
    kinds = {results_kind(d) for d in docs}
    if len(kinds) > 1:
        raise EntryRejected("schema", f"mixed kinds of results files: {', '.join(sorted(kinds))}")
    kind = kinds.pop()
    rel_module = _task_module_rel(task_module, board.base) if task_module else None
    if rel_module:
        load_task_module(rel_module, board.base)
    if kind == "entry":
        if len(docs) != 1:
            raise EntryRejected("schema", "give one entry file at a time")
        entry = dict(docs[0])
        if model_name or variant:
            entry["model"] = {**entry.get("model", {}), **({"name": model_name} if model_name else {}),
                              **({"variant": variant} if variant else {})}
        for key, value in (("submitter", submitter), ("date", date), ("link", link), ("task_module", rel_module)):
            if value:
                entry[key] = value
        if entry.get("task_module") and not rel_module:
            load_task_module(entry["task_module"], board.base)
        notes = []
        if entry.get("verification") is not None:
            entry["verification"] = None
            notes.append(f"{paths[0]}'s verification record was dropped: only --verify in this call re-evaluates "
                         "checkpoints and writes one")
        return entry, notes
    who = submitter or "anonymous"
    rel_paths = [Path(_relative(Path(p), board.base)) for p in paths]
    if kind == "nodecls":
        if len(docs) != 1:
            raise EntryRejected("schema", "a nodecls results file already holds every seed; give one file")
        return entry_from_nodecls_results(docs[0], model_name=model_name, variant=variant, track=track,
                                          submitter=who, date=date, link=link, path=rel_paths[0]), []
    import clrs_tasks as ct  # noqa: PLC0415

    try:
        entry = entry_from_clrs_results(docs, model_name=model_name, variant=variant, track=track, submitter=who,
                                        date=date, link=link, size=size, task_module=rel_module, paths=list(paths))
    except ct.UnknownTaskError as e:  # an unregistered task: the message lists the known ones
        raise EntryRejected("task", str(e.args[0]) if e.args else str(e)) from None
    except (KeyError, TypeError, AttributeError, IndexError) as e:  # a field missing or of the wrong kind
        raise EntryRejected("schema", f"the `dear evaluate` results file(s) are incomplete or malformed "
                                      f"({malformed(e)}); submit the results.json that dear evaluate wrote") from None
    entry["source"]["files"] = [p.as_posix() for p in rel_paths]
    return entry, []


# ------------------------------------------------------------------------------ verify


def _run_dir(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        return path
    if path.name == "checkpoint_best.pt" and path.is_file():
        return path.parent
    raise FileNotFoundError(f"--verify takes a run directory or its checkpoint_best.pt; {path} is neither")


def _verify_clrs(entry: dict[str, Any], checkpoints: Sequence[Path], tolerance: float, device: str) -> list[dict]:
    from dear.evaluate import evaluate_size, load_run  # noqa: PLC0415
    from dear.io import resolve_device  # noqa: PLC0415

    dev = resolve_device(device)
    claimed = {s["seed"]: s["score"] for s in entry["scores"]["per_seed"]}
    over = entry["protocol"]["overrides"]
    items: list[dict[str, Any]] = []
    for ckpt in checkpoints:
        run_dir = _run_dir(Path(ckpt))
        cfg, model, _ = load_run(run_dir, dev)
        for what, have, want in (("algorithm", cfg.algorithm, entry["task"]),
                                 ("protocol", cfg.protocol, entry["protocol"]["name"]),
                                 ("model", cfg.model, entry["model"]["architecture"])):
            if have != want:
                raise EntryRejected("verify", f"{run_dir} is a {what} {have!r} run; the entry is for {want!r}")
        if entry.get("config"):
            mine = {k: v for k, v in cfg.to_dict().items() if k not in _PER_SEED_KEYS}
            theirs = {k: v for k, v in _with_defaults(entry["config"]).items() if k not in _PER_SEED_KEYS}
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            if diff:
                raise EntryRejected("verify", f"{run_dir} was trained with a different config ({', '.join(diff)})")
        if cfg.seed not in claimed:
            raise EntryRejected("verify", f"{run_dir} is seed {cfg.seed}, which the entry does not report")
        if any(i["seed"] == cfg.seed for i in items):
            raise EntryRejected("verify", f"seed {cfg.seed} was given twice to --verify")
        cfg.num_test = over.get("num_samples")  # the entry's (official) split, whatever the run tested on
        size = over["sizes"][0] if "sizes" in over else None
        model.eval()
        res, fp = evaluate_size(cfg, model, size, dev, repeats=1, warmup=0)
        if fp != entry["split_fingerprint"]:
            raise EntryRejected("verify", f"{run_dir} evaluates on split {fp[:12]}..., not the entry's "
                                          f"{entry['split_fingerprint'][:12]}...")
        items.append(_check_claim(cfg.seed, claimed[cfg.seed], float(res["score"]), tolerance,
                                  run_dir / "checkpoint_best.pt"))
    return items


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


def _nodecls_config(entry: dict[str, Any]) -> Any:
    """The entry's run configuration as a :class:`~dear.nodecls.train.NodeClsConfig`, checked
    to describe this entry (dataset, model, split, validation draw, dataset options)."""
    from dear.nodecls.train import NodeClsConfig  # noqa: PLC0415

    config = entry.get("config")
    if not config:
        raise EntryRejected("verify", "a nodecls entry needs its run config to rebuild the model for --verify")
    fields = {k: v for k, v in config.items() if k != "resolved_model_options"}
    known = {f.name for f in dataclasses.fields(NodeClsConfig)}
    unknown = sorted(set(fields) - known)
    if unknown or "dataset" not in fields:
        what = f"unknown key {unknown[0]!r}" if unknown else "no dataset"
        raise EntryRejected("verify", f"the entry's config is not a `dear nodecls train` configuration ({what}); "
                                      "--verify rebuilds the model from it")
    try:
        cfg = NodeClsConfig(**fields).validate()
    except (ValueError, TypeError) as e:
        raise EntryRejected("verify", f"the entry's config is not a valid run configuration ({_one_line(e)})") from None
    over = dict(entry["protocol"]["overrides"])
    seed = over.pop("seed", None)
    options = canonical_dataset_options(cfg.dataset, cfg.dataset_options or {})
    for what, have, want in (("dataset", str(cfg.dataset).strip().lower(), entry["task"]),
                             ("model", cfg.model, entry["model"]["architecture"]),
                             ("validation draw seed", cfg.data_seed, seed),
                             ("dataset options", options, over)):
        if have != want:
            raise EntryRejected("verify", f"the entry's config has {what} {have!r}, its task and protocol say "
                                          f"{want!r}")
    split = cfg.split.lower() if isinstance(cfg.split, str) else cfg.split
    if split is not None and split != entry["protocol"]["split"]:
        raise EntryRejected("verify", f"the entry's config has split {cfg.split!r}, its protocol "
                                      f"{entry['protocol']['split']!r}")
    return cfg


def _config_key_matches(cfg: Any, seed: int, config_key: Any) -> bool:
    """Whether ``config_key`` (from ``seed_<k>.json``) is the key ``dear nodecls train`` gives
    this configuration's seed ``seed`` (``NodeClsConfig.matches_seed_key``, which also accepts
    keys written by older versions)."""
    return bool(cfg.matches_seed_key(seed, config_key))


def _seed_record(ckpt: Path, seed: int, cfg: Any) -> None:
    """Check ``seed_<k>.json`` beside a checkpoint: written by ``dear nodecls train`` for seed
    ``k`` of the entry's configuration. The file name alone proves nothing (copy seed_0.pt to
    seed_1.pt); the record names the seed it trained and the configuration's key."""
    meta_path = ckpt.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise EntryRejected("verify", f"{meta_path} is missing; --verify needs the seed_<k>.json that dear nodecls "
                                      "train writes beside each checkpoint (it records the seed and configuration)")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EntryRejected("verify", f"{meta_path} is unreadable ({_one_line(e)})") from None
    record = meta.get("record") if isinstance(meta, dict) else None
    if not isinstance(record, dict):
        raise EntryRejected("verify", f"{meta_path} is not a seed record of dear nodecls train")
    if not _config_key_matches(cfg, seed, meta.get("config_key")):
        raise EntryRejected("verify", f"{ckpt} was trained with another configuration or seed than the entry's "
                                      f"seed {seed} (config_key {meta.get('config_key')!r} in {meta_path.name} is "
                                      "not the key of the entry's config)")
    if record.get("seed") != seed:
        raise EntryRejected("verify", f"{ckpt} is named seed {seed} but {meta_path.name} records seed "
                                      f"{record.get('seed')!r}")


def _verify_nodecls(entry: dict[str, Any], checkpoints: Sequence[Path], tolerance: float, device: str) -> list[dict]:
    import torch  # noqa: PLC0415

    from dear.io import resolve_device  # noqa: PLC0415
    from dear.nodecls import load_dataset  # noqa: PLC0415
    from dear.nodecls.baselines import build_nodecls_model, graph_operand  # noqa: PLC0415
    from dear.nodecls.train import _metric, model_features  # noqa: PLC0415

    cfg = _nodecls_config(entry)
    dev = resolve_device(device)
    over = dict(entry["protocol"]["overrides"])
    seed = over.pop("seed")
    data = load_dataset(entry["task"], split=entry["protocol"]["split"], seed=seed, **over)
    if data.fingerprint != entry["split_fingerprint"]:
        raise EntryRejected("verify", "the local dataset's fingerprint is not the entry's")
    x = model_features(data, cfg).to(dev)
    data = data.to(dev)
    multilabel = bool(getattr(data, "multilabel", False))
    num_classes = int(data.y.shape[1]) if multilabel else int(data.num_classes)
    claimed = {s["seed"]: s["score"] for s in entry["scores"]["per_seed"]}
    items: list[dict[str, Any]] = []
    for ckpt in checkpoints:
        ckpt = Path(ckpt)
        m = re.fullmatch(r"seed_(\d+)\.pt", ckpt.name)
        if not (m and ckpt.is_file()):
            raise FileNotFoundError(f"--verify for nodecls takes OUT/seeds/seed_<k>.pt files; {ckpt} is not one")
        s = int(m.group(1))
        if s not in claimed:
            raise EntryRejected("verify", f"{ckpt} is seed {s}, which the entry does not report")
        if any(i["seed"] == s for i in items):
            raise EntryRejected("verify", f"seed {s} was given twice to --verify")
        _seed_record(ckpt, s, cfg)
        torch.manual_seed(s)
        model = build_nodecls_model(cfg.model, x.shape[1], num_classes, **cfg.model_kwargs()).to(dev)
        try:
            state = torch.load(ckpt, map_location=dev, weights_only=True)
        except Exception as e:  # noqa: BLE001  a damaged or foreign file can raise almost anything
            raise EntryRejected("verify", f"{ckpt} is not a readable checkpoint ({_one_line(e)})") from None
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError, KeyError) as e:
            raise EntryRejected("verify", f"{ckpt} does not fit the entry's model {cfg.model!r} ({_one_line(e)}); "
                                          "is it another run's checkpoint?") from None
        model.eval()
        # The trainer's graph operand (sparse A^T for the SpMM models): same outputs as
        # edge_index, but gather-scatter on edge_index builds an E x F message tensor, which
        # for SGC on Flickr's raw features is more memory than a 24 GB machine has.
        with torch.no_grad():
            out = model(x, graph_operand(model, data.edge_index, int(data.num_nodes)))
        score = _metric(out[data.test_mask], data.y[data.test_mask], multilabel)
        items.append(_check_claim(s, claimed[s], float(score), tolerance, ckpt))
    return items


def _check_claim(seed: int, claimed: float, reproduced: float, tolerance: float, ckpt: Path) -> dict[str, Any]:
    if not abs(reproduced - claimed) <= tolerance:
        raise EntryRejected("verify", f"seed {seed}: the checkpoint scores {reproduced:.6g} on the official split, "
                                      f"the entry claims {claimed:.6g} (difference {abs(reproduced - claimed):.3g} > "
                                      f"tolerance {tolerance:g})")
    return {"seed": seed, "claimed": claimed, "reproduced": reproduced, "checkpoint_sha256": sha256_file(ckpt)}


def verify_entry(entry: dict[str, Any], checkpoints: Sequence[Path], tolerance: float | None = None,
                 device: str = "auto") -> dict[str, Any]:
    """Re-evaluate ``checkpoints`` (one per verified seed) and return the entry's ``verification``
    record; raise :class:`EntryRejected` (reason ``verify``) if any claim is not reproduced."""
    track = get_track(entry["track"])
    tol = track.metric.verify_tolerance if tolerance is None else float(tolerance)
    if not 0 <= tol <= track.metric.max_verify_tolerance:
        raise ValueError(f"--tolerance must be in [0, {track.metric.max_verify_tolerance:g}] for {track.metric.name}")
    if track.kind == "clrs":
        items = _verify_clrs(entry, checkpoints, tol, device)
    else:
        items = _verify_nodecls(entry, checkpoints, tol, device)
    by_hash: dict[str, int] = {}
    for item in items:  # one model copied under several seeds' names vouches for one seed only
        other = by_hash.setdefault(item["checkpoint_sha256"], item["seed"])
        if other != item["seed"]:
            raise EntryRejected("verify", f"the checkpoints given for seeds {other} and {item['seed']} are the same "
                                          "file (equal sha256); each seed needs its own checkpoint")
    from dear.io import resolve_device  # noqa: PLC0415

    return {"method": VERIFY_METHODS[track.kind], "tolerance": tol, "device": str(resolve_device(device)),
            "date": _dt.date.today().isoformat(), "seeds": sorted(items, key=lambda i: i["seed"])}


class WeightsNotHere(EntryRejected):
    """:func:`reverify` found none of an entry's checkpoints on this machine (reason ``verify``)."""


def entry_checkpoints(entry: dict[str, Any], base: Path) -> list[Path]:
    """The checkpoints of an entry's runs that exist on this machine, in seed order.

    The runs an entry names (``source.files``, relative to the repository ``base``) keep their
    results; their weights are git-ignored and exist only where the runs were trained or rebuilt
    (``scripts/rebuild_entry_runs.py``; for nodecls, ``dear nodecls train --out RUN``). CLRS:
    ``checkpoint_best.pt`` beside each ``results.json``. Nodecls: ``seeds/seed_<k>.pt`` of the
    run for each reported seed ``k``.
    """
    from dear.leaderboard.rebuild import entry_runs  # noqa: PLC0415

    runs = entry_runs(entry, base)
    if get_track(entry["track"]).kind == "clrs":
        return [r / "checkpoint_best.pt" for r in runs if (r / "checkpoint_best.pt").is_file()]
    from dear.nodecls.train import seed_files  # noqa: PLC0415

    out: list[Path] = []
    for run in runs:
        for item in entry["scores"]["per_seed"]:
            ckpt = seed_files(run, item["seed"])[1]
            if ckpt.is_file():
                out.append(ckpt)
    return out


def reverify(path: Path, *, tolerance: float | None = None, device: str = "auto", root: Path | None = None,
             base: Path | None = None) -> SubmitResult:
    """Verify a committed entry again from the checkpoints of its own runs, found here
    (:func:`entry_checkpoints`), and store the new ``verification`` record in place.

    This is how an entry submitted without ``--verify`` (or verified on fewer seeds) earns its
    check once its runs' weights exist again. Every other field is kept as committed. Refused
    (reason ``verify``) when none of the runs has weights here, or when a seed the entry's current
    record verifies has no weights here: a re-check never drops a verified seed.
    """
    board = Board(root, base)
    board.check_root(write=True)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no entry file at {path}")
    entry = load_json(path)
    validate_entry(entry, board.base)
    if board.path_for(entry) != path.resolve():
        raise EntryRejected("path", f"{path} is not an entry file of the boards folder {board.root} (expected "
                                    f"{board.path_for(entry)}); pass --root")
    if not (entry.get("source") or {}).get("files"):
        raise EntryRejected("verify", "the entry names no runs (source.files is empty, e.g. a ready-made entry), so "
                                      "there are no checkpoints to find; submit it again with --verify CHECKPOINT ...")
    ckpts = entry_checkpoints(entry, board.base)
    if not ckpts:
        raise WeightsNotHere("verify", "none of the entry's runs has weights on this machine; rebuild them first "
                                       "(`dear leaderboard verify --rebuild ENTRY`)")
    old = sorted(i["seed"] for i in (entry.get("verification") or {}).get("seeds") or [])
    record = verify_entry(entry, ckpts, tolerance, device)
    lost = sorted(set(old) - {i["seed"] for i in record["seeds"]})
    if lost:
        raise EntryRejected("verify", f"the entry is verified on seed(s) {', '.join(map(str, old))}, but no checkpoint "
                                      f"of seed(s) {', '.join(map(str, lost))} is here; refusing to replace the record "
                                      "with one that drops them")
    entry["verification"] = record
    validate_entry(entry, board.base)
    return SubmitResult(board.add(entry, replace=True), entry)


def _uncommitted_note(entry: dict[str, Any]) -> list[str]:
    """A note when the runs were made from source changes no commit holds: the entry is valid
    (and shown with "+ uncommitted" in its code cell), but nobody can rebuild it with its code."""
    files = entry["code_version"].get("git_uncommitted")
    if not files:
        return []
    from dear.io import name_files  # noqa: PLC0415

    return [f"the runs were made from changes not committed at {str(entry['code_version']['git_commit'])[:8]} "
            f"({name_files(files)}): no commit holds their code, so `verify --rebuild --run-code` cannot replay "
            "them; the table marks the entry's code \"+ uncommitted\". Commit, train and evaluate again for an "
            "entry others can rebuild"]


def _lost_verification(replaced: Path, entry: dict[str, Any]) -> list[str]:
    """A note when ``--replace`` swaps a verified entry for one verified on fewer seeds: the
    record cannot be carried over (it vouches for the old file), but it should not vanish
    unnoticed."""
    try:
        old = (json.loads(replaced.read_text()).get("verification") or {}).get("seeds") or []
    except (OSError, json.JSONDecodeError, AttributeError):
        return []
    new = (entry.get("verification") or {}).get("seeds") or []
    if len(old) <= len(new):
        return []
    return [f"{replaced.name} was verified on {len(old)} seed(s), its replacement on {len(new)}: the old record is "
            "dropped; verify again with --verify, or later with `dear leaderboard verify` once the weights are here"]


def submit(paths: Sequence[Path], *, model_name: str | None = None, variant: str | None = None,
           track: str | None = None, submitter: str | None = None, date: str | None = None,
           link: str | None = None, size: int | None = None, task_module: str | Path | None = None,
           verify: Sequence[Path] = (), tolerance: float | None = None, device: str = "auto",
           root: Path | None = None, base: Path | None = None, replace: bool = False,
           dry_run: bool = False) -> SubmitResult:
    """Validate, optionally verify, and store one entry; re-render its track. See the module docstring."""
    board = Board(root, base)
    board.check_root(write=True)  # before any work: a dry run fails where the real one would
    entry, notes = _build_entry(paths, board, model_name=model_name, variant=variant, track=track,
                                submitter=submitter, date=date, link=link, size=size, task_module=task_module)
    validate_entry(entry, board.base)
    notes.extend(_uncommitted_note(entry))
    dup = board.find_duplicate(entry)
    if dup is not None and not replace:
        raise EntryRejected("duplicate", f"{dup.name} already holds {entry['model']['name']} / "
                                         f"{entry['model']['variant']} on {entry['task']} for this test split; use "
                                         "another --variant (or --replace to update it)")
    if verify:
        entry["verification"] = verify_entry(entry, verify, tolerance, device)
        validate_entry(entry, board.base)
    if dup is not None:
        notes.extend(_lost_verification(dup, entry))
    if dry_run:
        return SubmitResult(None, entry, notes)
    return SubmitResult(board.add(entry, replace=replace), entry, notes)
