"""Spec-driven neural algorithmic reasoners on PyG batches of CLRS graphs.

Quick use::

    import clrs_tasks as ct
    from dear.reasoners import build_model, predictions_for_scoring

    ds = ct.load_split("bfs", "train", protocol="dear")
    model = build_model("dear", ds.spec, hidden=128, processor="mpnn")
    batch = ct.collate([ds[i] for i in range(32)])
    outputs, stats = model(batch)
    loss = model.loss(batch, outputs, stats)
    scores = ct.evaluate(batch, predictions_for_scoring(batch, outputs))

Models (``build_model`` names): ``nar`` (:class:`NAR`), ``nar-hints`` (:class:`NARHints`),
``nar-lt`` (:class:`NARLearntTermination`), ``dear`` (:class:`DEAR`). See
``docs/reasoners.md``.
"""

from __future__ import annotations

from typing import Any

from .decoders import FieldDecoder, ProbeDecoder, log_sinkhorn, predictions_for_scoring
from .encoders import SUPPORTED, Encoding, FieldEncoder, ProbeEncoder, dense_from_data, dense_from_prediction
from .init import INITS, init_parameters_
from .layout import BatchLayout, grouped_log_softmax, grouped_softmax
from .losses import field_loss, reduce_loss
from .models import DEAR, NAR, GraphInputs, NARHints, NARLearntTermination, Reasoner, resolve_spec

__all__ = [
    "DEAR",
    "MODELS",
    "NAR",
    "BatchLayout",
    "Encoding",
    "INITS",
    "FieldDecoder",
    "FieldEncoder",
    "GraphInputs",
    "NARHints",
    "NARLearntTermination",
    "ProbeDecoder",
    "ProbeEncoder",
    "Reasoner",
    "SUPPORTED",
    "build_model",
    "dense_from_data",
    "dense_from_prediction",
    "field_loss",
    "grouped_log_softmax",
    "grouped_softmax",
    "init_parameters_",
    "log_sinkhorn",
    "predictions_for_scoring",
    "reduce_loss",
    "resolve_spec",
]

MODELS: dict[str, type[Reasoner]] = {
    "nar": NAR,
    "nar-hints": NARHints,
    "nar-lt": NARLearntTermination,
    "dear": DEAR,
}


def build_model(name: str, spec: Any, hidden: int = 128, processor: str = "mpnn", init: str = "torch",
                **options: Any) -> Reasoner:
    """Build the reasoner ``name`` for a task.

    Args:
        name: ``"nar"``, ``"nar-hints"``, ``"nar-lt"`` or ``"dear"``.
        spec: the task's :class:`clrs_tasks.GraphSpec`, a :class:`clrs_tasks.ClrsDataset`, or a
            graph/batch carrying ``clrs_spec``.
        hidden: width of encodings and states. (default: ``128``)
        processor: ``"mpnn"``, ``"triplet_gmpnn"`` or ``"gatv2"``. (default: ``"mpnn"``)
        init: parameter initialisation, ``"torch"`` or ``"dmclrs"`` (Haiku's, for comparisons
            with the JAX reference; see :mod:`dear.reasoners.init`). (default: ``"torch"``)
        **options: the model class's keyword options (e.g. DEAR's ``tol``, ``max_iter``,
            ``max_iter_test``, ``solver``, ``backward``, ``jac_reg``, ``noise``); unknown ones
            raise ``TypeError`` naming them.

    Raises:
        ValueError: unknown model name (the message lists the valid ones), a spec with
            unsupported probe types, or invalid option values.
    """
    try:
        cls = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}") from None
    if init not in INITS:  # before building: a bad name costs nothing
        raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")
    return init_parameters_(cls(spec, hidden=hidden, processor=processor, **options), init)
