"""Leaderboards: a versioned entry schema, validation, verification, rendered tables.

Entries live in ``leaderboards/<track>/`` (one JSON file each, format
``dear.leaderboard.entry/1``), next to a ``README.md`` table rendered from them. Usage::

    from dear.leaderboard import submit, Board
    submit([run / "results.json" for run in runs], model_name="DEAR", submitter="me")
    Board().validate().ok

Command line: ``dear leaderboard submit | verify | validate | render`` (see docs/leaderboards.md).
"""

from dear.leaderboard.board import Board, BoardNotFoundError, Problem, Report, default_root, dump_entry
from dear.leaderboard.convert import entry_from_clrs_results, entry_from_nodecls_results
from dear.leaderboard.render import render_track
from dear.leaderboard.schema import FIELDS, SCHEMA, EntryRejected, check_schema, schema_markdown
from dear.leaderboard.submit import (
    SubmitResult,
    WeightsNotHere,
    build_entry,
    entry_checkpoints,
    reverify,
    submit,
    verify_entry,
)
from dear.leaderboard.tracks import CLRS_FAMILIES, TRACKS, Metric, Track, UnknownTrackError, family_of, get_track
from dear.leaderboard.validation import (
    MIN_SEEDS,
    entry_filename,
    entry_key,
    expected_fingerprint,
    protocol_key,
    validate_entry,
)

__all__ = [
    "Board",
    "BoardNotFoundError",
    "CLRS_FAMILIES",
    "EntryRejected",
    "FIELDS",
    "MIN_SEEDS",
    "Metric",
    "Problem",
    "Report",
    "SCHEMA",
    "SubmitResult",
    "TRACKS",
    "Track",
    "UnknownTrackError",
    "WeightsNotHere",
    "build_entry",
    "check_schema",
    "default_root",
    "dump_entry",
    "entry_checkpoints",
    "entry_filename",
    "entry_from_clrs_results",
    "entry_from_nodecls_results",
    "entry_key",
    "expected_fingerprint",
    "family_of",
    "get_track",
    "protocol_key",
    "render_track",
    "reverify",
    "schema_markdown",
    "submit",
    "validate_entry",
    "verify_entry",
]
