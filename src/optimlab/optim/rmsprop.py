"""RMSProp: AdaGrad with a decaying (exponentially weighted) average of squared gradients."""

from __future__ import annotations

from typing import Any

import torch

from ._base import RuleOptimizer, scalar
from ._rules import (
    ArrayLike,
    apply_weight_decay,
    bias_correction,
    ema_,
    ema_sq_,
    full_state_like,
    sqrt_denominator,
)
from ._validate import (
    check_bool,
    check_choice,
    check_lr,
    check_non_negative,
    check_unit_interval,
)


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
    bias_correction_: bool,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One RMSProp step; the equations are in :class:`RMSprop`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    ema_sq_(square_avg, grads, alpha)
    bc = bias_correction(alpha, step) if bias_correction_ else 1.0
    v = square_avg
    if centered:
        ema_(grad_avg, grads, alpha)
        if bc != 1.0:
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

    buffers = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        form: str = "heavy_ball",
        initial_accumulator_value: float = 0.0,
        bias_correction: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_lr(lr)
        check_unit_interval("alpha", alpha)
        check_non_negative("eps", eps, "epsilon")
        check_non_negative("weight_decay", weight_decay)
        check_non_negative("momentum", momentum)
        check_bool("centered", centered)
        check_bool("eps_inside_sqrt", eps_inside_sqrt)
        check_choice("form", form, ("heavy_ball", "velocity"))
        check_non_negative("initial_accumulator_value", initial_accumulator_value)
        check_bool("bias_correction", bias_correction)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "eps_inside_sqrt": eps_inside_sqrt,
            "form": form,
            "initial_accumulator_value": initial_accumulator_value,
            "bias_correction": bias_correction,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _active_buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        names = ["square_avg"]
        if group["centered"]:
            names.append("grad_avg")
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        return tuple(names)

    def _new_buffer(self, name, p, group) -> torch.Tensor:
        if name == "square_avg":
            return full_state_like(p, group["initial_accumulator_value"])
        return super()._new_buffer(name, p, group)

    def _update(self, group, step, params, grads, buffers, states) -> None:
        rmsprop_rule(
            params,
            grads,
            buffers["square_avg"],
            buffers.get("grad_avg"),
            buffers.get("momentum_buffer"),
            step=step,
            lr=scalar(group["lr"]),
            alpha=group["alpha"],
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            centered=group["centered"],
            momentum=group["momentum"],
            form=group["form"],
            bias_correction_=group["bias_correction"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
