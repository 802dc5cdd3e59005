"""The adapter between ``torch.optim.Optimizer``'s bookkeeping and optimlab's update rules."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._hyper import (
    check_declaration,
    defaults_from,
    hyperparameter_defaults,
    normalise,
    rule_signature,
)
from ._inplace import FusedGroup
from ._paths import step_bucket, step_sparse
from ._rules import ArrayLike
from ._state import new_scalar, nonfinite_grads, restore_scalar_dtypes
from ._validate import Check, check_hyperparameters, check_paths

#: the ways a step can run; the one last used is in each param group's ``"impl"``
IMPLS = ("foreach", "forloop", "fused", "fused-torch", "fused-eager")

#: torch's fused kernel for a group, called as ``kernel(params, grads, buffers, steps, step)``
#: with lists of tensors, one per parameter (the parameters and state themselves; ``buffers`` by
#: name; ``steps`` the 0-d counters, already advanced to ``step``; empty for an optimizer
#: without counters)
TorchKernel = Callable[
    [list[Tensor], list[Tensor], dict[str, list[Tensor]], list[Tensor], int], None
]


def scalar(value: Any) -> float:
    """A hyperparameter as a Python float (a 0-d tensor ``lr`` is read, never aliased)."""
    return float(value.item()) if isinstance(value, Tensor) else float(value)


class RuleOptimizer(Optimizer):
    """A thin ``torch.optim.Optimizer`` shell around one functional update rule.

    A subclass declares its hyperparameters once, in its constructor's signature (torch.optim's,
    see :mod:`._hyper`), names its ``rule`` and the ``buffers`` the rule takes (the per-element
    state tensors, named as in torch.optim), and hands ``locals()`` to this constructor. This
    class keeps the books: param groups, lazy state in torch.optim's format (:mod:`._state`),
    ``maximize``, complex parameters (as real views), ``None`` and sparse gradients, grouping of
    tensors by device, dtype and step count, and the choice of backend:

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

    Inside ``torch.compile`` and for ``capturable`` groups the step reads nothing on the host:
    the step counts stay tensors, and so does every scalar the rule derives from them
    (:mod:`._scalars`); it runs the multi-tensor path (the per-tensor one with
    ``foreach=False``). A ``differentiable`` step runs per tensor with autograd on, keeps tensor
    hyperparameters as tensors (gradients reach them) and, as torch.optim, reads the count on
    the host except in Adam (``differentiable_step_tensor``).

    Each step records the path it took in the group's ``"impl"`` (``"foreach"``, ``"forloop"``,
    ``"fused"``, ``"fused-torch"``, ``"fused-eager"`` where compiling failed, or several joined
    by ``+``). With ``skip_nonfinite=True`` a step whose gradients hold a NaN or an infinity
    changes nothing but the group's ``"skipped_steps"`` count.
    """

    #: the update rule, ``rule(params, grads, *buffers, **keywords)`` (:mod:`._hyper`)
    rule: Callable[..., None] | None = None
    #: names of the per-element state tensors, in the order the rule takes them
    buffers: tuple[str, ...] = ()
    #: the class's own checks, by hyperparameter name (the shared ones are in ``_validate``)
    checks: ClassVar[dict[str, Check]] = {}
    #: rule keywords the class computes in :meth:`_derived` (not group keys)
    derived: tuple[str, ...] = ()
    #: whether the state keeps a ``step`` counter (torch.optim.SGD keeps none)
    counts_steps = True
    #: how sparse gradients are stepped: None (refused), "dense" (the rule on the parameter, the
    #: gradient densified where :meth:`_takes_sparse` says the rule cannot take it as it is) or
    #: "rows" (the rule on the rows the gradient touches)
    sparse_grads: str | None = None
    #: the error for a sparse gradient where ``sparse_grads`` is None (torch.optim's wording)
    sparse_error = "{name} does not support sparse gradients"
    #: whether a differentiable step computes from the step count as a tensor (torch.optim.Adam
    #: does; its other optimizers read the count on the host)
    differentiable_step_tensor = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_declaration(cls, RuleOptimizer)
        keywords = rule_signature(cls.rule)[1] if cls.rule is not None else ()
        # (sorted once here: ``_update`` runs for every tensor on the per-tensor path)
        cls._rule_step = "step" in keywords
        cls._rule_betas = "beta1" in keywords or "beta2" in keywords
        cls._rule_group_keys = tuple(
            k for k in keywords if k not in ("step", "beta1", "beta2") and k not in cls.derived
        )

    def __init__(self, params: Any, hyperparameters: dict[str, Any]) -> None:
        """``hyperparameters``: the subclass constructor's ``locals()`` (see :mod:`._hyper`)."""
        defaults = defaults_from(hyperparameters)
        check_hyperparameters(defaults, self.checks)
        self._check(defaults)
        super().__init__(params, normalise(defaults))

    @classmethod
    def hyperparameter_defaults(cls) -> dict[str, Any]:
        """Keyword -> default of the constructor (besides ``params``), in signature order."""
        return hyperparameter_defaults(cls, RuleOptimizer)

    def _check(self, hyperparameters: dict[str, Any]) -> None:
        """Checks across hyperparameters (each one alone is checked by name before)."""
        check_paths(hyperparameters)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if self.param_groups[-1].get("skip_nonfinite"):
            self.param_groups[-1].setdefault("skipped_steps", 0)

    # ---- to be provided by each optimizer ------------------------------------------------------
    def _new_buffer(self, name: str, p: Tensor, group: dict[str, Any]) -> Tensor:
        """A fresh state tensor ``name`` for ``p`` (zeros unless the optimizer says otherwise)."""
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    def _init_scalars(self, state: dict[str, Any], p: Tensor, group: dict[str, Any]) -> None:
        """Add per-parameter scalar state (beyond ``step``) to a fresh ``state``."""

    def _derived(
        self, group: dict[str, Any], step: Any, states: list[dict[str, Any]], on_device: bool
    ) -> dict[str, Any]:
        """The rule keywords named in ``derived``, for parameters at ``step`` (an int, or a
        tensor: 0-d, or 1-d with one count per parameter); ``on_device``: as for
        :meth:`_update`."""
        return {}

    def _active_buffers(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The buffers the rule uses for this group's settings (all of ``buffers`` by default)."""
        return self.buffers

    def _takes_sparse(self, group: dict[str, Any]) -> bool:
        """Whether the rule, for this group's settings, takes a sparse gradient as it is."""
        return False

    def _torch_kernel(self, group: dict[str, Any]) -> TorchKernel | None:
        """torch's fused kernel with exactly the rule's arithmetic for this group's settings,
        or None (the default: the rule is compiled instead)."""
        return None

    def _update(
        self,
        group: dict[str, Any],
        step: Any,
        params: ArrayLike,
        grads: ArrayLike,
        buffers: dict[str, ArrayLike],
        states: list[dict[str, Any]],
        on_device: bool = False,
    ) -> None:
        """Run the rule once, its keywords read from ``group`` (:mod:`._hyper`).

        ``step`` is the parameters' step number (1 at their first step; for an optimizer
        without a counter, 1 at the first step and 2 after), an int or a tensor (see
        :mod:`._scalars`); ``on_device``: hyperparameters that are tensors stay tensors (a
        step on tensor counts, or a differentiable one).
        """
        kwargs = {name: group[name] for name in self._rule_group_keys}
        if self._rule_betas:
            kwargs["beta1"], kwargs["beta2"] = group["betas"]
        if not on_device:
            for name, value in kwargs.items():
                if isinstance(value, Tensor):
                    kwargs[name] = scalar(value)
        if self._rule_step:
            kwargs["step"] = step
        if self.derived:
            kwargs.update(self._derived(group, step, states, on_device))
        self.rule(params, grads, *(buffers.get(n) for n in self.buffers), **kwargs)

    # ---- the step --------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss; called with gradients enabled.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # as torch.optim: autograd records the step only when differentiable; when compiling, a
        # graph break here lets AOT see the step as an inference graph that updates in place
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            if torch.compiler.is_compiling():
                torch._dynamo.graph_break()
            skip = nonfinite_grads(self.param_groups)
            for group in self.param_groups:
                if skip and group.get("skip_nonfinite"):
                    group["skipped_steps"] = group.get("skipped_steps", 0) + 1
                else:
                    self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        names = self._active_buffers(group)
        differentiable = bool(group.get("differentiable"))
        tensor_steps = bool(
            torch.compiler.is_compiling()
            or group.get("capturable")
            or (differentiable and self.differentiable_step_tensor)
        )
        impls: set[str] = set()
        fused: frozenset[int] = frozenset()
        if not (tensor_steps or differentiable) and (
            group.get("fused") or (group.get("fused") is None and group.get("foreach") is None)
        ):
            fused = self._step_fused(group, names, impls)
        buckets: dict[tuple, list[Tensor]] = defaultdict(list)
        sparse: list[Tensor] = []
        # every parameter stepped by the fused path: nothing left to sort
        rest = group["params"] if len(fused) < len(group["params"]) else ()
        for p in rest:
            if p.grad is None or (fused and id(p) in fused):
                continue
            if p.grad.is_sparse:
                if self.sparse_grads is None:
                    raise RuntimeError(self.sparse_error.format(name=type(self).__name__))
                sparse.append(p)
                continue
            state = self._init_state(p, group)
            key = self._prev_step(state, names, tensor_steps)
            for name in names:
                if name not in state:
                    state[name] = self._new_buffer(name, p, group)
            buckets[(p.device, p.dtype, key)].append(p)
        for p in sparse:
            step_sparse(self, group, names, p)
            impls.add("forloop")
        for (_, _, prev), ps in buckets.items():
            impls.add(step_bucket(self, group, names, ps, prev, tensor_steps))
        if impls:
            group["impl"] = "+".join(sorted(impls))

    def _prev_step(self, state: dict[str, Any], names: tuple[str, ...], tensor_steps: bool) -> Any:
        """The bucket key of a parameter's state: its step count before this step; None where
        the counts stay tensors. Without a counter: 1 once the buffers exist, else 0."""
        if not self.counts_steps:
            return int(bool(names) and all(n in state for n in names))
        return None if tensor_steps else int(state["step"])

    def _init_state(self, p: Tensor, group: dict[str, Any] | None = None) -> dict[str, Any]:
        """``p``'s state, with its scalar state created on first use (buffers come later)."""
        state = self.state[p]
        if self.counts_steps and "step" not in state:
            if group is None:
                group = next(g for g in self.param_groups if any(q is p for q in g["params"]))
            # a state that holds buffers but no counter (loaded from elsewhere) has stepped
            state["step"] = new_scalar(float(bool(state)), p, group)
            self._init_scalars(state, p, group)
        return state

    # ---- the fused path --------------------------------------------------------------------------
    def _step_fused(
        self, group: dict[str, Any], names: tuple[str, ...], impls: set[str]
    ) -> frozenset[int]:
        """Step the group's fused shares in place (:mod:`._inplace`); returns the ids of the
        parameters stepped."""
        runs = self.__dict__.setdefault("_fused_groups", {})
        entry = runs.get(id(group))
        if entry is None or entry.group is not group:
            entry = runs[id(group)] = FusedGroup(group)
        return entry.step(self, names, impls)

    # ---- state dicts -----------------------------------------------------------------------------
    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            if group.get("skip_nonfinite"):
                group.setdefault("skipped_steps", 0)
            for p in group["params"]:
                s = self.state.get(p)
                if s and "step" in s and not isinstance(s["step"], Tensor):
                    # older checkpoints keep the count as a number (RELIABILITY.md C3)
                    s["step"] = new_scalar(float(s["step"]), p, group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state (see ``torch.optim.Optimizer.load_state_dict``). Scalar state (``step``,
        ``mu_product``) keeps the dtype it was saved with, so that a round trip changes
        nothing."""
        # torch.optim keeps the given tensors (``step`` is not even cast), so later steps would
        # write into the caller's dict: load a copy (RELIABILITY.md C1)
        state_dict = copy.deepcopy(state_dict)
        # a torch.optim state_dict lacks optimlab's keys (form, eps_inside_sqrt...): keep ours
        for saved, current in zip(state_dict.get("param_groups", ()), self.param_groups):
            for key, value in current.items():
                saved.setdefault(key, value)
        saved_ids = [i for g in state_dict.get("param_groups", ()) for i in g["params"]]
        super().load_state_dict(state_dict)
        params = [p for g in self.param_groups for p in g["params"]]
        restore_scalar_dtypes(
            self.state, state_dict.get("state", {}), dict(zip(saved_ids, params)), self.buffers
        )
