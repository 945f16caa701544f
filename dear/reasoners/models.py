r"""Encode-process-decode reasoners built from a task's :class:`~clrs_tasks.GraphSpec`.

All four share the same parts, built from the spec alone (no per-algorithm code): an encoder
per input probe (:mod:`.encoders`), one processor step :math:`P` (:mod:`dear.processors`),
a decoder per output probe (:mod:`.decoders`) and a loss per output probe (:mod:`.losses`).
They differ only in how :math:`P` is iterated from :math:`h^{(0)} = 0`:

* :class:`NAR` -- unrolled for each graph's true number of steps ``max(length - 1, 1)`` (or a
  fixed number), no hints; a graph whose steps are done stops changing.
* :class:`NARHints` -- the same unroll with hints encoded as inputs at every step (ground truth
  while training, the model's own soft predictions at evaluation) and decoded at every step;
  loss = output loss + hint loss.
* :class:`NARLearntTermination` -- a termination head on the pooled state, trained on the true
  lengths; at evaluation each graph stops when its head says so (``length`` is never read).
* :class:`DEAR` -- :math:`h^\star = P(h^\star; x)` found per graph by a solver through
  :class:`dear.implicit.Equilibrium`. It reads only ``input_*`` probes and the graph structure
  (never ``length``, never ``hint_*``): its forward builds a :class:`GraphInputs` view and
  nothing else of the batch is reachable.

Call convention (what the training loop uses)::

    outputs, stats = model(batch)           # raw decoder outputs, statistics
    loss = model.loss(batch, outputs, stats)
    preds = predictions_for_scoring(batch, outputs)   # -> clrs_tasks.evaluate / Evaluator

``outputs`` maps ``"output_<name>"`` to raw decoder outputs (see :mod:`.decoders`), plus
``"hint_<name>"`` (``[rows, steps, ...]``, NARHints) and ``"aux_*"`` tensors the loss needs.
``stats`` holds detached per-graph ``iterations`` (processor applications: NAR steps, DEAR
solver iterations), ``nfe`` (batch-level evaluations of the processor) and model-specific
entries (DEAR: ``residual``, ``converged``, ``diverged``, ``extra_nfe`` and ``equilibrium``, the
layer's :class:`~dear.implicit.EquilibriumStats`, whose ``backward`` the ``ift`` adjoint solve
fills in during ``loss.backward()``; NAR: ``steps``).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from clrs_tasks import Field, GraphSpec

from dear.implicit import BACKWARD_MODES, Equilibrium
from dear.processors import get_processor
from dear.solvers.learned import LearnedSolver, build_learned_solver, is_learned

from .decoders import ProbeDecoder
from .encoders import Encoding, ProbeEncoder, dense_from_prediction
from .alignment import alignment_loss
from .layout import BatchLayout, GraphSubset
from .losses import MISSING_MODES, field_loss, reduce_loss, row_graph

__all__ = ["DEAR", "GraphInputs", "NAR", "NARHints", "NARLearntTermination", "Reasoner", "resolve_spec"]


def resolve_spec(obj: Any) -> GraphSpec:
    """The :class:`GraphSpec` of a spec, a dataset (``.spec``), or a graph/batch (``.clrs_spec``)."""
    if isinstance(obj, GraphSpec):
        return obj
    spec = getattr(obj, "spec", None)
    if isinstance(spec, GraphSpec):
        return spec
    spec = getattr(obj, "clrs_spec", None)
    if isinstance(spec, (list, tuple)) and spec:
        spec = spec[0]
    if isinstance(spec, GraphSpec):
        return spec
    raise ValueError(
        f"cannot find a clrs_tasks GraphSpec in {type(obj).__name__}; pass dataset.spec, "
        "batch.clrs_spec[0] or a ClrsDataset"
    )


class GraphInputs:
    """The only view of a batch DEAR reads: structure plus the spec's ``input_*`` probes.

    ``view["hint_x"]`` or ``view["length"]`` raise ``KeyError``: the equilibrium model cannot
    see step counts or hints even by accident.
    """

    def __init__(self, data: Any, fields: tuple[Field, ...]) -> None:
        self.num_nodes = int(data.num_nodes)
        self.edge_index = data.edge_index
        self.edge_pair = data.edge_pair
        self.batch = getattr(data, "batch", None)
        self.ptr = getattr(data, "ptr", None)
        missing = [f.key for f in fields if f.key not in data]
        if missing:
            raise KeyError(f"the batch lacks input probe(s) {', '.join(missing)}")
        self._inputs = {f.key: data[f.key] for f in fields if f.stage == "input"}

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._inputs:
            raise KeyError(f"{key!r} is not an input probe; DEAR reads input_* probes and graph structure only")
        return self._inputs[key]

    def __contains__(self, key: str) -> bool:
        return key in self._inputs


class Reasoner(nn.Module):
    """Shared encode-process-decode parts. Subclasses define :meth:`forward`.

    Args:
        spec: the task's :class:`GraphSpec` (or anything :func:`resolve_spec` accepts).
        hidden: width ``H`` of encodings and node states. (default: ``128``)
        processor: :func:`dear.processors.get_processor` name. (default: ``"mpnn"``)
        processor_options: extra options of the processor class. (default: none)
        sinkhorn_steps, sinkhorn_temperature, gumbel: Sinkhorn for permutation pointers.
            (default: ``10``, ``0.1``, ``True`` -- dm-clrs's; Gumbel noise only in training)
        missing_pointer_targets: ``"skip"`` or ``"error"`` for node-pointer targets that are
            not message-passing edges (see :mod:`.losses`). (default: ``"skip"``)
    """

    #: Drop graphs that are done from the batch while stepping (NAR unrolls, DEAR's forward
    #: solve) once at most ``compact_below`` of the graphs being stepped still run: the same
    #: results, with work proportional to each graph's own steps. Off: every step runs on the
    #: whole batch, finished graphs masked (the DEAR paper's code).
    compact: bool = True
    compact_below: float = 0.5

    def __init__(
        self,
        spec: Any,
        hidden: int = 128,
        processor: str = "mpnn",
        processor_options: Mapping[str, Any] | None = None,
        sinkhorn_steps: int = 10,
        sinkhorn_temperature: float = 0.1,
        gumbel: bool = True,
        missing_pointer_targets: str = "skip",
    ) -> None:
        super().__init__()
        spec = resolve_spec(spec)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if missing_pointer_targets not in MISSING_MODES:
            raise ValueError(f"missing_pointer_targets must be one of {', '.join(MISSING_MODES)}, "
                             f"got {missing_pointer_targets!r}")
        inputs, outputs = spec.stage("input"), spec.stage("output")
        if not inputs or not outputs:
            raise ValueError(f"task {spec.task!r} needs input and output probes to build a reasoner")
        self.spec = spec
        self.hidden = hidden
        self.processor_name = processor
        self.missing_pointer_targets = missing_pointer_targets
        self.input_encoder = ProbeEncoder(inputs, hidden)
        self.processor = get_processor(processor, hidden, **dict(processor_options or {}))
        # Processors with decoder edge latents (the Triplet-GMPNN, as in dm-clrs) feed them to
        # the pointer and edge decoders, computed from the state the last step read.
        self.edge_latents = bool(getattr(self.processor, "decoder_edge_latents", False))
        self._decoder_options = {"sinkhorn_steps": sinkhorn_steps, "sinkhorn_temperature": sinkhorn_temperature,
                                 "gumbel": gumbel, "edge_latents": self.edge_latents}
        self.output_decoder = ProbeDecoder(outputs, hidden, **self._decoder_options)
        self.needs_pairs = self.output_decoder.needs_pairs

    # ------------------------------------------------------------------ parts
    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def encode(self, data: Any, layout: BatchLayout) -> Encoding:
        """Encode the spec's input probes of ``data`` (a batch or a :class:`GraphInputs`)."""
        dense = self.input_encoder.dense_inputs(data, layout, self.dtype)
        return self.input_encoder(dense, layout, with_pairs=self.needs_pairs)

    def static_terms(self, enc: Encoding, layout: BatchLayout) -> Any | None:
        """The processor's state-independent terms for ``enc`` (``None`` when it has none).

        Models whose encoding is the same at every step compute them once per forward and
        pass them to :meth:`step`; the result is the same as without them, with a cheaper step
        (see :meth:`GatedMPNN.project_static`)."""
        project = getattr(self.processor, "project_static", None)
        return None if project is None else project(enc.node, enc.edge, enc.graph, layout.batch)

    def step(self, h: Tensor, enc: Encoding, layout: BatchLayout, static: Any | None = None) -> Tensor:
        """One processor step ``h -> P(h; enc)``; ``static`` is :meth:`static_terms` of the
        same ``enc`` when the caller computed them once for many steps."""
        return self._process(h, *self._step_args(enc, layout, static))

    def _process(self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor, graph_attr: Tensor,
                 batch: Tensor, static: Any | None = None) -> Tensor:
        if static is None:
            return self.processor(h, x, edge_index, edge_attr, graph_attr, batch)
        return self.processor(h, x, edge_index, edge_attr, graph_attr, batch, static=static)

    @staticmethod
    def _step_args(enc: Encoding, layout: BatchLayout, static: Any | None,
                   sub: GraphSubset | None = None) -> tuple[Any, ...]:
        """What a step reads besides ``h``: ``(x, edge_index, edge_attr, graph_attr, batch,
        static)``, of the whole batch or of the graphs of ``sub`` only."""
        if sub is None:
            return enc.node, layout.edge_index, enc.edge, enc.graph, layout.batch, static
        return (enc.node.index_select(0, sub.nodes), sub.edge_index, enc.edge.index_select(0, sub.edges),
                enc.graph.index_select(0, sub.graphs), sub.batch,
                None if static is None else static.select(sub.nodes, sub.edges))

    def latents(self, h_in: Tensor, enc: Encoding, layout: BatchLayout) -> Tensor | None:
        """The processor's decoder edge latents ``[E, H]`` from the state ``h_in`` a step read
        (``None`` for processors without them)."""
        if not self.edge_latents:
            return None
        return self.processor.edge_latents(h_in, enc.node, layout.edge_index, enc.edge, enc.graph, layout.batch)

    def decode(self, h: Tensor, enc: Encoding, layout: BatchLayout, h_in: Tensor | None = None) -> dict[str, Tensor]:
        """Raw outputs ``{"output_<name>": tensor}`` from node states ``h``; ``h_in`` is the
        state the last step read (for processor edge latents; default ``h``, a fixed point's)."""
        return self.output_decoder(torch.cat([enc.node, h], dim=-1), enc, layout,
                                   self.latents(h if h_in is None else h_in, enc, layout))

    def initial_state(self, layout: BatchLayout) -> Tensor:
        """:math:`h^{(0)} = 0`, ``[N, H]``."""
        return torch.zeros(layout.num_nodes, self.hidden, dtype=self.dtype, device=layout.device)

    # ------------------------------------------------------------------ losses
    def loss_terms(self, batch: Any, outputs: Mapping[str, Tensor],
                   stats: dict[str, Any] | None = None) -> dict[str, Tensor]:
        """One scalar per output probe (``"output_<name>"``) plus model-specific terms, already
        weighted; :meth:`loss` is their sum. The number of skipped pointer targets is added to
        ``stats["missing_pointer_targets"]`` when ``stats`` is given."""
        layout = BatchLayout(batch)
        terms: dict[str, Tensor] = {}
        missing = 0
        for f in self.spec.stage("output"):
            num, den, n_missing = field_loss(f, outputs[f.key], batch[f.key], layout, self.missing_pointer_targets)
            terms[f.key] = reduce_loss(num, den)
            missing += n_missing
        missing += self._extra_terms(batch, outputs, layout, terms)
        if stats is not None:
            stats["missing_pointer_targets"] = missing
        return terms

    def _extra_terms(self, batch: Any, outputs: Mapping[str, Tensor], layout: BatchLayout,
                     terms: dict[str, Tensor]) -> int:
        """Add model-specific terms; return skipped pointer targets among them."""
        return 0

    def loss(self, batch: Any, outputs: Mapping[str, Tensor], stats: dict[str, Any] | None = None) -> Tensor:
        """Training loss: sum of :meth:`loss_terms` (dm-clrs sums its probes' losses)."""
        return torch.stack(list(self.loss_terms(batch, outputs, stats).values())).sum()

    def extra_repr(self) -> str:
        return f"task={self.spec.task!r}, hidden={self.hidden}, processor={self.processor_name!r}"


def _merged(full: tuple[Tensor, ...], index: Tensor | None, part: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """``full`` with rows ``index`` replaced by ``part``: the whole-batch tensors of a loop that
    steps a subset of its graphs (``index is None``: no subset yet, ``part`` is the whole)."""
    if index is None:
        return part
    return tuple(f.index_copy(0, index, p) for f, p in zip(full, part))


def _true_steps(batch: Any, layout: BatchLayout) -> Tensor:
    """``max(length - 1, 1)`` per graph: dm-clrs runs ``T - 1`` processor steps for a trace of
    ``T`` hint steps (at least one)."""
    length = getattr(batch, "length", None)
    if length is None:
        raise ValueError("this model unrolls for the true number of steps but the batch has no `length`")
    return (length.reshape(-1).to(layout.device).long() - 1).clamp_min(1)


class NAR(Reasoner):
    """Unrolled reasoner without hints, run for each graph's true number of steps.

    Args:
        fixed_steps: unroll this many steps for every graph instead of reading ``length``.
            (default: ``None``)
        **kwargs: see :class:`Reasoner`.
    """

    def __init__(self, spec: Any, hidden: int = 128, processor: str = "mpnn", *,
                 fixed_steps: int | None = None, **kwargs: Any) -> None:
        super().__init__(spec, hidden, processor, **kwargs)
        if fixed_steps is not None and (isinstance(fixed_steps, bool) or not isinstance(fixed_steps, int)
                                        or fixed_steps < 1):
            raise ValueError(f"fixed_steps must be a positive integer or None, got {fixed_steps!r}")
        self.fixed_steps = fixed_steps

    def num_steps(self, batch: Any, layout: BatchLayout) -> Tensor:
        if self.fixed_steps is not None:
            return torch.full((layout.num_graphs,), self.fixed_steps, dtype=torch.long, device=layout.device)
        return _true_steps(batch, layout)

    def _unroll(self, batch: Any, layout: BatchLayout, enc: Encoding,
                record: bool = False) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """Final states, the states each graph's last step read, steps per graph, and
        (``record``) the state after every step.

        Graphs whose steps are done are dropped from the batch (:attr:`compact`) once at most
        :attr:`compact_below` of those being stepped still run, so a batch costs the sum of its
        graphs' steps rather than ``B`` times the longest; the result is the same."""
        steps = self.num_steps(batch, layout)
        total = int(steps.max()) if layout.num_graphs else 0
        h = h_in = self.initial_state(layout)
        static = self.static_terms(enc, layout) if total else None
        states: list[Tensor] = []
        args = self._step_args(enc, layout, static)
        cur_steps, cur_batch = steps, layout.batch
        # graphs still running before step s, counted on the host once (steps are known)
        running = ([int(c) for c in torch.bincount(steps, minlength=total + 1).flip(0).cumsum(0).flip(0)]
                   if self.compact and not record and total else None)
        nodes: Tensor | None = None  # original rows of the graphs being stepped (None: all)
        h_all = h_in_all = h
        for s in range(total):
            if running is not None and running[s + 1] <= self.compact_below * cur_steps.numel() \
                    and running[s + 1] < cur_steps.numel():
                # Graphs with steps <= s are final: keep their rows, step the others only.
                h_all, h_in_all = _merged((h_all, h_in_all), nodes, (h, h_in))
                sub = layout.subset((steps > s).nonzero().squeeze(1))
                nodes = sub.nodes
                h, h_in = h_all.index_select(0, nodes), h_in_all.index_select(0, nodes)
                args = self._step_args(enc, layout, static, sub)
                cur_steps, cur_batch = steps.index_select(0, sub.graphs), sub.batch
            active = (cur_steps > s).index_select(0, cur_batch).unsqueeze(-1)
            if self.edge_latents:
                h_in = torch.where(active, h, h_in)
            h = torch.where(active, self._process(h, *args), h)
            if record:
                states.append(h)
        h, h_in = _merged((h_all, h_in_all), nodes, (h, h_in))
        return h, h_in, steps, states

    def forward(self, batch: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
        layout = BatchLayout(batch)
        enc = self.encode(batch, layout)
        h, h_in, steps, _ = self._unroll(batch, layout, enc)
        outputs = self.decode(h, enc, layout, h_in)
        return outputs, {"steps": steps, "iterations": steps, "nfe": int(steps.max()) if layout.num_graphs else 0}

    def trajectory(self, batch: Any) -> tuple[Tensor, Tensor]:
        """States after each unrolled step, ``[T, N, H]`` (a graph whose steps are done repeats
        its last state), and the steps per graph ``[B]``. Used as the DEAR alignment target."""
        layout = BatchLayout(batch)
        _, _, steps, states = self._unroll(batch, layout, self.encode(batch, layout), record=True)
        if not states:
            raise ValueError("the batch has no graphs to unroll")
        return torch.stack(states), steps


def _rows_graph(field: Field, layout: BatchLayout) -> Tensor:
    """Graph of each row of a probe's *dense* form (see :mod:`.encoders`)."""
    if field.location == "node" and field.is_pointer:
        return layout.edge_graph
    if field.location == "edge" and field.type_ == "pointer":
        return layout.triple_graph
    return row_graph(field, layout)


class NARHints(NAR):
    """Unrolled reasoner with hints (encode-process-decode at every step, Ibarz et al. 2022).

    Step ``s`` (``0 <= s < max(length - 1, 1)``) encodes the inputs plus the hints of time
    ``s`` -- ground truth at ``s = 0`` and, in training, with probability ``teacher_forcing``
    per graph and step; otherwise the model's own soft predictions (dm-clrs's ``soft``
    re-prediction) -- applies the processor and decodes the hints of time ``s + 1``. Outputs are
    decoded from each graph's final state with the encoding of its last step. Evaluation never
    reads ground-truth hints after ``s = 0``.

    Args:
        teacher_forcing: probability of feeding ground-truth hints in training (``1.0``: always;
            ``0.0``: dm-clrs's current default, always the model's own predictions).
            (default: ``1.0``)
        hint_loss_weight: weight of the hint loss against the output loss. (default: ``1.0``)
        **kwargs: see :class:`NAR`.
    """

    def __init__(self, spec: Any, hidden: int = 128, processor: str = "mpnn", *,
                 teacher_forcing: float = 1.0, hint_loss_weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(spec, hidden, processor, **kwargs)
        if self.fixed_steps is not None:
            raise ValueError("NARHints follows the hints' own time axis; fixed_steps is not supported")
        hints = self.spec.stage("hint")
        if not hints:
            raise ValueError(f"task {self.spec.task!r}: the spec has no hints; load the split with include_hints=True")
        if not 0.0 <= float(teacher_forcing) <= 1.0:
            raise ValueError(f"teacher_forcing must lie in [0, 1], got {teacher_forcing!r}")
        self.teacher_forcing = float(teacher_forcing)
        self.hint_loss_weight = float(hint_loss_weight)
        self.hint_fields = hints
        self.hint_encoder = ProbeEncoder(hints, hidden)
        self.hint_decoder = ProbeDecoder(hints, hidden, **self._decoder_options)
        self.needs_pairs = self.needs_pairs or self.hint_decoder.needs_pairs

    def _next_hints(self, batch: Any, layout: BatchLayout, step: int,
                    preds: Mapping[str, Tensor]) -> dict[str, Tensor]:
        own = {f.key: dense_from_prediction(f, preds[f.key], layout) for f in self.hint_fields}
        if not self.training or self.teacher_forcing == 0.0:
            return own
        truth = self.hint_encoder.dense_inputs(batch, layout, self.dtype, step=step)
        if self.teacher_forcing == 1.0:
            return truth
        force = torch.rand(layout.num_graphs, device=layout.device) < self.teacher_forcing
        out = {}
        for f in self.hint_fields:
            rows = force.index_select(0, _rows_graph(f, layout))
            t, o = truth[f.key], own[f.key]
            out[f.key] = torch.where(rows.view(-1, *([1] * (t.dim() - 1))), t, o)
        return out

    def forward(self, batch: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
        layout = BatchLayout(batch)
        enc_in = self.encode(batch, layout)
        steps = self.num_steps(batch, layout)
        total = int(steps.max()) if layout.num_graphs else 0
        h = h_in = self.initial_state(layout)
        dense = self.hint_encoder.dense_inputs(batch, layout, self.dtype, step=0)
        final = enc_in
        latents = final_latents = None
        per_step: dict[str, list[Tensor]] = {f.key: [] for f in self.hint_fields}
        for s in range(total):
            enc = self.hint_encoder(dense, layout, with_pairs=self.needs_pairs, base=enc_in)
            active_g = steps > s
            latents = self.latents(h, enc, layout)  # dm-clrs: tri_msgs of the state the step reads
            h = torch.where(active_g.index_select(0, layout.batch).unsqueeze(-1), self.step(h, enc, layout), h)
            preds = self.hint_decoder(torch.cat([enc.node, h], dim=-1), enc, layout, latents)
            for k, v in preds.items():
                per_step[k].append(v)
            last = steps == s + 1
            final = enc.where(last.index_select(0, layout.batch), last.index_select(0, layout.edge_graph), last,
                              last.index_select(0, layout.pair_graph) if enc.pair is not None else None, final)
            if latents is not None:
                last_e = last.index_select(0, layout.edge_graph).unsqueeze(-1)
                final_latents = latents if final_latents is None else torch.where(last_e, latents, final_latents)
            if s + 1 < total:
                dense = self._next_hints(batch, layout, s + 1, preds)
        if self.edge_latents and final_latents is None:  # no steps at all: latents of h(0)
            final_latents = self.latents(h, final, layout)
        outputs = self.output_decoder(torch.cat([final.node, h], dim=-1), final, layout, final_latents)
        for k, v in per_step.items():
            outputs[k] = torch.stack(v, dim=1)
        return outputs, {"steps": steps, "iterations": steps, "nfe": total}

    def _extra_terms(self, batch: Any, outputs: Mapping[str, Tensor], layout: BatchLayout,
                     terms: dict[str, Tensor]) -> int:
        length = batch.length.reshape(-1).to(layout.device).long()
        missing = 0
        for f in self.hint_fields:
            pred, target = outputs[f.key], batch[f.key]
            g = row_graph(f, layout)
            num_sum = pred.new_zeros(())
            den_sum = pred.new_zeros(())
            for s in range(min(pred.shape[1], target.shape[1] - 1)):
                valid = (length > s + 1).index_select(0, g)
                num, den, n_missing = field_loss(f, pred[:, s], target[:, s + 1], layout,
                                                 self.missing_pointer_targets, valid=valid)
                v = valid.to(num.dtype)
                missing += n_missing
                num_sum = num_sum + (num * v).sum()
                den_sum = den_sum + (den * v).sum()
            terms[f.key] = self.hint_loss_weight * num_sum / den_sum.clamp_min(1e-12)
        return missing


class NARLearntTermination(NAR):
    """Unrolled reasoner without hints that learns when to stop.

    A termination head :math:`\\sigma(w^\\top \\max_i [x_i \\| h_i])` per graph is trained with
    binary cross-entropy to say "stop" exactly after the graph's true number of steps (the
    unroll itself uses the true lengths in training). In evaluation each graph runs until its
    head's probability exceeds ``threshold`` (at least one step, at most ``max_steps_test``)
    and ``length`` is never read.

    Args:
        max_steps_test: cap on evaluation steps. (default: ``512``)
        threshold: stop probability. (default: ``0.5``)
        termination_loss_weight: weight of the termination loss. (default: ``1.0``)
        **kwargs: see :class:`NAR` (``fixed_steps`` is not allowed).
    """

    def __init__(self, spec: Any, hidden: int = 128, processor: str = "mpnn", *, max_steps_test: int = 512,
                 threshold: float = 0.5, termination_loss_weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(spec, hidden, processor, **kwargs)
        if self.fixed_steps is not None:
            raise ValueError("NARLearntTermination learns its step counts; fixed_steps is not supported")
        if isinstance(max_steps_test, bool) or not isinstance(max_steps_test, int) or max_steps_test < 1:
            raise ValueError(f"max_steps_test must be a positive integer, got {max_steps_test!r}")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        self.max_steps_test = max_steps_test
        self.threshold = float(threshold)
        self.termination_loss_weight = float(termination_loss_weight)
        self.termination = nn.Linear(2 * hidden, 1)

    def termination_logits(self, h: Tensor, enc: Encoding, layout: BatchLayout) -> Tensor:
        """``[B]`` logits of "stop after this step"."""
        return self._stop_logits(h, enc.node, layout.batch, layout.num_graphs)

    def _stop_logits(self, h: Tensor, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        pooled = scatter(torch.cat([x, h], dim=-1), batch, dim=0, dim_size=num_graphs, reduce="max")
        return self.termination(pooled).squeeze(-1)

    def forward(self, batch: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
        layout = BatchLayout(batch)
        enc = self.encode(batch, layout)
        h = self.initial_state(layout)
        static = self.static_terms(enc, layout)
        if self.training:
            steps = _true_steps(batch, layout)
            total = int(steps.max()) if layout.num_graphs else 0
            logits = []
            h_in = h
            for s in range(total):
                active = (steps > s).index_select(0, layout.batch).unsqueeze(-1)
                if self.edge_latents:
                    h_in = torch.where(active, h, h_in)
                h = torch.where(active, self.step(h, enc, layout, static), h)
                logits.append(self.termination_logits(h, enc, layout))
            outputs = self.decode(h, enc, layout, h_in)
            outputs["aux_termination_logits"] = torch.stack(logits, dim=1)  # [B, S]
            return outputs, {"steps": steps, "iterations": steps, "nfe": total}
        h, h_in, taken, stopped, nfe = self._run_until_stop(h, enc, layout, static)
        outputs = self.decode(h, enc, layout, h_in)
        return outputs, {"steps": taken, "iterations": taken, "nfe": nfe, "terminated": stopped}

    def _run_until_stop(self, h: Tensor, enc: Encoding, layout: BatchLayout,
                        static: Any | None) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
        """Evaluation unroll: each graph steps until its head says stop (at least one step, at
        most ``max_steps_test``). Stopped graphs leave the batch (:attr:`compact`) once at most
        :attr:`compact_below` of those being stepped still run; their rows are final, so the
        result is the same as stepping (and masking) the whole batch."""
        num_graphs = layout.num_graphs
        taken = torch.zeros(num_graphs, dtype=torch.long, device=layout.device)
        stopped = torch.zeros(num_graphs, dtype=torch.bool, device=layout.device)
        nfe = 0
        h_in = h
        args = self._step_args(enc, layout, static)
        x, batch, cur = enc.node, layout.batch, num_graphs
        graphs: Tensor | None = None  # original ids of the graphs being stepped (None: all)
        nodes: Tensor | None = None
        h_all = h_in_all = h
        stop_cur, taken_cur = stopped, taken
        for _ in range(self.max_steps_test):
            active_g = ~stop_cur
            active = active_g.index_select(0, batch).unsqueeze(-1)
            if self.edge_latents:
                h_in = torch.where(active, h, h_in)
            h = torch.where(active, self._process(h, *args), h)
            nfe += 1
            taken_cur = taken_cur + active_g.long()
            stop = torch.sigmoid(self._stop_logits(h, x, batch, cur)) > self.threshold
            stop_cur = stop_cur | (stop & active_g)
            running = int((~stop_cur).sum())
            if running == 0:
                break
            if self.compact and running <= self.compact_below * cur and running < cur:
                # Stopped graphs are final: write the subset back and keep the running ones.
                h_all, h_in_all = _merged((h_all, h_in_all), nodes, (h, h_in))
                taken, stopped = _merged((taken, stopped), graphs, (taken_cur, stop_cur))
                keep = (~stopped).nonzero().squeeze(1)
                sub = layout.subset(keep)
                graphs, nodes = keep, sub.nodes
                h, h_in = h_all.index_select(0, nodes), h_in_all.index_select(0, nodes)
                args = self._step_args(enc, layout, static, sub)
                x, batch, cur = args[0], sub.batch, int(keep.numel())
                taken_cur, stop_cur = taken.index_select(0, keep), stopped.index_select(0, keep)
        h, h_in = _merged((h_all, h_in_all), nodes, (h, h_in))
        taken, stopped = _merged((taken, stopped), graphs, (taken_cur, stop_cur))
        return h, h_in, taken, stopped, nfe

    def _extra_terms(self, batch: Any, outputs: Mapping[str, Tensor], layout: BatchLayout,
                     terms: dict[str, Tensor]) -> int:
        logits = outputs.get("aux_termination_logits")
        if logits is None:  # evaluation forward: the head was used, not trained
            return 0
        steps = _true_steps(batch, layout)
        s = torch.arange(logits.shape[1], device=logits.device)
        target = (s[None, :] + 1 >= steps[:, None]).to(logits.dtype)
        valid = (s[None, :] < steps[:, None]).to(logits.dtype)
        bce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        terms["termination"] = self.termination_loss_weight * (bce * valid).sum() / valid.sum().clamp_min(1.0)
        return 0


class DEAR(Reasoner):
    r"""Deep Equilibrium Algorithmic Reasoner: :math:`h^\star = P(h^\star; x)`, no step counts.

    The forward pass solves the processor's fixed point from :math:`h^{(0)} = 0` with a
    graph-batched solver (:class:`dear.implicit.Equilibrium`): each graph stops at its first
    iterate with relative residual :math:`\|P(h) - h\| / \|P(h)\| <` ``tol``. The defaults are
    the DEAR paper's: Anderson (``m = 6``, ``lam = 1e-4``), ``tol = 0.1``, at most 40 iterations
    in training and 160 in evaluation, first hit, a 1-step phantom gradient, Gaussian noise of
    standard deviation ``noise`` added to :math:`P` while training, and a Hutchinson Jacobian
    regulariser weighted ``jac_reg``. It reads only :class:`GraphInputs`.

    Args:
        solver: :mod:`dear.solvers` name; ``"learned"`` / ``"learned_nn"`` build a learned
            solver owned by the model (initializer on the encoded node inputs, tiny GNN on the
            CLRS graph; ``solver_options`` are its options; see ``docs/learned-solver.md``).
            (default: ``"anderson"``)
        tol: relative (``stop_mode``) tolerance. (default: ``0.1``)
        max_iter: iteration cap in training. (default: ``40``)
        max_iter_test: iteration cap in evaluation. (default: ``160``)
        stop_mode: ``"rel"``, ``"node"`` or ``"abs"`` (:func:`dear.solvers.solve`). (default: ``"rel"``)
        first_hit: return the first iterate under tolerance. (default: ``True``)
        solver_options: options of the solver; ``None`` gives Anderson ``m=6, lam=1e-4``.
        backward: ``"phantom"``, ``"ift"`` or ``"unroll"``. (default: ``"phantom"``)
        phantom_steps, phantom_tau: the phantom gradient. (default: ``1``, ``1.0``)
        backward_options: extra :class:`~dear.implicit.Equilibrium` keyword options (e.g.
            ``backward_max_iter``, ``unroll_steps``). (default: none)
        jac_reg: weight of the Jacobian regulariser; ``0`` disables it. (default: ``1e-4``)
        noise: standard deviation of the training noise on :math:`P`; ``0`` disables it.
            (default: ``1e-3``)
        align_weight: weight of the alignment regulariser (:mod:`.alignment`): the solver's
            trajectory is matched, forward only, to the states of a frozen no-hint NAR given
            with :meth:`set_alignment_teacher` (the paper uses ``0.01``). Training only; the
            teacher reads the true step counts inside the loss, never in :meth:`forward`.
            ``0`` disables it. (default: ``0``)
        fpc_states: fixed-point correction (Bai et al., 2022; torchdeq's ``fp_correction``):
            while training, the outputs decoded from this many intermediate iterates of the
            solve are supervised too. Each graph's iterates at fractions ``j / (fpc_states + 1)``
            of its own iterations (``j = 1..fpc_states``) get a one-step gradient ``P(x_j)``,
            are decoded and add the output loss weighted ``fpc_gamma ** (fpc_states + 1 - j)``
            (the final state keeps weight 1). More gradient signal per solve, and early iterates
            pushed towards the answer, for ``fpc_states`` processor applications with gradient.
            Needs a classic solver and the phantom or ift backward. ``0`` disables it.
            (default: ``0``)
        fpc_gamma: decay of the correction weights, in ``(0, 1]``. (default: ``0.8``)
        **kwargs: see :class:`Reasoner`.
    """

    def __init__(
        self,
        spec: Any,
        hidden: int = 128,
        processor: str = "mpnn",
        *,
        solver: str = "anderson",
        tol: float = 0.1,
        max_iter: int = 40,
        max_iter_test: int = 160,
        stop_mode: str = "rel",
        first_hit: bool = True,
        solver_options: Mapping[str, Any] | None = None,
        backward: str = "phantom",
        phantom_steps: int = 1,
        phantom_tau: float = 1.0,
        backward_options: Mapping[str, Any] | None = None,
        jac_reg: float = 1e-4,
        noise: float = 1e-3,
        align_weight: float = 0.0,
        fpc_states: int = 0,
        fpc_gamma: float = 0.8,
        **kwargs: Any,
    ) -> None:
        super().__init__(spec, hidden, processor, **kwargs)
        if isinstance(fpc_states, bool) or not isinstance(fpc_states, int) or fpc_states < 0:
            raise ValueError(f"fpc_states must be an integer >= 0, got {fpc_states!r}")
        if not 0.0 < float(fpc_gamma) <= 1.0:
            raise ValueError(f"fpc_gamma must lie in (0, 1], got {fpc_gamma!r}")
        if fpc_states > 0 and (backward == "unroll" or is_learned(solver)):
            raise ValueError("fixed-point correction needs the solver's trajectory: use a classic solver "
                             "(anderson, picard, broyden) and the phantom or ift backward")
        self.fpc_states = fpc_states
        self.fpc_gamma = float(fpc_gamma)
        if not float(align_weight) >= 0.0:
            raise ValueError(f"align_weight must be >= 0, got {align_weight!r}")
        self.align_weight = float(align_weight)
        if self.align_weight > 0 and (backward == "unroll" or is_learned(solver)):
            raise ValueError("the alignment regulariser needs the solver's trajectory: use a classic solver "
                             "(anderson, picard, broyden) and the phantom or ift backward")
        # Not a submodule: the frozen teacher is neither trained nor saved with the model.
        self._align_teacher: NAR | None = None
        if backward not in BACKWARD_MODES:
            raise ValueError(f"backward must be one of {', '.join(BACKWARD_MODES)}, got {backward!r}")
        if not float(jac_reg) >= 0.0:
            raise ValueError(f"jac_reg must be >= 0, got {jac_reg!r}")
        if not float(noise) >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        if solver_options is None:
            solver_options = {"m": 6, "lam": 1e-4} if solver == "anderson" else {}
        self.jac_reg = float(jac_reg)
        self.noise = float(noise)
        method: Any = solver
        if is_learned(solver):
            # The learned solver (docs/learned-solver.md) is a module of the model, saved with
            # it: its initializer maps the encoded node inputs to h(0), its tiny GNN runs on the
            # CLRS graph. States are LayerNorm outputs, so no ReLU on the initializer.
            opts = dict(solver_options)
            opts.setdefault("init_activation", "none")
            method = build_learned_solver(solver, hidden, hidden, **opts)
            solver_options = {}
        # A bound method, not a module: the processor stays registered once, as self.processor.
        self.equilibrium = Equilibrium(
            self._f, method=method, tol=tol, max_iter=max_iter, eval_max_iter=max_iter_test, stop_mode=stop_mode,
            first_hit=first_hit, solver_options=dict(solver_options), backward=backward,
            phantom_steps=phantom_steps, phantom_tau=phantom_tau, jac_reg_samples=1 if self.jac_reg > 0 else 0,
            **dict(backward_options or {}),
        )

    def _f(self, h: Tensor, x: Tensor, edge_index: Tensor, edge_attr: Tensor, graph_attr: Tensor,
           batch: Tensor, static: Any | None = None) -> Tensor:
        out = self._process(h, x, edge_index, edge_attr, graph_attr, batch, static)
        if self.training and self.noise > 0.0:
            out = out + self.noise * torch.randn_like(out)
        return out

    def set_alignment_teacher(self, teacher: "NAR | None") -> None:
        """The frozen no-hint NAR whose trajectory the alignment regulariser matches (same task
        and hidden width). Its parameters are frozen here; it is kept outside the module's
        parameters and state dict."""
        if teacher is not None:
            if type(teacher) is not NAR:
                raise ValueError(f"the alignment teacher must be a no-hint NAR, got {type(teacher).__name__}")
            if teacher.spec.task != self.spec.task or teacher.hidden != self.hidden:
                raise ValueError(f"the alignment teacher ({teacher.spec.task!r}, hidden {teacher.hidden}) must match "
                                 f"this model ({self.spec.task!r}, hidden {self.hidden})")
            teacher.eval()
            teacher.requires_grad_(False)
        object.__setattr__(self, "_align_teacher", teacher)

    def _aligning(self) -> bool:
        return (self.training and self.align_weight > 0 and self._align_teacher is not None
                and torch.is_grad_enabled())

    def _correcting(self) -> bool:
        return self.training and self.fpc_states > 0 and torch.is_grad_enabled()

    @property
    def learned_solver(self) -> LearnedSolver | None:
        """The learned solver, when the model was built with ``solver="learned"``."""
        m = self.equilibrium.method
        return m if isinstance(m, LearnedSolver) else None

    def forward(self, batch: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
        data = GraphInputs(batch, self.spec.stage("input"))
        layout = BatchLayout(data)
        enc = self.encode(data, layout)
        solver = self.learned_solver
        h0 = self.initial_state(layout)
        if solver is not None:
            solver.bind(enc.node.detach(), layout.edge_index, batch=layout.batch, num_graphs=layout.num_graphs)
            h0 = solver.initial_state().to(h0.dtype)
        aligning, correcting = self._aligning(), self._correcting()
        self.equilibrium.record_trajectory = aligning or correcting
        # Computed here, in the forward's grad mode: the solve runs without grad, the
        # backward's steps with it, and both must use (and differentiate) the same terms.
        static = self.static_terms(enc, layout)
        args = self._step_args(enc, layout, static)
        # Lets the solve drop graphs as they converge (same result, less work per iteration).
        subset_args = (lambda graphs: self._step_args(enc, layout, static, layout.subset(graphs))) \
            if self.compact else None
        try:
            h = self.equilibrium(h0, *args, batch=layout.batch, num_graphs=layout.num_graphs,
                                 subset_args=subset_args)
        finally:
            self.equilibrium.record_trajectory = False
            if solver is not None:
                solver.release()
        outputs = self.decode(h, enc, layout)
        # Everything is returned below; taking the stats out of the layer frees the autograd
        # graph of the Jacobian term with the step and keeps the model deep-copyable.
        st = self.equilibrium.pop_stats()
        if st.jac_loss is not None:
            outputs["aux_jacobian"] = st.jac_loss
        fwd = st.forward
        if aligning and fwd.trajectory:
            # d_k = P(x_k) with grad, for every iterate x_k the solver evaluated (one-step
            # gradients, like the phantom backward); rows of finished graphs repeat their last
            # iterate and are masked by the per-graph lengths.
            outputs["aux_align_states"] = torch.stack(
                [self._f(x, *args) for x in fwd.trajectory])
            outputs["aux_align_lengths"] = fwd.iterations
        if correcting and fwd.trajectory:
            outputs.update(self._corrected_outputs(fwd.trajectory, fwd.iterations, enc, layout, args))
        fwd.trajectory = None
        stats = {"iterations": fwd.iterations, "nfe": fwd.nfe, "extra_nfe": st.extra_nfe,
                 "residual": fwd.residual, "converged": fwd.converged, "diverged": fwd.diverged,
                 "equilibrium": st}
        if solver is not None:  # graphs whose K learned steps were not enough
            stats["fallback"] = solver.fallback_graphs(fwd)
        return outputs, stats

    def _corrected_outputs(self, trajectory: list[Tensor], iterations: Tensor, enc: Encoding,
                           layout: BatchLayout, args: tuple[Any, ...]) -> dict[str, Tensor]:
        """Decoded outputs of the fixed-point correction's states, keyed
        ``"aux_fpc<j>:<output key>"``: for each graph, its iterate at ``j / (fpc_states + 1)`` of
        its own iterations, one processor step with gradient, decoded."""
        states = torch.stack(trajectory)  # [T, N, H]; finished graphs repeat their last iterate
        node_len = iterations.to(states.device).index_select(0, layout.batch)
        rows = torch.arange(states.shape[1], device=states.device)
        out: dict[str, Tensor] = {}
        for j in range(1, self.fpc_states + 1):
            x = states[(j * node_len) // (self.fpc_states + 1), rows]
            for key, value in self.decode(self._f(x, *args), enc, layout, h_in=x).items():
                out[f"aux_fpc{j}:{key}"] = value
        return out

    def _extra_terms(self, batch: Any, outputs: Mapping[str, Tensor], layout: BatchLayout,
                     terms: dict[str, Tensor]) -> int:
        if self.fpc_states > 0 and f"aux_fpc1:{self.spec.stage('output')[0].key}" in outputs:
            total: Tensor | float = 0.0
            for j in range(1, self.fpc_states + 1):
                weight = self.fpc_gamma ** (self.fpc_states + 1 - j)
                for f in self.spec.stage("output"):
                    num, den, _ = field_loss(f, outputs[f"aux_fpc{j}:{f.key}"], batch[f.key], layout,
                                             self.missing_pointer_targets)
                    total = total + weight * reduce_loss(num, den)
            terms["fp_correction"] = total  # type: ignore[assignment]
        jac = outputs.get("aux_jacobian")
        if jac is not None and self.jac_reg > 0:
            terms["jacobian"] = self.jac_reg * jac
        states = outputs.get("aux_align_states")
        if states is not None and self._align_teacher is not None:
            teacher = self._align_teacher
            if next(teacher.parameters()).device != states.device:
                teacher.to(states.device)
            with torch.no_grad():
                nar_states, nar_steps = teacher.trajectory(batch)
            terms["alignment"] = self.align_weight * alignment_loss(
                states, nar_states.to(states.dtype), layout.batch, layout.num_graphs,
                outputs["aux_align_lengths"], nar_steps)
        return 0
