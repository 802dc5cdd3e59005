"""torch's own optimizer test data, run against optimlab's classes (issue 15's acceptance).

``torch.testing._internal.common_optimizers.optim_db`` (shipped in the torch wheel) describes
every torch.optim optimizer: the constructor inputs its tests use (``optim_inputs_func``), the
inputs that must fail and how (``optim_error_inputs_func``), the implementations it supports
(foreach, fused, differentiable) and whether it takes ``capturable`` and sparse gradients. For
each optimizer optimlab has, this module takes those inputs as they are:

* every input, in every variant (torch's base with the flags off, each supported flag on, the
  flags left at their defaults, and ``capturable``), in float32 and float64, builds optimlab's
  class and takes 20 steps equal to torch's class within torch's default tolerances, parameters
  and state (keys, dtypes, values), or fails at the first step as torch's does;
* every error input raises (or warns) what torch's does, with torch's message;
* on the non-fused paths a step never writes into the gradients (TestOptimRenewed's
  ``test_grads_are_never_inplaced_into``), and a state_dict moves between torch.optim and
  optimlab and back with the steps continuing equal;
* the sparse settings torch's entries give (``metadata_for_sparse``) step as torch's do.
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from optim_testing import TORCH_COUNTERPARTS
from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db

#: torch.optim's classes and optimlab's counterparts
OURS = {theirs: ours for ours, theirs in TORCH_COUNTERPARTS}
INFOS = [info for info in optim_db if info.optim_cls in OURS]
STEPS = 20
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def test_every_counterpart_has_an_entry():
    assert {info.optim_cls for info in INFOS} == set(OURS)


def _variants(info) -> list[tuple[str, dict]]:
    """torch's scheme (the base input with every supported flag off, then each flag on alone),
    plus the flags left at their defaults and, where the class takes it, ``capturable``."""
    impls = [i for i in info.supported_impls if i != "fused" or "cpu" in info.supports_fused_on]
    out = [("base", dict.fromkeys(impls, False))]
    out += [(flag, {**dict.fromkeys(impls, False), flag: True}) for flag in impls]
    out.append(("defaults", {}))
    if info.has_capturable_arg:
        out.append(("capturable", {"capturable": True}))
    return out


def _cases():
    for info in INFOS:
        for inp in info.optim_inputs_func(device="cpu"):
            for variant, flags in _variants(info):
                kwargs = {**inp.kwargs, **flags}
                for dname, dtype in DTYPES.items():
                    case_id = f"{info.name}-{inp.desc}-{variant}-{dname}".replace(" ", "_")
                    yield pytest.param(info.optim_cls, kwargs, dtype, id=case_id)


def _params(dtype: torch.dtype, requires_grad: bool) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    shapes = [(3, 2), (2,), ()]
    return [
        torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(requires_grad)
        for s in shapes
    ]


def _grads(t: int, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients that depend on the parameters (so that a difference grows) and on the step."""
    gen = torch.Generator().manual_seed(1000 + t)
    return [
        (p.detach().sin() + 0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64)).to(
            p.dtype
        )
        for p in params
    ]


def _fresh(kwargs: dict) -> dict:
    """Each optimizer its own copy: a tensor ``lr`` is scheduled in place by some tests."""
    return copy.deepcopy(kwargs)


def _assert_state_equal(ours, theirs, where: str, **tol) -> None:
    assert ours.keys() == theirs.keys(), f"{where}: state keys {ours.keys()} != {theirs.keys()}"
    for key, value in theirs.items():
        got = ours[key]
        if isinstance(value, torch.Tensor):
            assert got.dtype == value.dtype and got.device == value.device, f"{where}: {key}"
            torch.testing.assert_close(got, value, msg=f"{where}: state {key!r}", **tol)
        else:
            assert got == value, f"{where}: state {key!r}"


