"""The adapter between ``torch.optim.Optimizer``'s bookkeeping and optimlab's update rules."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._inplace import FusedGroup
from ._rules import ArrayLike, TensorList, Tensorwise
from ._validate import check_bool

#: the ways a step can run; the one last used is in each param group's ``"impl"``
IMPLS = ("foreach", "forloop", "fused", "fused-torch", "fused-eager")

#: torch's fused kernel for a group, called as ``kernel(params, grads, buffers, steps, step)``
#: with lists of tensors, one per parameter (the parameters and state themselves; ``buffers`` by
#: name; ``steps`` the 0-d counters, already advanced to ``step``)
TorchKernel = Callable[
    [list[Tensor], list[Tensor], dict[str, list[Tensor]], list[Tensor], int], None
]


def scalar(value: Any) -> float:
    """A hyperparameter as a Python float (a 0-d tensor ``lr`` is read, never aliased)."""
    return float(value.item()) if isinstance(value, Tensor) else float(value)


class RuleOptimizer(Optimizer):
    """A thin ``torch.optim.Optimizer`` shell around one functional update rule.

    Subclasses declare ``buffers`` (the per-element state tensors, named as in torch.optim) and
    implement :meth:`_update`, which calls the module's rule function. This class keeps the books:
    param groups, lazy state, ``maximize``, complex parameters (as real views), ``None`` gradients,
    grouping of tensors by device, dtype and step count, and the choice of backend:

    * ``foreach=True``: every rule operation is one ``torch._foreach_*`` call per group;
    * ``foreach=False``: the same rule runs on one tensor at a time;
    * ``fused=True``: the same rule, compiled into one loop per (param group, device, dtype)
      that reads and writes every parameter's, gradient's and state tensor's own storage, in
      place; see :mod:`optimlab.optim._fused` (C on CPU for float32/float64, Inductor
      elsewhere). Where no C loop serves, torch's own fused kernel where it has the rule's
      arithmetic for the group's settings (:meth:`_torch_kernel`).
    * neither given (``None``): the C loop from ``_fused.AUTO_C_MIN_NUMEL`` elements (16,384),
      torch's kernel where it serves, Inductor from ``_fused.AUTO_FUSED_MIN_NUMEL`` (1M) on other
      devices and dtypes, the multi-tensor path otherwise (:func:`optimlab.optim._route.route`).

    Each step records the path it took in the group's ``"impl"`` (``"foreach"``, ``"forloop"``,
    ``"fused"``, ``"fused-torch"``, ``"fused-eager"`` where compiling failed, or several joined
    by ``+``).
    """

    #: names of the per-element state tensors, in the order the rule takes them
    buffers: tuple[str, ...] = ()

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        check_bool("maximize", defaults.get("maximize", False))
        foreach, fused = defaults.get("foreach"), defaults.get("fused")
        if foreach is not None:
            check_bool("foreach", foreach)
        if fused is not None:
            check_bool("fused", fused)
        if foreach and fused:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        super().__init__(params, defaults)
        self._check_params_unique()

    def _check_params_unique(self) -> None:
        for group in self.param_groups:
            if len({id(p) for p in group["params"]}) != len(group["params"]):
                raise ValueError("a parameter group contains the same parameter more than once")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "param_groups"):
            self._check_params_unique()

    # ---- to be provided by each optimizer ------------------------------------------------------
    def _new_buffer(self, name: str, p: Tensor, group: dict[str, Any]) -> Tensor:
        """A fresh state tensor ``name`` for ``p`` (zeros unless the optimizer says otherwise)."""
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    def _init_scalars(self, state: dict[str, Any]) -> None:
        """Add per-parameter scalar state (beyond ``step``) to a fresh ``state``."""

    def _update(
        self,
        group: dict[str, Any],
        step: int,
        params: ArrayLike,
        grads: ArrayLike,
        buffers: dict[str, ArrayLike],
        states: list[dict[str, Any]],
    ) -> None:
        raise NotImplementedError

    def _active_buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The buffers the rule uses for this group's settings (all of ``buffers`` by default)."""
        return self.buffers

    def _torch_kernel(self, group: dict[str, Any]) -> TorchKernel | None:
        """torch's fused kernel with exactly the rule's arithmetic for this group's settings,
        or None (the default: the rule is compiled instead)."""
        return None

    # ---- the step --------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss; called with gradients enabled.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        names = self._active_buffers(group)
        impls: set[str] = set()
        fused: frozenset[int] = frozenset()
        if group.get("fused") or (group.get("fused") is None and group.get("foreach") is None):
            fused = self._step_fused(group, names, impls)
        buckets: dict[tuple, list[Tensor]] = defaultdict(list)
        # every parameter stepped by the fused path: nothing left to sort
        rest = group["params"] if len(fused) < len(group["params"]) else ()
        for p in rest:
            if p.grad is None or id(p) in fused:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            state = self._init_state(p)
            for name in names:
                if name not in state:
                    state[name] = self._new_buffer(name, p, group)
            buckets[(p.device, p.dtype, int(state["step"]))].append(p)

        for (_, _, prev_step), ps in buckets.items():
            states = [self.state[p] for p in ps]
            for s in states:
                s["step"] += 1
            real = [torch.view_as_real(t) if t.is_complex() else t for t in ps]
            grads = [torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad for p in ps]
            bufs = {
                n: [torch.view_as_real(s[n]) if s[n].is_complex() else s[n] for s in states]
                for n in names
            }
            if group.get("foreach") is False:
                impls.add("forloop")
                for i in range(len(ps)):
                    g = Tensorwise(grads[i])
                    self._update(
                        group,
                        prev_step + 1,
                        Tensorwise(real[i]),
                        g.neg() if group["maximize"] else g,
                        {n: Tensorwise(b[i]) for n, b in bufs.items()},
                        states[i : i + 1],
                    )
            else:
                impls.add("foreach")
                g = TensorList(grads)
                self._update(
                    group,
                    prev_step + 1,
                    TensorList(real),
                    g.neg() if group["maximize"] else g,
                    {n: TensorList(b) for n, b in bufs.items()},
                    states,
                )
        if impls:
            group["impl"] = "+".join(sorted(impls))

    def _init_state(self, p: Tensor) -> dict[str, Any]:
        state = self.state[p]
        if "step" not in state:
            # float64 counter: exact far past 2**24 steps, unlike a float32 one. A state
            # loaded from torch.optim.SGD has buffers but no counter: it has stepped before.
            state["step"] = torch.tensor(float(bool(state)), dtype=torch.float64)
            self._init_scalars(state)
        return state

    # ---- the fused path --------------------------------------------------------------------------
    def _step_fused(
        self, group: dict[str, Any], names: tuple[str, ...], impls: set[str]
    ) -> frozenset[int]:
        """Step the group's fused shares in place; returns the ids of the parameters stepped."""
        runs = self.__dict__.setdefault("_fused_groups", {})
        entry = runs.get(id(group))
        if entry is None or entry.group is not group:
            entry = runs[id(group)] = FusedGroup(group)
        return entry.step(self, names, impls)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state (see ``torch.optim.Optimizer.load_state_dict``)."""
        # torch.optim keeps the given tensors (``step`` is not even cast), so later steps would
        # write into the caller's dict: load a copy (RELIABILITY.md C1)
        state_dict = copy.deepcopy(state_dict)
        # a torch.optim state_dict lacks optimlab's keys (form, eps_inside_sqrt...): keep ours
        for saved, current in zip(state_dict.get("param_groups", ()), self.param_groups):
            for key, value in current.items():
                saved.setdefault(key, value)
        super().load_state_dict(state_dict)
