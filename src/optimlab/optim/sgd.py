"""Gradient descent: plain, with momentum in its three written forms, and Nesterov's look-ahead."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._base import RuleOptimizer, TorchKernel, scalar
from ._rules import ArrayLike, apply_weight_decay, ema_, is_zero
from ._validate import Check, check_unit_interval, choice

#: the three ways the seeds and the frameworks write momentum
FORMS = ("heavy_ball", "velocity", "ema")


def sgd_rule(
    params: ArrayLike,
    grads: ArrayLike,
    momentum_buffer: ArrayLike | None,
    *,
    step: int,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    form: str,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> None:
    """One step of (momentum) gradient descent; the equations are in :class:`SGD`'s docstring."""
    grads = apply_weight_decay(
        params, grads, lr=lr, weight_decay=weight_decay, decoupled=decoupled_weight_decay
    )
    if momentum == 0:
        params.add_(grads, alpha=-lr)
        return
    m = momentum_buffer
    if form == "heavy_ball":
        # torch.optim.SGD starts the buffer at g_1 itself, with no dampening on the first step
        if step == 1:
            m.copy_(grads)
        else:
            m.mul_(momentum).add_(grads, alpha=1 - dampening)
        direction = grads.add(m, alpha=momentum) if nesterov else m
        params.add_(direction, alpha=-lr)
    elif form == "velocity":
        m.mul_(momentum).add_(grads, alpha=lr * (1 - dampening))
        if nesterov:
            # Sutskever's look-ahead held at phi = theta - momentum*m (Bengio et al. 2013, eq. 7)
            params.add_(m, alpha=-momentum).add_(grads, alpha=-lr)
        else:
            params.add_(m, alpha=-1)
    else:  # "ema"
        ema_(m, grads, momentum)
        if nesterov:
            params.add_(m, alpha=-lr * momentum).add_(grads, alpha=-lr * (1 - momentum))
        else:
            params.add_(m, alpha=-lr)


