"""Adamax: Adam with the infinity norm in place of the root of the second moment."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ._base import RuleOptimizer
from ._rules import ArrayLike, apply_weight_decay, bias_correction, ema_


def adamax_rule(
    params: ArrayLike,
    grads: ArrayLike,
    exp_avg: ArrayLike,
    exp_inf: ArrayLike,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    eps_inside_max: bool,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One Adamax step; the equations are in :class:`Adamax`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    ema_(exp_avg, grads, beta1)
    exp_inf.mul_(beta2)
    if eps_inside_max:
        # torch.optim.Adamax and optax: u_t = max(beta2*u, |g| + eps)
        exp_inf.maximum_(grads.abs().add_(eps))
        denom = exp_inf
    else:
        # Keras: u_t = max(beta2*u, |g|), and eps is added to the denominator
        exp_inf.maximum_(grads.abs())
        denom = exp_inf.add(eps)
    params.addcdiv_(exp_avg, denom, value=-lr / bias_correction(beta1, step))


class Adamax(RuleOptimizer):
    """Adamax (Kingma & Ba 2015, section 7.1): Adam with the infinity norm.

    Update rule::

        m_0 = 0, u_0 = 0
        g_t = grad + weight_decay*theta     (decoupled_weight_decay: theta = theta*(1 - lr*weight_decay))
        m_t = beta1*m_{t-1} + (1-beta1)*g_t
        u_t = max(beta2*u_{t-1}, |g_t| + eps);  theta = theta - lr/(1-beta1^t) * m_t/u_t         eps_inside_max=True
        u_t = max(beta2*u_{t-1}, |g_t|);        theta = theta - lr/(1-beta1^t) * m_t/(u_t + eps) eps_inside_max=False

    Matches:
        pytorch: ``torch.optim.Adamax`` (eps inside the max, lr 2e-3). keras:
        ``keras.optimizers.Adamax`` (eps 1e-7 added to the denominator). optax: ``optax.adamax``
        (eps inside the max). paper: Kingma & Ba Algorithm 2, which has no eps; the ``paper``
        convention adds eps 1e-8 to the denominator so that a zero gradient stays finite.

    References:
        Kingma & Ba (2015) Algorithm 2; seed 004.
    """

    rule = staticmethod(adamax_rule)
    buffers = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        fused: bool | None = None,
        eps_inside_max: bool = True,
        decoupled_weight_decay: bool = False,
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``capturable`` are torch.optim.Adamax's.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate (a float or a 0-d tensor).
            betas: (beta1, beta2), the decays of the first moment and of the infinity norm.
            eps: inside the maximum (``eps_inside_max``) or added to the denominator.
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``.
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            maximize: ascend the objective instead of descending.
            differentiable: record the step for autograd (per-tensor path).
            capturable: counts on the parameters' device, never read by the host (CUDA graphs).
            fused: the fused path (True), never (False), or by size (None); optimlab's
                (torch.optim.Adamax has none).
            eps_inside_max: ``max(beta2*u, |g| + eps)`` (torch, optax) instead of
                ``max(beta2*u, |g|)`` and ``u + eps`` in the denominator (Keras).
            decoupled_weight_decay: decay by ``lr*weight_decay`` apart from the gradient (Keras).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).
        """
        super().__init__(params, locals())