@pytest.mark.parametrize("torch_cls, kwargs, dtype", list(_cases()))
def test_optim_input_steps_as_torch(torch_cls, kwargs, dtype):
    # differentiable steps record autograd history: on tensors that require no gradient, as
    # torch's own tests run them, 20 steps do not need to keep a graph
    differentiable = kwargs.get("differentiable", False)
    theirs = _params(dtype, requires_grad=not differentiable)
    ours = [p.detach().clone().requires_grad_(p.requires_grad) for p in theirs]
    ref = torch_cls(theirs, **_fresh(kwargs))
    opt = OURS[torch_cls](ours, **_fresh(kwargs))
    for t in range(STEPS):
        for a, b, g in zip(ours, theirs, _grads(t, theirs)):
            a.grad, b.grad = g.clone(), g
        try:
            ref.step()
        except (AssertionError, RuntimeError) as err:
            # torch fails here (capturable on the CPU): so must we, the same way
            with pytest.raises(type(err), match=re.escape(str(err).split(",")[0])):
                opt.step()
            return
        opt.step()
        for i, (a, b) in enumerate(zip(ours, theirs)):
            torch.testing.assert_close(a, b, msg=f"step {t + 1} param {i}")
    for i, (a, b) in enumerate(zip(ours, theirs)):
        _assert_state_equal(opt.state[a], ref.state[b], f"param {i}")


def _error_cases():
    for info in INFOS:
        for i, err in enumerate(info.optim_error_inputs_func(device="cpu", dtype=torch.float32)):
            case_id = f"{info.name}-{i}-{err.optimizer_error_input.desc}".replace(" ", "_")
            yield pytest.param(info.optim_cls, err, id=case_id)


@pytest.mark.parametrize("torch_cls, error", list(_error_cases()))
def test_optim_error_input_fails_as_torch(torch_cls, error):
    inp = error.optimizer_error_input
    cls = OURS[torch_cls]
    if error.error_on == OptimizerErrorEnum.STEP_ERROR:
        opt = cls(inp.params, **inp.kwargs)
        with pytest.raises(error.error_type, match=error.error_regex):
            opt.step()
    elif issubclass(error.error_type, Warning):
        with pytest.warns(error.error_type, match=error.error_regex):
            cls(inp.params, **inp.kwargs)
    else:
        with pytest.raises(error.error_type, match=error.error_regex):
            cls(inp.params, **inp.kwargs)


# ---- TestOptimRenewed-style checks, driven by the same inputs --------------------------------


def _base_cases(variants=("base", "foreach", "differentiable")):
    for info in INFOS:
        for inp in info.optim_inputs_func(device="cpu"):
            for variant, flags in _variants(info):
                if variant in variants:
                    case_id = f"{info.name}-{inp.desc}-{variant}".replace(" ", "_")
                    yield pytest.param(info.optim_cls, {**inp.kwargs, **flags}, id=case_id)


@pytest.mark.parametrize("torch_cls, kwargs", list(_base_cases()))
def test_grads_are_never_written_into(torch_cls, kwargs):
    """A step reads the gradients and leaves them as they were (the same tensors, unchanged)."""
    params = _params(torch.float64, requires_grad=not kwargs.get("differentiable", False))
    opt = OURS[torch_cls](params, **_fresh(kwargs))
    for t in range(3):
        grads = _grads(t, params)
        for p, g in zip(params, grads):
            p.grad = g.clone()
        before = [p.grad for p in params]
        opt.step()
        for p, g, obj in zip(params, grads, before):
            assert p.grad is obj and torch.equal(p.grad, g)


