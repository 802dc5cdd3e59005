"""Contract tests from RELIABILITY.md (the cheap ones): A2 closed-form first steps, A3 identities
between optimizers, A6 maximize, B3 tensor lr, D1/D2 param groups, E1 missing and zero
gradients, E2 complex parameters, E4 closures, C8 deepcopy/pickle/repr.

"Bitwise" is ``torch.equal`` on CPU: the same arithmetic in the same order.
"""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
from optim_testing import make_grad_fn

from optimlab import optim

NAMES = optim.available()
NAMES_X_CONVENTIONS = [(n, c) for c in optim.conventions() for n in NAMES]


def _param(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype, requires_grad=True)


def _run(opt, params, grads_per_step):
    for grads in grads_per_step:
        for p, g in zip(params, grads):
            p.grad = None if g is None else g.clone()
        opt.step()


# ---- A2: closed-form first steps ------------------------------------------------------------------


def test_sgd_first_step_is_exact():
    # x - lr*g: 1.0 - 0.1*0.5 = 0.95, 2.0 - 0.1*(-1.0) = 2.1
    x = _param([1.0, 2.0])
    opt = optim.create("sgd", [x], lr=0.1)
    x.grad = torch.tensor([0.5, -1.0], dtype=torch.float64)
    opt.step()
    assert torch.equal(
        x.detach(), torch.tensor([1.0 - 0.1 * 0.5, 2.0 + 0.1 * 1.0], dtype=torch.float64)
    )


@pytest.mark.parametrize("convention", ["pytorch", "keras", "optax", "paper"])
def test_adam_first_step_is_lr_times_sign(convention):
    # step 1: m_1 = (1-b1)*g, v_1 = (1-b2)*g^2, so m_hat = g, v_hat = g^2:
    #   eps outside the root (pytorch, optax, paper, eps 1e-8): x - lr*g/(|g| + eps)
    #   eps-hat (keras, eps 1e-7):  x - lr*sqrt(1-b2)/(1-b1) * (1-b1)*g/(sqrt(1-b2)*|g| + eps)
    # both are lr*sign(g) up to eps/|g| (keras golden: lr=0.5, g=[1,6,7,2], x=[1,2,3,4] ->
    # [0.5,1.5,2.5,3.5]); eps-hat's eps weighs 1/sqrt(1-b2) ~ 32 times more.
    x = _param([1.0, 2.0, 3.0, 4.0])
    g = torch.tensor([1.0, 6.0, 7.0, 2.0], dtype=torch.float64)
    opt = optim.create("adam", [x], convention=convention, lr=0.5)
    x.grad = g.clone()
    opt.step()
    x0 = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    if convention == "keras":
        s2 = math.sqrt(1 - 0.999)
        expected = x0 - 0.5 * s2 * g / (s2 * g.abs() + 1e-7)
    else:
        expected = x0 - 0.5 * g / (g.abs() + 1e-8)
    torch.testing.assert_close(x.detach(), expected, rtol=1e-15, atol=0)
    golden = torch.tensor([0.5, 1.5, 2.5, 3.5], dtype=torch.float64)
    torch.testing.assert_close(x.detach(), golden, rtol=0, atol=2e-6)


def test_decoupled_weight_decay_multiplies_by_one_minus_lr_wd():
    # Keras: zero gradient, wd=0.004, lr=1: each step x *= 0.996 -> 2*0.996**3 = 1.976095872
    x = _param([2.0])
    opt = optim.create("adam", [x], convention="keras", lr=1.0, weight_decay=0.004)
    _run(opt, [x], [[torch.zeros(1, dtype=torch.float64)]] * 3)
    assert x.item() == pytest.approx(2 * 0.996**3, rel=1e-15)
    assert x.item() == pytest.approx(1.976095872, rel=1e-9)


def test_momentum_first_two_steps():
    # heavy ball: m_1 = g_1 = 1 -> x = 1 - 0.1*1 = 0.9; m_2 = 0.9*1 + 2 = 2.9 -> x = 0.9 - 0.29
    x = _param([1.0])
    opt = optim.create("momentum", [x], lr=0.1, momentum=0.9)
    _run(
        opt,
        [x],
        [[torch.tensor([1.0], dtype=torch.float64)], [torch.tensor([2.0], dtype=torch.float64)]],
    )
    assert x.item() == pytest.approx(0.9 - 0.1 * 2.9, rel=1e-15)


