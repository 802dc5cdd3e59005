"""Every path steps in place, as torch.optim does; the route table; the C loop's variants.

For every optimizer and every path (``foreach``, ``forloop``, ``fused=True``, the default) at 1k and
1M elements: after 3 steps each parameter's ``data_ptr()``, its gradient object and values, and
its state tensors are unchanged, aliases taken before the steps (``p.detach()``, a module's
``state_dict()``, an optimizer ``state_dict()``) see the update, version counters move (autograd
can tell the parameters were modified) and the gradients' never do (torch's
``test_grads_are_never_inplaced_into``).
"""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch

from optimlab import optim
from optimlab.optim import _cc, _fused, _kstore, _route, _tuning

PATHS = {
    "foreach": {"foreach": True},
    "forloop": {"foreach": False},
    "fused": {"fused": True},
    "default": {},
}
#: (rows, cols): a matrix, its transpose (dense but not contiguous) and a vector
SIZES = {"1k": (20, 24), "1M": (700, 700)}

needs_cc = pytest.mark.skipif(_cc.compiler() is None, reason="no C compiler")


def _params(size: str) -> list[torch.Tensor]:
    rows, cols = SIZES[size]
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(rows, cols, generator=gen).requires_grad_(True),
        torch.randn(cols, rows, generator=gen).t().requires_grad_(True),
        torch.randn(cols, generator=gen).requires_grad_(True),
    ]


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("name", optim.available())
def test_every_path_steps_in_place(name, path, size):
    with warnings.catch_warnings():
        if path == "fused":  # without any compiler, fused=True says once that it runs uncompiled
            warnings.filterwarnings("ignore", "optimlab: fused optimizer kernels", RuntimeWarning)
        _check_in_place(name, path, size)


def _check_in_place(name, path, size):
    params = _params(size)
    opt = optim.create(name, params, **PATHS[path])
    aliases = [p.detach() for p in params]
    ptrs = [p.data_ptr() for p in params]
    state: list[dict[str, torch.Tensor]] = []
    saved = None
    for t in range(3):
        grads = [torch.full_like(p, 0.01 * (t + 1)) + 0.001 * p.detach() for p in params]
        for p, g in zip(params, grads):
            p.grad = g
        values = [g.clone() for g in grads]
        grad_versions = [g._version for g in grads]
        param_versions = [p._version for p in params]
        opt.step()
        for p, g, v, version in zip(params, grads, values, grad_versions):
            assert p.grad is g and g._version == version and torch.equal(g, v), "gradient written"
        assert all(p._version > v for p, v in zip(params, param_versions)), "version not bumped"
        assert [p.data_ptr() for p in params] == ptrs
        if t == 0:
            state = [{k: v for k, v in opt.state[p].items() if torch.is_tensor(v)} for p in params]
            saved = opt.state_dict()
        else:
            for p, before in zip(params, state):
                for key, tensor in before.items():
                    assert opt.state[p][key] is tensor, key
    for p, alias in zip(params, aliases):
        assert torch.equal(alias, p)
    for i, p in enumerate(params):
        for key, tensor in state[i].items():
            assert torch.equal(saved["state"][i][key], opt.state[p][key]), key
    if opt.counts_steps:  # torch.optim.SGD keeps no counter, and neither does ours
        assert all(int(opt.state[p]["step"]) == 3 for p in params)


@pytest.mark.parametrize("flags", [{}, {"fused": True}], ids=["default", "fused"])
def test_module_state_dict_taken_before_the_step_sees_the_update(flags):
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 3)
    sd = m.state_dict()
    opt = optim.Adam(m.parameters(), **flags)
    m(torch.randn(2, 4)).sum().backward()
    before = sd["weight"].clone()
    opt.step()
    assert torch.equal(sd["weight"], m.weight) and not torch.equal(before, m.weight)


def test_autograd_sees_parameters_modified_by_a_step():
    # a step between forward and backward: autograd must refuse, as with torch.optim
    w = torch.randn(200, 100, requires_grad=True)
    opt = optim.Adam([w], fused=True)
    w.grad = torch.ones_like(w)
    loss = (w * w).sum()
    opt.step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("name", ["adam", "nadam", "momentum", "adagrad"])
