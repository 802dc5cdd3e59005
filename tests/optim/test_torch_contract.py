"""The torch.optim contract (issue 15): signatures, the state format and its round trips, the
step counter past 2**24, differentiable steps, ``skip_nonfinite`` and the declaration of
hyperparameters. torch's own inputs and errors are in ``test_optim_db.py``, compiled steps in
``test_compile.py``.
"""

from __future__ import annotations

import copy
import inspect
import math

import pytest
import torch
from optim_testing import TORCH_COUNTERPARTS, assert_identical, make_grad_fn

from optimlab import optim
from optimlab.optim._base import RuleOptimizer

PAIRS = TORCH_COUNTERPARTS
IDS = [ours.__name__ for ours, _ in PAIRS]
#: the ways a step runs: flags, and the size that takes the fused path's C loop by default
PATHS = {
    "forloop": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
    "default": {},
}


def _params(shapes=((3, 2), (2,), ()), seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(True) for s in shapes]


def _step(opt, params, grads):
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()


# ---- signatures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=IDS)
def test_signature_is_torchs_then_optimlabs_keywords(ours, theirs):
    """torch's parameters in torch's order, kinds and defaults; optimlab's after, keyword-only."""
    mine = list(inspect.signature(ours).parameters.values())
    torchs = list(inspect.signature(theirs).parameters.values())
    assert [(p.name, p.kind) for p in mine[: len(torchs)]] == [(p.name, p.kind) for p in torchs]
    for p, q in zip(mine, torchs):
        assert p.default == q.default, p.name
    assert all(p.kind is p.KEYWORD_ONLY for p in mine[len(torchs) :])
    assert "skip_nonfinite" in [p.name for p in mine]


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=IDS)
def test_every_parameter_positional_as_in_torch(ours, theirs):
    """What torch takes positionally, ours takes positionally (RMSprop's ``maximize`` too)."""
    names = [
        p.name
        for p in inspect.signature(theirs).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD
    ][1:]
    defaults = [inspect.signature(theirs).parameters[n].default for n in names]
    opt = ours(_params(), *defaults)
    for name, value in zip(names, defaults):
        assert opt.defaults[name] == value, name


@pytest.mark.parametrize("cls", [c for c, _ in PAIRS] + [optim.Momentum, optim.NAG])
def test_every_constructor_documents_each_argument(cls):
    """A Google-style Args section naming every parameter of the constructor."""
    doc = inspect.getdoc(cls.__init__) or ""
    assert "\nArgs:\n" in doc, f"{cls.__name__}.__init__ has no Args section"
    args = doc.split("\nArgs:\n", 1)[1]
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        name = "**kwargs" if p.kind is p.VAR_KEYWORD else p.name
        assert f"\n    {name}:" in "\n" + args, f"{cls.__name__}: {name} is not documented"
    for section in ("Update rule", "Matches:", "References:"):
        assert section in (cls.__doc__ or "") or cls in (optim.Momentum, optim.AdamW), section


def test_a_hyperparameter_without_a_check_is_refused_when_the_class_is_defined():
    def mystery_rule(params, grads, *, step, lr, mystery):
        pass

    with pytest.raises(TypeError, match=r"no check for hyperparameter\(s\) \['mystery'\]"):

        class Unchecked(RuleOptimizer):
            rule = staticmethod(mystery_rule)

            def __init__(self, params, lr=1e-3, mystery=1.0):
                super().__init__(params, locals())

    with pytest.raises(TypeError, match=r"nothing supplies the rule's keyword\(s\) \['gamma'\]"):

        class Unsupplied(RuleOptimizer):
            rule = staticmethod(lambda params, grads, *, lr, gamma: None)

            def __init__(self, params, lr=1e-3):
                super().__init__(params, locals())


# ---- the state format and its round trips --------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", optim.available())
def test_state_dict_round_trip_is_identical(name, path):
    """``state_dict()`` -> ``load_state_dict()`` -> ``state_dict()`` gives back the same dict,
    on every path (the fused ones hold their state in flat buffers)."""
    grad_fn = make_grad_fn(1.0, seed=2)
    params = _params()
    opt = optim.create(name, params, **PATHS[path])
    for t in range(3):
        _step(opt, params, grad_fn(t, params))
    saved = copy.deepcopy(opt.state_dict())
    other = optim.create(name, [p.detach().clone().requires_grad_(True) for p in params])
    other.load_state_dict(saved)
    assert_identical(other.state_dict(), saved)
    opt.load_state_dict(saved)
    assert_identical(opt.state_dict(), saved)