def test_adagrad_first_step():
    # r = g^2 = 4; x = 1 - 0.1*2/(sqrt(4) + 1e-10)
    x = _param([1.0])
    opt = optim.create("adagrad", [x], lr=0.1)
    x.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    assert x.item() == pytest.approx(1 - 0.1 * 2 / (2 + 1e-10), rel=1e-15)


def test_rmsprop_first_step():
    # v = 0.01*g^2 = 0.09; x = 1 - 0.01*3/(sqrt(0.09) + 1e-8) = 1 - 0.01*3/0.3
    x = _param([1.0])
    opt = optim.create("rmsprop", [x], lr=0.01)
    x.grad = torch.tensor([3.0], dtype=torch.float64)
    opt.step()
    assert x.item() == pytest.approx(1 - 0.01 * 3 / (math.sqrt(0.01 * 9) + 1e-8), rel=1e-14)


def test_adadelta_first_step():
    # E[g^2] = 0.1*4; dx = sqrt(0 + 1e-6)/sqrt(0.4 + 1e-6)*2; x = 1 - 1.0*dx
    x = _param([1.0])
    opt = optim.create("adadelta", [x])
    x.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    assert x.item() == pytest.approx(1 - math.sqrt(1e-6) / math.sqrt(0.4 + 1e-6) * 2, rel=1e-14)


# ---- A3: identities ---------------------------------------------------------------------------------


def _same_run(make_a, make_b, steps=20, exact=True):
    params0 = [torch.randn(5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))]
    grad_fn = make_grad_fn(1.0, seed=8)
    runs = []
    for make in (make_a, make_b):
        ps = [p.clone().requires_grad_(True) for p in params0]
        opt = make(ps)
        for t in range(steps):
            for p, g in zip(ps, grad_fn(t, ps)):
                p.grad = g
            opt.step()
        runs.append(ps[0].detach())
    if exact:
        assert torch.equal(*runs)
    else:
        torch.testing.assert_close(*runs, rtol=1e-14, atol=0)


@pytest.mark.parametrize("convention", optim.conventions())
def test_adamw_without_decay_is_adam(convention):
    _same_run(
        lambda ps: optim.create("adamw", ps, convention=convention, weight_decay=0.0),
        lambda ps: optim.create(
            "adam", ps, convention=convention, weight_decay=0.0, decoupled_weight_decay=True
        ),
    )
    _same_run(
        lambda ps: optim.AdamW(ps, weight_decay=0.0),
        lambda ps: optim.Adam(ps),
    )


def test_rmsprop_with_bias_correction_is_adam_without_momentum():
    """optax test_rms_match_adam: RMSprop(alpha=b2, bias_correction, eps outside) == Adam(b1=0)."""
    _same_run(
        lambda ps: optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8, bias_correction=True),
        lambda ps: optim.Adam(ps, lr=0.01, betas=(0.0, 0.99), eps=1e-8),
        exact=False,
    )


@pytest.mark.parametrize("form", ["heavy_ball", "velocity", "ema"])
def test_sgd_without_momentum_is_plain_gradient_descent(form):
    x = _param([1.0, -2.0, 3.0])
    ref = x.detach().clone()
    opt = optim.create("sgd", [x], lr=0.05, form=form)
    grad_fn = make_grad_fn(1.0)
    for t in range(20):
        (g,) = grad_fn(t, [x])
        x.grad = g
        opt.step()
        # theta - lr*g, in the one rounding torch.optim.SGD uses (p.add_(g, alpha=-lr))
        ref = ref.add(g, alpha=-0.05)
        assert torch.equal(x.detach(), ref)
    assert not opt.state[x]  # no momentum buffer, no counter: as torch.optim.SGD


