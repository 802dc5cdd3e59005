"""Gradient descent: plain, with momentum in its three written forms, and Nesterov's look-ahead."""

from __future__ import annotations

from typing import Any

import torch

from ._base import RuleOptimizer, TorchKernel, scalar
from ._rules import ArrayLike, apply_weight_decay, ema_
from ._validate import check_bool, check_choice, check_lr, check_non_negative, check_unit_interval

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

    buffers = ("momentum_buffer",)

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        form: str = "heavy_ball",
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_lr(lr)
        check_non_negative("momentum", momentum)
        check_non_negative("dampening", dampening)
        check_non_negative("weight_decay", weight_decay)
        check_bool("nesterov", nesterov)
        check_choice("form", form, FORMS)
        check_bool("decoupled_weight_decay", decoupled_weight_decay)
        if form == "ema":
            check_unit_interval("momentum", momentum)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "fused": fused,
            "form": form,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

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

    def _update(self, group, step, params, grads, buffers, states) -> None:
        sgd_rule(
            params,
            grads,
            buffers.get("momentum_buffer"),
            step=step,
            lr=scalar(group["lr"]),
            momentum=group["momentum"],
            dampening=group["dampening"],
            nesterov=group["nesterov"],
            form=group["form"],
            weight_decay=group["weight_decay"],
            decoupled_weight_decay=group["decoupled_weight_decay"],
        )


class Momentum(SGD):
    """Gradient descent with momentum: :class:`SGD` whose ``momentum`` defaults to 0.9.

    The update rule, its three forms (``form="heavy_ball" | "velocity" | "ema"``) and what each
    matches are in :class:`SGD`.
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.9, **kwargs: Any) -> None:
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
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, **kwargs)
