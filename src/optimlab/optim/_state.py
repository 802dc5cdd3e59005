"""torch.optim's state format, and the gradient checks a step makes before it changes anything.

The per-parameter state is laid out as torch.optim lays it out, so that state_dicts move both
ways between optimlab and torch.optim and survive a round trip unchanged:

* ``step`` is a 0-d float tensor: float32 on the CPU, as torch writes it (float64 where the
  default dtype is float64; on the parameter's device, float32, where the group is
  ``capturable`` or ``fused``). A float32 counter stops at 2**24 (16,777,216 steps): 2**24 + 1
  rounds back to 2**24. Where the host reads the count (every path but the compiled, capturable
  and differentiable ones), a counter that reaches 2**24 is therefore widened to float64, exact
  to 2**53, and the bias corrections are computed from the exact count. A state_dict keeps its
  counters' dtype on load, so a float64 counter stays one, and torch.optim loads it too.
* other scalar state (NAdam's ``mu_product``) has the step's dtype and device, as torch's; it
  keeps its dtype on load (torch.optim casts it to the parameter's dtype, so that its own round
  trip changes it for float64 parameters).
* per-element buffers have the parameter's dtype, device and layout.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from torch import Tensor

#: a float32 counter's last exact integer step (2**24 + 1 is not a float32)
FLOAT32_EXACT_STEPS = 2**24


def scalar_dtype(fused: Any = None) -> torch.dtype:
    """The dtype of ``step`` (torch.optim's rule: float32, or float64 where the default dtype is
    float64, except for fused groups, which keep float32)."""
    if fused:
        return torch.float32
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def scalar_device(p: Tensor, group: dict[str, Any]) -> torch.device:
    """Where ``step`` lives: with the parameter for capturable and fused groups, else the CPU."""
    if group.get("capturable") or group.get("fused"):
        return p.device
    return torch.device("cpu")


def new_scalar(value: float, p: Tensor, group: dict[str, Any]) -> Tensor:
    """A 0-d scalar state tensor (``step``, ``mu_product``) as torch.optim creates it."""
    dtype = scalar_dtype(group.get("fused"))
    return torch.full((), value, dtype=dtype, device=scalar_device(p, group))


def widen_step(state: dict[str, Any], prev: int) -> None:
    """Widen a float32 ``step`` to float64 once it holds the last count float32 represents."""
    step = state["step"]
    if prev >= FLOAT32_EXACT_STEPS and step.dtype != torch.float64:
        state["step"] = step.to(torch.float64)


def check_capturable(params: list[Tensor]) -> None:
    """torch.optim's check: a capturable step (outside ``torch.compile``) needs its parameters
    and steps on a device that can capture it; the CPU cannot."""
    if torch.compiler.is_compiling():
        return
    supported = ["cuda", "xpu", "hpu", torch._C._get_privateuse1_backend_name(), "xla"]
    if any(p.device.type not in supported for p in params):
        raise AssertionError(
            f"If capturable=True, params and state_steps must be on supported devices: {supported}."
        )


def restore_scalar_dtypes(
    state: dict[Tensor, dict[str, Any]],
    saved_state: dict[Any, dict[str, Any]],
    id_map: dict[Any, Tensor],
    buffers: tuple[str, ...],
) -> None:
    """After torch's ``load_state_dict``: give every scalar state tensor the dtype it was saved
    with (torch casts ``step`` to float32 in capturable and fused groups and other scalars to
    the parameter's dtype; both would change the state a round trip must give back)."""
    for key, saved in saved_state.items():
        p = id_map.get(key)
        if p is None or p not in state:
            continue
        loaded = state[p]
        for name, value in saved.items():
            current = loaded.get(name)
            if (
                name not in buffers
                and isinstance(value, Tensor)
                and isinstance(current, Tensor)
                and value.dim() == 0
                and current.dtype != value.dtype
            ):
                loaded[name] = value.to(device=current.device)


def nonfinite_grads(param_groups: list[dict[str, Any]]) -> bool:
    """Whether a gradient of the groups with ``skip_nonfinite`` holds a NaN or an infinity:
    one read of each (the largest magnitude of every tensor, in one multi-tensor op per device
    and dtype) and one read on the host."""
    by_key: dict[tuple, list[Tensor]] = defaultdict(list)
    grads = [
        p.grad
        for group in param_groups
        if group.get("skip_nonfinite")
        for p in group["params"]
        if p.grad is not None
    ]
    for g in grads:
        if g.is_sparse:
            g = g._values()
        if g.is_complex():
            g = torch.view_as_real(g)
        if g.numel():
            by_key[(g.device, g.dtype)].append(g)
    flags = [
        torch.stack(torch._foreach_norm(gs, math.inf)).isfinite().all().cpu()
        for gs in by_key.values()
    ]
    return bool(flags) and not bool(torch.stack(flags).all())


def sparse_rows(p: Tensor, grad: Tensor) -> tuple[tuple[Tensor, ...], Tensor]:
    """The index tensors of the rows a sparse gradient touches, and its values there: the
    gradient coalesced first, so that duplicate indices are summed as a dense gradient sums
    them (the update is not linear in the gradient)."""
    grad = grad.coalesce()
    return tuple(grad._indices()), grad._values()