# ---- A6: maximize -------------------------------------------------------------------------------------


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("name, convention", NAMES_X_CONVENTIONS)
def test_maximize_equals_negated_gradient_bitwise(name, convention, foreach):
    params0 = [torch.randn(s, dtype=torch.float64) for s in [(3,), (2, 2), ()]]
    grad_fn = make_grad_fn(1.0, seed=9)
    a = [p.clone().requires_grad_(True) for p in params0]
    b = [p.clone().requires_grad_(True) for p in params0]
    kw = {"convention": convention, "foreach": foreach, "weight_decay": 0.01}
    opt_a = optim.create(name, a, maximize=True, **kw)
    opt_b = optim.create(name, b, **kw)
    for t in range(5):
        for p, q, g in zip(a, b, grad_fn(t, a)):
            p.grad, q.grad = g.clone(), -g
        opt_a.step()
        opt_b.step()
        for p, q in zip(a, b):
            assert torch.equal(p, q), f"step {t + 1}"


# ---- B3: tensor lr --------------------------------------------------------------------------------------


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("name", NAMES)
def test_tensor_lr_equals_float_lr(name, foreach):
    lr = torch.tensor(0.01, dtype=torch.float64)
    if foreach and optim.entry(name).cls in (optim.Adam, optim.AdamW):
        # torch.optim.Adam's rule, kept for drop-in parity: not without capturable
        with pytest.raises(ValueError, match="lr as a Tensor is not supported"):
            optim.create(name, [torch.zeros(2, requires_grad=True)], lr=lr, foreach=True)
        return
    _same_run(
        lambda ps: optim.create(name, ps, lr=lr, foreach=foreach),
        lambda ps: optim.create(name, ps, lr=0.01, foreach=foreach),
        steps=5,
    )
    assert lr.item() == 0.01, "the caller's lr tensor was changed"


# ---- D1/D2: param groups -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_two_groups_equal_two_optimizers(name):
    grad_fn = make_grad_fn(1.0, seed=10)
    init = [torch.randn(4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)]
    a = [p.clone().requires_grad_(True) for p in init]
    b = [p.clone().requires_grad_(True) for p in init]
    group_kwargs = [{"lr": 0.02, "weight_decay": 0.0}, {"lr": 0.005, "weight_decay": 0.1}]
    together = optim.create(name, [{"params": [p], **kw} for p, kw in zip(a, group_kwargs)])
    apart = [optim.create(name, [p], **kw) for p, kw in zip(b, group_kwargs)]
    for t in range(10):
        for p, q, g in zip(a, b, grad_fn(t, a)):
            p.grad, q.grad = g.clone(), g
        together.step()
        for opt in apart:
            opt.step()
        for p, q in zip(a, b):
            assert torch.equal(p, q), f"step {t + 1}"


@pytest.mark.parametrize("name", NAMES)
def test_group_with_tiny_lr_stays_put(name):
    frozen = torch.ones(3, dtype=torch.float64, requires_grad=True)
    trained = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = optim.create(name, [{"params": [frozen], "lr": 1e-28}, {"params": [trained], "lr": 0.05}])
    for _ in range(5):
        frozen.grad = torch.full((3,), 0.5, dtype=torch.float64)
        trained.grad = torch.full((3,), 0.5, dtype=torch.float64)
        opt.step()
    assert torch.equal(frozen.detach(), torch.ones(3, dtype=torch.float64))
    assert (trained.detach() < 1).all()


# ---- E1: None and zero gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_all_none_grads_is_a_no_op(name):
    p = torch.ones(3, requires_grad=True)
    opt = optim.create(name, [p], weight_decay=0.1)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(3))
    assert len(opt.state) == 0, "state was created for a parameter without gradient"
    q = torch.ones(2, requires_grad=True)
    opt.add_param_group({"params": [q]})
    p.grad = torch.ones(3)
    opt.step()
    assert q not in opt.state and p in opt.state and torch.equal(q.detach(), torch.ones(2))


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("name, convention", NAMES_X_CONVENTIONS)
def test_zero_grads_leave_params_unchanged(name, convention, foreach):
    kw = {"weight_decay": 0.0} if name == "adamw" else {}
    p = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = optim.create(name, [p], convention=convention, foreach=foreach, **kw)
    for _ in range(3):
        p.grad = torch.zeros(3, dtype=torch.float64)
        opt.step()
    assert torch.equal(p.detach(), torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))


# ---- E2: complex parameters ----------------------------------------------------------------------------


