"""AdaGrad: per-coordinate step sizes from the running sum of squared gradients."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import RuleOptimizer, TorchKernel, scalar
from ._rules import ArrayLike, apply_weight_decay, full_state_like, sqrt_denominator


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

    rule = staticmethod(adagrad_rule)
    buffers = ("sum",)
    sparse_grads = "rows"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        decoupled_weight_decay: bool = False,
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``fused`` are torch.optim.Adagrad's.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate (a float or a 0-d tensor).
            lr_decay: the step size at step t is ``lr / (1 + (t-1)*lr_decay)``.
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``; not with sparse gradients (as torch).
            initial_accumulator_value: r_0, where the sum of squared gradients starts.
            eps: added to the root (``eps_inside_sqrt``: under it).
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            maximize: ascend the objective instead of descending.
            differentiable: record the step for autograd (per-tensor path).
            fused: the fused path (True), never (False), or by size (None).
            eps_inside_sqrt: ``sqrt(r_t + eps)`` (Keras, optax) instead of ``sqrt(r_t) + eps``.
            decoupled_weight_decay: decay by ``lr*weight_decay`` apart from the gradient (Keras).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).

        Sparse gradients update only the rows they touch (duplicate indices summed first), as
        torch.optim.Adagrad does. Unlike torch.optim.Adagrad, which creates every parameter's
        state when it is built, the state is created at a parameter's first step.
        """
        super().__init__(params, locals())

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
