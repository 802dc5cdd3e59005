"""Learning-rate schedules written as text, parsed (never evaluated), built from torch.optim.lr_scheduler.

Grammar (optimizer specs' grammar, :func:`optimlab.lab.spec.parse_parts`, with numbers only and
no ``@`` suffixes)::

    schedule := part ("+" part)*
    part     := NAME [":" KEY "=" NUMBER ("," KEY "=" NUMBER)*]

Every schedule **steps once per optimizer step** (after ``optimizer.step()``), so a warm-up is
smooth and a cosine ends exactly at the last step. Parameters that users think of in epochs are
given in epochs and converted with the run's steps per epoch ``S``:

``exp:gamma=G``
    lr is multiplied by ``G`` per epoch, spread evenly over its steps:
    ``ExponentialLR(gamma=G**(1/S))``, i.e. ``lr_t = lr_0 * G**(t/S)`` after ``t`` steps.
``step:step_size=E,gamma=G``
    lr is multiplied by ``G`` (default 0.1) every ``E`` epochs: ``StepLR(step_size=E*S, gamma=G)``.
``cosine[:t_max=N,eta_min=M]``
    ``CosineAnnealingLR``: ``lr_t = M + (lr_0 - M) * (1 + cos(pi*t/N)) / 2``; ``N`` (steps)
    defaults to the steps left in the run, ``M`` to 0.
``warmup:steps=N[,start_factor=F]``
    ``LinearLR`` from ``F*lr_0`` (default ``F = 1/N``) up to ``lr_0`` on the ``N``-th step, then
    constant: with the default, step ``t`` (0-based) of the warm-up uses ``lr_0*(t+1)/N``.
``constant``
    no change (``ConstantLR`` with factor 1), useful as the last part of a composition.

``a+b`` switches from ``a`` to ``b`` with ``SequentialLR``; every part but the last needs a
length in steps (``warmup:steps=N`` or ``cosine:t_max=N``). Example: ``warmup:steps=100+cosine``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch.optim import Optimizer
from torch.optim import lr_scheduler as _lrs

from .errors import UserError
from .limits import LIMITS, short
from .spec import Part, is_number, parse_parts

#: schedule name -> (required keys, optional keys with defaults; None = computed at build time)
_KINDS: dict[str, tuple[tuple[str, ...], dict[str, float | None]]] = {
    "exp": (("gamma",), {}),
    "step": (("step_size",), {"gamma": 0.1}),
    "cosine": ((), {"t_max": None, "eta_min": 0.0}),
    "warmup": (("steps",), {"start_factor": None}),
    "constant": ((), {}),
}


def schedule_names() -> list[str]:
    """The schedule names :func:`parse_schedule` accepts."""
    return list(_KINDS)


@dataclass(frozen=True)
class SchedulePart:
    """One part of a schedule: its name and its explicit parameters."""

    name: str
    params: dict[str, float] = field(default_factory=dict)

    def label(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in self.params.items())

    def length(self) -> int | None:
        """Steps this part lasts inside a composition (None: open-ended)."""
        if self.name == "warmup":
            return int(self.params["steps"])
        if self.name == "cosine" and "t_max" in self.params:
            return int(self.params["t_max"])
        return None


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: parts applied one after the other."""

    parts: tuple[SchedulePart, ...]

    def label(self) -> str:
        return "+".join(p.label() for p in self.parts)


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(float(v))


def _parse_part(part: Part, whole: str) -> SchedulePart:
    name = part.name
    if name not in _KINDS:
        raise UserError(
            f"Unknown schedule {short(name)!r} in {short(whole)!r} (expected one of {', '.join(_KINDS)}, "
            "joined with '+', e.g. warmup:steps=100+cosine)"
        )
    if part.suffixes:
        raise UserError(f"Invalid '@' in schedule {short(whole)!r} (expected name:key=number,...)")
    required, optional = _KINDS[name]
    params: dict[str, float] = {}
    for key, value in part.params.items():
        if not is_number(value):
            raise UserError(
                f"Invalid schedule parameter {short(key + '=' + value)!r} in {short(whole)!r} "
                "(expected key=number)"
            )
        if key not in required and key not in optional:
            valid = ", ".join((*required, *optional)) or "none"
            raise UserError(f"Unknown parameter {key!r} for schedule {name!r} (expected: {valid})")
        params[key] = float(value)
    missing = [k for k in required if k not in params]
    if missing:
        raise UserError(f"Schedule {name!r} needs {missing[0]}=..., e.g. {_example(name)}")
    _check_values(name, params, whole)
    return SchedulePart(name, params)


