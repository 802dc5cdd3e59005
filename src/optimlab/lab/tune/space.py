"""Search spaces: what ``optimlab tune`` samples for each optimizer, read from the registry.

Each optimizer's entry (:mod:`optimlab.optim.registry`) declares its learning-rate range and the
other dimensions of its update rule; a protocol (:data:`SPACES`) picks which of them are tuned:

* ``lr-only`` (DeepOBS, Schneider et al. 2019): only the learning rate, on a log scale; every
  other hyperparameter keeps its default;
* ``full`` (Choi et al. 2019): every hyperparameter of the rule, Adam's ``eps`` included (log scale
  on lr, ``1 - beta`` and ``eps``).

Hyperparameters that a spec sets explicitly (``adam:betas=0.9/0.99``) are fixed, not tuned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...optim import Dimension, available, defaults, entry
from ..errors import UserError
from ..spec import KEY, OptimizerSpec, Phase


@dataclass(frozen=True)
class SearchSpace:
    """A protocol's tuned dimensions per optimizer name, with where the protocol comes from."""

    name: str
    source: str
    dimensions: dict[str, tuple[Dimension, ...]]


def _lr(name: str) -> Dimension:
    low, high = entry(name).lr_range
    return Dimension("lr", low, high, "lr")


SPACES: dict[str, SearchSpace] = {
    "lr-only": SearchSpace(
        "lr-only",
        "DeepOBS (Schneider et al. 2019): only the learning rate is tuned, on a log scale; every "
        "other hyperparameter keeps its default",
        {name: (_lr(name),) for name in available()},
    ),
    "full": SearchSpace(
        "full",
        "Choi et al. 2019, 'On Empirical Comparisons of Optimizers for Deep Learning': every "
        "hyperparameter is tuned (log scale on lr, 1 - beta and eps, Adam's eps included)",
        {name: (_lr(name), *entry(name).tuned) for name in available()},
    ),
}


def check_space(space: str) -> str:
    """``space`` if it names a protocol of :data:`SPACES`."""
    if space not in SPACES:
        raise UserError(f"Unknown search space {space!r} (expected one of {', '.join(SPACES)})")
    return space


_SCALES = ("log", "linear")


def parse_dimension(text: str) -> Dimension:
    """``KEY=log:LOW:HIGH`` or ``KEY=linear:LOW:HIGH`` (``--space``) as a :class:`Dimension` that
    samples hyperparameter ``KEY`` uniformly in ``[LOW, HIGH]`` (in log space for ``log``)."""
    key, eq, rest = (x.strip() for x in text.partition("="))
    scale, _, bounds = rest.partition(":")
    lo, sep, hi = bounds.partition(":")
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        low = high = math.nan
    if (not eq or not KEY.match(key) or scale not in _SCALES or not sep or not low < high
            or not math.isfinite(high) or (scale == "log" and low <= 0)):
        raise UserError(
            f"Invalid search dimension {text!r} (expected KEY=log:LOW:HIGH with 0 < LOW < HIGH, or "
            "KEY=linear:LOW:HIGH, e.g. lr=log:1e-5:1e-1)"
        )
    return Dimension(key, low, high, key, log=scale == "log")


def dimensions(space: str, phase: Phase, lr_range: tuple[float, float] | None = None,
               custom: Sequence[Dimension] = ()) -> tuple[Dimension, ...]:
    """The tuned dimensions of ``phase`` under ``space``, with the ``custom`` ones (``--space
    KEY=...``) added or in place of the protocol's of the same hyperparameter.

    Hyperparameters the spec sets explicitly (``adam:betas=0.9/0.99``) are fixed, not tuned;
    ``lr_range`` replaces the learning-rate range. An optimizer named by class
    (``torch.optim:Adam``) has no registry entry: its space is the ``custom`` dimensions.
    """
    check_space(space)
    if phase.external:
        if not custom:
            raise UserError(f"No search space for {phase.name} (give one, e.g. --space "
                            "'lr=log:1e-5:1e-1')")
        dims: tuple[Dimension, ...] = ()
    else:
        dims = SPACES[space].dimensions.get(phase.name)
        if dims is None:
            raise UserError(
                f"No search space for optimizer {phase.name!r} "
                f"(tunable: {', '.join(SPACES[space].dimensions)})"
            )
    keys = {d.key for d in custom}
    out = []
    for d in (*(d for d in dims if d.key not in keys), *custom):
        if d.key in phase.hyperparameters:
            continue
        if d.key == "lr" and lr_range is not None and d not in custom:
            d = Dimension("lr", lr_range[0], lr_range[1], "lr")
        out.append(d)
    return tuple(out)


def hyperparameters(phase: Phase, dims: Sequence[Dimension], values: dict[str, float]
                    ) -> dict[str, Any]:
    """The phase's explicit hyperparameters plus the tuned ones, from the sampled ``values``.

    A tuple key (``betas``) tuned in only one element takes the other from the optimizer's
    default under the phase's convention (:func:`optimlab.optim.defaults`).
    """
    hps: dict[str, Any] = dict(phase.hyperparameters)
    tuples: dict[str, list[Any]] = {}
    for d in dims:
        v = d.value(values[d.name])
        if d.index is None:
            hps[d.key] = v
        else:
            if d.key not in tuples:
                tuples[d.key] = list(defaults(phase.name, phase.convention)[d.key])
            tuples[d.key][d.index] = v
    for key, items in tuples.items():
        hps[key] = tuple(items)
    return hps


def trial_spec(phase: Phase, hps: dict[str, Any]) -> OptimizerSpec:
    """The one-phase spec of ``phase`` with hyperparameters ``hps``; its label parses back to it
    (exponents are written without ``+``, which separates phases)."""
    return OptimizerSpec((Phase(phase.name, phase.convention, hps, None),))


def parse_lr_range(text: str | None) -> tuple[float, float] | None:
    """``"1e-5:1e2"`` -> ``(1e-5, 100.0)``; None stays None."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        low = high = math.nan
    if not sep or not (0 < low < high) or not math.isfinite(high):
        raise UserError(f"Invalid lr range {text!r} (expected LOW:HIGH with 0 < LOW < HIGH)")
    return (low, high)
