"""Shared helpers for the optimizer tests: problems, trajectories and scale-aware comparisons.

Not a test module (pytest collects ``test_*.py`` only); the test modules import it by name, since
``tests/optim`` is on ``sys.path`` under pytest's default ``prepend`` import mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from optimlab import optim

#: shapes every parity test runs on: 0-d, empty, vector, matrix, 3-d
SHAPES: tuple[tuple[int, ...], ...] = ((), (0,), (5,), (3, 4), (2, 1, 3))

#: gradient magnitudes: ordinary, and tiny enough that eps (1e-6 .. 1e-10) dominates the denominator
GRAD_SCALES: tuple[float, ...] = (1.0, 1e-6, 1e-9)

#: optimlab's classes and their torch.optim counterparts
TORCH_COUNTERPARTS: tuple[tuple[type, type], ...] = (
    (optim.SGD, torch.optim.SGD),
    (optim.Adagrad, torch.optim.Adagrad),
    (optim.Adadelta, torch.optim.Adadelta),
    (optim.RMSprop, torch.optim.RMSprop),
    (optim.Adam, torch.optim.Adam),
    (optim.AdamW, torch.optim.AdamW),
    (optim.NAdam, torch.optim.NAdam),
    (optim.Adamax, torch.optim.Adamax),
)


def initial_params(
    shapes: Sequence[tuple[int, ...]] = SHAPES, dtype: torch.dtype = torch.float64, seed: int = 0
) -> list[torch.Tensor]:
    """Reproducible starting points, O(1) in size."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype) for s in shapes]


def make_grad_fn(
    scale: float, seed: int = 1
) -> Callable[[int, list[torch.Tensor]], list[torch.Tensor]]:
    """Gradients ``scale*(theta - 0.5 + 0.3*noise_t)``: they depend on the parameters (so that a
    wrong update changes later gradients too) and on the step (noise, so that amsgrad's max and
    Adamax's infinity norm are exercised by gradients that shrink and grow)."""

    def grad_fn(step: int, params: list[torch.Tensor]) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(seed * 100003 + step)
        out = []
        for p in params:
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            out.append(((p.detach() - 0.5) + 0.3 * noise) * scale)
        return out

    return grad_fn


def trajectory(
    factory: Callable[[list[torch.Tensor]], torch.optim.Optimizer],
    params0: Sequence[torch.Tensor],
    grad_fn: Callable[[int, list[torch.Tensor]], list[torch.Tensor]],
    steps: int,
) -> tuple[list[list[torch.Tensor]], torch.optim.Optimizer, list[torch.Tensor]]:
    """Run ``steps`` steps; return the parameters after every step, the optimizer and the params."""
    params = [p.detach().clone().requires_grad_(True) for p in params0]
    opt = factory(params)
    history = []
    for t in range(steps):
        for p, g in zip(params, grad_fn(t, params)):
            p.grad = g
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history, opt, params


def assert_close_scaled(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float, what: str
) -> None:
    """``|a - e| <= rtol*max|e|`` elementwise: relative to the tensor's own scale, so that entries
    that pass near zero (a moment that changes sign) do not demand an absolute precision finer
    than the rounding of the larger entries they were computed with."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.numel() == 0:
        return
    a, e = actual.detach().double(), expected.detach().double()
    scale = e.abs().max().item()
    err = (a - e).abs().max().item()
    assert err <= rtol * max(scale, 1e-300), (
        f"{what}: max abs error {err:.3e} > {rtol:g} * max|expected| ({scale:.3e})"
    )


def state_tensors(opt: torch.optim.Optimizer, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """The per-parameter state of ``p`` as tensors (Python numbers wrapped)."""
    out = {}
    for k, v in opt.state[p].items():
        out[k] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    return out


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily change torch's default dtype (restored even if the body fails)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def quadratic_and_rosenbrock(params: list[torch.Tensor]) -> torch.Tensor:
    """``sum_i c_i (x_i - 1)^2`` (condition number 10) plus 2-D Rosenbrock; minimum 0 at all ones.

    ``params[0]`` is the quadratic's point (4,), ``params[1]`` Rosenbrock's (2,). Every optimizer
    here is elementwise, so the two problems in one optimizer do not interact.
    """
    x, r = params
    c = torch.tensor([1.0, 2.0, 5.0, 10.0], dtype=x.dtype)
    quad = (c * (x - 1) ** 2).sum()
    rosen = (1 - r[0]) ** 2 + 100 * (r[1] - r[0] ** 2) ** 2
    return quad + rosen


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def clone_params(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_(True) for p in params]


def set_grads(params: Sequence[torch.Tensor], grads: Sequence[Any]) -> None:
    for p, g in zip(params, grads):
        p.grad = None if g is None else g.clone()


def assert_identical(a: Any, b: Any, where: str = "") -> None:
    """Equal structure, keys, types, dtypes, devices and values (tensors bit for bit): what a
    state_dict round trip must give back."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f"{where}: {a.keys()} != {b.keys()}"
        for k in a:
            assert_identical(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}/{i}")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.device == b.device and torch.equal(a, b), where
    else:
        assert a == b, where
