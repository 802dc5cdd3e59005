"""Optimizer specs as written on the command line, parsed once (never evaluated) and carried as values.

Grammar (shared with :mod:`optimlab.lab.schedules`, which reads its parts with :func:`parse_parts`)::

    spec    := part ("+" part)*
    part    := NAME [":" param ("," param)*] ("@" SUFFIX)*
    param   := KEY "=" value
    value   := number | "true" | "false" | "none" | number "/" number ("/" number)* | word
    number  := whatever Python's float() reads (1e16, 2e+1, 1_000, inf); digits only: an int

A ``+`` right after a number's ``e`` is the exponent's sign, every other ``+`` separates parts.
Each key appears at most once in a part, and each convention and phase length at most once in a
phase; a text is at most :data:`~optimlab.lab.limits.MAX_SPEC_CHARS` long and a number at most
:data:`~optimlab.lab.limits.MAX_NUMBER_CHARS`.

In an optimizer spec each part is a phase and a suffix is a convention or a number of epochs.
Examples: ``adam``, ``adam:lr=3e-4,betas=0.9/0.99``, ``momentum:form=ema,lr=0.1``,
``rmsprop@keras``, ``adam@3+sgd:lr=0.01@2`` (Adam for 3 epochs, then SGD for 2; seed 001's tip).
The last phase may omit its epoch count: it runs for the rest of training.

An optimizer phase may name any ``torch.optim.Optimizer`` subclass as ``MODULE:CLASS`` instead
of a NAME (``torch.optim:Adam:lr=1e-3``, ``pytorch_optimizer:Lion:lr=1e-4``;
:mod:`optimlab.lab.external`): the class is imported, never evaluated, its hyperparameters are its
constructor's keywords, and it takes no convention.

A parsed :class:`OptimizerSpec` is validated by the optimizer classes' own checks
(:func:`optimlab.optim.check`, which builds no optimizer); its :meth:`~OptimizerSpec.label` is
the canonical text, which parses back to an equal spec.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..optim import available, check, conventions, create, defaults
from .errors import UserError
from .external import build_external, check_external, external_defaults
from .limits import LIMITS, MAX_NUMBER_CHARS, MAX_SPEC_CHARS, short

log = logging.getLogger(__name__)

#: a parameter's name
KEY = re.compile(r"^[a-z_][a-z0-9_]*$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_INTEGER = re.compile(r"^[+-]?[0-9]+(_[0-9]+)*$")
# a number up to its exponent's "e", right after a separator: the "+" that follows is its sign
_BEFORE_EXPONENT_SIGN = re.compile(r"(^|[=/,:@+])[+-]?([0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)[eE]$")


@dataclass(frozen=True)
class Part:
    """One ``+``-separated part of a spec-like text, split but not interpreted.

    Attributes:
        text: the part as written (stripped).
        name: its lower-cased name (a ``MODULE:CLASS`` reference as written).
        params: ``KEY -> value text``, in the order written.
        suffixes: the ``@`` suffixes, stripped.
    """

    text: str
    name: str
    params: dict[str, str]
    suffixes: tuple[str, ...]


def split_top(text: str) -> list[str]:
    """Split ``text`` at ``+``, except at a ``+`` that is an exponent's sign (``1e+16``).

    ``adam:lr=2e+1+sgd`` -> ``["adam:lr=2e+1", "sgd"]``.
    """
    parts: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch != "+":
            continue
        if i + 1 < len(text) and text[i + 1].isdigit() and _BEFORE_EXPONENT_SIGN.search(text[start:i]):
            continue
        parts.append(text[start:i])
        start = i + 1
    parts.append(text[start:])
    return parts


def parse_parts(text: str, *, noun: str, expected: str, classes: bool = False) -> list[Part]:
    """Split ``text`` by the grammar above; a malformed or repeated ``key=value`` raises
    :class:`UserError` naming the ``noun`` (e.g. "hyperparameter") and the ``expected`` form.
    With ``classes``, a part may start ``MODULE:CLASS`` (kept as its name, as written)."""
    if len(text) > MAX_SPEC_CHARS:
        raise UserError(f"{short(text)!r} is too long (at most {MAX_SPEC_CHARS:,} characters)")
    parts = []
    for raw in split_top(text):
        head, *suffixes = raw.strip().split("@")
        name, _, rest = head.partition(":")
        if classes and rest and "=" not in rest.partition(":")[0] and name.strip().lower() not in available():
            cls, _, rest = rest.partition(":")
            name = f"{name.strip()}:{cls.strip()}"
        else:
            name = name.strip().lower()
        parts.append(_part(text, raw, name, rest, suffixes, noun, expected))
    return parts


def _part(text: str, raw: str, name: str, rest: str, suffixes: list[str], noun: str, expected: str
          ) -> Part:
    params: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = (x.strip() for x in item.partition("="))
            if not eq or not KEY.match(key) or not value:
                raise UserError(
                    f"Invalid {noun} {short(item.strip())!r} in {short(text)!r} (expected {expected})"
                )
            if key in params:
                raise UserError(f"{noun.capitalize()} {key!r} given twice in {short(raw.strip())!r}")
            params[key] = value
    return Part(raw.strip(), name, params, tuple(a.strip() for a in suffixes))


def parse_number(text: str) -> float | int | None:
    """``text`` as a number when Python's ``float()`` reads it (ints stay ints), else None.

    Accepts exponents with either sign (``1e16``, ``2e+1``), ``_`` between digits, ``inf`` and
    ``nan`` (the optimizers then reject those by name).

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
    return int(text) if _INTEGER.match(text) else value