def test_adamw_keeps_decoupled_decay_after_loading_an_adam_state():
    """As torch.optim.AdamW: the loaded group says L2 decay, AdamW stays decoupled."""
    grad_fn = make_grad_fn(1.0, seed=4)
    params = _params(dtype=torch.float64)
    adam = optim.Adam(params, weight_decay=0.1)
    for t in range(3):
        _step(adam, params, grad_fn(t, params))
    a = [p.detach().clone().requires_grad_(True) for p in params]
    b = [p.detach().clone().requires_grad_(True) for p in params]
    adamw = optim.AdamW(a, weight_decay=0.1)
    adamw.load_state_dict(adam.state_dict())
    assert adamw.param_groups[0]["decoupled_weight_decay"] is True
    reference = optim.Adam(b, weight_decay=0.1, decoupled_weight_decay=True)
    reference.load_state_dict(adam.state_dict())
    reference.param_groups[0]["decoupled_weight_decay"] = True
    for t in range(3, 6):
        grads = grad_fn(t, a)
        _step(adamw, a, grads)
        _step(reference, b, grads)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    ref = torch.optim.AdamW([p.detach().clone() for p in params], weight_decay=0.1)
    ref.load_state_dict(adam.state_dict())
    assert ref.param_groups[0]["decoupled_weight_decay"] is True  # torch does the same


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ["adam", "adagrad", "nadam"])
def test_step_counter_counts_past_2_pow_24(name, path):
    """RELIABILITY.md C6. torch.optim's float32 ``step`` stops at 2**24; ours is widened to
    float64 there, and the bias corrections (Adagrad's lr decay, NAdam's schedule) use the exact
    count: the run equals one whose counter was float64 from the start."""
    kwargs = {**PATHS[path], **({"lr_decay": 0.5} if name == "adagrad" else {})}
    runs = []
    for dtype in (torch.float32, torch.float64):
        params = _params(dtype=torch.float64)
        opt = optim.create(name, params, **kwargs)
        _step(opt, params, [torch.ones_like(p) for p in params])
        sd = opt.state_dict()
        for s in sd["state"].values():
            s["step"] = torch.tensor(float(2**24), dtype=dtype)
            if "mu_product" in s:
                s["mu_product"] = torch.tensor(1e-30, dtype=dtype)
        opt.load_state_dict(sd)
        for k in (1, 2):
            _step(opt, params, [torch.full_like(p, 0.5) for p in params])
            for p in params:
                assert opt.state[p]["step"].item() == 2**24 + k
                assert opt.state[p]["step"].dtype == torch.float64
        runs.append(params)
    for a, b in zip(*runs):
        assert torch.equal(a, b)


# ---- differentiable steps ------------------------------------------------------------------------

DIFF_CASES = [
    (optim.SGD, {"lr": 0.3, "momentum": 0.9, "weight_decay": 0.1}),
    (optim.Adagrad, {"lr": 0.3, "lr_decay": 0.1}),
    (optim.Adadelta, {"lr": 0.5, "weight_decay": 0.1}),
    (optim.RMSprop, {"lr": 0.1, "momentum": 0.5, "centered": True}),
    (optim.Adam, {"lr": 0.1, "amsgrad": True, "weight_decay": 0.1}),
    (optim.AdamW, {"lr": 0.1}),
    (optim.NAdam, {"lr": 0.1, "weight_decay": 0.1}),
    (optim.Adamax, {"lr": 0.1, "weight_decay": 0.1}),
]


@pytest.mark.parametrize("cls, kwargs", DIFF_CASES, ids=[c.__name__ for c, _ in DIFF_CASES])
def test_gradcheck_through_one_differentiable_step(cls, kwargs):
    """Autograd through one step: d(new parameters, new state)/d(parameters, gradient, state)
    equals finite differences (torch.autograd.gradcheck, float64)."""
    gen = torch.Generator().manual_seed(5)
    probe = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = cls([probe], **kwargs)
    probe.grad = torch.ones(4, dtype=torch.float64)
    opt.step()  # the state's layout after one step (this class, these settings)
    buffers = [k for k, v in opt.state[probe].items() if k in cls.buffers]

    def positive(n):  # second moments and sums stay positive, as in a real run
        return torch.rand(n, generator=gen, dtype=torch.float64) + 0.5

    inputs = [torch.randn(4, generator=gen, dtype=torch.float64) for _ in range(2)]
    inputs += [
        positive(4) if "sq" in k or k in ("sum", "exp_inf") else positive(4) - 0.4 for k in buffers
    ]
    inputs = [x.requires_grad_(True) for x in inputs]

    def one_step(p, grad, *state):
        p = p.clone()
        opt = cls([p], differentiable=True, **kwargs)
        p.grad = grad
        opt.state[p].update({k: v.clone() for k, v in zip(buffers, state)})
        opt.state[p]["step"] = torch.tensor(3.0)
        if cls is optim.NAdam:
            opt.state[p]["mu_product"] = torch.tensor(0.5)
        opt.step()
        return (p, *(opt.state[p][k] for k in buffers))

    assert torch.autograd.gradcheck(one_step, inputs)


