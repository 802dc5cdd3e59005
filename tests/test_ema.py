"""``EWMA`` (seed 003, sections 1-2) against a NumPy reference written from the seed's formula:
v_t = beta*v_{t-1} + (1-beta)*x_t, v_0 = 0, and the bias-corrected v_t/(1 - beta^t)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from optimlab.ema import EWMA


def reference(xs, beta, bias_correction):
    v, out = 0.0, []
    for t, x in enumerate(xs, start=1):
        v = beta * v + (1 - beta) * x
        out.append(v / (1 - beta**t) if bias_correction else v)
    return out


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.98])
@pytest.mark.parametrize("bias_correction", [True, False])
def test_floats_match_numpy_reference(beta, bias_correction):
    rng = np.random.default_rng(0)
    xs = (rng.normal(size=60) * 3 + 10).tolist()
    avg = EWMA(beta, bias_correction=bias_correction)
    for got, expected in zip((avg.update(x) for x in xs), reference(xs, beta, bias_correction)):
        assert got == pytest.approx(expected, rel=1e-12)
    assert isinstance(avg.value, float)


def test_first_value_is_returned_exactly_with_bias_correction():
    # v_1 = (1-beta)*x_1 and v_1/(1-beta) = x_1: the first value itself, not a value near 0
    for beta in (0.9, 0.99, 0.999):
        assert EWMA(beta).update(10.0) == 10.0
        assert EWMA(beta).update(-0.3) == pytest.approx(-0.3, rel=1e-15)
    # without correction the start is biased towards 0
    assert EWMA(0.9, bias_correction=False).update(10.0) == pytest.approx(1.0)


def test_constant_input_stays_constant_with_correction():
    avg = EWMA(0.9)
    for _ in range(50):
        value = avg.update(4.0)
        assert value == pytest.approx(4.0, rel=1e-12)


def test_window_is_about_one_over_one_minus_beta():
    """Seed 003: v_t averages roughly the last 1/(1-beta) values: after a step change from 0 to
    1, the uncorrected average reaches 1 - 1/e after 1/(1-beta) updates."""
    beta = 0.9
    avg = EWMA(beta, bias_correction=False)
    for _ in range(200):
        avg.update(0.0)
    for _ in range(10):
        value = avg.update(1.0)
    assert value == pytest.approx(1 - beta**10)
    assert abs(value - (1 - np.exp(-1))) < 0.04


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tensors_match_reference_elementwise(dtype):
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(3, 2, generator=gen, dtype=torch.float64).to(dtype) for _ in range(30)]
    avg = EWMA(0.8)
    outs = [avg.update(x) for x in xs]
    ref = np.array(reference([x.double().numpy() for x in xs], 0.8, True))
    got = torch.stack(outs).double().numpy()
    if dtype == torch.float32:  # float32 rounding, relative to the inputs' O(1) scale
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-15)
    assert outs[-1].dtype == dtype and outs[-1].shape == (3, 2)


def test_value_is_a_copy_and_inputs_are_not_changed():
    x = torch.ones(3)
    avg = EWMA(0.5, bias_correction=False)
    out = avg.update(x)
    out.add_(100.0)
    assert torch.equal(x, torch.ones(3))
    assert torch.equal(avg.value, torch.full((3,), 0.5))


def test_integer_tensors_are_averaged_in_floating_point():
    avg = EWMA(0.5)
    avg.update(torch.tensor([1, 3]))
    value = avg.update(torch.tensor([3, 5]))
    assert value.is_floating_point()
    # v_2 = 0.5*(0.5*[1,3]) + 0.5*[3,5] = [1.75, 3.25]; / (1 - 0.25)
    torch.testing.assert_close(value, torch.tensor([1.75, 3.25]) / 0.75)


def test_value_is_none_before_the_first_update():
    assert EWMA(0.9).value is None


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, float("nan")])
def test_invalid_beta_raises(bad):
    with pytest.raises(ValueError, match=r"Invalid beta value"):
        EWMA(bad)


@pytest.mark.parametrize(
    "make", [lambda: 2.5, lambda: torch.tensor([1.0, -2.0])], ids=["float", "tensor"]
)
def test_state_dict_round_trip_continues_identically(make):
    xs = [make() * (i + 1) for i in range(10)]
    straight = EWMA(0.7)
    for x in xs:
        straight.update(x)

    first = EWMA(0.7)
    for x in xs[:4]:
        first.update(x)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = EWMA(0.1, bias_correction=False)  # the loaded state replaces these settings
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for x in xs[4:]:
        resumed.update(x)
    assert resumed.count == straight.count == 10
    assert resumed.beta == 0.7 and resumed.bias_correction
    if isinstance(straight.value, torch.Tensor):
        assert torch.equal(resumed.value, straight.value)
    else:
        assert resumed.value == straight.value


def test_state_dict_is_a_copy_both_ways():
    avg = EWMA(0.5)
    avg.update(torch.ones(2))
    saved = avg.state_dict()
    avg.update(torch.full((2,), 3.0))
    assert torch.equal(saved["average"], torch.full((2,), 0.5)), "update changed a saved state"
    other = EWMA(0.9)
    other.load_state_dict(saved)
    other.update(torch.full((2,), 5.0))
    assert torch.equal(saved["average"], torch.full((2,), 0.5)), "update changed a loaded dict"
    assert other.count == 2


def test_load_state_dict_rejects_an_invalid_beta():
    state = EWMA(0.5).state_dict()
    state["beta"] = 1.0
    with pytest.raises(ValueError, match=r"Invalid beta value: 1\.0"):
        EWMA(0.5).load_state_dict(state)
