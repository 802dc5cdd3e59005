"""The operation vocabulary of update rules: one table that every backend reads.

Each update rule is one Python function over *array-likes*: objects that offer the small
arithmetic vocabulary of :data:`OPS` (``mul_``, ``add_``, ``addcmul_``, ``addcdiv_``, ``lerp_``,
``sqrt``, ``maximum_``...). Every backend is generated from, or walks, that one table:

* :class:`TensorList` runs each operation as one ``torch._foreach_*`` call over a list of tensors
  (the multi-tensor path);
* :class:`Tensorwise` runs it as the ordinary tensor method on one tensor (the per-tensor path);
* :class:`Recorder` writes it into a :class:`Tape` instead (the fused path), from which
  ``_cc.c_source`` writes a C loop and ``_fused.build_graph`` a ``torch.fx`` graph, both by
  evaluating the op's :attr:`Op.expr` over their own arithmetic (C expressions, graph nodes).

A new operation is therefore one row of :data:`OPS`: its operands, its scalar keyword, the forms
it has (in place, out of place), the torch function that computes it, and its element-wise
arithmetic written once over an :class:`Arith`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor

Scalar = float | int


class Arith(Protocol):
    """The element arithmetic an op's expression is written in (C strings, graph nodes...).

    Values are whatever the backend uses, or Python ints (literals of the rule); :data:`ONE` is the
    rule's literal ``1``, by which no multiplication is written (the rule wrote none). ``weight``
    prepares ``lerp``'s weight; ``bind`` gives one operation's result a name."""

    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def sqrt(self, a: Any) -> Any: ...
    def abs(self, a: Any) -> Any: ...
    def neg(self, a: Any) -> Any: ...
    def maximum(self, a: Any, b: Any) -> Any: ...
    def weight(self, a: Any) -> Any: ...
    def bind(self, a: Any) -> Any: ...


class _One:
    """The literal ``1`` of a rule (``alpha=1``, ``value=1``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ONE"


ONE = _One()


class Op(NamedTuple):
    """One row of the vocabulary.

    ``operands``: the array operands after ``self`` (``"x"``: an array-like or a Python number,
    ``"t"``: an array-like only). ``scalar``: the name of the trailing number (``alpha``,
    ``value``, ``weight``) and ``default`` its default (None: required). ``forms``: ``"i"`` (the
    in-place method ``name_``), ``"o"`` (out of place ``name``) or both. ``torch``: the name of
    the torch function (``torch._foreach_<torch>[_]``, ``Tensor.<torch>[_]``). ``expr``: the
    element arithmetic ``expr(A, self, *operands, scalar)``, or one per branch where
    ``branch(scalar)`` picks the branch at record time.
    """

    operands: tuple[str, ...]
    scalar: str | None
    default: Scalar | None
    forms: str
    torch: str
    expr: Callable[..., Any] | dict[str, Callable[..., Any]]
    branch: Callable[[Any], str] | None = None


def _lerp_branch(weight: Any) -> str:
    # torch's lerp switches formula at |weight| = 0.5; the branch is part of a tape's structure
    return "lo" if abs(weight) < 0.5 else "hi"


def _maximum(a: Any, b: Any) -> Any:
    return a.maximum(b)


#: the vocabulary: name -> :class:`Op`. Each expression keeps the arithmetic order of torch's
#: eager CPU kernels (``addcdiv``: ``self + value*a/b``; ``addcmul``: ``self + value*a*b``;
#: ``lerp``: its two branches), so that compiled loops and the multi-tensor path agree.
OPS: dict[str, Op] = {
    "mul": Op(("x",), None, None, "io", "mul", lambda A, x, y: A.mul(x, y)),
    "div": Op(("x",), None, None, "io", "div", lambda A, x, y: A.div(x, y)),
    "add": Op(("x",), "alpha", 1, "io", "add", lambda A, x, y, alpha: A.add(x, A.mul(alpha, y))),
    "addcmul": Op(
        ("t", "t"), "value", 1, "io", "addcmul",
        lambda A, x, a, b, value: A.add(x, A.mul(A.mul(value, a), b)),
    ),
    "addcdiv": Op(
        ("t", "t"), "value", 1, "i", "addcdiv",
        lambda A, x, a, b, value: A.add(x, A.div(A.mul(value, a), b)),
    ),
    "lerp": Op(
        ("t",), "weight", None, "i", "lerp",
        {
            "lo": lambda A, x, end, w: A.add(x, A.mul(A.weight(w), A.sub(end, x))),
            "hi": lambda A, x, end, w: A.sub(end, A.mul(A.sub(end, x), A.sub(1, A.weight(w)))),
        },
        _lerp_branch,
    ),
    "sqrt": Op((), None, None, "io", "sqrt", lambda A, x: A.sqrt(x)),
    "abs": Op((), None, None, "o", "abs", lambda A, x: A.abs(x)),
    "neg": Op((), None, None, "o", "neg", lambda A, x: A.neg(x)),
    "maximum": Op(("t",), None, None, "i", "maximum", lambda A, x, y: A.maximum(x, y)),
    "copy": Op(("t",), None, None, "i", "copy", lambda A, x, y: y),
    "clone": Op((), None, None, "o", "clone", lambda A, x: x),
}


def tape_expr(name: str) -> Callable[..., Any]:
    """The expression of a tape operation (``"lerp_lo"`` names the branch of ``lerp``)."""
    base, _, branch = name.partition("_")
    expr = OPS[base].expr
    return expr[branch] if isinstance(expr, dict) else expr


def _split(op: Op, args: tuple, kw: dict) -> tuple[tuple, Any]:
    """The operands and the scalar of a call ``method(*args, **kw)``, with ``add``'s number
    operand folded (``add_(c, alpha=a)`` is ``add_(c*a)``, as torch's scalar overload has no
    alpha)."""
    n = len(op.operands)
    operands = args[:n]
    if op.scalar is None:
        return operands, None
    value = args[n] if len(args) > n else kw.get(op.scalar, op.default)
    if op.operands == ("x",) and not _is_array(operands[0]):
        return (operands[0] * value if value != 1 else operands[0],), 1
    return operands, value


def _is_array(x: Any) -> bool:
    return isinstance(x, (TensorList, Tensorwise, Recorder))


def _install(cls: type, make: Callable[[str, Op, bool], Callable[..., Any]]) -> type:
    """Give ``cls`` one method per form of every op of :data:`OPS`."""
    for name, op in OPS.items():
        for form in op.forms:
            in_place = form == "i"
            method = make(name, op, in_place)
            method.__name__ = method.__qualname__ = name + ("_" if in_place else "")
            method.__doc__ = f"``{op.torch}`` {'in place' if in_place else 'out of place'}"
            setattr(cls, method.__name__, method)
    return cls


# ---- the multi-tensor backend ------------------------------------------------------------------


class TensorList:
    """A list of tensors whose arithmetic runs as ``torch._foreach_*`` multi-tensor ops."""

    __slots__ = ("tensors",)

    def __init__(self, tensors: Sequence[Tensor]):
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self):
        return iter(self.tensors)

    @staticmethod
    def _arg(x: Any) -> Any:
        return x.tensors if isinstance(x, TensorList) else x


