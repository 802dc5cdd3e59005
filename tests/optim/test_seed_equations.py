"""The seeds' and papers' equations, each written out again in NumPy, against our optimizers.

Every reference below is a literal transcription of the formula it names (symbols as in the
source, comments give the source), independent of optimlab's code: plain float64 NumPy, one
line per equation. Ours is built from the registry with the ``paper`` convention (or the
keyword that selects the seed's form) and stepped on the same gradients. Parameters are compared
after every step to 1e-10 relative (only the order of roundings differs).

Sources: seeds 000 (velocity momentum, NAG, AdaGrad, RMSProp, TF1 RMSPropOptimizer, Adam),
001 (SGDM as an EMA), 003 (Adam with eps inside the root); Zeiler (2012) Alg. 1; Kingma & Ba
(2015) Alg. 1 and 2; Dozat (2016) Alg. 2; Reddi et al. (2018); Loshchilov & Hutter (2019) Alg. 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from optim_testing import assert_close_scaled

from optimlab import optim

STEPS = 40
RTOL = 1e-10
SHAPE = (6,)


def grad(theta: np.ndarray, t: int) -> np.ndarray:
    """A deterministic, parameter-dependent gradient: an ill-conditioned quadratic plus a
    step-dependent wobble (so that running maxima and averages see rising and falling values)."""
    c = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 0.1])
    return c * (theta - 0.5) + 0.3 * np.sin(1.7 * t + np.arange(theta.size))


THETA0 = np.array([1.0, -0.5, 2.0, 0.3, -1.2, 0.8])


# ---- references, one per source ----------------------------------------------------------------


def ref_sgd(lr):
    """Seed 000/002/004: theta <- theta - eta*grad J(theta)."""
    theta = THETA0.copy()
    for t in range(STEPS):
        theta = theta - lr * grad(theta, t)
        yield theta


def ref_momentum_velocity(lr, gamma):
    """Seed 000 (tf.train.MomentumOptimizer): m <- gamma*m + eta*g; theta <- theta - m."""
    theta, m = THETA0.copy(), np.zeros(SHAPE)
    for t in range(STEPS):
        m = gamma * m + lr * grad(theta, t)
        theta = theta - m
        yield theta


def ref_sgdm_ema(lr, beta):
    """Seed 001 (SGDM): m <- beta*m + (1-beta)*g; theta <- theta - lr*m."""
    theta, m = THETA0.copy(), np.zeros(SHAPE)
    for t in range(STEPS):
        m = beta * m + (1 - beta) * grad(theta, t)
        theta = theta - lr * m
        yield theta


def ref_adagrad(eps_global, delta):
    """Seed 000 (Goodfellow Alg. 8.4): r <- r + g*g; dtheta = -eps/(delta + sqrt(r)) * g."""
    theta, r = THETA0.copy(), np.zeros(SHAPE)
    for t in range(STEPS):
        g = grad(theta, t)
        r = r + g * g
        theta = theta + (-eps_global / (delta + np.sqrt(r)) * g)
        yield theta


def ref_rmsprop(eps_global, rho, delta):
    """Seed 000: r <- rho*r + (1-rho)*g*g; dtheta = -eps/(delta + sqrt(r)) * g.

    (The seed's line reads ``r <- rho + (1-rho) g*g``; the r in ``rho*r`` was lost in typesetting,
    as its own text, "the accumulated squared gradient decays each round", says.)
    """
    theta, r = THETA0.copy(), np.zeros(SHAPE)
    for t in range(STEPS):
        g = grad(theta, t)
        r = rho * r + (1 - rho) * g * g
        theta = theta + (-eps_global / (delta + np.sqrt(r)) * g)
        yield theta


def ref_rmsprop_tf1(lr, decay, momentum, epsilon):
    """Seed 000's tf.train.RMSPropOptimizer(lr, momentum=0.9, decay=0.9, epsilon=1e-10):
    ms starts at 1; ms <- decay*ms + (1-decay)*g^2; mom <- momentum*mom + lr*g/sqrt(ms + epsilon);
    var <- var - mom."""
    theta, ms, mom = THETA0.copy(), np.ones(SHAPE), np.zeros(SHAPE)
    for t in range(STEPS):
        g = grad(theta, t)
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / np.sqrt(ms + epsilon)
        theta = theta - mom
        yield theta


def ref_adadelta(rho, eps, lr=1.0):
    """Zeiler (2012) Algorithm 1 (seeds 000, 003): E[g^2] <- rho*E[g^2] + (1-rho)*g^2;
    dx = -RMS[dx]_{t-1}/RMS[g]_t * g with RMS[y] = sqrt(E[y^2] + eps);
    E[dx^2] <- rho*E[dx^2] + (1-rho)*dx^2; x <- x + dx."""
    theta, eg2, edx2 = THETA0.copy(), np.zeros(SHAPE), np.zeros(SHAPE)
    for t in range(STEPS):
        g = grad(theta, t)
        eg2 = rho * eg2 + (1 - rho) * g**2
        dx = -np.sqrt(edx2 + eps) / np.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * dx**2
        theta = theta + lr * dx
        yield theta


def ref_adam(alpha, beta1, beta2, eps, eps_inside_sqrt=False):
    """Kingma & Ba (2015) Algorithm 1 (seed 000's Adam): m <- b1*m + (1-b1)*g;
    v <- b2*v + (1-b2)*g^2; m_hat = m/(1-b1^t); v_hat = v/(1-b2^t);
    theta <- theta - alpha*m_hat/(sqrt(v_hat) + eps).
    Seed 003's hand-written Adam: theta <- theta - alpha*m_hat/sqrt(v_hat + eps)."""
    theta, m, v = THETA0.copy(), np.zeros(SHAPE), np.zeros(SHAPE)
    for t in range(1, STEPS + 1):
        g = grad(theta, t - 1)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        denom = np.sqrt(v_hat + eps) if eps_inside_sqrt else np.sqrt(v_hat) + eps
        theta = theta - alpha * m_hat / denom
        yield theta


def ref_amsgrad(alpha, beta1, beta2, eps):
    """Reddi et al. (2018) Algorithm 2, v_hat_t = max(v_hat_{t-1}, v_t), with Adam's bias
    corrections of m and of the running maximum (the form torch.optim and Keras implement)."""
    theta, m, v, vmax = THETA0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), np.zeros(SHAPE)
    for t in range(1, STEPS + 1):
        g = grad(theta, t - 1)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        vmax = np.maximum(vmax, v)
        theta = theta - alpha * (m / (1 - beta1**t)) / (np.sqrt(vmax / (1 - beta2**t)) + eps)
        yield theta


