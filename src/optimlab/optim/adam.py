"""The Adam family: Adam (with AMSGrad), AdamW, NAdam and Adamax."""

from __future__ import annotations

import math
from typing import Any

import torch

from ._base import RuleOptimizer, TorchKernel, scalar
from ._rules import ArrayLike, apply_weight_decay, bias_correction, ema_, ema_sq_, sqrt_denominator
from ._validate import (
    check_betas,
    check_bool,
    check_choice,
    check_lr,
    check_non_negative,
)

AMSGRAD_MAX = ("raw", "corrected")
MOMENTUM_SCHEDULES = ("dozat", "constant")


# ---- the rules -----------------------------------------------------------------------------------


def adam_rule(
    params: ArrayLike,
    grads: ArrayLike,
    exp_avg: ArrayLike,
    exp_avg_sq: ArrayLike,
    max_exp_avg_sq: ArrayLike | None,
    *,
    step: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    eps_inside_sqrt: bool,
    eps_hat: bool,
    amsgrad: bool,
    amsgrad_max: str,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One Adam/AdamW/AMSGrad step; the equations are in :class:`Adam`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    ema_(exp_avg, grads, beta1)
    ema_sq_(exp_avg_sq, grads, beta2)
    bc1 = bias_correction(beta1, step)
    bc2 = bias_correction(beta2, step)
    v = exp_avg_sq
    if amsgrad:
        if amsgrad_max == "corrected":
            # optax.amsgrad keeps the maximum of the bias-corrected v_hat
            max_exp_avg_sq.maximum_(exp_avg_sq.div(bc2))
            bc2 = 1.0
        else:
            max_exp_avg_sq.maximum_(exp_avg_sq)
        v = max_exp_avg_sq
    if eps_hat:
        # Keras/TF: eps is added to sqrt(v), and sqrt(1-beta2^t) moves into the step size
        denom = sqrt_denominator(v, eps=eps, eps_inside_sqrt=eps_inside_sqrt)
        params.addcdiv_(exp_avg, denom, value=-lr * math.sqrt(bc2) / bc1)
    else:
        denom = sqrt_denominator(v, eps=eps, eps_inside_sqrt=eps_inside_sqrt, bias_correction2=bc2)
        params.addcdiv_(exp_avg, denom, value=-lr / bc1)


def nadam_momentum(beta1: float, step: int, momentum_decay: float, schedule: str) -> float:
    """The momentum coefficient mu_t of NAdam's schedule.

    ``dozat``: ``mu_t = beta1*(1 - 0.5*0.96**(t*momentum_decay))`` (Dozat 2016; torch's
    ``momentum_decay`` = psi = 0.004; Keras 3 computes ``0.96**t``, i.e. psi = 1).
    ``constant``: ``mu_t = beta1`` (optax's ``nadam``).
    """
    if schedule == "constant":
        return beta1
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))


