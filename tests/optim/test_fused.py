"""The fused path (``fused=True``) against the multi-tensor reference path.

Every registered optimizer under every convention, float32 and float64, several steps, two param
groups (one with a tensor ``lr``), ``maximize``: parameters and the whole state must match the
``foreach`` path. The full table runs the fused graphs uncompiled (``BACKEND = "none"``: the same
tape and graph, without Inductor's compile time) and compiled in C; a second table compiles with
Inductor the operations every rule uses (both lerp branches, maximum, abs, copy, in-place and
out-of-place arithmetic), sharing kernels across cases. Contract tests cover gradients that
autograd writes, ``zero_grad``, ``state_dict``, replaced storage, recompiles, allocations and the
fallback. That every path steps in place is ``test_inplace.py``'s.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch._dynamo.utils import counters

from optimlab import optim
from optimlab.optim import _cc, _fused, _kstore

SHAPES_A = ((5, 7), (13,), (3, 4, 2), (), (0,))
SHAPES_B = ((6,), (2, 3))
TOL = {torch.float32: {"rtol": 1e-5, "atol": 2e-6}, torch.float64: {"rtol": 1e-12, "atol": 1e-13}}


def _params(shapes, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(True)
        for s in shapes
    ]


def _grads(params, step):
    # depend on the parameters, so that a wrong update also changes later gradients
    gen = torch.Generator().manual_seed(1000 + step)
    return [
        (
            p.detach()
            - 0.3
            + 0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
        )
        for p in params
    ]


def _run(
    name,
    convention,
    dtype,
    steps,
    maximize=False,
    none_grad_at=None,
    shapes=(SHAPES_A, SHAPES_B),
    persistent=False,
    **hp,
):
    """Two optimizers, foreach and fused, on equal copies; returns both and their params.

    ``persistent``: gradients are written into the same tensors every step (as autograd does
    after ``zero_grad(set_to_none=False)``) instead of being fresh tensors."""
    runs = []
    for flags in ({"foreach": True}, {"fused": True}):
        a, b = _params(shapes[0], dtype, 0), _params(shapes[1], dtype, 1)
        groups = [
            {"params": a},
            {"params": b, "lr": torch.tensor(3e-3, dtype=torch.float64)},
        ]
        opt = optim.create(name, groups, convention=convention, maximize=maximize, **flags, **hp)
        for t in range(steps):
            for p, g in zip(a + b, _grads(a + b, t)):
                if persistent and p.grad is not None:
                    p.grad.copy_(g)
                else:
                    p.grad = g
            if none_grad_at is not None and t in none_grad_at:
                b[0].grad = None
            opt.step()
        runs.append((opt, a + b))
    return runs


def _assert_same(runs, dtype):
    (ref, ref_params), (fused, fused_params) = runs
    tol = TOL[dtype]
    for p, q in zip(ref_params, fused_params):
        torch.testing.assert_close(q.detach(), p.detach(), **tol)
        assert q.shape == p.shape and q.dtype == p.dtype
        sp, sq = ref.state.get(p, {}), fused.state.get(q, {})
        assert sorted(sp) == sorted(sq)
        for key, value in sp.items():
            other = sq[key]
            if isinstance(value, torch.Tensor):
                assert other.shape == value.shape and other.dtype == value.dtype, key
                torch.testing.assert_close(other, value, **tol, msg=lambda m, k=key: f"{k}: {m}")
            else:
                assert other == value, key


@pytest.fixture
def uncompiled(monkeypatch):
    """The rule's own fused graphs, run uncompiled, everywhere (no torch kernels)."""
    monkeypatch.setattr(_fused, "BACKEND", "none")
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)


@pytest.fixture
def torch_kernels(monkeypatch):
    """torch's fused kernels where they serve, the rule uncompiled elsewhere (no C backend)."""
    monkeypatch.setattr(_fused, "BACKEND", "none")
    monkeypatch.setattr(_fused, "TORCH_KERNELS", True)


needs_cc = pytest.mark.skipif(_cc.compiler() is None, reason="no C compiler")


