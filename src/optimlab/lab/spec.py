"""Optimizer specs as written on the command line, parsed (never evaluated).

Grammar::

    spec    := phase ("+" phase)*
    phase   := (NAME | MODULE ":" CLASS) [":" hparam ("," hparam)*] ("@" CONVENTION | "@" EPOCHS)*
    hparam  := KEY "=" value
    value   := number | "true" | "false" | "none" | number "/" number ("/" number)* | word

Examples: ``adam``, ``adam:lr=3e-4,betas=0.9/0.99``, ``momentum:form=ema,lr=0.1``,
``rmsprop@keras``, ``adam@3+sgd:lr=0.01@2`` (Adam for 3 epochs, then SGD for 2; seed 001's tip).
The last phase may omit its epoch count: it runs for the rest of training.

``MODULE:CLASS`` names any ``torch.optim.Optimizer`` subclass (``torch.optim:Adam:lr=1e-3``,
``pytorch_optimizer:Lion:lr=1e-4``; :mod:`optimlab.lab.external`): the class is imported, never
evaluated, its hyperparameters are its constructor's keywords, and it takes no convention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch

from ..optim import available, conventions, create
from .errors import UserError
from .external import build_external, check_external

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_KEY = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Phase:
    """One optimizer of a spec: name, convention, explicit hyperparameters, epochs (None = rest)."""

    name: str
    convention: str = "pytorch"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None

    @property
    def external(self) -> bool:
        """Whether ``name`` is a ``module:Class`` reference rather than an optimlab optimizer."""
        return ":" in self.name

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


def parse_value(text: str) -> Any:
    """A hyperparameter value: number, bool, none, a '/'-separated tuple of numbers, or a word."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    if "/" in text:
        parts = text.split("/")
        if all(_NUMBER.match(p) for p in parts):
            return tuple(_to_number(p) for p in parts)
        raise UserError(f"Invalid value {text!r}: a tuple is numbers separated by '/', e.g. 0.9/0.999")
    if _NUMBER.match(text):
        return _to_number(text)
    if re.match(r"^[A-Za-z_][A-Za-z0-9_\-]*$", text):
        return text
    raise UserError(f"Invalid value {text!r}: expected a number, true/false, a/b or a word")


def _to_number(text: str) -> float | int:
    if re.match(r"^[+-]?\d+$", text):
        return int(text)
    return float(text)


def _split_head(head: str) -> tuple[str, str]:
    """``(name, hyperparameter text)`` of a phase's head: ``adam:lr=1`` or ``torch.optim:Adam:lr=1``."""
    first, _, rest = head.partition(":")
    if rest and "=" not in rest.partition(":")[0] and first.strip().lower() not in available():
        cls, _, hp_text = rest.partition(":")
        return f"{first.strip()}:{cls.strip()}", hp_text
    return first.strip().lower(), rest


def parse_phase(text: str) -> Phase:
    head, *ats = text.strip().split("@")
    name, hp_text = _split_head(head)
    external = ":" in name
    if not external and name not in available():
        raise UserError(f"Unknown optimizer {name!r} in {text!r} (expected one of {', '.join(available())}, "
                        "or module:Class, e.g. torch.optim:Adam)")
    hps: dict[str, Any] = {}
    if hp_text.strip():
        for item in hp_text.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not _KEY.match(key) or not value.strip():
                raise UserError(f"Invalid hyperparameter {item!r} in {text!r} (expected key=value)")
            hps[key] = parse_value(value.strip())
    convention, epochs = "pytorch", None
    for a in ats:
        a = a.strip()
        if a.isdigit():
            epochs = int(a)
            if epochs <= 0:
                raise UserError(f"Invalid phase length {a!r} in {text!r} (expected epochs >= 1)")
        elif a in conventions() and not external:
            convention = a
        elif external and a in conventions():
            raise UserError(f"Invalid '@{a}' in {text!r}: conventions apply to optimlab's optimizers, "
                            f"not to {name}")
        else:
            raise UserError(
                f"Invalid '@{a}' in {text!r} (expected a convention: {', '.join(conventions())}, "
                "or a number of epochs)"
            )
    if external:
        check_external(name, hps)
        return Phase(name, convention, hps, epochs)
    try:
        # build once on a dummy tensor so that invalid values fail here, at parse time
        create(name, [torch.zeros(1, requires_grad=True)], convention=convention, **hps)
    except (ValueError, TypeError) as e:
        raise UserError(f"{e} in {text!r}") from None
    return Phase(name, convention, hps, epochs)


def parse_spec(text: str) -> OptimizerSpec:
    """Parse one optimizer spec; raises :class:`UserError` with a one-line message."""
    if not text or not text.strip():
        raise UserError("Empty optimizer spec (expected e.g. adam or adam:lr=3e-4)")
    phases = tuple(parse_phase(p) for p in text.split("+"))
    for p in phases[:-1]:
        if p.epochs is None:
            raise UserError(f"Phase {p.label()!r} in {text!r} needs a length, e.g. {p.label()}@3")
    return OptimizerSpec(phases)


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
        head = piece.split("@")[0].split("+")[0]
        if out and "=" in head and ":" not in head:
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def build_optimizer(phase: Phase, params: Any, **options: Any):
    """Create the optimizer of ``phase`` over ``params`` (``options``: further keywords, such as
    ``skip_nonfinite=True``)."""
    if phase.external:
        return build_external(phase.name, params, phase.hyperparameters | options)
    return create(phase.name, params, convention=phase.convention, **phase.hyperparameters, **options)