def ref_adamw(alpha, beta1, beta2, eps, lam):
    """Loshchilov & Hutter (2019) Algorithm 2 with the schedule multiplier eta_t = lr and
    alpha = 1 (torch.optim's parametrization): theta <- theta - lr*(m_hat/(sqrt(v_hat)+eps)
    + lambda*theta), with theta of the previous step in the decay term."""
    theta, m, v = THETA0.copy(), np.zeros(SHAPE), np.zeros(SHAPE)
    for t in range(1, STEPS + 1):
        g = grad(theta, t - 1)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        theta = theta - alpha * (m_hat / (np.sqrt(v_hat) + eps) + lam * theta)
        yield theta


def ref_nadam(alpha, beta1, beta2, eps, psi):
    """Dozat (2016) Algorithm 2: mu_t = beta1*(1 - 0.5*0.96^(t*psi));
    m <- beta1*m + (1-beta1)*g; n <- beta2*n + (1-beta2)*g^2;
    m_bar = mu_{t+1}*m/(1 - prod_{i<=t+1} mu_i) + (1-mu_t)*g/(1 - prod_{i<=t} mu_i);
    n_hat = n/(1 - beta2^t); theta <- theta - alpha*m_bar/(sqrt(n_hat) + eps).

    Algorithm 2 prints ``n_hat = beta2*n/(1-beta2^t)``; that extra beta2 (a constant rescaling
    of alpha by 1/sqrt(beta2)) is in no implementation (torch, Keras, optax, whose source remarks
    on it) and is left out here too.
    """
    theta, m, n, prod = THETA0.copy(), np.zeros(SHAPE), np.zeros(SHAPE), 1.0

    def mu(t):
        return beta1 * (1 - 0.5 * 0.96 ** (t * psi))

    for t in range(1, STEPS + 1):
        g = grad(theta, t - 1)
        prod = prod * mu(t)
        m = beta1 * m + (1 - beta1) * g
        n = beta2 * n + (1 - beta2) * g**2
        m_bar = mu(t + 1) * m / (1 - prod * mu(t + 1)) + (1 - mu(t)) * g / (1 - prod)
        n_hat = n / (1 - beta2**t)
        theta = theta - alpha * m_bar / (np.sqrt(n_hat) + eps)
        yield theta


