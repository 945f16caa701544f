"""Turning a frozen model into fixed-point problems for :class:`~dear.learned.training.SolverTrainer`.

* :func:`ignn_problems`: one problem per implicit layer of an IGNN on its (single, full) graph,
  computed exactly as the model's eval-mode forward computes it (layer ``l``'s input is layer
  ``l-1``'s exact fixed point).
* :func:`dear_problems`: one problem for a batch of CLRS graphs under a DEAR model: the
  processor step on the encoded inputs, the CLRS graph for the tiny GNN, the encoded node
  inputs for the initializer.

``Z*`` comes from a high-precision classic solve (:func:`~dear.learned.training.exact_fixed_point`);
the returned maps are differentiable in ``z``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from dear.solvers.learned import LearnedSolver

from .training import FixedPointProblem, SolverTrainConfig, exact_fixed_point

__all__ = ["dear_problems", "ignn_problems"]


def ignn_problems(model: nn.Module, x: Tensor, edge_index: Tensor,
                  cfg: SolverTrainConfig | None = None) -> list[tuple[LearnedSolver, FixedPointProblem]]:
    """``(solver, problem)`` per implicit layer of an :class:`~dear.nodecls.ignn.IGNN` with
    learned solvers (eval mode, projection applied, no grad to the model)."""
    cfg = cfg or SolverTrainConfig()
    was = model.training
    model.eval()
    out: list[tuple[LearnedSolver, FixedPointProblem]] = []
    try:
        with torch.no_grad():
            num_nodes = x.shape[0]
            dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
            adj = model.graph_operator(edge_index, num_nodes, dtype)
            model.project_()
            batch = torch.zeros(num_nodes, dtype=torch.long, device=x.device)
            h = x
            for layer in model.layers:
                b = layer.inject(h, adj)
                fmap = layer.eq.f

                def f(z: Tensor, _b: Tensor = b, _f: Any = fmap) -> Tensor:
                    return _f(z, _b, adj)

                z_star, ok = exact_fixed_point(f, torch.zeros_like(b), batch, 1, tol=cfg.fp_tol,
                                               max_iter=cfg.fp_max_iter, method=cfg.fp_method)
                solver = layer.learned_solver
                if solver is not None:
                    # adj's indices are (target, source): transposed for the tiny GNN.
                    out.append((solver, FixedPointProblem(f, b, layer.solver_edges(adj), batch, 1, z_star, ok,
                                                          transpose=True)))
                h = z_star
    finally:
        model.train(was)
    return out


def dear_problems(model: nn.Module, batch: Any, cfg: SolverTrainConfig | None = None) -> list[tuple[LearnedSolver, FixedPointProblem]]:
    """The ``(solver, problem)`` of one CLRS batch under a :class:`~dear.reasoners.models.DEAR`
    model with a learned solver (eval mode: no training noise in the map)."""
    from dear.reasoners.layout import BatchLayout  # noqa: PLC0415
    from dear.reasoners.models import GraphInputs  # noqa: PLC0415

    cfg = cfg or SolverTrainConfig()
    solver = model.learned_solver
    if solver is None:
        raise ValueError("dear_problems: the model has no learned solver (build it with solver='learned')")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            data = GraphInputs(batch, model.spec.stage("input"))
            layout = BatchLayout(data)
            enc = model.encode(data, layout)
            node = enc.node
            ei, bvec, ng = layout.edge_index, layout.batch, layout.num_graphs
            # the model is frozen: the step's inputs (the static terms included) are constants
            args = model._step_args(enc, layout, model.static_terms(enc, layout))

            def f(z: Tensor) -> Tensor:
                return model._f(z, *args)

            z0 = model.initial_state(layout)
            z_star, ok = exact_fixed_point(f, z0, bvec, ng, tol=cfg.fp_tol, max_iter=cfg.fp_max_iter,
                                           method=cfg.fp_method)
    finally:
        model.train(was)
    return [(solver, FixedPointProblem(f, node, ei, bvec, ng, z_star, ok))]
