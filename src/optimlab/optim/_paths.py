"""The multi-tensor and per-tensor paths: one call of the rule over parameters that share a
device, a dtype and a step count, and the per-tensor step of a sparse gradient.

``opt`` is a ``RuleOptimizer``; these functions keep its books for one bucket (count the step,
view complex tensors as real, negate for ``maximize``) and call ``opt._update``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._rules import TensorList, Tensorwise, is_zero
from ._scalars import DeviceTensorList, DeviceTensorwise
from ._state import FLOAT32_EXACT_STEPS, check_capturable, sparse_rows, widen_step


def advance(opt: Any, states: list[dict[str, Any]], prev: int | None) -> Any:
    """Count the step in ``states``; returns the step number the rule sees: an int, or on the
    device (``prev`` None) the list of the parameters' own counters."""
    if not opt.counts_steps:
        return prev + 1
    if prev is None:
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        return steps
    if prev >= FLOAT32_EXACT_STEPS:
        for s in states:
            widen_step(s, prev)
    for s in states:
        s["step"] += 1
    return prev + 1


def step_bucket(
    opt: Any,
    group: dict[str, Any],
    names: tuple[str, ...],
    ps: list[Tensor],
    prev: int | None,
    tensor_steps: bool,
) -> str:
    """Step parameters that share device, dtype and step count (``tensor_steps``: device and
    dtype; the counts stay tensors); returns the path taken, ``"foreach"`` or ``"forloop"``."""
    # tensor hyperparameters stay tensors where the counts do, and for autograd
    on_device = bool(tensor_steps or group.get("differentiable"))
    states = [opt.state[p] for p in ps]
    if group.get("capturable"):
        check_capturable(ps)
    if group.get("differentiable") and any(s["step"].requires_grad for s in states if "step" in s):
        raise RuntimeError("`requires_grad` is not supported for `step` in differentiable mode")
    step = advance(opt, states, prev)
    # complex tensors as their real views (inline: this runs for every bucket of every step)
    as_real = torch.view_as_real
    real = [as_real(p) if p.is_complex() else p for p in ps]
    grads = [as_real(p.grad) if p.grad.is_complex() else p.grad for p in ps]
    bufs = {n: [as_real(s[n]) if s[n].is_complex() else s[n] for s in states] for n in names}
    if group.get("foreach") is False or group.get("differentiable"):
        wise = DeviceTensorwise if on_device else Tensorwise
        for i in range(len(ps)):
            g = wise(grads[i])
            opt._update(
                group,
                step[i] if isinstance(step, list) else step,
                wise(real[i]),
                g.neg() if group["maximize"] else g,
                {n: wise(b[i]) for n, b in bufs.items()},
                states[i : i + 1],
                on_device,
            )
        return "forloop"
    many = DeviceTensorList if on_device else TensorList
    g = many(grads)
    opt._update(
        group,
        torch.stack(step) if isinstance(step, list) else step,
        many(real),
        g.neg() if group["maximize"] else g,
        {n: many(b) for n, b in bufs.items()},
        states,
        on_device,
    )
    return "foreach"


def step_sparse(opt: Any, group: dict[str, Any], names: tuple[str, ...], p: Tensor) -> None:
    """One parameter with a sparse gradient, on the per-tensor path, as torch.optim steps it:
    ``sparse_grads == "rows"`` (Adagrad) runs the rule on the rows the gradient touches only,
    ``"dense"`` (SGD) on the whole parameter, with the gradient densified unless the rule takes
    it as it is (``opt._takes_sparse``: plain SGD adds it)."""
    state = opt._init_state(p, group)
    prev = opt._prev_step(state, names, tensor_steps=False)
    for name in names:
        if name not in state:
            state[name] = opt._new_buffer(name, p, group)
    rows = None
    if opt.sparse_grads == "rows":
        if not is_zero(group["weight_decay"]):
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        rows, values = sparse_rows(p, p.grad)
        target, grad = Tensorwise(p[rows]), Tensorwise(values)
        bufs = {n: Tensorwise(state[n][rows]) for n in names}
    else:
        target = Tensorwise(p)
        grad = Tensorwise(p.grad if opt._takes_sparse(group) else p.grad.to_dense())
        bufs = {n: Tensorwise(state[n]) for n in names}
    step = advance(opt, [state], prev)
    opt._update(group, step, target, grad.neg() if group["maximize"] else grad, bufs, [state])
    if rows is not None:
        p.index_put_(rows, target.tensor)
        for n, b in bufs.items():
            state[n].index_put_(rows, b.tensor)