@pytest.mark.parametrize("torch_cls, kwargs", list(_base_cases(("base", "foreach"))))
def test_state_dict_moves_between_torch_and_optimlab(torch_cls, kwargs):
    """torch's state_dict after 4 steps loads into ours, ours into torch, and every round trip
    gives back the same state_dict; each pair then takes 4 more steps equal to each other."""
    theirs = _params(torch.float32, requires_grad=True)
    ours = [p.detach().clone().requires_grad_(True) for p in theirs]
    ref = torch_cls(theirs, **_fresh(kwargs))
    opt = OURS[torch_cls](ours, **_fresh(kwargs))
    for t in range(4):
        for a, b, g in zip(ours, theirs, _grads(t, theirs)):
            a.grad, b.grad = g.clone(), g
        ref.step()
        opt.step()
    # (torch.optim's load keeps the given tensors: each load gets its own copy)
    ref_sd, our_sd = copy.deepcopy(ref.state_dict()), copy.deepcopy(opt.state_dict())
    # torch -> optimlab -> torch, and optimlab -> torch -> optimlab
    a = [p.detach().clone().requires_grad_(True) for p in theirs]
    into_ours = OURS[torch_cls](a, **_fresh(kwargs))
    into_ours.load_state_dict(ref_sd)
    b = [p.detach().clone().requires_grad_(True) for p in ours]
    into_torch = torch_cls(b, **_fresh(kwargs))
    into_torch.load_state_dict(copy.deepcopy(our_sd))
    _assert_same_state_dict(into_ours.state_dict(), ref_sd, torch_keys_only=True)
    _assert_same_state_dict(into_torch.state_dict(), our_sd)
    again = OURS[torch_cls](
        [p.detach().clone().requires_grad_(True) for p in ours], **_fresh(kwargs)
    )
    again.load_state_dict(our_sd)
    _assert_same_state_dict(again.state_dict(), our_sd)
    for t in range(4, 8):
        grads = _grads(t, theirs)
        for ps, o in ((theirs, ref), (a, into_ours), (b, into_torch), (ours, opt)):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            o.step()
    for x, y in zip(a, theirs):
        torch.testing.assert_close(x, y)
    for x, y in zip(b, ours):
        torch.testing.assert_close(x, y)


def _assert_same_state_dict(got, expected, torch_keys_only: bool = False) -> None:
    """Equal keys, dtypes and values; ``torch_keys_only``: ``got``'s groups may hold
    optimlab's own keys besides torch's."""
    assert got["state"].keys() == expected["state"].keys()
    for index, state in expected["state"].items():
        assert got["state"][index].keys() == state.keys(), index
        for key, value in state.items():
            mine = got["state"][index][key]
            assert mine.dtype == value.dtype and torch.equal(mine, value), (index, key)
    for mine, group in zip(got["param_groups"], expected["param_groups"]):
        if torch_keys_only:
            mine = {k: v for k, v in mine.items() if k in group}
        assert mine.keys() == group.keys()
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(mine[key], value), key
            else:
                assert mine[key] == value, key


# ---- sparse gradients, with torch's sparse settings --------------------------------------------


SPARSE = [info for info in INFOS if info.supports_sparse]


def _sparse_grad(t: int, shape: tuple[int, int]) -> torch.Tensor:
    """An uncoalesced gradient with duplicate row indices (and at t == 2, an empty one)."""
    gen = torch.Generator().manual_seed(500 + t)
    if t == 2:
        empty = torch.zeros(0, shape[1], dtype=torch.float64)
        return torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.long), empty, shape)
    rows = torch.tensor([[0, 3, 0, 1, 3]])
    values = torch.randn(5, shape[1], generator=gen, dtype=torch.float64)
    return torch.sparse_coo_tensor(rows, values, shape)


@pytest.mark.parametrize("info", SPARSE, ids=[i.name for i in SPARSE])
@pytest.mark.parametrize("foreach", [None, False, True], ids=["default", "forloop", "foreach"])
def test_sparse_gradients_step_as_torch_and_as_dense(info, foreach):
    """RELIABILITY.md E3: uncoalesced gradients with duplicate indices, and an empty one, step
    as torch.optim's sparse step and as our own step on the same gradient made dense."""
    kwargs, _ = info.metadata_for_sparse
    kwargs = {**kwargs, "foreach": foreach}
    shape = (5, 2)
    p0 = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sparse, dense, ref = (p0.clone().requires_grad_(True) for _ in range(3))
    opt_sparse = OURS[info.optim_cls]([sparse], **kwargs)
    opt_dense = OURS[info.optim_cls]([dense], **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's sparse invariant-check notice
        opt_ref = info.optim_cls([ref], **kwargs)
        for t in range(6):
            g = _sparse_grad(t, shape)
            sparse.grad, ref.grad, dense.grad = g.clone(), g.clone(), g.to_dense()
            opt_sparse.step()
            opt_dense.step()
            opt_ref.step()
    torch.testing.assert_close(sparse, ref, rtol=5e-6, atol=5e-6)
    torch.testing.assert_close(sparse, dense, rtol=5e-6, atol=5e-6)
    assert sparse.grad.is_sparse, "the caller's sparse gradient was replaced"