def is_number(text: str) -> bool:
    """Whether ``text`` is a number of the grammar."""
    return parse_number(text) is not None


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

    def resolved(self) -> dict[str, Any]:
        """Every hyperparameter this phase runs with: its own over its defaults (the registry's
        under its convention; for a class by reference, its constructor's signature)."""
        base = external_defaults(self.name) if self.external else defaults(self.name, self.convention)
        return {**base, **self.hyperparameters}

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

    def __hash__(self) -> int:
        # equal phases may spell a number differently (1 == 1.0), so not the label
        return hash((self.name, self.convention, frozenset(self.hyperparameters), self.epochs))


@dataclass(frozen=True)
class OptimizerSpec:
    """A parsed spec: one or more phases run one after the other."""

    phases: tuple[Phase, ...]

    @cached_property
    def _label(self) -> str:
        return "+".join(p.label() for p in self.phases)

    def label(self) -> str:
        """The canonical text (computed once)."""
        return self._label

    @property
    def name(self) -> str:
        """The registry name of the first phase."""
        return self.phases[0].name

    def phase_at(self, epoch: int) -> int:
        """Index of the phase that trains epoch ``epoch`` (0-based)."""
        start = 0
        for i, p in enumerate(self.phases):
            if p.epochs is None or epoch < start + p.epochs:
                return i
            start += p.epochs
        return len(self.phases) - 1

    def __hash__(self) -> int:
        return hash(self.phases)


def format_value(v: Any) -> str:
    """A hyperparameter value as the grammar writes it. Exponents are written without ``+``
    (``1e+37`` -> ``1e37``): ``+`` separates the phases of a spec."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, (tuple, list)):
        return "/".join(format_value(x) for x in v)
    return str(v).replace("e+", "e")


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


def _phase(part: Part, text: str) -> Phase:
    where = short(part.text)
    external = ":" in part.name
    if not external and part.name not in available():
        raise UserError(
            f"Unknown optimizer {short(part.name)!r} in {short(text)!r} (expected one of "
            f"{', '.join(available())}, or module:Class, e.g. torch.optim:Adam)"
        )
    hps = {key: parse_value(value) for key, value in part.params.items()}
    convention, epochs = None, None
    for a in part.suffixes:
        if re.fullmatch(r"[0-9]+", a):
            if epochs is not None:
                raise UserError(f"Phase length given twice in {where!r} (@{epochs} and @{short(a)})")
            if len(a.lstrip("0")) > len(str(LIMITS["epochs"])) or not 1 <= int(a) <= LIMITS["epochs"]:
                raise UserError(
                    f"Invalid phase length {short(a)!r} in {where!r} (expected epochs from 1 to "
                    f"{LIMITS['epochs']:,})"
                )
            epochs = int(a)
        elif a in conventions() and external:
            raise UserError(f"Invalid '@{a}' in {where!r}: conventions apply to optimlab's "
                            f"optimizers, not to {short(part.name)}")
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
    if external:
        check_external(part.name, hps)
        return Phase(part.name, convention, hps, epochs)
    try:
        check(part.name, convention, **hps)
    except (ValueError, TypeError, RuntimeError) as e:
        # RuntimeError: the combinations torch.optim also refuses (fused with foreach)
        raise UserError(f"{e} in {where!r}") from None
    return Phase(part.name, convention, hps, epochs)


def parse_spec(text: str) -> OptimizerSpec:
    """Parse one optimizer spec; raises :class:`UserError` with a one-line message."""
    if not text or not text.strip():
        raise UserError("Empty optimizer spec (expected e.g. adam or adam:lr=3e-4)")
    parts = parse_parts(text, noun="hyperparameter", expected="key=value", classes=True)
    phases = tuple(_phase(p, text) for p in parts)
    for p in phases[:-1]:
        if p.epochs is None:
            raise UserError(
                f"Phase {short(p.label())!r} in {short(text)!r} needs a length, e.g. "
                f"{short(p.label())}@3"
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


def as_spec(spec: str | OptimizerSpec) -> OptimizerSpec:
    """``spec`` parsed (text) or as it is (already parsed)."""
    return spec if isinstance(spec, OptimizerSpec) else parse_spec(spec)


def parse_specs(specs: str | OptimizerSpec | Any) -> list[OptimizerSpec]:
    """Several specs: comma-separated text (:func:`split_specs`) or a sequence of texts or specs."""
    if isinstance(specs, (str, OptimizerSpec)):
        specs = split_specs(specs) if isinstance(specs, str) else [specs]
    return [as_spec(s) for s in specs]


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


def build_optimizer(phase: Phase, params: Any, **options: Any):
    """Create the optimizer of ``phase`` over ``params`` (``options``: further keywords, such as
    ``skip_nonfinite=True``)."""
    if phase.external:
        return build_external(phase.name, params, phase.hyperparameters | options)
    return create(phase.name, params, convention=phase.convention, **phase.hyperparameters, **options)