@pytest.fixture
def c_backend(monkeypatch):
    if _cc.compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(_fused, "BACKEND", "auto")
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)


@pytest.mark.parametrize("backend", ["uncompiled", "c_backend"])
@pytest.mark.parametrize("convention", optim.conventions())
@pytest.mark.parametrize("name", optim.available())
def test_fused_equals_foreach_every_optimizer_and_convention(request, backend, name, convention):
    """The rule's own fused path, uncompiled (the recorded graph) and compiled in C (what
    fused=True runs on CPU), against the multi-tensor path. Fresh gradients every step: the C
    loop runs over one segment per parameter."""
    request.getfixturevalue(backend)
    for dtype in (torch.float32, torch.float64):
        runs = _run(name, convention, dtype, steps=4)
        _assert_same(runs, dtype)
        assert {g["impl"] for g in runs[1][0].param_groups} == {"fused"}
        assert {g["impl"] for g in runs[0][0].param_groups} == {"foreach"}
    if backend == "c_backend":
        assert _fused.KERNELS.c_built(), "no C kernel was built"


@pytest.mark.parametrize(
    "name, hp",
    [
        ("adam", {"weight_decay": 0.1, "amsgrad": True}),
        ("sgd", {"momentum": 0.9, "dampening": 0.1}),
        ("rmsprop", {"centered": True, "momentum": 0.5}),
        ("adamax", {}),
        ("nadam", {"decoupled_weight_decay": True, "weight_decay": 0.1}),
    ],
)
def test_c_compiled_maximize_and_persistent_gradients(c_backend, name, hp):
    # gradients written into the same tensors every step: read where they lie, never written
    for dtype in (torch.float32, torch.float64):
        runs = _run(name, "pytorch", dtype, steps=4, maximize=True, persistent=True, **hp)
        _assert_same(runs, dtype)
        assert {g["impl"] for g in runs[1][0].param_groups} == {"fused"}


def test_c_compiled_nan_and_inf_propagate_like_foreach(c_backend):
    """maximum, sqrt and division meet NaN and inf as torch's kernels do."""
    runs = []
    for flags in ({"foreach": True}, {"fused": True}):
        p = torch.tensor([1.0, -2.0, 3.0, 0.5, 0.0], dtype=torch.float64, requires_grad=True)
        opt = optim.create("amsgrad", [p], **flags)
        for g in ([0.1, float("nan"), 1.0, -1.0, 0.0], [float("inf"), 0.2, -0.3, 0.0, 1e-300]):
            p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
        runs.append((opt, [p]))
    (ref, (a,)), (fused, (b,)) = runs
    torch.testing.assert_close(b, a, equal_nan=True)
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        torch.testing.assert_close(fused.state[b][key], ref.state[a][key], equal_nan=True)