def _example(name: str) -> str:
    return {
        "exp": "exp:gamma=0.96",
        "step": "step:step_size=2,gamma=0.5",
        "warmup": "warmup:steps=100",
    }.get(name, name)


def _check_values(name: str, params: dict[str, float], whole: str) -> None:
    def bad(key: str, rule: str) -> UserError:
        return UserError(
            f"Invalid {key}={_fmt(params[key])} in schedule {short(whole)!r} (expected {rule})"
        )

    if "gamma" in params and not 0.0 < params["gamma"] <= 1.0:
        raise bad("gamma", "0 < gamma <= 1")
    for key in ("step_size", "steps", "t_max"):
        if key in params and not (1 <= params[key] <= LIMITS["steps"] and params[key].is_integer()):
            raise bad(key, f"a whole number from 1 to {LIMITS['steps']:,}")
    if "start_factor" in params and not 0.0 < params["start_factor"] <= 1.0:
        raise bad("start_factor", "0 < start_factor <= 1")
    if "eta_min" in params and (params["eta_min"] < 0 or not math.isfinite(params["eta_min"])):
        raise bad("eta_min", "a finite number >= 0")


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule; raises :class:`UserError` with a one-line message naming the valid choices."""
    if not text or not text.strip():
        raise UserError(f"Empty schedule (expected one of {', '.join(_KINDS)}, e.g. exp:gamma=0.96)")
    raw = parse_parts(text, noun="schedule parameter", expected="key=number")
    parts = tuple(_parse_part(p, text) for p in raw)
    for p in parts[:-1]:
        if p.length() is None:
            raise UserError(
                f"Schedule part {p.label()!r} in {text!r} is not last, so it needs a length in steps "
                "(warmup:steps=N or cosine:t_max=N)"
            )
    return Schedule(parts)


def _build_part(
    part: SchedulePart, optimizer: Optimizer, steps_per_epoch: int, remaining: int
) -> _lrs.LRScheduler:
    p = part.params
    if part.name == "exp":
        return _lrs.ExponentialLR(optimizer, gamma=p["gamma"] ** (1.0 / steps_per_epoch))
    if part.name == "step":
        return _lrs.StepLR(
            optimizer, step_size=int(p["step_size"]) * steps_per_epoch, gamma=p.get("gamma", 0.1)
        )
    if part.name == "cosine":
        t_max = int(p.get("t_max", max(1, remaining)))
        return _lrs.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=p.get("eta_min", 0.0))
    if part.name == "warmup":
        steps = int(p["steps"])
        # steps t = 0..N-1 get lr_0 * (F + (1-F) * t/(N-1)); with F = 1/N that is lr_0*(t+1)/N,
        # reaching lr_0 on the last warm-up step (as nanoGPT's get_lr)
        return _lrs.LinearLR(
            optimizer, start_factor=p.get("start_factor", 1.0 / steps), end_factor=1.0,
            total_iters=max(1, steps - 1),
        )
    return _lrs.ConstantLR(optimizer, factor=1.0, total_iters=0)


def build_scheduler(
    schedule: Schedule, optimizer: Optimizer, *, steps_per_epoch: int, total_steps: int
) -> _lrs.LRScheduler:
    """The torch scheduler of ``schedule`` for ``optimizer``, to be stepped once per optimizer step.

    Args:
        schedule: a parsed schedule.
        optimizer: the optimizer whose ``lr`` it drives (``initial_lr`` is set by torch).
        steps_per_epoch: optimizer steps in one epoch (converts epoch-based parameters).
        total_steps: optimizer steps in the whole run (the default cosine length).
    """
    schedulers: list[_lrs.LRScheduler] = []
    milestones: list[int] = []
    used = 0
    for i, part in enumerate(schedule.parts):
        schedulers.append(_build_part(part, optimizer, steps_per_epoch, total_steps - used))
        if i < len(schedule.parts) - 1:
            used += part.length() or 0
            milestones.append(used)
    if len(schedulers) == 1:
        return schedulers[0]
    return _lrs.SequentialLR(optimizer, schedulers, milestones=milestones)