COMPLEX_CASES = [pytest.param(n, {}, id=n) for n in NAMES] + [
    # an accumulator that does not start at zero must start so in both parts
    pytest.param("adagrad", {"initial_accumulator_value": 0.1}, id="adagrad-init"),
    pytest.param("rmsprop", {"initial_accumulator_value": 0.5}, id="rmsprop-init"),
]


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("name, kwargs", COMPLEX_CASES)
def test_complex_params_equal_their_real_views(name, kwargs, foreach):
    gen = torch.Generator().manual_seed(15)
    c0 = torch.randn(4, dtype=torch.complex128, generator=gen)
    r0 = torch.randn(3, dtype=torch.float64, generator=gen)
    # one optimizer holding a complex and a real parameter, against one holding both as real
    c, r = c0.clone().requires_grad_(True), r0.clone().requires_grad_(True)
    cr, rr = torch.view_as_real(c0).clone().requires_grad_(True), r0.clone().requires_grad_(True)
    opt_c = optim.create(name, [c, r], foreach=foreach, weight_decay=0.01, **kwargs)
    opt_r = optim.create(name, [cr, rr], foreach=foreach, weight_decay=0.01, **kwargs)
    for t in range(5):
        gc = torch.randn(4, dtype=torch.complex128, generator=gen)
        gr = torch.randn(3, dtype=torch.float64, generator=gen)
        c.grad, r.grad = gc, gr
        cr.grad, rr.grad = torch.view_as_real(gc).clone(), gr.clone()
        opt_c.step()
        opt_r.step()
        assert torch.equal(torch.view_as_real(c.detach()), cr.detach()), f"step {t + 1}"
        assert torch.equal(r.detach(), rr.detach())
    for key, value in opt_c.state[c].items():
        if isinstance(value, torch.Tensor) and value.is_complex():
            assert torch.equal(torch.view_as_real(value), opt_r.state[cr][key]), key


# ---- E4: closures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_step_returns_the_closure_loss(name):
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.create(name, [x])

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() == pytest.approx(5.0)
    assert opt.step() is None


# ---- C8: copies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_and_pickle(name):
    p = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = optim.create(name, [p], convention="keras")
    p.grad = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    opt.step()
    # (plain SGD keeps no state at all, as torch.optim.SGD)
    assert opt.state[p] or name == "sgd", "state empty after a step"
    assert type(opt).__name__ in repr(opt)
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert type(clone) is type(opt)
        # (torch.optim.Optimizer.__setstate__ adds its own ``differentiable`` default)
        assert {k: clone.defaults[k] for k in opt.defaults} == opt.defaults
        q = clone.param_groups[0]["params"][0]
        assert q is not p and torch.equal(q, p)
        for key, value in opt.state[p].items():
            assert torch.equal(clone.state[q][key], value), key
        # and it keeps stepping as the original does
        q.grad = p.grad.clone()
        clone.step()
    opt.step()
    assert torch.equal(clone.param_groups[0]["params"][0], p)


# ---- B3: tensor betas; E4: non-contiguous parameters ---------------------------------------------------


@pytest.mark.parametrize("name", ["adam", "amsgrad", "adamw", "nadam", "adamax"])
def test_tensor_betas_equal_float_betas(name):
    betas = (torch.tensor(0.8, dtype=torch.float64), torch.tensor(0.99, dtype=torch.float64))
    _same_run(
        lambda ps: optim.create(name, ps, betas=betas),
        lambda ps: optim.create(name, ps, betas=(0.8, 0.99)),
        steps=5,
    )


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_params_equal_contiguous_copies(name, foreach):
    gen = torch.Generator().manual_seed(16)
    base = torch.randn(4, 3, dtype=torch.float64, generator=gen)
    strided = base.t().requires_grad_(True)  # a leaf with strides (1, 3)
    dense = base.t().contiguous().requires_grad_(True)
    assert not strided.is_contiguous() and dense.is_contiguous()
    opt_s = optim.create(name, [strided], foreach=foreach, weight_decay=0.01)
    opt_d = optim.create(name, [dense], foreach=foreach, weight_decay=0.01)
    for _ in range(5):
        g = torch.randn(3, 4, dtype=torch.float64, generator=gen)
        strided.grad, dense.grad = g.t().contiguous().t(), g.clone()
        opt_s.step()
        opt_d.step()
        assert torch.equal(strided.detach(), dense.detach())
    for key, value in opt_s.state[strided].items():
        assert torch.equal(value, opt_d.state[dense][key]), key