def ref_adamax(alpha, beta1, beta2, eps):
    """Kingma & Ba (2015) Algorithm 2: m <- b1*m + (1-b1)*g; u <- max(b2*u, |g|);
    theta <- theta - (alpha/(1-b1^t))*m/u. The paper has no eps; ``eps`` > 0 adds it to u in the
    denominator, as the ``paper`` convention (and Keras) do."""
    theta, m, u = THETA0.copy(), np.zeros(SHAPE), np.zeros(SHAPE)
    for t in range(1, STEPS + 1):
        g = grad(theta, t - 1)
        m = beta1 * m + (1 - beta1) * g
        u = np.maximum(beta2 * u, np.abs(g))
        theta = theta - (alpha / (1 - beta1**t)) * m / (u + eps)
        yield theta


# ---- the table -------------------------------------------------------------------------------------

# (id, registry name, our keywords, reference trajectory), all under convention="paper"
CASES = [
    ("sgd", "sgd", {}, lambda: ref_sgd(0.01)),
    (
        "momentum-velocity-seed000",
        "momentum",
        {"lr": 0.05},
        lambda: ref_momentum_velocity(0.05, 0.9),
    ),
    (
        "sgdm-ema-seed001",
        "momentum",
        {"lr": 0.1, "form": "ema"},
        lambda: ref_sgdm_ema(0.1, 0.9),
    ),
    ("adagrad-seed000", "adagrad", {"lr": 0.1}, lambda: ref_adagrad(0.1, 1e-7)),
    ("rmsprop-seed000", "rmsprop", {}, lambda: ref_rmsprop(1e-3, 0.9, 1e-6)),
    ("rmsprop-tf1-seed000", "rmsprop-tf1", {}, lambda: ref_rmsprop_tf1(1e-3, 0.9, 0.9, 1e-10)),
    ("adadelta-zeiler", "adadelta", {}, lambda: ref_adadelta(0.95, 1e-6)),
    ("adam-kingma-ba", "adam", {}, lambda: ref_adam(1e-3, 0.9, 0.999, 1e-8)),
    (
        "adam-eps-inside-seed003",
        "adam",
        {"eps_inside_sqrt": True},
        lambda: ref_adam(1e-3, 0.9, 0.999, 1e-8, eps_inside_sqrt=True),
    ),
    ("amsgrad-reddi", "amsgrad", {}, lambda: ref_amsgrad(1e-3, 0.9, 0.999, 1e-8)),
    (
        "adamw-loshchilov-hutter",
        "adamw",
        {"lr": 0.01, "weight_decay": 0.1},
        lambda: ref_adamw(0.01, 0.9, 0.999, 1e-8, 0.1),
    ),
    ("nadam-dozat", "nadam", {}, lambda: ref_nadam(2e-3, 0.9, 0.999, 1e-8, 0.004)),
    ("adamax-kingma-ba", "adamax", {"eps": 0.0}, lambda: ref_adamax(2e-3, 0.9, 0.999, 0.0)),
    ("adamax-paper-eps", "adamax", {}, lambda: ref_adamax(2e-3, 0.9, 0.999, 1e-8)),
]