def test_resume_on_the_in_place_paths_is_bitwise(name):
    """Saved after 4 steps and loaded into a new optimizer (with every kernel and tuning choice
    forgotten, as in a new process), 4 more steps equal an uninterrupted run bit for bit."""
    sizes = ((300, 100), (100,), (40000,), (7,))  # above AUTO_C_MIN_NUMEL: the C loop if any

    def grads(params, t):
        gen = torch.Generator().manual_seed(t)
        return [torch.randn(p.shape, generator=gen) * 0.1 + 0.01 * p.detach() for p in params]

    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(s, generator=gen) for s in sizes]
    ref = [p.clone().requires_grad_(True) for p in start]
    ref_opt = optim.create(name, ref)
    for t in range(8):
        for p, g in zip(ref, grads(ref, t)):
            p.grad = g
        ref_opt.step()
    a = [p.clone().requires_grad_(True) for p in start]
    opt = optim.create(name, a)
    for t in range(4):
        for p, g in zip(a, grads(a, t)):
            p.grad = g
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    _fused.KERNELS.clear()
    _tuning.forget()
    b = [p.detach().clone().requires_grad_(True) for p in a]
    resumed = optim.create(name, b)
    resumed.load_state_dict(saved)
    for t in range(4, 8):
        for p, g in zip(b, grads(b, t)):
            p.grad = g
        resumed.step()
    assert resumed.param_groups[0]["impl"] == ref_opt.param_groups[0]["impl"]
    for p, q in zip(ref, b):
        assert torch.equal(p, q)


def test_float32_counters_are_widened_past_2_pow_24_on_the_fused_path():
    """The fused path advances the state's own counters; a float32 one is widened to float64
    before it would stop at 2**24, as on the other paths (``_state``)."""
    runs = []
    for flags in ({}, {"foreach": True}):
        p = torch.linspace(-1, 1, 20_000).requires_grad_(True)
        opt = optim.create("adam", [p], **flags)
        p.grad = torch.cos(p.detach())
        opt.step()
        opt.state[p]["step"].fill_(2**24 - 1)
        for _ in range(3):
            opt.step()
        runs.append((opt, p))
    (fused, p), (_, q) = runs
    assert fused.param_groups[0]["impl"].startswith("fused")  # the C loop, or torch's kernel without a compiler
    step = fused.state[p]["step"]
    assert step.dtype == torch.float64 and step.item() == 2**24 + 2
    torch.testing.assert_close(p, q)


# ---- the route -----------------------------------------------------------------------------------

F = _route.Facts
#: (facts, path): every way the flags, sizes and compilers combine
ROUTES = [
    (F("cpu", 10**7, False, None, True, True, True), None),
    (F("cpu", 10**7, None, True, True, True, True), None),
    (F("cpu", 10**7, None, False, True, True, True), None),
    (F("cpu", 10, True, None, True, True, True), "c"),
    (F("cpu", 10, True, None, False, True, True), "torch"),
    (F("cpu", 10, True, None, False, False, True), "graph"),
    (F("cpu", 10, True, None, False, False, False), "graph"),  # warns once, runs uncompiled
    (F("cuda", 10, True, None, False, False, True), "graph"),
    (F("cpu", 16_384, None, None, True, True, True), "c"),
    (F("cpu", 16_383, None, None, True, True, True), "torch"),
    (F("cpu", 16_383, None, None, True, False, True), None),
    (F("cpu", 10**7, None, None, False, True, True), "torch"),
    (F("cpu", 10**7, None, None, False, False, True), "graph"),
    (F("cpu", 999_999, None, None, False, False, True), None),
    (F("cpu", 10**7, None, None, False, False, False), None),  # no compiler: never warns
    (F("cuda", 10**6, None, None, False, False, True), "graph"),
    (F("cuda", 10**6, None, None, False, False, False), None),
    (F("cpu", 500, None, None, True, True, True, auto_c_min=100), "c"),
]


@pytest.mark.parametrize("facts, expected", ROUTES, ids=[str(i) for i in range(len(ROUTES))])
def test_route_table(facts, expected):
    assert _route.route(facts) == expected


# ---- the C loop's variants -----------------------------------------------------------------------


def _tape(name: str, n_params: int = 1):
    """The structure and scalars of one step of ``name`` (its rule, recorded)."""
    params = [torch.zeros(3, requires_grad=True) for _ in range(n_params)]
    opt = optim.create(name, params)
    group = opt.param_groups[0]
    names = opt._active_buffers(group)
    for p in params:
        opt._init_state(p)
    tape = _fused.record(opt, group, names, 5, [opt.state[p] for p in params])
    return tape.structure(), tape.scalars, len(names)


class _Launch:
    """The pointer arrays of a kernel call over ``segments`` (lists of tensors per segment)."""

    def __init__(self, segments, steps):
        import numpy as np

        self.tuned = None
        self.nseg = len(segments)
        self.ptrs = np.array([[t.data_ptr() for t in seg] for seg in segments], dtype=np.int64)
        self.starts = np.cumsum([0] + [seg[0].numel() for seg in segments]).astype(np.int64)
        self.numel = int(self.starts[-1])
        self.counters = np.array([s.data_ptr() for s in steps], dtype=np.int64)
        self.ptrs_addr, self.starts_addr = self.ptrs.ctypes.data, self.starts.ctypes.data
        self.counters_addr = self.counters.ctypes.data
        self.ncounters, self.counter_kind = len(steps), 0


