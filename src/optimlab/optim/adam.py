"""The Adam family: Adam (with AMSGrad), AdamW and NAdam (Adamax: :mod:`.adamax`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._base import RuleOptimizer, TorchKernel, scalar
from ._hyper import defaults_from
from ._rules import (
    ArrayLike,
    apply_weight_decay,
    bias_correction,
    ema_,
    ema_sq_,
    sqrt_denominator,
    sqrt_scalar,
)
from ._state import new_scalar
from ._validate import Check, choice

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
        params.addcdiv_(exp_avg, denom, value=-lr * sqrt_scalar(bc2) / bc1)
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


# ---- the optimizers ------------------------------------------------------------------------------


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

    rule = staticmethod(adam_rule)
    buffers = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    differentiable_step_tensor = True
    sparse_error = "Adam does not support sparse gradients, please consider SparseAdam instead"
    checks: ClassVar[dict[str, Check]] = {"amsgrad_max": choice("amsgrad_max", AMSGRAD_MAX)}

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        eps_inside_sqrt: bool = False,
        eps_hat: bool = False,
        amsgrad_max: str = "raw",
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``decoupled_weight_decay`` are
        torch.optim.Adam's.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate (a float; a 0-d tensor only where ``foreach`` is not True or
                the group is capturable, as in torch.optim).
            betas: (beta1, beta2), the decays of the first and second moments.
            eps: added to the root of v_hat (``eps_inside_sqrt``: under it; ``eps_hat``: to
                the root of the uncorrected v).
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``.
            amsgrad: divide by the running maximum of v (Reddi et al.).
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            maximize: ascend the objective instead of descending.
            capturable: counts on the parameters' device, never read by the host (CUDA graphs).
            differentiable: record the step for autograd (per-tensor path).
            fused: the fused path (True), never (False), or by size (None).
            decoupled_weight_decay: decay the weights by ``lr*weight_decay`` apart from the
                gradient (AdamW, Keras).
            eps_inside_sqrt: ``sqrt(v_hat + eps)`` (seed 003) instead of ``sqrt(v_hat) + eps``.
            eps_hat: Keras's placement, ``eps`` added to ``sqrt(v_t)`` with the bias
                correction moved into the step size.
            amsgrad_max: the maximum of the raw v (``"raw"``: torch, Keras) or of v_hat
                (``"corrected"``: optax).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).
        """
        super().__init__(params, locals())

    def _check(self, hyperparameters: dict[str, Any]) -> None:
        super()._check(hyperparameters)
        # torch.optim.Adam's rule: without capturable, the multi-tensor path reads lr and betas
        # on the host, so it refuses them as tensors
        if hyperparameters["foreach"] and not hyperparameters["capturable"]:
            if isinstance(hyperparameters["lr"], Tensor):
                raise ValueError(
                    "lr as a Tensor is not supported for capturable=False and foreach=True"
                )
            for i, beta in enumerate(hyperparameters["betas"]):
                if isinstance(beta, Tensor):
                    raise ValueError(  # noqa: TRY004 (torch.optim's error type)
                        f"betas[{i}] as a Tensor is not supported for capturable=False and "
                        "foreach=True"
                    )

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
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        eps_hat: bool = False,
        amsgrad_max: str = "raw",
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``fused`` are torch.optim.AdamW's. The
        weight decay is always decoupled (also after loading an Adam state_dict, as in
        torch.optim); :class:`Adam` gives L2 decay.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate, as for :class:`Adam`.
            betas: (beta1, beta2), the decays of the first and second moments.
            eps: added to the root of v_hat, as for :class:`Adam`.
            weight_decay: the decoupled decay: ``theta = theta*(1 - lr*weight_decay)``.
            amsgrad: divide by the running maximum of v (Reddi et al.).
            maximize: ascend the objective instead of descending.
            foreach: the path, as for :class:`Adam`.
            capturable: as for :class:`Adam`.
            differentiable: as for :class:`Adam`.
            fused: as for :class:`Adam`.
            eps_inside_sqrt: as for :class:`Adam`.
            eps_hat: as for :class:`Adam` (Keras's AdamW).
            amsgrad_max: as for :class:`Adam`.
            skip_nonfinite: as for :class:`Adam`.
        """
        hyperparameters = defaults_from(locals())
        super().__init__(params, **hyperparameters, decoupled_weight_decay=True)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        # as torch.optim.AdamW: a loaded state (an Adam one too) keeps the decay decoupled
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


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

    rule = staticmethod(nadam_rule)
    buffers = ("exp_avg", "exp_avg_sq")
    checks: ClassVar[dict[str, Check]] = {
        "momentum_schedule": choice("momentum_schedule", MOMENTUM_SCHEDULES)
    }
    derived = ("mu", "mu_next", "mu_product")

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        momentum_schedule: str = "dozat",
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``differentiable`` are
        torch.optim.NAdam's.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate (a float or a 0-d tensor).
            betas: (beta1, beta2): beta1 scales the momentum schedule, beta2 is the decay of
                the second moment.
            eps: added to the root of v_hat (``eps_inside_sqrt``: under it).
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``.
            momentum_decay: psi of Dozat's schedule ``mu_t = beta1*(1 - 0.5*0.96^(t*psi))``.
            decoupled_weight_decay: decay the weights by ``lr*weight_decay`` apart from the
                gradient (NAdamW, Keras).
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            maximize: ascend the objective instead of descending.
            capturable: counts on the parameters' device, never read by the host (CUDA graphs).
            differentiable: record the step for autograd (per-tensor path).
            fused: the fused path (True), never (False), or by size (None); optimlab's
                (torch.optim.NAdam has none).
            eps_inside_sqrt: ``sqrt(v_hat + eps)`` instead of ``sqrt(v_hat) + eps``.
            momentum_schedule: ``"dozat"`` (torch, Keras) or ``"constant"`` (mu_t = beta1,
                optax).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).
        """
        super().__init__(params, locals())

    def _init_scalars(self, state: dict[str, Any], p: Tensor, group: dict[str, Any]) -> None:
        # as torch.optim.NAdam (which has no fused path): never fused's float32
        state["mu_product"] = new_scalar(1.0, p, {**group, "fused": None})

    def _derived(self, group, step, states, on_device) -> dict[str, Any]:
        beta1 = group["betas"][0] if on_device else scalar(group["betas"][0])
        schedule = (group["momentum_decay"], group["momentum_schedule"])
        mu = nadam_momentum(beta1, step, *schedule)
        products = [s["mu_product"] for s in states]
        # as torch.optim.NAdam: the stored product (float32) is updated, then read
        torch._foreach_mul_(products, list(mu.reshape(-1).unbind()) if _many(mu) else mu)
        if isinstance(step, Tensor):
            mu_product = torch.stack(products).reshape(step.shape)
        elif on_device:  # differentiable: one parameter, its product as the tensor it is
            mu_product = products[0]
        else:
            # the parameters of one bucket share their step, hence their product
            mu_product = float(products[0])
        return {
            "mu": mu,
            "mu_next": nadam_momentum(beta1, step + 1, *schedule),
            "mu_product": mu_product,
        }


def _many(mu: Any) -> bool:
    """Whether a scalar holds one value per parameter (a 1-d tensor)."""
    return isinstance(mu, Tensor) and mu.dim() > 0
