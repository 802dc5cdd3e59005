"""Stepping a param group on the fused paths, in place: the layout cache and the per-step runner.

A :class:`FusedGroup` sorts a group's parameters by (device, dtype). Each step, for each such
share, :func:`._route.route` picks the path; a fused share is laid out once (:class:`Share`: the
parameters that have a gradient, their state tensors, one :class:`Run` per step count with the
pointer arrays a C kernel takes) and the layout is re-checked every step against the live
tensors, at C speed, before any kernel runs. Nothing is ever moved: kernels get the tensors'
own storage.
"""

from __future__ import annotations

import operator
from itertools import repeat
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.autograd.graph import increment_version

from . import _fused, _route
from ._cc import COUNTER_KINDS
from ._graph import memory_order
from ._state import FLOAT32_EXACT_STEPS, widen_step

_GRAD = operator.attrgetter("grad")
_STEP = operator.itemgetter("step")
_is = operator.is_
_data_ptr = Tensor.data_ptr

def _same_order(a: Tensor, b: Tensor) -> bool:
    """Whether two dense tensors of one shape lay their elements out in the same order."""
    return all(sa == sb for sa, sb, n in zip(a.stride(), b.stride(), a.shape) if n != 1)


def _fits(p: Tensor, state: dict[str, Any], names: tuple[str, ...], counts: bool) -> bool:
    """Whether ``p``'s state can be stepped in place alongside it: every buffer a tensor of its
    shape, dtype, device and memory order, and (``counts``) a tensor step counter."""
    step = state.get("step")
    if counts and (not isinstance(step, Tensor) or step.numel() != 1):
        return False
    for n in names:
        b = state.get(n)
        if not (
            isinstance(b, Tensor)
            and b.layout == torch.strided
            and b.dtype == p.dtype
            and b.device == p.device
            and b.shape == p.shape
            and _same_order(b, p)
        ):
            return False
    return True


class Run:
    """The members of a share that have taken the same number of steps: one kernel call.

    ``ptrs`` holds ``n_inputs`` pointers per segment (the parameters with elements), column 1
    (the gradients) rewritten when the gradient tensors change; ``starts`` the segments' prefix
    sums; ``counters`` the addresses of the step counters, which the C kernel advances itself
    where they are CPU scalars of a type it knows (``counter_kind``).
    """

    __slots__ = (
        "buffers",
        "counter_kind",
        "counters",
        "counters_addr",
        "counts",
        "dicts",
        "exact_until",
        "index",
        "kernel",
        "ncounters",
        "nseg",
        "numel",
        "ops",
        "params",
        "ptrs",
        "ptrs_addr",
        "seg",
        "starts",
        "starts_addr",
        "step",
        "steps",
        "tuned",
        "versioned",
        "views",
    )

    def __init__(
        self, index: list[int], share: Share, names: tuple[str, ...], step: int, counts: bool
    ) -> None:
        self.index = index
        self.params = [share.members[i] for i in index]
        self.dicts = [share.dicts[i] for i in index]
        self.buffers = {n: [d[n] for d in self.dicts] for n in names}
        # the step counters (none where the optimizer keeps none, as torch.optim.SGD)
        self.steps = list(map(_STEP, self.dicts)) if counts else []
        self.step = step  # the count before this step (``RuleOptimizer._prev_step``)
        self.seg = [i for i, p in zip(index, self.params) if p.numel()]
        self.nseg = len(self.seg)
        local = [k for k, p in enumerate(self.params) if p.numel()]
        self.starts = np.zeros(self.nseg + 1, dtype=np.int64)
        np.cumsum([self.params[k].numel() for k in local], out=self.starts[1:])
        self.numel = int(self.starts[-1])
        self.ptrs = np.zeros((self.nseg, 2 + len(names)), dtype=np.int64)
        self.ptrs[:, 0] = [self.params[k].data_ptr() for k in local]
        for j, n in enumerate(names):
            self.ptrs[:, 2 + j] = [self.buffers[n][k].data_ptr() for k in local]
        self.ptrs_addr = self.ptrs.ctypes.data
        self.starts_addr = self.starts.ctypes.data
        kinds = {(s.device.type, s.dtype) for s in self.steps}
        kind = COUNTER_KINDS.get(self.steps[0].dtype) if len(kinds) == 1 else None
        self.counter_kind = kind if kind is not None and self.steps[0].device.type == "cpu" else -1
        # float32 counters are exact up to 2**24: past it the layout widens them (``_state``)
        narrow = any(s.dtype != torch.float64 for s in self.steps)
        self.exact_until = FLOAT32_EXACT_STEPS if narrow else None
        self.counters = np.array([s.data_ptr() for s in self.steps], dtype=np.int64)
        self.counters_addr = self.counters.ctypes.data
        self.ncounters = len(self.steps) if self.counter_kind >= 0 else 0
        # the parameters' version counters move, as with torch's in-place ops, so autograd
        # refuses a backward through values a step overwrote
        self.versioned = self.params
        self.views: list[list[Tensor]] | None = None  # for the graph path, made on first use
        self.counts = counts
        self.tuned: tuple | None = None
        self.ops: list | None = None
        self.kernel: Any = None

    def advanced(self, names: tuple[str, ...]) -> None:
        """Count the step just taken (the counters themselves were advanced with it)."""
        # without counters the count is 1 once the buffers exist (``_prev_step``)
        self.step = self.step + 1 if self.counts else int(bool(names))


class Share:
    """The fused layout of one (device, dtype) share of a group: the parameters that have a
    gradient (``members``), their state dicts and tensors, and their runs."""

    __slots__ = (
        "contiguous", "copies", "dicts", "grad_ptrs", "grads", "ids", "member_index", "members",
        "names", "param_ptrs", "runs", "state", "state_values", "used",
    )

    def __init__(
        self,
        opt: Any,
        members: list[Tensor],
        member_index: list[int] | None,
        names: tuple[str, ...],
        prevs: list[int],
    ) -> None:
        self.members = members
        self.member_index = member_index  # positions in the share's parameters, None: all
        self.ids = frozenset(map(id, members))
        self.names = names
        self.state = opt.state
        self.dicts = [opt.state[p] for p in members]
        # every entry of the optimizer's state, in order: compared by identity each step, it
        # tells that no parameter's state dict was replaced without hashing a tensor
        self.state_values = list(opt.state.values())
        self.param_ptrs = list(map(_data_ptr, members))
        self.contiguous = all(p.is_contiguous() for p in members)
        by_step: dict[int, list[int]] = {}
        for i, prev in enumerate(prevs):
            by_step.setdefault(prev, []).append(i)
        counts = opt.counts_steps
        self.runs = [Run(index, self, names, step, counts) for step, index in by_step.items()]
        self.grads: list[Tensor] | None = None
        self.grad_ptrs: list[int] = []
        self.used: list[Tensor] = []
        self.copies: list[int] = []

    def current(self, state: Any, names: tuple[str, ...]) -> bool:
        """Whether the layout still describes the live tensors (checked every step).

        The kernels write through the pointers of the layout, so the parameters' storage is
        checked, not only their identity: ``p.data = ...`` or ``Module.to()`` keep the parameter
        object and free its old storage. State tensors are checked by identity (a replaced one
        calls for a new layout; the layout holds the old ones, so their memory stays valid).
        Swapping a state tensor's storage in place (``state[p]["exp_avg"].data = ...``) is not
        seen; nothing in torch.optim or optimlab does it.
        """
        if state is not self.state or names != self.names:
            return False
        if list(map(_data_ptr, self.members)) != self.param_ptrs:
            return False
        values = self.state_values
        if len(state) != len(values) or not all(map(_is, state.values(), values)):
            return False  # a parameter's state dict replaced
        try:
            for run in self.runs:
                if run.counts:
                    if not all(map(_is, map(_STEP, run.dicts), run.steps)):
                        return False
                    if run.steps[0].item() != run.step:
                        return False  # stepped (or reset) outside this layout
                    if run.exact_until is not None and run.step >= run.exact_until:
                        return False  # the float32 counters are to be widened
                for n, bufs in run.buffers.items():
                    if not all(map(_is, map(operator.itemgetter(n), run.dicts), bufs)):
                        return False
        except (KeyError, AttributeError, TypeError):
            return False
        return True

    def take_grads(self, grads: list[Tensor], same: bool = False) -> bool:
        """Point the runs at this step's gradients; False if one cannot be read in place
        (sparse), which calls for a new layout. ``same``: known to be last step's tensors."""
        if same or (self.grads is not None and all(map(_is, grads, self.grads))):
            for i in self.copies:  # gradients read through copies: their values changed
                self.used[i].copy_(grads[i])
            if list(map(_data_ptr, grads)) == self.grad_ptrs:
                return True
            # the same gradient objects on other storage (``g.data = ...``)
        if self.contiguous and all(map(Tensor.is_contiguous, grads)):
            used, copies = grads, []
        else:
            used, copies = list(grads), []
            for i, (p, g) in enumerate(zip(self.members, grads)):
                if g.layout != torch.strided:
                    return False
                if not _same_order(g, p):
                    # laid out unlike its parameter: read through a copy in the parameter's
                    # layout (the gradient itself is never written)
                    used[i] = torch.empty_like(p, memory_format=torch.preserve_format).copy_(g)
                    copies.append(i)
        self.grads, self.used, self.copies = grads, used, copies
        self.grad_ptrs = list(map(_data_ptr, grads))
        ptrs = np.fromiter(map(_data_ptr, used), dtype=np.int64, count=len(used))
        for run in self.runs:
            run.ptrs[:, 1] = ptrs[run.seg]
        return True

    def run_grads(self, run: Run) -> list[Tensor]:
        if len(self.runs) == 1:
            return self.used
        return [self.used[i] for i in run.index]


class FusedGroup:
    """A param group's parameters by (device, dtype), and the layouts of its fused shares."""

    __slots__ = ("group", "params", "plan", "shares")

    def __init__(self, group: dict[str, Any]) -> None:
        self.group = group
        self.params: list[Tensor] = []
        self.plan: list[tuple[tuple, list[Tensor], int]] = []
        self.shares: dict[tuple, tuple[tuple | None, Share | None]] = {}

    def _replan(self, params: list[Tensor]) -> None:
        by_key: dict[tuple, list[Tensor]] = {}
        counts: dict[int, int] = {}
        for p in params:
            counts[id(p)] = counts.get(id(p), 0) + 1
        for p in params:
            # a parameter listed twice is stepped twice by torch.optim: not in one kernel call
            if counts[id(p)] == 1 and _fused.fusable(p):
                by_key.setdefault((p.device, p.dtype), []).append(p)
        self.plan = [(k, ps, sum(p.numel() for p in ps)) for k, ps in by_key.items()]
        self.params = list(params)
        self.shares.clear()

    def step(self, opt: Any, names: tuple[str, ...], impls: set[str]) -> set[int]:
        """Step every fused share of the group; returns the ids of the parameters stepped."""
        group = self.group
        params = group["params"]
        if len(params) != len(self.params) or not all(map(_is, params, self.params)):
            self._replan(params)
        done: frozenset[int] = frozenset()
        for key, ps, total in self.plan:
            grads = list(map(_GRAD, ps))
            found = self.shares.get(key)
            last = found[1] if found is not None and found[0] is None else None
            # the gradient tensors of the last step (autograd accumulating into them, or
            # assigned once): none is missing, and their layout was checked then
            same = (
                last is not None
                and last.member_index is None
                and all(map(_is, grads, last.grads))
            )
            mask = None
            numel = total
            if not same and any(map(_is, grads, repeat(None))):
                mask = tuple(g is not None for g in grads)
                numel = sum(p.numel() for p, m in zip(ps, mask) if m)
                if not any(mask):
                    continue
            device, dtype = key
            kernel: list = []

            def torch_kernel(device=device, dtype=dtype, kernel=kernel) -> bool:
                if (
                    _fused.TORCH_KERNELS
                    and device.type == "cpu"
                    and dtype in _fused.TORCH_KERNEL_DTYPES
                ):
                    kernel.append(opt._torch_kernel(group))
                return bool(kernel) and kernel[0] is not None

            route = _route.route(
                _route.Facts(
                    device=device.type,
                    numel=numel,
                    fused=group.get("fused"),
                    foreach=group.get("foreach"),
                    c=_fused.c_serves(device, dtype),
                    torch_kernel=torch_kernel,
                    graph_compiler=_fused.compiler_available(device),
                    auto_c_min=_fused.AUTO_C_MIN_NUMEL,
                    auto_graph_min=_fused.AUTO_FUSED_MIN_NUMEL,
                )
            )
            if route is None:
                continue
            share = self._share(opt, key, ps, grads, mask, names, same)
            if share is None:
                continue
            torch_op = kernel[0] if kernel else None
            for run in share.runs:
                impls.add(_step_run(opt, group, names, share, run, route, torch_op, dtype))
                run.advanced(names)
            done = done | share.ids if done else share.ids
        return done

    def _share(self, opt, key, ps, grads, mask, names, same) -> Share | None:
        # one layout per share: parameters that had no gradient last step did not step, so a
        # layout of another gradient pattern would hold stale step counts
        found = self.shares.get(key)
        share = found[1] if found is not None and found[0] == mask else None
        if share is not None and share.current(opt.state, names):
            member_grads = grads if share.member_index is None else [
                grads[i] for i in share.member_index
            ]
            if share.take_grads(member_grads, same):
                return share
        share = self._layout(opt, key, ps, grads, names)
        self.shares[key] = (mask, share)
        return share

    def _layout(self, opt, key, ps, grads, names) -> Share | None:
        group = self.group
        members, index, prevs = [], [], []
        for i, (p, g) in enumerate(zip(ps, grads)):
            if (p.device, p.dtype) != key or not _fused.fusable(p):
                # moved to another device or dtype since the plan was made (``Module.to()``):
                # the per-tensor paths take it this step, and the next step plans afresh
                self.params = []
                continue
            if g is None or g.layout != torch.strided:
                continue  # no gradient, or a sparse one (the per-tensor paths handle it)
            state = opt._init_state(p, group)
            if opt.counts_steps and not isinstance(state.get("step"), Tensor):
                continue  # a count the per-tensor paths read as it is
            prev = opt._prev_step(state, names, False)  # before the buffers are made
            if opt.counts_steps:
                widen_step(state, prev)
            for n in names:
                if n not in state:
                    state[n] = opt._new_buffer(n, p, group)
            if _fits(p, state, names, opt.counts_steps):
                members.append(p)
                index.append(i)
                prevs.append(prev)
        if not members:
            return None
        share = Share(opt, members, None if len(index) == len(ps) else index, names, prevs)
        if not share.take_grads([grads[i] for i in index]):  # pragma: no cover - checked above
            return None
        return share


def measuring(opt: Any) -> bool:
    """Whether one of ``opt``'s C loops is still measuring how to walk memory (``_tuning``)."""
    for entry in opt.__dict__.get("_fused_groups", {}).values():
        for _, share in entry.shares.values():
            for run in share.runs if share is not None else ():
                tuner = run.tuned[2] if run.tuned is not None else None
                if tuner is not None and tuner.chosen is None:
                    return True
    return False


def _count(run: Run) -> None:
    """Advance the run's step counters with torch (where the C loop does not)."""
    if run.steps:
        torch._foreach_add_(run.steps, 1)


def _step_run(opt, group, names, share: Share, run: Run, route: str, kernel, dtype) -> str:
    """One kernel call over ``run``; returns the ``impl`` it counts as."""
    if route == _route.TORCH:
        _count(run)
        kernel(run.params, share.run_grads(run), run.buffers, run.steps, run.step + 1)
        increment_version(run.versioned)  # not every fused op of torch's counts its writes
        return "fused-torch"
    tape = _fused.record(opt, group, names, run.step + 1, run.dicts)
    if route == _route.C:
        if run.ops is None or run.ops != tape.ops:
            run.kernel = _fused.KERNELS.c_kernel(tape.structure(), dtype)
            run.ops = tape.ops
        if run.kernel is not None:
            if run.ncounters == 0:
                _count(run)
            _fused.call_c(run.kernel, run, tape.scalars)
            increment_version(run.versioned)
            return "fused"
    # the rule's graph: compiled by Inductor, or uncompiled where no C loop could be built
    _count(run)
    scalars = torch.tensor(tape.scalars, dtype=torch.float64)
    device = run.params[0].device
    if device.type != "cpu":
        scalars = scalars.to(device, non_blocking=True)
    if run.views is None:
        # 1-d views of each segment's parameter and state tensors (their own storage)
        run.views = [
            [memory_order(t) for t in (share.members[i], *(share.dicts[i][n] for n in names))]
            for i in run.seg
        ]
    grads = share.used
    segments = [
        [views[0], memory_order(grads[i]), *views[1:]] for i, views in zip(run.seg, run.views)
    ]
    graph = route == _route.GRAPH
    ran = _fused.KERNELS.run_graph(tape.structure(), segments, scalars, compile=graph)
    return "fused" if ran == "compiled" or (ran == "eager" and graph) else "fused-eager"