def nadam_rule(
    params: ArrayLike,
    grads: ArrayLike,
    exp_avg: ArrayLike,
    exp_avg_sq: ArrayLike,
    *,
    step: int,
    lr: float,
    beta2: float,
    mu: float,
    mu_next: float,
    mu_product: float,
    beta1: float,
    eps: float,
    eps_inside_sqrt: bool,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One NAdam step with ``mu_product`` = prod_{i<=t} mu_i; equations in :class:`NAdam`."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    ema_(exp_avg, grads, beta1)
    ema_sq_(exp_avg_sq, grads, beta2)
    bc2 = bias_correction(beta2, step)
    denom = sqrt_denominator(
        exp_avg_sq, eps=eps, eps_inside_sqrt=eps_inside_sqrt, bias_correction2=bc2
    )
    params.addcdiv_(grads, denom, value=-lr * (1.0 - mu) / (1.0 - mu_product))
    params.addcdiv_(exp_avg, denom, value=-lr * mu_next / (1.0 - mu_product * mu_next))


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


# ---- the optimizers ------------------------------------------------------------------------------


def _check_adam_family(lr: Any, betas: Any, eps: Any, weight_decay: Any, **flags: Any) -> None:
    check_lr(lr)
    check_betas(betas)
    check_non_negative("eps", eps, "epsilon")
    check_non_negative("weight_decay", weight_decay)
    for name, value in flags.items():
        check_bool(name, value)


class Adam(RuleOptimizer):
    """Adam (Kingma & Ba 2015), with AMSGrad, both epsilon placements and epsilon-hat.

    Update rule::

        m_0 = 0, v_0 = 0, vmax_0 = 0
        g_t = grad + weight_decay*theta     (decoupled_weight_decay: theta = theta*(1 - lr*weight_decay))
        m_t = beta1*m_{t-1} + (1-beta1)*g_t
        v_t = beta2*v_{t-1} + (1-beta2)*g_t^2
        amsgrad:  vmax_t = max(vmax_{t-1}, v_t) and v_t := vmax_t
                  (amsgrad_max="corrected": vmax_t = max(vmax_{t-1}, v_t/(1-beta2^t)), optax)
        m_hat = m_t/(1-beta1^t);  v_hat = v_t/(1-beta2^t)
        theta = theta - lr*m_hat/(sqrt(v_hat) + eps)                         default
        theta = theta - lr*m_hat/sqrt(v_hat + eps)                           eps_inside_sqrt=True
        theta = theta - lr*sqrt(1-beta2^t)/(1-beta1^t) * m_t/(sqrt(v_t) + eps) eps_hat=True

    Matches:
        pytorch: ``torch.optim.Adam`` (eps 1e-8). keras: ``keras.optimizers.Adam`` (eps-hat 1e-7,
        decoupled weight decay). optax: ``optax.adam`` / ``optax.amsgrad``. paper: Kingma & Ba
        Algorithm 1 (eps-hat is the form of its section 2 remark).
    Differs from:
        seed 003's hand-written Adam, which puts eps inside the root (``eps_inside_sqrt=True``).

    References:
        Kingma & Ba (2015) Alg. 1; Reddi et al. (2018) for AMSGrad; seeds 000, 001, 003, 004.
    """

    buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        eps_hat: bool = False,
        amsgrad_max: str = "raw",
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check_adam_family(
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad=amsgrad,
            eps_inside_sqrt=eps_inside_sqrt,
            eps_hat=eps_hat,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        check_choice("amsgrad_max", amsgrad_max, AMSGRAD_MAX)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "eps_inside_sqrt": eps_inside_sqrt,
            "eps_hat": eps_hat,
            "amsgrad_max": amsgrad_max,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _active_buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self.buffers if group["amsgrad"] else self.buffers[:2]

    def _torch_kernel(self, group: dict[str, Any]) -> TorchKernel | None:
        # torch's fused Adam/AdamW: the rule's arithmetic with eps outside the root, no
        # eps-hat, and AMSGrad on the raw second moment
        if group["eps_inside_sqrt"] or group["eps_hat"]:
            return None
        if group["amsgrad"] and group["amsgrad_max"] != "raw":
            return None
        op = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        beta1, beta2 = (scalar(b) for b in group["betas"])
        kwargs = {
            "amsgrad": group["amsgrad"],
            "lr": scalar(group["lr"]),
            "beta1": beta1,
            "beta2": beta2,
            "weight_decay": group["weight_decay"],
            "eps": group["eps"],
            "maximize": group["maximize"],
        }

        def kernel(params, grads, buffers, steps, step) -> None:
            maxes = buffers["max_exp_avg_sq"] if group["amsgrad"] else []
            op(params, grads, buffers["exp_avg"], buffers["exp_avg_sq"], maxes, steps, **kwargs)

        return kernel

    def _update(self, group, step, params, grads, buffers, states) -> None:
        beta1, beta2 = (scalar(b) for b in group["betas"])
        adam_rule(
            params,
            grads,
            buffers["exp_avg"],
            buffers["exp_avg_sq"],
            buffers.get("max_exp_avg_sq"),
            step=step,
            lr=scalar(group["lr"]),
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            eps_hat=group["eps_hat"],
            amsgrad=group["amsgrad"],
            amsgrad_max=group["amsgrad_max"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019): :class:`Adam` with decoupled weight decay.

    Update rule: Adam's, preceded by ``theta = theta*(1 - lr*weight_decay)`` (default 1e-2).

    Matches:
        pytorch: ``torch.optim.AdamW``; keras: ``keras.optimizers.AdamW`` (weight decay 0.004,
        eps-hat); optax: ``optax.adamw`` (weight decay 1e-4; ``lr*wd*theta`` uses the same
        pre-update theta).
    References:
        Loshchilov & Hutter (2019) Algorithm 2.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        decoupled_weight_decay: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            decoupled_weight_decay=decoupled_weight_decay,
            **kwargs,
        )


class NAdam(RuleOptimizer):
    """NAdam (Dozat 2016): Adam with Nesterov momentum and a momentum schedule.

    Update rule::

        m_0 = 0, v_0 = 0, prod_0 = 1
        g_t = grad + weight_decay*theta     (decoupled_weight_decay: theta = theta*(1 - lr*weight_decay))
        mu_t = beta1*(1 - 0.5*0.96^(t*momentum_decay))   momentum_schedule="dozat"
        mu_t = beta1                                      momentum_schedule="constant"
        prod_t = prod_{t-1}*mu_t
        m_t = beta1*m_{t-1} + (1-beta1)*g_t;  v_t = beta2*v_{t-1} + (1-beta2)*g_t^2
        v_hat = v_t/(1-beta2^t);  d_t = sqrt(v_hat) + eps  (or sqrt(v_hat + eps))
        theta = theta - lr*(1-mu_t)/(1-prod_t) * g_t/d_t - lr*mu_{t+1}/(1-prod_t*mu_{t+1}) * m_t/d_t

    Matches:
        pytorch: ``torch.optim.NAdam`` (psi = momentum_decay = 0.004, lr 2e-3).
        keras: ``keras.optimizers.Nadam`` (Keras 3 uses 0.96^t: momentum_decay = 1.0; eps 1e-7).
        optax: ``optax.nadam`` (``momentum_schedule="constant"``: mu_t = beta1, so the update is
        beta1*m_t/(1-beta1^{t+1}) + (1-beta1)*g_t/(1-beta1^t) over d_t).
        paper: Dozat (2016) Algorithm 2 with psi = 0.004.

    References:
        Dozat (2016), "Incorporating Nesterov Momentum into Adam"; seeds 000 and 004.
    """

    buffers = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params: Any,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        momentum_schedule: str = "dozat",
    ) -> None:
        _check_adam_family(
            lr,
            betas,
            eps,
            weight_decay,
            eps_inside_sqrt=eps_inside_sqrt,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        check_non_negative("momentum_decay", momentum_decay)
        check_choice("momentum_schedule", momentum_schedule, MOMENTUM_SCHEDULES)
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "eps_inside_sqrt": eps_inside_sqrt,
            "momentum_schedule": momentum_schedule,
        }
        super().__init__(params, defaults)

    def _init_scalars(self, state: dict[str, Any]) -> None:
        state["mu_product"] = torch.ones((), dtype=torch.float64)

    def _update(self, group, step, params, grads, buffers, states) -> None:
        beta1, beta2 = (scalar(b) for b in group["betas"])
        schedule = (group["momentum_decay"], group["momentum_schedule"])
        mu = nadam_momentum(beta1, step, *schedule)
        mu_next = nadam_momentum(beta1, step + 1, *schedule)
        # tensors of one bucket share their step count, hence their product of mu_i
        mu_product = float(states[0]["mu_product"]) * mu
        # one multi-tensor op: every product was equal, so each becomes exactly mu_product
        torch._foreach_mul_([s["mu_product"] for s in states], mu)
        nadam_rule(
            params,
            grads,
            buffers["exp_avg"],
            buffers["exp_avg_sq"],
            step=step,
            lr=scalar(group["lr"]),
            beta1=beta1,
            beta2=beta2,
            mu=mu,
            mu_next=mu_next,
            mu_product=mu_product,
            eps=group["eps"],
            eps_inside_sqrt=group["eps_inside_sqrt"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )


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

    buffers = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params: Any,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        eps_inside_max: bool = True,
        decoupled_weight_decay: bool = False,
    ) -> None:
        _check_adam_family(
            lr,
            betas,
            eps,
            weight_decay,
            eps_inside_max=eps_inside_max,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "eps_inside_max": eps_inside_max,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, group, step, params, grads, buffers, states) -> None:
        beta1, beta2 = (scalar(b) for b in group["betas"])
        adamax_rule(
            params,
            grads,
            buffers["exp_avg"],
            buffers["exp_inf"],
            step=step,
            lr=scalar(group["lr"]),
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            eps_inside_max=group["eps_inside_max"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )
