"""AdaDelta: AdaGrad's step sizes from windowed averages, with units matched by past updates."""

from __future__ import annotations

from typing import Any

from ._base import RuleOptimizer, scalar
from ._rules import ArrayLike, apply_weight_decay, ema_sq_
from ._validate import check_bool, check_lr, check_non_negative, check_unit_interval


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

    buffers = ("square_avg", "acc_delta")

    def __init__(
        self,
        params: Any,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_lr(lr)
        check_unit_interval("rho", rho)
        check_non_negative("eps", eps, "epsilon")
        check_non_negative("weight_decay", weight_decay)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, group, step, params, grads, buffers, states) -> None:
        adadelta_rule(
            params,
            grads,
            buffers["square_avg"],
            buffers["acc_delta"],
            step=step,
            lr=scalar(group["lr"]),
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
