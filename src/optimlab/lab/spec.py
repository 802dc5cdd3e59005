"""Optimizer specs as written on the command line, parsed (never evaluated).

Grammar::

    spec    := phase ("+" phase)*
    phase   := NAME [":" hparam ("," hparam)*] ("@" CONVENTION | "@" EPOCHS)*
    hparam  := KEY "=" value
    value   := number | "true" | "false" | "none" | number "/" number ("/" number)* | word
    number  := whatever Python's float() reads (1e16, 2e+1, 1_000, inf); digits only: an int

A ``+`` right after a number's ``e`` is the exponent's sign, every other ``+`` separates phases.
Each key, convention and phase length appears at most once in a phase.

Examples: ``adam``, ``adam:lr=3e-4,betas=0.9/0.99``, ``momentum:form=ema,lr=0.1``,
``rmsprop@keras``, ``adam@3+sgd:lr=0.01@2`` (Adam for 3 epochs, then SGD for 2; seed 001's tip).
The last phase may omit its epoch count: it runs for the rest of training.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..optim import available, conventions, create
from .errors import UserError
from .limits import LIMITS, MAX_NUMBER_CHARS, MAX_SPEC_CHARS, short

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_INT = re.compile(r"^[+-]?[0-9]+(_[0-9]+)*$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
# a number up to its exponent's "e", right after a separator: the "+" that follows is its sign
_BEFORE_EXPONENT_SIGN = re.compile(r"(^|[=/,:@+])[+-]?([0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)[eE]$")


@dataclass(frozen=True)
class Phase:
    """One optimizer of a spec: name, convention, explicit hyperparameters, epochs (None = rest)."""

    name: str
    convention: str = "pytorch"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None

    def label(self) -> str:
        """The canonical text of this phase (parses back to an equal phase)."""
        text = self.name
        if self.hyperparameters:
            text += ":" + ",".join(f"{k}={format_value(v)}" for k, v in self.hyperparameters.items())
        if self.convention != "pytorch":
            text += f"@{self.convention}"
        if self.epochs is not None:
            text += f"@{self.epochs}"
        return text


@dataclass(frozen=True)
class OptimizerSpec:
    """A parsed spec: one or more phases run one after the other."""

    phases: tuple[Phase, ...]

    def label(self) -> str:
        return "+".join(p.label() for p in self.phases)

    def phase_at(self, epoch: int) -> int:
        """Index of the phase that trains epoch ``epoch`` (0-based)."""
        start = 0
        for i, p in enumerate(self.phases):
            if p.epochs is None or epoch < start + p.epochs:
                return i
            start += p.epochs
        return len(self.phases) - 1


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (tuple, list)):
        return "/".join(format_value(x) for x in v)
    return str(v)


def split_top(text: str, sep: str = "+") -> list[str]:
    """Split ``text`` at ``sep``, except at a ``+`` that is an exponent's sign (``1e+16``).

    ``adam:lr=2e+1+sgd`` -> ``["adam:lr=2e+1", "sgd"]``. Shared by optimizer specs and
    schedules, whose parts are joined with ``+``.
    """
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch != sep:
            continue
        if (sep == "+" and i + 1 < len(text) and text[i + 1].isdigit()
                and _BEFORE_EXPONENT_SIGN.search(text[start:i])):
            continue
        parts.append(text[start:i])
        start = i + 1
    parts.append(text[start:])
    return parts


def parse_number(text: str) -> float | int | None:
    """``text`` as a number when Python's ``float()`` reads it (ints stay ints), else None.

    Accepts exponents with either sign (``1e16``, ``2e+1``), ``_`` between digits, ``inf`` and
    ``nan`` (the optimizers then reject them by name).

    Raises:
        UserError: a number longer than :data:`~optimlab.lab.limits.MAX_NUMBER_CHARS`.
    """
    if not text or text != text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if len(text) > MAX_NUMBER_CHARS:
        raise UserError(f"Invalid number {short(text)} (at most {MAX_NUMBER_CHARS} characters)")
    return int(text) if _INT.match(text) else value


def parse_value(text: str) -> Any:
    """A hyperparameter value: number, bool, none, a '/'-separated tuple of numbers, or a word."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if "/" in text:
        parts = [parse_number(p) for p in text.split("/")]
        if all(p is not None for p in parts):
            return tuple(parts)
        raise UserError(
            f"Invalid value {short(text)!r}: a tuple is numbers separated by '/', e.g. 0.9/0.999"
        )
    number = parse_number(text)
    if number is not None:
        return number
    if _WORD.match(text):
        return text
    raise UserError(f"Invalid value {short(text)!r}: expected a number, true/false, a/b or a word")


