"""The adapter between ``torch.optim.Optimizer``'s bookkeeping and optimlab's update rules."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _fused
from ._fused import KERNELS, FlatBucket, Tape, compiler_available, flat_eligible
from ._hyper import (
    check_declaration,
    defaults_from,
    hyperparameter_defaults,
    normalise,
    rule_signature,
)
from ._paths import step_bucket, step_sparse
from ._rules import ArrayLike
from ._state import new_scalar, nonfinite_grads, restore_scalar_dtypes
from ._validate import Check, check_hyperparameters, check_paths

#: the ways a step can run; the one last used is in each param group's ``"impl"``
IMPLS = ("foreach", "forloop", "fused", "fused-torch", "fused-eager")

#: torch's fused kernel for a group, called as ``kernel(params, grads, buffers, steps, step)``
#: with lists of tensors (``buffers`` by name; ``steps`` the 0-d counters, already advanced to
#: ``step``): one flat buffer each, or one view per parameter (:meth:`FlatBucket.kernel_lists`)
TorchKernel = Callable[
    [list[Tensor], list[Tensor], dict[str, list[Tensor]], list[Tensor], int], None
]

#: the dtypes torch's fused kernels run in the parameters' own precision (bfloat16 and float16
#: are computed in float32 there, unlike the rule), hence the ones they stand in for the rule
_TORCH_KERNEL_DTYPES = (torch.float32, torch.float64)


def scalar(value: Any) -> float:
    """A hyperparameter as a Python float (a 0-d tensor ``lr`` is read, never aliased)."""
    return float(value.item()) if isinstance(value, Tensor) else float(value)


class _GroupFlat:
    """A param group's flat buckets, and its parameters sorted by (device, dtype)."""

    __slots__ = ("_ids", "_plan", "buckets", "group")

    def __init__(self, group: dict[str, Any]) -> None:
        self.group = group
        self.buckets: dict[tuple, FlatBucket] = {}
        self._ids: tuple[int, ...] = ()
        self._plan: list[tuple[tuple, list[Tensor], int]] = []

    def plan(self, fresh: bool) -> list[tuple[tuple, list[Tensor], int]]:
        """``[((device, dtype), params, numel)]`` of the parameters a flat buffer can hold;
        recomputed when the group's parameter list changed or ``fresh``."""
        ids = tuple(map(id, self.group["params"]))
        if fresh or ids != self._ids:
            by_key: dict[tuple, list[Tensor]] = defaultdict(list)
            for p in self.group["params"]:
                if flat_eligible(p):
                    by_key[(p.device, p.dtype)].append(p)
            self._plan = [(k, ps, sum(p.numel() for p in ps)) for k, ps in by_key.items()]
            self._ids = ids
        return self._plan


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
    * ``fused=True``: the same rule, compiled into one loop over flat buffers that hold the
      parameters, gradients and state of each (param group, device, dtype); see
      :mod:`optimlab.optim._fused` (C on CPU for float32/float64, Inductor elsewhere).
      Parameters, gradients and state tensors become views into those buffers.
      ``zero_grad(set_to_none=False)`` then keeps the gradients there (one memset, no copy in
      the next step); gradients allocated afresh (``set_to_none=True``) are read where they lie.
      Where torch's own fused CPU kernel has the rule's arithmetic for the group's settings
      (:meth:`_torch_kernel`), the fused path calls it over the same buffers instead on buckets
      under 1M elements, or at any size without a C compiler.
    * neither given (``None``): the same, from ``_fused.AUTO_C_MIN_NUMEL`` elements (16,384) for
      the C-compiled rule and ``_fused.AUTO_FUSED_MIN_NUMEL`` (1M) for Inductor (it costs
      seconds of imports per process); the multi-tensor path otherwise (:meth:`_fused_route`).

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
        self._flat: dict[int, _GroupFlat] = {}

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
        fused: set[int] = set()
        if not (tensor_steps or differentiable) and (
            group.get("fused") or (group.get("fused") is None and group.get("foreach") is None)
        ):
            fused = self._step_fused(group, names, impls)
        buckets: dict[tuple, list[Tensor]] = defaultdict(list)
        sparse: list[Tensor] = []
        for p in group["params"]:
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
    def _fused_route(
        self, group: dict[str, Any], key: tuple, numel: int, kernel: Callable[[], TorchKernel | None]
    ) -> str | None:
        """How a (device, dtype) bucket of ``numel`` elements steps, or None (not fused).

        ``"torch"``: torch's fused kernel; ``"c"``: the rule compiled in C (CPU, float32 and
        float64); ``"rule"``: the rule compiled by Inductor (or its eager graph). Measured on CPU (``benchmarks/``): below about 1M
        elements torch's kernel, where one has the rule's arithmetic, costs less per call than
        recording the rule; from there the C loop is faster. Hence, with ``fused=True`` or
        ``fused=None``: torch's kernel below ``AUTO_FUSED_MIN_NUMEL`` elements where it serves
        (and at any size without the C backend); the C-compiled rule otherwise, from
        ``AUTO_C_MIN_NUMEL`` elements with ``fused=None`` (its build is cached on disk).
        ``fused=None`` leaves a rule without state (plain SGD), which the multi-tensor path runs
        in one operation anyway, on that path below ``AUTO_FUSED_MIN_NUMEL``. Elsewhere ``fused=True`` compiles the rule with Inductor, and
        ``fused=None`` does so from ``AUTO_FUSED_MIN_NUMEL`` (it costs seconds of imports per
        process).
        """
        device, dtype = key
        fused = group.get("fused")
        if fused is None and group.get("foreach") is not None or fused is False:
            return None
        # a rule without state (plain SGD) is one multi-tensor operation already: a fused
        # path only pays on large buckets
        stateful = bool(self._active_buffers(group))
        if not fused and not stateful and numel < _fused.AUTO_FUSED_MIN_NUMEL:
            return None
        c = _fused.c_serves(device, dtype)
        if (
            self._torch_kernel_serves(key)
            and (numel < _fused.AUTO_FUSED_MIN_NUMEL or not c)
            and kernel() is not None
        ):
            return "torch"
        if c and (fused or numel >= _fused.AUTO_C_MIN_NUMEL):
            return "c"
        if fused:
            return "rule"
        if (
            device.type in ("cpu", "cuda")
            and numel >= _fused.AUTO_FUSED_MIN_NUMEL
            and compiler_available(device)
        ):
            return "rule"
        return None

    @staticmethod
    def _torch_kernel_serves(key: tuple) -> bool:
        """Whether torch's fused kernels stand in for the rule on a (device, dtype) bucket."""
        device, dtype = key
        return _fused.TORCH_KERNELS and device.type == "cpu" and dtype in _TORCH_KERNEL_DTYPES

    def _flat_buckets(self, group: dict[str, Any]) -> dict[tuple, FlatBucket]:
        return self._flat_entry(group).buckets

    def _flat_entry(self, group: dict[str, Any]) -> _GroupFlat:
        flat = self.__dict__.setdefault("_flat", {})
        entry = flat.get(id(group))
        if entry is None or entry.group is not group:
            entry = flat[id(group)] = _GroupFlat(group)
        return entry

    def _step_fused(self, group: dict[str, Any], names: tuple[str, ...], impls: set[str]) -> set[int]:
        """Step the group's flat buckets; returns the ids of the parameters it stepped."""
        entry = self._flat_entry(group)
        plan = entry.plan(fresh=False)
        if any(
            key in entry.buckets and not entry.buckets[key].intact(self.state, names)
            for key, _, _ in plan
        ):
            plan = entry.plan(fresh=True)
            entry.buckets.clear()
        done: set[int] = set()
        kernels: list[TorchKernel | None] = []

        def kernel() -> TorchKernel | None:
            if not kernels:
                kernels.append(self._torch_kernel(group))
            return kernels[0]

        for key, ps, numel in plan:
            route = self._fused_route(group, key, numel, kernel)
            if route is None:
                entry.buckets.pop(key, None)
                continue
            bucket = entry.buckets.get(key)
            if bucket is None:
                # the bucket holds the parameters that have a gradient when it is built
                members = [p for p in ps if p.grad is not None and not p.grad.is_sparse]
                if not members:
                    continue
                for p in members:
                    self._init_state(p)
                bucket = entry.buckets[key] = FlatBucket(
                    members, names, self.state, lambda n, p: self._new_buffer(n, p, group)
                )
            step = bucket.uniform_step()
            # torch's kernels and C kernels also take one tensor per parameter: gradients that
            # autograd just allocated are used where they lie instead of being copied
            segmented = route in ("torch", "c")
            lists = (
                bucket.kernel_lists(per_parameter=route == "torch")
                if segmented and step is not None
                else None
            )
            if step is None or (lists is None and (segmented or not bucket.gather_grads())):
                # a missing gradient: this step runs on the views, parameter by parameter state
                bucket.step = None
                continue
            bucket.advance()
            done.update(bucket.ids)
            if route == "torch":
                kernel()(*lists, step + 1)
                impls.add("fused-torch")
                continue
            tape = Tape(2 + len(names))
            params, grads, *bufs = tape.inputs()
            self._update(
                group,
                step + 1,
                params,
                grads.neg() if group["maximize"] else grads,
                dict(zip(names, bufs)),
                bucket.state_dicts,
            )
            if lists is None:
                segments = [[bucket.param, bucket.grad, *bucket.buffers.values()]]
            else:
                views, grad_list, buffer_lists, _ = lists
                segments = list(zip(views, grad_list, *(buffer_lists[n] for n in names)))
            ran = KERNELS.run(tape.structure(), segments, tape.scalars)
            impls.add("fused-eager" if ran == "failed" else "fused")
        return done

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients (see ``torch.optim.Optimizer.zero_grad``).

        With ``set_to_none=False``, gradients held in a fused flat buffer are zeroed with one
        memset and stay there, so the next backward accumulates into the buffer directly.
        """
        if set_to_none:
            super().zero_grad(set_to_none=True)
            return
        zeroed: set[int] = set()
        for entry in self.__dict__.get("_flat", {}).values():
            for bucket in entry.buckets.values():
                bucket.zero_grad()
                zeroed.update(id(p) for p in bucket.params)
        rest: dict[tuple, list[Tensor]] = defaultdict(list)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or id(p) in zeroed:
                    continue
                if p.grad.grad_fn is not None:
                    p.grad.detach_()
                else:
                    p.grad.requires_grad_(False)
                if p.grad.is_sparse:
                    p.grad.zero_()
                else:
                    rest[(p.grad.device, p.grad.dtype)].append(p.grad)
        for grads in rest.values():
            torch._foreach_zero_(grads)

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
        """Load a state (see ``torch.optim.Optimizer.load_state_dict``); fused buckets are
        rebuilt from the loaded tensors at the next step. Scalar state (``step``,
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
        self.__dict__["_flat"] = {}
