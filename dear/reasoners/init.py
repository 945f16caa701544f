"""Parameter initialisation schemes of the reasoners.

``"torch"`` keeps PyTorch's defaults (``nn.Linear``: weights and biases uniform in
:math:`\pm 1/\sqrt{\text{fan\_in}}`). ``"dmclrs"`` is what dm-clrs's Haiku models start from, for
side-by-side comparisons with the JAX reference (``scripts/bench_vs_dmclrs.py``): every linear
layer's weights truncated-normal with standard deviation :math:`1/\sqrt{\text{fan\_in}}` (cut at
two standard deviations, as ``hk.initializers.TruncatedNormal``) and zero biases; scalar *hint*
encoders with standard deviation :math:`1/\sqrt{H}` (dm-clrs's ``encoder_init=
"xavier_on_scalars"``, its ``run.py`` default); the gates' biases keep their constant start
(``-3``, as dm-clrs's ``gate3``). Haiku's weights are about 1.5x larger than PyTorch's
(uniform has standard deviation :math:`1/\sqrt{3\,\text{fan\_in}}`), which changes how fast
the networks train.
"""

from __future__ import annotations

import math

from torch import nn

from dear.config import INITS  # the names live with the other config choices

__all__ = ["INITS", "init_parameters_"]


def _trunc_normal_(weight, std: float) -> None:
    nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def init_parameters_(model: nn.Module, scheme: str = "torch") -> nn.Module:
    """Re-initialise ``model``'s linear layers in place by ``scheme`` (see the module doc)."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; valid: {', '.join(INITS)}")
    if scheme == "torch":
        return model
    from .encoders import FieldEncoder  # noqa: PLC0415

    scalar_hint_linears = {
        id(m) for enc in model.modules()
        if isinstance(enc, FieldEncoder) and enc.field.stage == "hint" and enc.field.type_ == "scalar"
        for m in enc.modules() if isinstance(m, nn.Linear)
    }
    hidden = getattr(model, "hidden", None)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            fan = hidden if id(m) in scalar_hint_linears and hidden else m.in_features
            _trunc_normal_(m.weight, 1.0 / math.sqrt(fan))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in model.modules():  # constant starts that are part of the architecture
        reset = getattr(m, "reset_gate_bias", None)
        if callable(reset):
            reset()
    return model
