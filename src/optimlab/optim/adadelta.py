"""AdaDelta: AdaGrad's step sizes from windowed averages, with units matched by past updates."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._base import RuleOptimizer
from ._rules import ArrayLike, apply_weight_decay, ema_sq_


def adadelta_rule(
    params: ArrayLike,
    grads: ArrayLike,
    square_avg: ArrayLike,
    acc_delta: ArrayLike,
    *,
    step: int,
    lr: float,
    rho: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One AdaDelta step; the equations are in :class:`Adadelta`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    ema_sq_(square_avg, grads, rho)
    std = square_avg.add(eps).sqrt_()
    delta = acc_delta.add(eps).sqrt_().div_(std).mul_(grads)
    ema_sq_(acc_delta, delta, rho)
    params.add_(delta, alpha=-lr)


class Adadelta(RuleOptimizer):
    """AdaDelta (Zeiler 2012).

    Update rule::

        E[g^2]_0 = 0, E[dx^2]_0 = 0
        g_t = grad (+ weight_decay*theta, or decoupled: theta = theta*(1 - lr*weight_decay))
        E[g^2]_t  = rho*E[g^2]_{t-1} + (1-rho)*g_t^2
        dx_t      = sqrt(E[dx^2]_{t-1} + eps) / sqrt(E[g^2]_t + eps) * g_t
        E[dx^2]_t = rho*E[dx^2]_{t-1} + (1-rho)*dx_t^2
        theta     = theta - lr*dx_t

    ``lr = 1.0`` is Zeiler's learning-rate-free algorithm.

    Matches:
        pytorch: ``torch.optim.Adadelta`` (lr 1.0, rho 0.9, eps 1e-6).
        keras: ``keras.optimizers.Adadelta`` (lr 0.001, rho 0.95, eps 1e-7).
        optax: ``optax.adadelta`` (rho 0.9, eps 1e-6).
        paper: Zeiler (2012) Algorithm 1, lr 1.0, rho 0.95, eps 1e-6.

    References:
        Zeiler (2012) Algorithm 1; seeds 000 and 003.
    """

    rule = staticmethod(adadelta_rule)
    buffers = ("square_avg", "acc_delta")

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``differentiable`` are
        torch.optim.Adadelta's.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: scales each update (1.0 is Zeiler's learning-rate-free algorithm).
            rho: the decay of both running averages.
            eps: added under both roots.
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``.
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            capturable: counts on the parameters' device, never read by the host (CUDA graphs).
            maximize: ascend the objective instead of descending.
            differentiable: record the step for autograd (per-tensor path).
            fused: the fused path (True), never (False), or by size (None); optimlab's
                (torch.optim.Adadelta has none).
            decoupled_weight_decay: decay by ``lr*weight_decay`` apart from the gradient (Keras).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).
        """
        super().__init__(params, locals())