def test_gradient_reaches_a_tensor_learning_rate():
    """Hypergradients: d(parameters after a step)/d(lr) for a tensor lr, as torch.optim's."""
    results = []
    for cls in (optim.Adam, torch.optim.Adam):
        lr = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
        p = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True).clone()
        opt = cls([p], lr=lr, differentiable=True)
        p.grad = torch.tensor([0.5, 0.25], dtype=torch.float64)
        opt.step()
        results.append(torch.autograd.grad(p.sum(), lr)[0])
    # step 1 moves each coordinate by lr*g/(|g| + eps): d/dlr = -2, up to the float32 step's
    # bias corrections, which torch's differentiable Adam uses as well
    assert results[0].item() == pytest.approx(-2.0, rel=1e-4)
    torch.testing.assert_close(*results)


def test_foreach_and_differentiable_are_refused_together():
    with pytest.raises(RuntimeError, match="`foreach` does not support `differentiable`"):
        optim.Adam(_params(), foreach=True, differentiable=True)
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        optim.NAdam(_params(), fused=True, differentiable=True)


# ---- skip_nonfinite ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", optim.available())
def test_skip_nonfinite_leaves_everything_untouched(name, path, bad):
    """A NaN (or inf) in one gradient at step 3 leaves parameters and state bit-identical to
    step 2's, counts the skip in ``skipped_steps``, and step 4 goes on as step 3 would have."""
    grad_fn = make_grad_fn(1.0, seed=6)
    params = _params(shapes=((3, 2), (2,)))
    twin = [p.detach().clone().requires_grad_(True) for p in params]
    opt = optim.create(name, params, skip_nonfinite=True, **PATHS[path])
    ref = optim.create(name, twin, **PATHS[path])
    for t in range(2):
        _step(opt, params, grad_fn(t, params))
        _step(ref, twin, grad_fn(t, twin))
    before = copy.deepcopy(opt.state_dict())
    values = [p.detach().clone() for p in params]
    grads = grad_fn(2, params)
    grads[1][0] = bad
    _step(opt, params, grads)
    for p, v in zip(params, values):
        assert torch.equal(p.detach(), v)
    after = opt.state_dict()
    assert after["param_groups"][0].pop("skipped_steps") == 1
    assert before["param_groups"][0].pop("skipped_steps") == 0
    assert_identical(after, before)
    _step(opt, params, grad_fn(2, params))
    _step(ref, twin, grad_fn(2, twin))
    for a, b in zip(params, twin):
        assert torch.equal(a, b)


def test_skip_nonfinite_is_per_group_and_costs_one_check():
    """Only groups that ask for it skip; a sparse gradient's values are checked too."""
    a, b = _params(shapes=((2,), (2,)))
    opt = optim.SGD([{"params": [a], "skip_nonfinite": True}, {"params": [b]}], lr=0.1)
    a.grad = torch.tensor([1.0, math.nan])
    b.grad = torch.tensor([1.0, 1.0])
    a0, b0 = a.detach().clone(), b.detach().clone()
    opt.step()
    assert torch.equal(a.detach(), a0) and not torch.equal(b.detach(), b0)
    assert opt.param_groups[0]["skipped_steps"] == 1 and "skipped_steps" not in opt.param_groups[1]
    e = torch.zeros(4, 2, requires_grad=True)
    sparse = optim.Adagrad([e], skip_nonfinite=True)
    e.grad = torch.sparse_coo_tensor([[1]], [[math.inf, 0.0]], (4, 2))
    sparse.step()
    assert sparse.param_groups[0]["skipped_steps"] == 1 and torch.equal(e, torch.zeros(4, 2))