def _foreach_method(name: str, op: Op, in_place: bool) -> Callable[..., Any]:
    if name == "clone":  # torch has no _foreach_clone
        return lambda self: TensorList([t.clone() for t in self.tensors])
    fn = getattr(torch, f"_foreach_{op.torch}{'_' if in_place else ''}")

    def method(self: TensorList, *args: Any, **kw: Any) -> TensorList:
        operands, value = _split(op, args, kw)
        inputs = [x.tensors if isinstance(x, TensorList) else x for x in operands]
        extra = {} if value is None or (op.scalar == "alpha" and value == 1) else {op.scalar: value}
        out = fn(self.tensors, *inputs, **extra)
        return self if in_place else TensorList(out)

    return method


_install(TensorList, _foreach_method)


# ---- the per-tensor backend --------------------------------------------------------------------


class Tensorwise:
    """One tensor with the same vocabulary as :class:`TensorList`, using ordinary tensor ops."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Tensor):
        self.tensor = tensor

    @staticmethod
    def _arg(x: Any) -> Any:
        return x.tensor if isinstance(x, Tensorwise) else x


def _tensor_method(name: str, op: Op, in_place: bool) -> Callable[..., Any]:
    if name == "maximum":  # Tensor has no maximum_
        def call(t: Tensor, other: Tensor) -> Tensor:
            return torch.maximum(t, other, out=t)
    else:
        call = getattr(Tensor, op.torch + ("_" if in_place else ""))

    def method(self: Tensorwise, *args: Any, **kw: Any) -> Tensorwise:
        operands, value = _split(op, args, kw)
        inputs = [x.tensor if isinstance(x, Tensorwise) else x for x in operands]
        extra = {} if value is None or (op.scalar == "alpha" and value == 1) else {op.scalar: value}
        out = call(self.tensor, *inputs, **extra)
        return self if in_place else Tensorwise(out)

    return method


_install(Tensorwise, _tensor_method)

ArrayLike = TensorList | Tensorwise


# ---- the recording backend ---------------------------------------------------------------------


class Tape:
    """The operations one call of an update rule performed, and its scalar arguments.

    ``ops`` holds tuples ``(op, out, arg, ...)``: ``op`` a tape operation (an :data:`OPS` name,
    or ``lerp_lo``/``lerp_hi``), ``out`` and tensor arguments value ids (ids ``0..n_inputs-1``
    are the inputs: params, grads, then the state buffers), scalar arguments ``("s", slot)`` for a
    runtime float or ``("c", value)`` for an ``int`` literal of the rule (part of the structure).
    ``scalars[slot]`` is the value of each slot for this call. Rules never write their gradients
    (input 1): recording such a write raises.
    """

    __slots__ = ("n_inputs", "n_values", "ops", "scalars")

    def __init__(self, n_inputs: int) -> None:
        self.n_inputs = n_inputs
        self.n_values = n_inputs
        self.ops: list[tuple] = []
        self.scalars: list[float] = []

    def inputs(self) -> list[Recorder]:
        return [Recorder(self, i) for i in range(self.n_inputs)]

    def structure(self) -> tuple:
        """What a compiled kernel depends on: everything but the slot values."""
        return (self.n_inputs, len(self.scalars), tuple(self.ops))

    def arg(self, x: Any) -> tuple:
        kind = type(x)
        if kind is float:
            scalars = self.scalars
            scalars.append(x)
            return ("s", len(scalars) - 1)
        if kind is Recorder:
            if x.tape is not self:
                raise RuntimeError("an array-like of another tape was used in an update rule")
            return ("v", x.index)
        if isinstance(x, Tensor):
            raise TypeError("update rules pass hyperparameters as Python numbers, not tensors")
        if isinstance(x, int) and not isinstance(x, bool):
            return ("c", x)
        self.scalars.append(float(x))
        return ("s", len(self.scalars) - 1)


class Recorder:
    """An array-like that records the rule's operations on a :class:`Tape`."""

    __slots__ = ("index", "tape")

    def __init__(self, tape: Tape, index: int) -> None:
        self.tape = tape
        self.index = index


