"""RMSProp: AdaGrad with a decaying (exponentially weighted) average of squared gradients."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from . import _rules
from ._base import RuleOptimizer
from ._rules import ArrayLike, apply_weight_decay, ema_, ema_sq_, full_state_like, sqrt_denominator
from ._validate import Check, choice


def rmsprop_rule(
    params: ArrayLike,
    grads: ArrayLike,
    square_avg: ArrayLike,
    grad_avg: ArrayLike | None,
    momentum_buffer: ArrayLike | None,
    *,
    step: int,
    lr: float,
    alpha: float,
    eps: float,
    eps_inside_sqrt: bool,
    centered: bool,
    momentum: float,
    form: str,
    bias_correction: bool,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One RMSProp step; the equations are in :class:`RMSprop`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    ema_sq_(square_avg, grads, alpha)
    bc = _rules.bias_correction(alpha, step) if bias_correction else 1.0
    v = square_avg
    if centered:
        ema_(grad_avg, grads, alpha)
        if bias_correction:
            # both averages started at zero, so each is corrected before the variance is formed:
            # v_hat - b_hat^2 (optax.scale_by_stddev), not (v - b^2)/(1 - alpha^t)
            b_hat = grad_avg.div(bc)
            v = square_avg.div(bc).addcmul_(b_hat, b_hat, value=-1)
            bc = 1.0
        else:
            v = square_avg.addcmul(grad_avg, grad_avg, value=-1)
    denom = sqrt_denominator(v, eps=eps, eps_inside_sqrt=eps_inside_sqrt, bias_correction2=bc)
    if momentum > 0:
        if form == "velocity":
            # TF1 / Keras: the learning rate is inside the buffer
            momentum_buffer.mul_(momentum).addcdiv_(grads, denom, value=lr)
            params.add_(momentum_buffer, alpha=-1)
        else:
            momentum_buffer.mul_(momentum).addcdiv_(grads, denom)
            params.add_(momentum_buffer, alpha=-lr)
    else:
        params.addcdiv_(grads, denom, value=-lr)


class RMSprop(RuleOptimizer):
    """RMSProp (Hinton, Lecture 6e), plain, centered, with momentum, and in TF1's form.

    Update rule::

        v_0 = initial_accumulator_value (TF1: 1.0), b_0 = 0, m_0 = 0
        g_t = grad (+ weight_decay*theta, or decoupled: theta = theta*(1 - lr*weight_decay))
        v_t = alpha*v_{t-1} + (1-alpha)*g_t^2
        centered:         b_t = alpha*b_{t-1} + (1-alpha)*g_t;   s_t = v_t - b_t^2
        otherwise:        s_t = v_t
        bias_correction:  s_t = v_t/(1 - alpha^t)                          (plain)
                          s_t = v_t/(1 - alpha^t) - (b_t/(1 - alpha^t))^2    (centered)
        d_t = sqrt(s_t) + eps  (eps_inside_sqrt=False)   or   sqrt(s_t + eps)  (True)
        momentum == 0:       theta = theta - lr*g_t/d_t
        form="heavy_ball":   m_t = momentum*m_{t-1} + g_t/d_t;      theta = theta - lr*m_t
        form="velocity":     m_t = momentum*m_{t-1} + lr*g_t/d_t;   theta = theta - m_t

    Matches:
        pytorch: ``torch.optim.RMSprop`` (alpha 0.99, eps 1e-8 outside, heavy_ball).
        keras: ``keras.optimizers.RMSprop`` (rho 0.9, eps 1e-7 inside, velocity momentum).
        optax: ``optax.rmsprop`` (decay 0.9, eps 1e-8 inside, ``initial_scale`` = v_0,
        heavy_ball ``trace`` momentum, ``bias_correction``).
        paper: seed 000 / Goodfellow et al. Alg. 8.5 with delta outside the root.
        ``rmsprop-tf1`` in the registry: ``tf.compat.v1.train.RMSPropOptimizer`` (decay 0.9,
        momentum 0.9, eps 1e-10 inside, v_0 = 1, velocity momentum), as in seed 000.

    References:
        Tieleman & Hinton (2012) Lecture 6e; Graves (2013) eq. 38-45 (centered); seeds 000, 001, 004.
    """

    rule = staticmethod(rmsprop_rule)
    buffers = ("square_avg", "grad_avg", "momentum_buffer")
    checks: ClassVar[dict[str, Check]] = {"form": choice("form", ("heavy_ball", "velocity"))}

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        form: str = "heavy_ball",
        initial_accumulator_value: float = 0.0,
        bias_correction: bool = False,
        decoupled_weight_decay: bool = False,
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``differentiable`` are
        torch.optim.RMSprop's, in its order (all positional, as there).

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate (a float or a 0-d tensor).
            alpha: the decay of the average of squared gradients (Keras's ``rho``).
            eps: added to the root (``eps_inside_sqrt``: under it).
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``.
            momentum: the momentum factor (0: no momentum buffer).
            centered: divide by the root of the variance, not of the second moment (Graves).
            capturable: counts on the parameters' device, never read by the host (CUDA graphs).
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            maximize: ascend the objective instead of descending.
            differentiable: record the step for autograd (per-tensor path).
            fused: the fused path (True), never (False), or by size (None); optimlab's
                (torch.optim.RMSprop has none).
            eps_inside_sqrt: ``sqrt(s_t + eps)`` (Keras, optax, TF1) instead of
                ``sqrt(s_t) + eps``.
            form: how momentum is written: ``"heavy_ball"`` (torch) or ``"velocity"`` (lr
                inside the buffer: Keras, optax, TF1).
            initial_accumulator_value: v_0, where the average of squared gradients starts
                (TF1: 1.0).
            bias_correction: divide the averages by ``1 - alpha^t`` (optax's option).
            decoupled_weight_decay: decay by ``lr*weight_decay`` apart from the gradient (Keras).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).
        """
        super().__init__(params, locals())

    def _active_buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        # in the order torch.optim.RMSprop creates them
        names = ["square_avg"]
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        if group["centered"]:
            names.append("grad_avg")
        return tuple(names)

    def _new_buffer(self, name, p, group) -> torch.Tensor:
        if name == "square_avg":
            return full_state_like(p, group["initial_accumulator_value"])
        return super()._new_buffer(name, p, group)