@pytest.mark.parametrize("foreach", [True, False], ids=["foreach", "forloop"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_paper_convention_matches_reference(case, foreach):
    case_id, name, kwargs, reference = case
    theta = torch.tensor(THETA0, requires_grad=True)
    opt = optim.create(name, [theta], convention="paper", foreach=foreach, **kwargs)
    for t, expected in enumerate(reference()):
        theta.grad = torch.from_numpy(grad(theta.detach().numpy(), t))
        opt.step()
        assert_close_scaled(
            theta.detach(), torch.from_numpy(expected), RTOL, f"{case_id} step {t + 1}"
        )


def test_every_name_has_a_paper_reference():
    """Each registry name appears in the table above (with its paper defaults); ``nag`` has its
    own test below, against Sutskever's look-ahead written with a closure."""
    assert {c[1] for c in CASES} | {"nag"} == set(optim.available())


# ---- NAG: our parameters are Sutskever's look-ahead point ---------------------------------------


def _rosenbrock_grad(xy: np.ndarray) -> np.ndarray:
    x, y = xy
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


@pytest.mark.parametrize(
    "form, lr_factor",
    [("velocity", 1.0), ("heavy_ball", 1.0), ("ema", 10.0)],
    ids=["velocity", "heavy_ball", "ema"],
)
def test_nag_is_sutskever_lookahead(form, lr_factor):
    """Sutskever et al. (2013) eq. 3-4, literally: the gradient is evaluated at theta - gamma*m,
    m <- gamma*m + eta*grad f(theta - gamma*m), theta <- theta - m, on Rosenbrock (not quadratic,
    so a gradient taken at the wrong point changes the trajectory). Ours, stepped with a closure
    that evaluates f at its parameters, holds phi = theta - gamma*m. The ema form is the same
    algorithm with its step scaled by (1 - gamma): lr_ema = eta/(1 - gamma)."""
    eta, gamma = 2e-4, 0.9
    theta, m = np.array([-1.2, 1.0]), np.zeros(2)
    phi = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = optim.create(
        "nag", [phi], convention="paper", lr=eta * lr_factor, momentum=gamma, form=form
    )

    def closure():
        opt.zero_grad()
        loss = (1 - phi[0]) ** 2 + 100 * (phi[1] - phi[0] ** 2) ** 2
        loss.backward()
        return loss

    for t in range(200):
        m = gamma * m + eta * _rosenbrock_grad(theta - gamma * m)
        theta = theta - m
        opt.step(closure)
        assert_close_scaled(
            phi.detach(), torch.from_numpy(theta - gamma * m), 1e-9, f"NAG {form} step {t + 1}"
        )
    # and the path really moves: 200 steps from (-1.2, 1) along Rosenbrock's valley
    assert np.abs(theta - np.array([-1.2, 1.0])).max() > 0.1


# ---- momentum forms: equal under a constant lr, different after the lr changes -------------------


def _momentum_run(form: str, schedule: bool) -> list[np.ndarray]:
    theta = torch.tensor(THETA0, requires_grad=True)
    opt = optim.create("momentum", [theta], lr=0.05, momentum=0.9, form=form)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.1) if schedule else None
    out = []
    for t in range(STEPS):
        theta.grad = torch.from_numpy(grad(theta.detach().numpy(), t))
        opt.step()
        if sched is not None:
            sched.step()
        out.append(theta.detach().numpy().copy())
    return out


def _reference_under_step_lr(form: str) -> list[np.ndarray]:
    """heavy_ball: m <- mu*m + g; theta <- theta - lr_t*m (the new lr scales the whole buffer).
    velocity:   m <- mu*m + lr_t*g; theta <- theta - m   (the new lr scales new gradients only)."""
    theta, m, mu, out = THETA0.copy(), np.zeros(SHAPE), 0.9, []
    for t in range(STEPS):
        lr_t = 0.05 * 0.1 ** (t // 10)
        g = grad(theta, t)
        if form == "heavy_ball":
            m = g if t == 0 else mu * m + g
            theta = theta - lr_t * m
        else:
            m = mu * m + lr_t * g
            theta = theta - m
        out.append(theta)
    return out


def test_momentum_forms_equal_under_constant_lr():
    heavy, velocity = _momentum_run("heavy_ball", False), _momentum_run("velocity", False)
    for t, (a, b) in enumerate(zip(heavy, velocity)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {t + 1}")


def test_momentum_forms_differ_after_lr_change():
    heavy, velocity = _momentum_run("heavy_ball", True), _momentum_run("velocity", True)
    # identical before the first decay (steps 1..10), apart after it
    np.testing.assert_allclose(heavy[9], velocity[9], rtol=1e-12, atol=1e-14)
    assert np.abs(heavy[10] - velocity[10]).max() > 1e-3
    for form, run in (("heavy_ball", heavy), ("velocity", velocity)):
        for t, (a, b) in enumerate(zip(run, _reference_under_step_lr(form))):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"{form} step {t + 1}")


def test_paper_convention_values_are_the_sources():
    """The constants the references above use are what ``resolve(name, "paper")`` builds."""

    def built(name):
        e = optim.entry(name)
        p = [torch.zeros(1, requires_grad=True)]
        return e.cls(p, **optim.resolve(name, "paper")).defaults

    assert built("adagrad")["eps"] == 1e-7 and not built("adagrad")["eps_inside_sqrt"]
    r = built("rmsprop")
    assert (r["lr"], r["alpha"], r["eps"], r["eps_inside_sqrt"]) == (1e-3, 0.9, 1e-6, False)
    d = built("adadelta")
    assert (d["lr"], d["rho"], d["eps"]) == (1.0, 0.95, 1e-6)
    a = built("adam")
    assert (a["lr"], a["betas"], a["eps"], a["eps_hat"]) == (1e-3, (0.9, 0.999), 1e-8, False)
    n = built("nadam")
    assert (n["lr"], n["momentum_decay"], n["momentum_schedule"]) == (2e-3, 4e-3, "dozat")
    assert built("momentum")["form"] == "velocity" and built("nag")["form"] == "velocity"
    assert math.isclose(built("adamax")["lr"], 2e-3) and built("adamax")["eps_inside_max"] is False