def parse_phase(text: str) -> Phase:
    head, *ats = text.strip().split("@")
    name, _, hp_text = head.partition(":")
    name = name.strip().lower()
    where = short(text)
    if name not in available():
        raise UserError(
            f"Unknown optimizer {short(name)!r} in {where!r} (expected one of {', '.join(available())})"
        )
    hps: dict[str, Any] = {}
    if hp_text.strip():
        for item in hp_text.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not _KEY.match(key) or not value.strip():
                raise UserError(f"Invalid hyperparameter {short(item)!r} in {where!r} (expected key=value)")
            if key in hps:
                raise UserError(f"Hyperparameter {key!r} given twice in {where!r}")
            hps[key] = parse_value(value.strip())
    convention, epochs = None, None
    for a in ats:
        a = a.strip()
        if re.fullmatch(r"[0-9]+", a):
            if epochs is not None:
                raise UserError(f"Phase length given twice in {where!r} (@{epochs} and @{short(a)})")
            if len(a.lstrip("0")) > len(str(LIMITS["epochs"])) or not 1 <= int(a) <= LIMITS["epochs"]:
                raise UserError(
                    f"Invalid phase length {short(a)!r} in {where!r} (expected epochs from 1 to "
                    f"{LIMITS['epochs']:,})"
                )
            epochs = int(a)
        elif a in conventions():
            if convention is not None:
                raise UserError(f"Convention given twice in {where!r} (@{convention} and @{a})")
            convention = a
        else:
            raise UserError(
                f"Invalid '@{short(a)}' in {where!r} (expected a convention: "
                f"{', '.join(conventions())}, or a number of epochs)"
            )
    convention = convention or "pytorch"
    try:
        # build once on a dummy tensor so that invalid values fail here, at parse time; the
        # constructors raise ValueError/TypeError for bad values and RuntimeError for the
        # combinations torch.optim also refuses (fused with foreach)
        create(name, [torch.zeros(1, requires_grad=True)], convention=convention, **hps)
    except (ValueError, TypeError, RuntimeError) as e:
        raise UserError(f"{e} in {where!r}") from None
    return Phase(name, convention, hps, epochs)


def parse_spec(text: str) -> OptimizerSpec:
    """Parse one optimizer spec; raises :class:`UserError` with a one-line message."""
    if not text or not text.strip():
        raise UserError("Empty optimizer spec (expected e.g. adam or adam:lr=3e-4)")
    if len(text) > MAX_SPEC_CHARS:
        raise UserError(f"Optimizer spec {short(text)!r} is too long (at most {MAX_SPEC_CHARS:,} characters)")
    phases = tuple(parse_phase(p) for p in split_top(text))
    for p in phases[:-1]:
        if p.epochs is None:
            raise UserError(
                f"Phase {short(p.label())!r} in {short(text)!r} needs a length, e.g. {short(p.label())}@3"
            )
    return OptimizerSpec(phases)


def unused_phases(spec: OptimizerSpec, epochs: int) -> list[Phase]:
    """The phases of ``spec`` that never train in a run of ``epochs`` epochs."""
    start, unused = 0, []
    for p in spec.phases:
        if start >= epochs:
            unused.append(p)
        start += p.epochs or 0
    return unused


def warn_unused_phases(spec: OptimizerSpec, epochs: int) -> list[str]:
    """Log (and return) a warning for every phase that does not fit in ``epochs`` epochs."""
    messages = [
        f"{spec.label()}: phase {p.label()!r} never runs in {epochs} epoch(s)"
        for p in unused_phases(spec, epochs)
    ]
    for message in messages:
        log.warning("%s", message)
    return messages


def split_specs(text: str) -> list[str]:
    """Split a comma-separated list of specs, keeping commas that separate hyperparameters.

    ``adam:lr=1e-3,betas=0.9/0.99,sgd`` -> ``["adam:lr=1e-3,betas=0.9/0.99", "sgd"]``: a piece
    with ``=`` continues the previous spec's hyperparameters.
    """
    out: list[str] = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece:
            continue
        head = split_top(piece.split("@")[0])[0]
        if out and "=" in head and ":" not in head:
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def build_optimizer(phase: Phase, params: Any):
    """Create the optimizer of ``phase`` over ``params``."""
    return create(phase.name, params, convention=phase.convention, **phase.hyperparameters)