def _record_method(name: str, op: Op, in_place: bool) -> Callable[..., Any]:
    n, scalar, default, branch = len(op.operands), op.scalar, op.default, op.branch
    folds = op.operands == ("x",) and scalar is not None

    def method(self: Recorder, *args: Any, **kw: Any) -> Recorder:
        # the hot path of every fused step: one call per operation of the rule, kept lean
        tape = self.tape
        arg = tape.arg
        if scalar is None:
            recorded = [arg(x) for x in args]
            tape_op = name
        else:
            value = args[n] if len(args) > n else kw.get(scalar, default)
            first = args[0] if n else None
            if folds and type(first) is not Recorder:
                # add_(c, alpha=a) is add_(c*a): torch's scalar overload has no alpha
                recorded = [arg(first * value if value != 1 else first), ("c", 1)]
            else:
                recorded = [arg(x) for x in args[:n]]
                recorded.append(arg(value))
            tape_op = name if branch is None else f"{name}_{branch(value)}"
        index = self.index
        if in_place:
            if index == 1:
                raise RuntimeError("an update rule wrote its gradients in place")
            out = index
        else:
            out = tape.n_values
            tape.n_values = out + 1
        tape.ops.append((tape_op, out, ("v", index), *recorded))
        return self if in_place else Recorder(tape, out)

    return method


_install(Recorder, _record_method)


def evaluate(
    structure: tuple, arith: Arith, inputs: Sequence[Any], slot: Callable[[int], Any]
) -> tuple[dict[int, Any], list[int]]:
    """Replay ``structure`` over ``arith``: the final value of every tape value, and the inputs
    the rule wrote (in input order). ``inputs`` are the backend values of the tape's inputs;
    ``slot(k)`` the backend value of scalar slot ``k``."""
    n_inputs, _, ops = structure
    values: dict[int, Any] = dict(enumerate(inputs))

    def arg(a: tuple) -> Any:
        kind, v = a
        if kind == "v":
            return values[v]
        if kind == "c":
            return ONE if v == 1 else v
        return slot(v)

    mutated: set[int] = set()
    for op, out, *args in ops:
        values[out] = arith.bind(tape_expr(op)(arith, *map(arg, args)))
        if out < n_inputs:
            mutated.add(out)
    return values, sorted(mutated)
