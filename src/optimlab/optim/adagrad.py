"""AdaGrad: per-coordinate step sizes from the running sum of squared gradients."""

from __future__ import annotations

from typing import Any

import torch

from ._base import RuleOptimizer, TorchKernel, scalar
from ._rules import ArrayLike, apply_weight_decay, full_state_like, sqrt_denominator
from ._validate import check_bool, check_lr, check_non_negative


def adagrad_rule(
    params: ArrayLike,
    grads: ArrayLike,
    sum: ArrayLike,
    *,
    step: int,
    lr: float,
    lr_decay: float,
    eps: float,
    eps_inside_sqrt: bool,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One AdaGrad step; the equations are in :class:`Adagrad`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    clr = lr / (1 + (step - 1) * lr_decay)
    sum.addcmul_(grads, grads, value=1)
    std = sqrt_denominator(sum, eps=eps, eps_inside_sqrt=eps_inside_sqrt)
    params.addcdiv_(grads, std, value=-clr)


class Adagrad(RuleOptimizer):
    """AdaGrad (Duchi et al. 2011).

    Update rule::

        r_0 = initial_accumulator_value
        g_t = grad (+ weight_decay*theta, or decoupled: theta = theta*(1 - lr*weight_decay))
        lr_t = lr / (1 + (t-1)*lr_decay)
        r_t = r_{t-1} + g_t*g_t
        theta = theta - lr_t * g_t / (sqrt(r_t) + eps)        eps_inside_sqrt=False
        theta = theta - lr_t * g_t / sqrt(r_t + eps)          eps_inside_sqrt=True

    Matches:
        pytorch: ``torch.optim.Adagrad`` (eps 1e-10 outside the root, r_0 = 0, lr 0.01).
        keras: ``keras.optimizers.Adagrad`` (eps 1e-7 inside the root, r_0 = 0.1, lr 0.001).
        optax: ``optax.adagrad`` (eps 1e-7 inside the root, r_0 = 0.1); optax also zeroes the
        update where r_t == 0, which only matters for r_0 = 0 and a zero gradient.
        paper: seed 000 / Goodfellow et al. Alg. 8.4, delta = 1e-7 outside the root.
    Differs from:
        seed 001's code, which has no delta at all (``eps=0``).

    References:
        Duchi, Hazan & Singer (2011); Goodfellow, Bengio & Courville (2016) Alg. 8.4; seeds 000,
        001, 003.
    """

    buffers = ("sum",)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_lr(lr)
        check_non_negative("lr_decay", lr_decay)
        check_non_negative("weight_decay", weight_decay)
        check_non_negative("initial_accumulator_value", initial_accumulator_value)
        check_non_negative("eps", eps, "epsilon")
        check_bool("eps_inside_sqrt", eps_inside_sqrt)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "eps_inside_sqrt": eps_inside_sqrt,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _new_buffer(self, name, p, group) -> torch.Tensor:
        return full_state_like(p, group["initial_accumulator_value"])

    def _torch_kernel(self, group: dict[str, Any]) -> TorchKernel | None:
        # torch's fused Adagrad: eps outside the root, L2 weight decay
        if group["eps_inside_sqrt"] or (group["decoupled_weight_decay"] and group["weight_decay"]):
            return None
        kwargs = {
            "lr": scalar(group["lr"]),
            "lr_decay": group["lr_decay"],
            "weight_decay": group["weight_decay"],
            "eps": group["eps"],
            "maximize": group["maximize"],
        }

        def kernel(params, grads, buffers, steps, step) -> None:
            torch._fused_adagrad_(params, grads, buffers["sum"], steps, **kwargs)

        return kernel

    def _update(self, group, step, params, grads, buffers, states) -> None:
        adagrad_rule(
            params,
            grads,
            buffers["sum"],
            step=step,
            lr=scalar(group["lr"]),
            lr_decay=group["lr_decay"],
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
