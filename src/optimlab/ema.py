"""The exponentially weighted moving average (seed 003, sections 1-2)."""

from __future__ import annotations

from typing import Any

import torch

from .optim import bias_correction, check_unit_interval, ema_, ema_scalar


class EWMA:
    """Streaming exponentially weighted average of floats or tensors.

    Update rule::

        v_0 = 0
        v_t = beta*v_{t-1} + (1-beta)*x_t
        returned: v_t / (1 - beta^t) if bias_correction else v_t

    ``v_t`` averages roughly the last ``1/(1-beta)`` values; without the correction the first
    values are biased towards 0 (v_1 = (1-beta)*x_1).

    Example:
        >>> avg = EWMA(0.9)
        >>> avg.update(10.0)
        10.0
    """

    def __init__(self, beta: float, bias_correction: bool = True) -> None:
        check_unit_interval("beta", beta)
        self.beta = float(beta)
        self.bias_correction = bool(bias_correction)
        self.count = 0
        self.average: Any = None

    def update(self, x: Any) -> Any:
        """Add ``x`` and return the current (corrected) average."""
        self.count += 1
        if isinstance(x, torch.Tensor):
            if self.average is None:
                self.average = torch.zeros_like(
                    x, dtype=torch.promote_types(x.dtype, torch.float32)
                )
            # lerp_ needs both operands in one floating dtype (integer inputs are averaged as floats)
            ema_(self.average, x.to(self.average.dtype), self.beta)
        else:
            self.average = ema_scalar(
                0.0 if self.average is None else self.average, float(x), self.beta
            )
        return self.value

    @property
    def value(self) -> Any:
        """The current average (bias-corrected if requested); ``None`` before the first update."""
        if self.average is None:
            return None
        if not self.bias_correction:
            return self.average.clone() if isinstance(self.average, torch.Tensor) else self.average
        return self.average / bias_correction(self.beta, self.count)

    def state_dict(self) -> dict[str, Any]:
        """The state as primitives and a tensor: a copy, which later updates leave untouched."""
        return {
            "beta": self.beta,
            "bias_correction": self.bias_correction,
            "count": self.count,
            "average": _copy(self.average),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the average is copied, so the given dict stays as it is
        while this average goes on updating in place."""
        check_unit_interval("beta", state["beta"])
        self.beta = float(state["beta"])
        self.bias_correction = bool(state["bias_correction"])
        self.count = int(state["count"])
        self.average = _copy(state["average"])


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, torch.Tensor) else value