class SGD(RuleOptimizer):
    """Stochastic gradient descent, optionally with momentum (three forms) and Nesterov look-ahead.

    Update rule::

        g_t = grad (negated if maximize); with L2 weight decay g_t = g_t + weight_decay*theta
        (decoupled_weight_decay: theta = theta*(1 - lr*weight_decay) instead)

        momentum == 0:           theta = theta - lr*g_t

        form="heavy_ball":       m_1 = g_1;  m_t = momentum*m_{t-1} + (1-dampening)*g_t
                                 d_t = g_t + momentum*m_t if nesterov else m_t
                                 theta = theta - lr*d_t
        form="velocity":         m_0 = 0;    m_t = momentum*m_{t-1} + lr*(1-dampening)*g_t
                                 theta = theta - m_t                                (plain)
                                 theta = theta - momentum*m_t - lr*g_t               (nesterov)
        form="ema":              m_0 = 0;    m_t = momentum*m_{t-1} + (1-momentum)*g_t
                                 theta = theta - lr*m_t                             (plain)
                                 theta = theta - lr*(momentum*m_t + (1-momentum)*g_t) (nesterov)

    With a constant lr, heavy_ball and velocity give the same trajectory (m_velocity = lr*m_heavy);
    after lr changes they differ: heavy_ball applies the new lr to the whole buffer, velocity
    only to new gradients. The ema form is velocity-free averaging and takes steps (1-momentum)
    times smaller for the same lr.

    Nesterov (``nesterov=True``) is Sutskever's look-ahead ``m = momentum*m + lr*grad(theta -
    momentum*m); theta = theta - m`` computed with one gradient per step: the parameters held
    between steps are the look-ahead point ``phi = theta - momentum*m`` (Bengio et al. 2013).

    Matches:
        pytorch: ``torch.optim.SGD`` (heavy_ball). keras: ``keras.optimizers.SGD`` (velocity,
        decoupled weight decay). optax: ``optax.sgd`` (heavy_ball, ``trace``).
    Differs from:
        seed 001/003's SGDM, selected with ``form="ema"``; TF1 ``MomentumOptimizer``,
        ``form="velocity"``.

    References:
        Polyak (1964); Sutskever et al. (2013) eq. 3-4; Bengio et al. (2013) eq. 6-7;
        seeds 000 (velocity, NAG), 001 and 003 (ema), 003 (torch's form).
    """

    rule = staticmethod(sgd_rule)
    buffers = ("momentum_buffer",)
    checks: ClassVar[dict[str, Check]] = {"form": choice("form", FORMS)}
    # torch.optim.SGD keeps no step counter: the first step is the one without a buffer
    counts_steps = False
    sparse_grads = "dense"

    def __init__(
        self,
        params: Any,
        lr: float | Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float | Tensor = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        form: str = "heavy_ball",
        decoupled_weight_decay: bool = False,
        skip_nonfinite: bool = False,
    ) -> None:
        """Build the optimizer; the parameters up to ``fused`` are torch.optim.SGD's.

        Args:
            params: the tensors to optimize, or param-group dicts (as for any torch optimizer).
            lr: the learning rate (a float or a 0-d tensor).
            momentum: the momentum factor (0 = plain gradient descent).
            dampening: scales each new gradient into the buffer by ``1 - dampening``.
            weight_decay: L2 penalty (added to the gradient), or decoupled with
                ``decoupled_weight_decay``.
            nesterov: Nesterov's look-ahead; needs a momentum and zero dampening.
            maximize: ascend the objective instead of descending.
            foreach: the multi-tensor path (True), per tensor (False), or by size (None).
            differentiable: record the step for autograd (per-tensor path).
            fused: the fused path (True), never (False), or by size (None).
            form: how momentum is written: ``"heavy_ball"`` (torch), ``"velocity"``
                (Keras, TF1, Sutskever) or ``"ema"`` (seeds 001 and 003).
            decoupled_weight_decay: decay by ``lr*weight_decay`` apart from the gradient (Keras).
            skip_nonfinite: skip a step whose gradients hold a NaN or an inf (``skipped_steps``).
        """
        super().__init__(params, locals())

    def _check(self, hyperparameters: dict[str, Any]) -> None:
        super()._check(hyperparameters)
        momentum, dampening = hyperparameters["momentum"], hyperparameters["dampening"]
        if hyperparameters["form"] == "ema":
            check_unit_interval("momentum", momentum)
        if hyperparameters["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _active_buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self.buffers if group["momentum"] != 0 else ()

    def _torch_kernel(self, group: dict[str, Any]) -> TorchKernel | None:
        # torch's fused SGD: the heavy-ball form (or no momentum, where the forms agree) with
        # L2 weight decay
        momentum = group["momentum"]
        if momentum != 0 and group["form"] != "heavy_ball":
            return None
        if group["decoupled_weight_decay"] and group["weight_decay"] != 0:
            return None
        kwargs = {
            "weight_decay": group["weight_decay"],
            "momentum": momentum,
            "lr": scalar(group["lr"]),
            "dampening": group["dampening"],
            "nesterov": group["nesterov"],
            "maximize": group["maximize"],
        }

        def kernel(params, grads, buffers, steps, step) -> None:
            bufs = buffers["momentum_buffer"] if momentum != 0 else []
            torch._fused_sgd_(params, grads, bufs, is_first_step=step == 1, **kwargs)

        return kernel

    def _takes_sparse(self, group: dict[str, Any]) -> bool:
        # plain SGD adds a sparse gradient as it is, as torch.optim.SGD does
        return group["momentum"] == 0 and is_zero(group["weight_decay"])


class Momentum(SGD):
    """Gradient descent with momentum: :class:`SGD` whose ``momentum`` defaults to 0.9.

    The update rule, its three forms (``form="heavy_ball" | "velocity" | "ema"``) and what each
    matches are in :class:`SGD`.
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.9, **kwargs: Any) -> None:
        """Build the optimizer.

        Args:
            params: the tensors to optimize, or param-group dicts.
            lr: the learning rate.
            momentum: the momentum factor.
            **kwargs: any other keyword of :class:`SGD` (``form``, ``nesterov``...).
        """
        super().__init__(params, lr=lr, momentum=momentum, **kwargs)


class NAG(SGD):
    """Nesterov's accelerated gradient: :class:`SGD` with ``nesterov=True`` and momentum 0.9.

    Update rule (Sutskever's form, ``form="velocity"``)::

        m_t = momentum*m_{t-1} + lr*grad J(theta_{t-1} - momentum*m_{t-1});  theta_t = theta_{t-1} - m_t

    held as the look-ahead point ``phi_t = theta_t - momentum*m_t``, so that one gradient at the
    held parameters serves each step::

        m_t = momentum*m_{t-1} + lr*g(phi_{t-1});  phi_t = phi_{t-1} - momentum*m_t - lr*g(phi_{t-1})

    Matches:
        pytorch: ``torch.optim.SGD(nesterov=True)``; keras: ``SGD(nesterov=True)``;
        optax: ``optax.sgd(nesterov=True)``; paper: Sutskever et al. (2013) eq. 3-4.
    References:
        Nesterov (1983); Sutskever et al. (2013); Bengio et al. (2013); seeds 000 and 004.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.9,
        nesterov: bool = True,
        **kwargs: Any,
    ) -> None:
        """Build the optimizer.

        Args:
            params: the tensors to optimize, or param-group dicts.
            lr: the learning rate.
            momentum: the momentum factor (must be positive).
            nesterov: Nesterov's look-ahead (False gives :class:`Momentum`).
            **kwargs: any other keyword of :class:`SGD` (``form``, ``dampening``...).
        """
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, **kwargs)