@needs_cc
@pytest.mark.parametrize(
    "name, dtype", [("nadam", torch.float32), ("adamax", torch.float64)], ids=["nadam", "adamax"]
)
def test_every_variant_and_thread_count_rounds_identically(name, dtype):
    """Split-invariance: whatever the threads, split mode, streams and block, every element is
    computed by the same expressions, so every variant gives the same bits (and the step
    counters advance once per call)."""
    structure, scalars, k = _tape(name)
    kernel = _cc.build(structure, dtype)
    # a segment large enough that each of 2 threads walks interleaved streams, odd lengths, an
    # empty one, and ones shorter than a vector
    lengths = [1, 15, 17, 280_001, 64, 3, 0, 70_000]
    gen = torch.Generator().manual_seed(0)
    start = [
        [torch.rand(n, generator=gen, dtype=torch.float64).to(dtype) + 0.1 for _ in range(2 + k)]
        for n in lengths
    ]
    results = []
    for threads in (1, 2, 3):
        for variant in _tuning.CANDIDATES:
            segments = [[t.clone() for t in seg] for seg in start]
            steps = [torch.zeros((), dtype=torch.float64) for _ in segments]
            _fused.call_c(kernel, _Launch(segments, steps), scalars, variant, threads)
            results.append((threads, variant, segments, steps))
    _, _, first, _ = results[0]
    for threads, variant, segments, steps in results:
        assert all(float(s) == 1.0 for s in steps)
        for a, b in zip(first, segments):
            for x, y in zip(a, b):
                assert torch.equal(x, y), (threads, variant)
    assert not torch.equal(first[3][0], start[3][0])  # the parameters did move


def test_tuner_measures_each_candidate_then_keeps_the_fastest(monkeypatch, tmp_path):
    monkeypatch.setenv("OPTIMLAB_KERNEL_CACHE", str(tmp_path / "kernels"))
    _tuning.forget()
    key = _tuning.layout_class("k" * 32, 2, 10**7, 196)
    tuner = _tuning.tuner(key)
    assert tuner.next() is None  # the first call is not timed
    fastest = _tuning.CANDIDATES[3]
    for _ in range(_tuning.ROUNDS * len(_tuning.CANDIDATES)):
        variant = tuner.next()
        tuner.report(variant, 0.001 if variant == fastest else 0.002)
    assert tuner.chosen == fastest and tuner.next() is None
    _tuning.forget()  # a new process reads the choice from the store
    assert _tuning.tuner(key).chosen == fastest
    record = _kstore.folders()[0].read_json(_tuning.RECORD)
    assert record["variants"][key]["variant"] == list(fastest)
    _tuning.forget()


def test_tuner_keeps_the_default_unless_clearly_beaten_and_records_nothing_in_noise(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("OPTIMLAB_KERNEL_CACHE", str(tmp_path / "kernels"))
    _tuning.forget()
    close = _tuning.tuner(_tuning.layout_class("a" * 32, 2, 10**7, 196))
    close.next()
    for _ in range(_tuning.ROUNDS * len(_tuning.CANDIDATES)):
        variant = close.next()
        close.report(variant, 0.00100 if variant == _tuning.DEFAULT else 0.00098)  # 2% better
    assert close.chosen == _tuning.DEFAULT
    noisy = _tuning.tuner(_tuning.layout_class("b" * 32, 2, 10**7, 196))
    noisy.next()
    calls = 0
    while noisy.chosen is None:
        variant = noisy.next()
        calls += 1
        slow = calls // len(_tuning.CANDIDATES) % 2  # the default at 1 ms, then 2 ms, ...
        fast = variant == _tuning.CANDIDATES[2]
        noisy.report(variant, (0.0005 if fast else 0.001) * (1 + slow))
    assert calls == _tuning.MAX_ROUNDS * len(_tuning.CANDIDATES)
    assert noisy.chosen == _tuning.CANDIDATES[2]  # used in this process, but not recorded
    record = _kstore.folders()[0].read_json(_tuning.RECORD)
    assert noisy.key not in record.get("variants", {})
    _tuning.forget()


@pytest.mark.skipif(os.environ.get("OPTIMLAB_TEST_NO_CC") != "1", reason="run by test_no_compiler")
def test_no_compiler_is_found():
    assert _cc.compiler() is None
    assert not _fused.compiler_available(torch.device("cpu"))