def test_c_kernel_is_cached_on_disk_and_shared(c_backend, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIMLAB_KERNEL_CACHE", str(tmp_path))
    _fused.KERNELS.clear()
    runs = _run("adadelta", "keras", torch.float32, steps=3)
    _assert_same(runs, torch.float32)
    built = sorted(tmp_path.glob("step-*.so"))
    assert built and all((tmp_path / (f.name + ".sha256")).is_file() for f in built)
    leftovers = [f.name for f in tmp_path.iterdir() if f.name.endswith((".tmp", ".c"))]
    assert not leftovers
    stamps = [f.stat().st_mtime_ns for f in built]
    _fused.KERNELS.clear()  # a new process: the kernels come from the disk cache
    _assert_same(_run("adadelta", "keras", torch.float32, steps=3), torch.float32)
    assert sorted(tmp_path.glob("step-*.so")) == built
    assert [f.stat().st_mtime_ns for f in built] == stamps


def test_c_kernels_go_to_a_temporary_folder_when_the_cache_cannot_be_written(
    c_backend, tmp_path, monkeypatch
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("OPTIMLAB_KERNEL_CACHE", str(blocked / "kernels"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(_kstore.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    _fused.KERNELS.clear()
    _assert_same(_run("adamax", "optax", torch.float64, steps=3), torch.float64)
    assert list((tmp_path / "tmp").glob("optimlab-kernels-*/step-*.so"))
    _fused.KERNELS.clear()


def test_c_kernels_are_never_loaded_from_a_folder_others_can_write(c_backend, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("OPTIMLAB_KERNEL_CACHE", str(shared))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(_kstore.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    _fused.KERNELS.clear()
    _assert_same(_run("adamax", "keras", torch.float64, steps=2), torch.float64)
    assert not list(shared.iterdir())
    assert list((tmp_path / "tmp").glob("optimlab-kernels-*/step-*.so"))
    _fused.KERNELS.clear()


def test_c_build_failure_warns_once_and_stays_correct(c_backend, monkeypatch):
    def broken(structure, dtype):
        raise RuntimeError("cc failed: test")

    _fused.KERNELS.clear()
    monkeypatch.setattr(_cc, "build", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = _run("rmsprop", "keras", torch.float64, steps=4)
    _assert_same(runs, torch.float64)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "cannot be compiled" in messages[0]
    assert runs[1][0].param_groups[0]["impl"] == "fused-eager"
    _fused.KERNELS.clear()


def test_default_route_by_size(c_backend, monkeypatch):
    """fused=None on CPU with a C compiler: the C loop from AUTO_C_MIN_NUMEL elements (any rule,
    plain SGD included), torch's kernel below it where one serves, the multi-tensor path
    otherwise (the route itself is tested as a table in test_inplace.py)."""
    monkeypatch.setattr(_fused, "AUTO_C_MIN_NUMEL", 100)
    monkeypatch.setattr(_fused, "AUTO_FUSED_MIN_NUMEL", 1000)
    monkeypatch.setattr(_fused, "TORCH_KERNELS", True)
    cases = [
        ("nadam", 10, "foreach"),
        ("nadam", 200, "fused"),
        ("adam", 10, "fused-torch"),
        ("adam", 2000, "fused"),
        ("sgd", 10, "fused-torch"),
        ("sgd", 200, "fused"),
        ("momentum", 200, "fused"),
    ]
    for name, numel, expected in cases:
        params = [torch.zeros(numel, requires_grad=True)]
        opt = optim.create(name, params)
        params[0].grad = torch.ones_like(params[0])
        opt.step()
        assert opt.param_groups[0]["impl"] == expected, (name, numel)


# ---- torch's own fused kernels, where the rule's arithmetic is theirs --------------------------

#: the (name, convention) cells whose default settings torch's fused CPU kernels compute
TORCH_KERNEL_CELLS = {
    "pytorch": {"sgd", "momentum", "nag", "adagrad", "adam", "amsgrad", "adamw"},
    "keras": {"sgd"},  # Keras's momentum is the velocity form; its Adam family uses eps-hat
    "optax": {"sgd", "momentum", "nag", "adam", "adamw"},  # optax's eps sits inside the root
    "paper": {"sgd", "adagrad", "adam", "amsgrad", "adamw"},  # the seeds' momentum is the EMA
}


@pytest.mark.parametrize("convention", optim.conventions())
def test_torch_kernels_serve_exactly_the_cells_with_their_arithmetic(convention):
    served = set()
    for name in optim.available():
        opt = optim.create(name, [torch.zeros(3, requires_grad=True)], convention=convention)
        if opt._torch_kernel(opt.param_groups[0]) is not None:
            served.add(name)
    assert served == TORCH_KERNEL_CELLS[convention]


TORCH_KERNEL_CASES = [
    (name, conv, {}) for conv, names in TORCH_KERNEL_CELLS.items() for name in sorted(names)
] + [
    ("adam", "pytorch", {"weight_decay": 0.1}),
    ("adam", "pytorch", {"amsgrad": True, "weight_decay": 0.05}),
    ("adamw", "pytorch", {"weight_decay": 0.3, "betas": (0.5, 0.9)}),
    ("sgd", "pytorch", {"momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("nag", "pytorch", {"weight_decay": 0.01}),
    ("sgd", "keras", {"weight_decay": 0.2, "decoupled_weight_decay": False}),
    ("adagrad", "pytorch", {"lr_decay": 0.1, "initial_accumulator_value": 0.3, "weight_decay": 0.1}),
]


@pytest.mark.parametrize(
    "name, convention, hp",
    TORCH_KERNEL_CASES,
    ids=[f"{c[0]}-{c[1]}-{'-'.join(c[2]) or 'defaults'}" for c in TORCH_KERNEL_CASES],
)
@pytest.mark.parametrize("maximize", [False, True], ids=["min", "max"])
@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-grads", "flat-grads"])
def test_torch_kernel_equals_foreach(torch_kernels, name, convention, hp, maximize, persistent):
    # torch's kernel over the parameters, gradients and state themselves, whether the gradient
    # tensors are fresh each step or written into again
    for dtype in (torch.float32, torch.float64):
        runs = _run(name, convention, dtype, steps=4, maximize=maximize, persistent=persistent, **hp)
        _assert_same(runs, dtype)
        assert {g["impl"] for g in runs[1][0].param_groups} == {"fused-torch"}


@pytest.mark.parametrize("persistent", [False, True], ids=["fresh-grads", "flat-grads"])
@pytest.mark.parametrize("name, cls, kw", [
    ("adam", "Adam", {"weight_decay": 0.01}),
    ("adamw", "AdamW", {}),
    ("nag", "SGD", {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    ("adagrad", "Adagrad", {"lr_decay": 0.01}),
])
def test_torch_kernel_is_bit_identical_to_torch_fused(torch_kernels, persistent, name, cls, kw):
    """Called per parameter, whichever way the gradients arrive, so that the rounding never
    depends on the split (one call per parameter, as torch.optim's fused optimizers make it)."""
    # lengths that leave 1-15 elements past a multiple of 16: the kernels' scalar tails
    shapes = ((37, 29), (1001,), (3,), (16, 16), (15,), (47,), (31, 33), (95,), (13, 7))
    ours = _params(shapes, torch.float32, 5)
    theirs = [p.detach().clone().requires_grad_(True) for p in ours]
    opt = optim.create(name, ours, fused=True, **kw)
    ref = getattr(torch.optim, cls)(theirs, fused=True, **kw)
    for t in range(12):
        for params in (ours, theirs):
            for p, g in zip(params, _grads(params, t)):
                if persistent and p.grad is not None:
                    p.grad.copy_(g)
                else:
                    p.grad = g
        opt.step()
        ref.step()
        assert opt.param_groups[0]["impl"] == "fused-torch"
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q), (name, t)


def test_torch_kernel_allocates_nothing_per_step(torch_kernels):
    params = _params(SHAPES_A, torch.float32, 0)
    opt = optim.create("adam", params, fused=True, lr=torch.tensor(0.01))
    for t in range(2):
        for p, g in zip(params, _grads(params, t)):
            p.grad = g
        opt.step()
    for fresh in (False, True):
        if fresh:
            for p in params:
                p.grad = p.grad.clone()
        with torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
        ) as prof:
            for _ in range(3):
                opt.step()
        assert opt.param_groups[0]["impl"] == "fused-torch"
        allocated = sum(max(e.cpu_memory_usage, 0) for e in prof.events())
        assert allocated < 2 * 1024, allocated


def test_torch_kernel_is_not_used_where_the_arithmetic_differs():
    for name, convention, hp in [
        ("adam", "pytorch", {"eps_inside_sqrt": True}),
        ("adam", "pytorch", {"eps_hat": True}),
        ("amsgrad", "optax", {}),  # the maximum of the bias-corrected v
        ("momentum", "pytorch", {"form": "velocity"}),
        ("sgd", "pytorch", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
        ("adagrad", "pytorch", {"eps_inside_sqrt": True}),
        ("nadam", "pytorch", {}),
    ]:
        opt = optim.create(name, [torch.zeros(3, requires_grad=True)], convention=convention, **hp)
        assert opt._torch_kernel(opt.param_groups[0]) is None, (name, convention, hp)


def test_torch_kernel_takes_other_dtypes_and_devices_to_the_rule(torch_kernels):
    params = [torch.randn(5, dtype=torch.bfloat16, requires_grad=True)]
    opt = optim.create("adam", params, fused=True)
    params[0].grad = torch.ones_like(params[0])
    opt.step()
    assert opt.param_groups[0]["impl"] == "fused"  # the compiled rule, not torch's kernel


def test_default_takes_torch_kernel_at_any_size(monkeypatch):
    monkeypatch.setattr(_fused, "AUTO_C_MIN_NUMEL", 10**9)
    tiny = [torch.zeros(3, requires_grad=True)]
    opt = optim.create("adam", tiny)
    tiny[0].grad = torch.ones(3)
    opt.step()
    assert opt.param_groups[0]["impl"] == "fused-torch"
    nadam = optim.create("nadam", [torch.zeros(3, requires_grad=True)])
    nadam.param_groups[0]["params"][0].grad = torch.ones(3)
    nadam.step()
    assert nadam.param_groups[0]["impl"] == "foreach"  # below the compile threshold


@pytest.mark.parametrize(
    "name, hp",
    [
        ("adam", {"weight_decay": 0.1}),
        ("sgd", {"momentum": 0.9, "dampening": 0.1}),
        ("rmsprop", {"centered": True, "momentum": 0.5}),
        ("adamax", {}),
    ],
)
def test_fused_equals_foreach_maximize_and_variants(uncompiled, name, hp):
    for dtype in (torch.float32, torch.float64):
        _assert_same(_run(name, "pytorch", dtype, steps=3, maximize=True, **hp), dtype)


@pytest.mark.parametrize("backend", ["uncompiled", "c_backend"])
def test_missing_gradient_and_mixed_step_counts_stay_equal(request, backend):
    # the group whose parameter skipped steps mixes step counts: one kernel call per count
    request.getfixturevalue(backend)
    for dtype in (torch.float32, torch.float64):
        runs = _run("adam", "pytorch", dtype, steps=5, none_grad_at={1, 2})
        _assert_same(runs, dtype)
        opt = runs[1][0]
        assert [g["impl"] for g in opt.param_groups] == ["fused", "fused"]
        steps = {int(opt.state[p]["step"]) for p in opt.param_groups[1]["params"]}
        assert steps == {3, 5}


# Compiled with Inductor: one case per family of operations, in float32 (float64 for Adam), so
# that Inductor's code generation is checked for every operation the rules use without paying a
# compile per table row. Kernels are shared with the rest of the process through the cache.
F32, BOTH = (torch.float32,), (torch.float32, torch.float64)
COMPILED_CASES = [
    ("adam", "pytorch", {}, BOTH),  # lerp (low branch), addcmul, sqrt, div, addcdiv
    ("amsgrad", "optax", {}, F32),  # maximum of an out-of-place division
    ("adamax", "keras", {}, F32),  # abs, maximum, out-of-place add, decoupled decay
    ("momentum", "paper", {"form": "ema", "momentum": 0.3}, F32),  # lerp, high branch
    ("rmsprop", "pytorch", {"centered": True, "momentum": 0.9}, F32),  # out-of-place addcmul
    ("adadelta", "pytorch", {}, F32),  # tensor-by-tensor mul_ and div_
    ("sgd", "keras", {"momentum": 0.6, "nesterov": True}, F32),  # velocity form, add with alpha
]


@pytest.mark.parametrize(
    "name, convention, hp, dtypes", COMPILED_CASES, ids=[f"{c[0]}-{c[1]}" for c in COMPILED_CASES]
)
def test_inductor_compiled_equals_foreach(monkeypatch, name, convention, hp, dtypes):
    # Inductor builds the kernels on CUDA and for other dtypes; here it is made to on CPU
    monkeypatch.setattr(_fused, "BACKEND", "inductor")
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)
    if not _fused.compiler_available(torch.device("cpu")):
        pytest.skip("no C++ compiler for Inductor")
    for dtype in dtypes:
        runs = _run(name, convention, dtype, steps=4, **hp)
        _assert_same(runs, dtype)
        assert runs[1][0].param_groups[0]["impl"] == "fused"
    assert _fused.KERNELS.compiled_count() > 0


def _mlp(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)).to(
        dtype
    )


def _train(model, opt, steps, set_to_none=True):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(32, 8, generator=gen, dtype=next(model.parameters()).dtype)
    y = torch.randint(0, 3, (32,), generator=gen)
    for _ in range(steps):
        opt.zero_grad(set_to_none=set_to_none)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("set_to_none", [True, False])
@pytest.mark.parametrize("name, impl", [("nadam", "fused"), ("adam", "fused-torch"), ("nag", "fused-torch")])
def test_training_loop_matches_foreach(monkeypatch, set_to_none, name, impl):
    monkeypatch.setattr(_fused, "BACKEND", "none")
    ref, fused = _mlp(torch.float64), _mlp(torch.float64)
    opt_ref = optim.create(name, ref.parameters(), foreach=True)
    opt_fused = optim.create(name, fused.parameters(), fused=True)
    _train(ref, opt_ref, 5, set_to_none)
    _train(fused, opt_fused, 5, set_to_none)
    assert opt_fused.param_groups[0]["impl"] == impl
    for p, q in zip(ref.parameters(), fused.parameters()):
        torch.testing.assert_close(q, p, **TOL[torch.float64])
        torch.testing.assert_close(q.grad, p.grad, **TOL[torch.float64])


def test_state_dict_round_trip_between_paths(uncompiled):
    model = _mlp(torch.float64)
    opt = optim.create("adam", model.parameters(), fused=True, amsgrad=True)
    _train(model, opt, 3)
    saved = opt.state_dict()
    assert saved["param_groups"][0]["impl"] == "fused"
    # the state tensors themselves, with the parameters' shapes, as torch.optim.Adam's
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert [tuple(saved["state"][i]["exp_avg"].shape) for i in range(len(shapes))] == shapes
    twin = _mlp(torch.float64)
    twin.load_state_dict(model.state_dict())
    ref = optim.create("adam", twin.parameters(), foreach=True, amsgrad=True)
    ref.load_state_dict(saved)
    # loading into the fused optimizer itself: the next step lays out the loaded tensors
    opt.load_state_dict(ref.state_dict())
    _train(model, opt, 3)
    _train(twin, ref, 3)
    for p, q in zip(twin.parameters(), model.parameters()):
        torch.testing.assert_close(q, p, **TOL[torch.float64])
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"):
            torch.testing.assert_close(opt.state[q][key], ref.state[p][key], **TOL[torch.float64])


@pytest.mark.parametrize("backend", ["uncompiled", "c_backend"])
def test_replaced_parameter_and_state_storage_is_followed(request, backend):
    """``p.data = ...`` (what Module.to() does) and a state tensor replaced between steps: the
    next step writes where the tensors now live."""
    request.getfixturevalue(backend)
    model = _mlp(torch.float64)
    twin = _mlp(torch.float64)
    opt = optim.create("rmsprop", model.parameters(), fused=True, momentum=0.9)
    ref = optim.create("rmsprop", twin.parameters(), foreach=True, momentum=0.9)
    _train(model, opt, 2)
    _train(twin, ref, 2)
    for p in model.parameters():
        p.data = p.data.clone()
    first = next(model.parameters())
    opt.state[first]["square_avg"] = opt.state[first]["square_avg"].clone()
    opt.state[first]["momentum_buffer"].data = opt.state[first]["momentum_buffer"].clone()
    _train(model, opt, 2)
    _train(twin, ref, 2)
    for p, q in zip(twin.parameters(), model.parameters()):
        torch.testing.assert_close(q, p, **TOL[torch.float64])
        for key in ("square_avg", "momentum_buffer"):
            torch.testing.assert_close(opt.state[q][key], ref.state[p][key], **TOL[torch.float64])
    assert opt.param_groups[0]["impl"] == "fused"


@pytest.mark.parametrize("backend", ["uncompiled", "c_backend"])
def test_module_moved_to_another_dtype_is_followed(request, backend):
    """``Module.double()`` between steps (and the state cast along): the kernels of the old dtype
    are never run over the new storage; the step after it equals the multi-tensor path."""
    request.getfixturevalue(backend)
    runs = []
    for flags in ({"fused": True}, {"foreach": True}):
        model = _mlp(torch.float32)
        opt = optim.create("adam", model.parameters(), **flags)
        _train(model, opt, 2)
        model.double()
        for state in opt.state.values():
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = state[key].double()
        _train(model, opt, 3)
        runs.append((opt, list(model.parameters())))
    assert runs[0][0].param_groups[0]["impl"] == "fused"
    for p, q in zip(runs[1][1], runs[0][1]):
        assert q.dtype == torch.float64
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)


def test_default_compiles_only_for_large_shares(uncompiled, monkeypatch):
    monkeypatch.setattr(_fused, "compiler_available", lambda device: True)
    monkeypatch.setattr(_fused, "AUTO_FUSED_MIN_NUMEL", 100)
    small = [torch.zeros(10, requires_grad=True)]
    large = [torch.zeros(200, requires_grad=True)]
    for params, expected in ((small, "foreach"), (large, "fused")):
        opt = optim.create("adam", params)
        params[0].grad = torch.ones_like(params[0])
        opt.step()
        assert opt.param_groups[0]["impl"] == expected
    for flags, expected in (({"foreach": True}, "foreach"), ({"foreach": False}, "forloop")):
        opt = optim.create("adam", large, **flags)
        opt.step()
        assert opt.param_groups[0]["impl"] == expected
    with pytest.raises(RuntimeError, match="cannot be `True` together"):
        optim.create("adam", large, foreach=True, fused=True)


def test_complex_parameters_use_the_reference_path(uncompiled):
    z = torch.randn(4, dtype=torch.complex128, requires_grad=True)
    x = torch.randn(3, dtype=torch.float64, requires_grad=True)
    opt = optim.create("adam", [z, x], fused=True)
    ref_z, ref_x = z.detach().clone().requires_grad_(True), x.detach().clone().requires_grad_(True)
    ref = optim.create("adam", [ref_z, ref_x], foreach=True)
    for _ in range(3):
        for p, q in ((z, ref_z), (x, ref_x)):
            p.grad = p.detach() * 0.5 + 1
            q.grad = q.detach() * 0.5 + 1
        opt.step()
        ref.step()
    assert opt.param_groups[0]["impl"] == "foreach+fused"
    torch.testing.assert_close(z, ref_z)
    torch.testing.assert_close(x, ref_x)


def test_failed_compile_warns_once_and_stays_correct(monkeypatch):
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler in this test")

    monkeypatch.setattr(_fused, "BACKEND", "broken-for-test")
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: broken)
    _fused.KERNELS.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = _run("adagrad", "keras", torch.float64, steps=4)
    _assert_same(runs, torch.float64)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "cannot be compiled" in messages[0]
    assert runs[1][0].param_groups[0]["impl"] == "fused-eager"


@pytest.mark.parametrize("backend", ["inductor", pytest.param("auto", marks=needs_cc)])
def test_no_recompile_and_no_allocation_with_changing_lr(monkeypatch, backend):
    monkeypatch.setattr(_fused, "BACKEND", backend)
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)
    if not _fused.compiler_available(torch.device("cpu")):
        pytest.skip("no C++ compiler for Inductor")
    params = _params(SHAPES_A, torch.float32, 0)
    opt = optim.create("adam", params, fused=True, lr=torch.tensor(0.01))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))
    for t in range(2):  # step 1 compiles (or loads from the cache), step 2 is its first reuse
        for p, g in zip(params, _grads(params, t)):
            p.grad = g
        opt.step()
        sched.step()
    graphs, traced = counters["stats"]["unique_graphs"], counters["aot_autograd"]["total"]
    compiled = _fused.KERNELS.compiled_count()
    before = [p.detach().clone() for p in params]
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        for t in range(2, 8):
            opt.step()
            sched.step()
    assert counters["stats"]["unique_graphs"] == graphs, "a changing lr or step recompiled"
    assert _fused.KERNELS.compiled_count() == compiled
    assert counters["aot_autograd"]["total"] == traced, "a graph was traced again"
    assert all(not torch.equal(a, p) for a, p in zip(before, params) if p.numel())
    # no per-step allocation proportional to the model: only the 0-d/1-d scalar tensors
    allocated = sum(max(e.cpu_memory_usage, 0) for e in prof.events())
    model_bytes = sum(p.numel() * 4 for p in params)
    assert allocated < 6 * 1024, (allocated, model_bytes)


@pytest.mark.gpu
def test_cuda_compiled_equals_foreach():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    dev = torch.device("cuda")
    for name in ("adam", "nadam", "adamax", "rmsprop"):
        runs = []
        for flags in ({"foreach": True}, {"fused": True}):
            params = [
                p.detach().to(dev).requires_grad_(True) for p in _params(SHAPES_A, torch.float32, 0)
            ]
            opt = optim.create(name, params, **flags)
            for t in range(4):
                for p, g in zip(params, _grads(params, t)):
                    p.grad = g
                opt.step()
            runs.append((opt, params))
        _assert_same(runs, torch.float32)
        assert runs[1][0].param_groups[0]["impl"] == "fused"


def test_compiled_kernel_is_called_without_dynamo_after_compiling(monkeypatch):
    """From the second step on, Inductor's kernel is called directly (no dynamo frame or guard
    evaluation); one kernel serves every parameter length of its size class."""
    monkeypatch.setattr(_fused, "BACKEND", "inductor")
    monkeypatch.setattr(_fused, "TORCH_KERNELS", False)
    if not _fused.compiler_available(torch.device("cpu")):
        pytest.skip("no C++ compiler for Inductor")
    runs_a = _run("adamax", "pytorch", torch.float32, steps=3)
    kernels = [k for k in _fused.KERNELS._kernels.values() if k.direct is not None]
    assert kernels, "no kernel captured Inductor's compiled graph"
    for k in kernels:
        # dynamo's wrapper is no longer reachable; calling it would fail the test
        monkeypatch.setattr(k, "compiled", lambda *a: pytest.fail("went through dynamo"))
    _assert_same(runs_a, torch.float32)
    graphs = counters["stats"]["unique_graphs"]
    # other lengths reuse the same kernels, directly
    runs_b = _run("adamax", "pytorch", torch.float32, steps=5, shapes=(((9, 11), (4,), (130,)), ((70,),)))
    _assert_same(runs_b, torch.float32)
    assert runs_b[1][0].param_groups[0]["impl"] == "fused"
    assert counters["stats"]["unique_graphs"] == graphs, "a new length was compiled again"


@pytest.mark.parametrize("backend", ["torch-kernel", pytest.param("c", marks=needs_cc)])
def test_gradients_laid_out_unlike_their_parameters(monkeypatch, backend):
    """A transposed parameter whose gradient is contiguous: the kernel reads a copy of the
    gradient in the parameter's layout; the gradient itself is never written."""
    monkeypatch.setattr(_fused, "BACKEND", "none" if backend == "torch-kernel" else "auto")
    monkeypatch.setattr(_fused, "TORCH_KERNELS", backend == "torch-kernel")
    runs = []
    for flags in ({"foreach": True}, {"fused": True}):
        p = torch.arange(12.0, dtype=torch.float64).reshape(4, 3).t().requires_grad_(True)
        q = torch.ones(5, dtype=torch.float64, requires_grad=True)
        opt = optim.create("adam", [p, q], **flags)
        for t in range(3):
            p.grad = torch.full((3, 4), 0.1 * (t + 1), dtype=torch.float64) + p.detach()
            q.grad = torch.full((5,), -0.2, dtype=torch.float64)
            assert p.grad.stride() != p.stride()
            grad_before = p.grad.clone()
            opt.step()
            assert torch.equal(p.grad, grad_before)
        runs.append((opt, [p, q]))
    _assert_same(runs, torch.float64)
    assert runs[1][0].param_groups[0]["impl"] == ("fused-torch" if backend != "c" else "fused")
