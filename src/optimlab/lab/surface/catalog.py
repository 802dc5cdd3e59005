"""Two-dimensional test surfaces for watching optimizers move (seed 002's saddle and valley).

A :class:`Surface` is data: a torch function of two variables, the domain that plots show, the
start point of a run, the known minima, and the optimizer specs that draw a readable picture on it.
The built-in surfaces are listed by :func:`surface_names`; a user's own function becomes a surface
with :meth:`Surface.from_function`::

    import torch
    from optimlab.lab.surface.catalog import Surface

    bowl = Surface.from_function(
        lambda x, y: (x - 1) ** 2 + 10 * torch.sin(y) ** 2,
        name="bowl", domain=((-2, 3), (-2, 2)), start=(-1.5, 1.5), minima=[(1, 0)],
    )

Surfaces that are unbounded below (``saddle``, ``monkey-saddle``) have no minima. There, a path is
measured by its distance to the critical point it starts near and by the first step at which its
value falls to ``escape_value`` or below ("escaped"), instead of by a distance to a minimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from ...optim import available, entry
from ..errors import UserError
from ..spec import OptimizerSpec, format_value, parse_spec

#: ``f(x, y) -> z``: elementwise in ``x`` and ``y`` (0-d tensors for a point, grids for a plot)
SurfaceFunction = Callable[[Tensor, Tensor], Tensor]
Point = tuple[float, float]
Domain = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class Surface:
    """A function of two variables with what a plot and a run of it need.

    Attributes:
        name: registry name, e.g. ``"valley"``; also the stem of the output files.
        function: ``f(x, y)``, elementwise on float64 tensors (``torch`` ops only, so that
            autograd gives the gradient).
        formula: the equation as plain text, for legends and ``--list``.
        domain: ``((x_min, x_max), (y_min, y_max))``, the plotted rectangle.
        start: where runs start unless told otherwise.
        minima: the known global minima (empty for surfaces unbounded below).
        critical_point: for surfaces without minima, the stationary point that the lesson is about
            (the saddle point); distances are measured to it.
        escape_value: for surfaces without minima, a path has escaped once ``f <= escape_value``.
        optimizers: default optimizer specs (command-line text), chosen so every path is visible
            (for the built-in surfaces: the learning rates in the optimizers' registry entries).
        steps: default number of steps.
        description: one line on what the surface shows.
        divergence_radius: a path whose distance to the domain's centre exceeds this is stopped and
            recorded as diverged (as is one that reaches a non-finite value); by default 1000 times
            the domain's diagonal.
    """

    name: str
    function: SurfaceFunction
    formula: str
    domain: Domain
    start: Point
    minima: tuple[Point, ...] = ()
    critical_point: Point | None = None
    escape_value: float | None = None
    optimizers: tuple[str, ...] = ("sgd:lr=0.01", "momentum:lr=0.01", "adam:lr=0.05")
    steps: int = 200
    description: str = ""
    divergence_radius: float = 0.0

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_domain(self.domain)
        object.__setattr__(self, "start", _point("start", self.start))
        object.__setattr__(self, "minima", tuple(_point("minimum", m) for m in self.minima))
        if self.critical_point is not None:
            object.__setattr__(
                self, "critical_point", _point("critical_point", self.critical_point)
            )
        value = self.value(self.start)
        if not math.isfinite(value):
            raise UserError(
                f"Surface {self.name!r} is not finite at its start {self.start}: {value}"
            )
        if not self.minima and self.escape_value is None:
            # unbounded (or unknown) below: escaping means going one unit below the start
            object.__setattr__(self, "escape_value", value - 1.0)
        if self.escape_value is not None and not math.isfinite(self.escape_value):
            raise UserError(
                f"Invalid escape_value: {self.escape_value!r} (expected a finite number)"
            )
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise UserError(f"Invalid steps: {self.steps!r} (expected an integer >= 1)")
        if self.divergence_radius <= 0:
            (x0, x1), (y0, y1) = self.domain
            object.__setattr__(self, "divergence_radius", 1000.0 * math.hypot(x1 - x0, y1 - y0))

    @cached_property
    def specs(self) -> tuple[OptimizerSpec, ...]:
        """The default specs, parsed (once)."""
        return tuple(parse_spec(text) for text in self.optimizers)

    # ---- evaluation --------------------------------------------------------------------------
    def __call__(self, xy: Tensor) -> Tensor:
        """``f`` at a point given as a tensor of shape ``(2,)`` (keeps the autograd graph)."""
        return self.function(xy[0], xy[1])

    def value(self, point: Sequence[float]) -> float:
        """``f`` at a point, as a Python float."""
        x, y = (torch.tensor(float(c), dtype=torch.float64) for c in point)
        with torch.no_grad():
            return float(self.function(x, y))

    def grid(self, n: int = 200) -> tuple[Tensor, Tensor, Tensor]:
        """``X, Y, Z`` on an ``n`` by ``n`` grid over the domain (rows follow ``y``)."""
        (x0, x1), (y0, y1) = self.domain
        xs = torch.linspace(x0, x1, n, dtype=torch.float64)
        ys = torch.linspace(y0, y1, n, dtype=torch.float64)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        with torch.no_grad():
            z = self.function(gx, gy)
        if not isinstance(z, Tensor) or z.shape != gx.shape:
            raise UserError(
                f"Surface {self.name!r}: f(x, y) must work elementwise on grids "
                f"(got shape {getattr(z, 'shape', type(z).__name__)} for inputs {tuple(gx.shape)})"
            )
        return gx, gy, z

    @property
    def bounded(self) -> bool:
        """Whether the surface has known minima (saddles are unbounded below: no minima)."""
        return bool(self.minima)

    @property
    def minimum_value(self) -> float | None:
        """The lowest value at the known minima, or None when there are none."""
        return min(self.value(m) for m in self.minima) if self.minima else None

    def reference_points(self) -> tuple[Point, ...]:
        """The points distances are measured to: the minima, else the critical point, else none."""
        if self.minima:
            return self.minima
        return (self.critical_point,) if self.critical_point is not None else ()

    # ---- construction --------------------------------------------------------------------------
    @classmethod
    def from_function(
        cls,
        f: SurfaceFunction,
        *,
        domain: Domain,
        start: Point,
        minima: Sequence[Point] = (),
        name: str = "custom",
        formula: str = "",
        critical_point: Point | None = None,
        escape_value: float | None = None,
        optimizers: Sequence[str] | None = None,
        steps: int = 200,
        description: str = "",
    ) -> Surface:
        """A surface from a user's torch function of two variables.

        Args:
            f: ``f(x, y) -> Tensor``; elementwise torch operations on float64 tensors, so that it
                evaluates on a grid for plots and on two 0-d tensors (with autograd) for runs.
            domain: ``((x_min, x_max), (y_min, y_max))``, the rectangle to plot.
            start: the default start point ``(x, y)``.
            minima: the known global minima (may be empty).
            name: the stem of the output files (letters, digits, ``-`` and ``_``).
            formula: text for the plot's title (defaults to ``name``).
            critical_point: without minima, the point distances are measured to.
            escape_value: without minima, the value at or below which a path counts as escaped
                (default: one below the value at ``start``).
            optimizers: default specs (command-line text); default sgd, momentum and adam.
            steps: default number of steps.
            description: one line for listings.

        Raises:
            UserError: a bad domain, start or minimum, or ``f`` not finite at ``start`` or not
                elementwise.
        """
        kwargs = {} if optimizers is None else {"optimizers": tuple(optimizers)}
        surface = cls(
            name=name,
            function=f,
            formula=formula or name,
            domain=domain,
            start=start,
            minima=tuple(minima),
            critical_point=critical_point,
            escape_value=escape_value,
            steps=steps,
            description=description or f"user-defined surface {name}",
            **kwargs,
        )
        surface.grid(3)  # fails here, not in the middle of a plot, when f is not elementwise
        return surface


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise UserError(
            f"Invalid surface name: {name!r} (expected letters, digits, '-' or '_', e.g. 'my-bowl')"
        )


def _check_domain(domain: Domain) -> None:
    try:
        (x0, x1), (y0, y1) = ((float(a), float(b)) for a, b in domain)
    except (TypeError, ValueError):
        raise UserError(
            f"Invalid domain: {domain!r} (expected ((x_min, x_max), (y_min, y_max)))"
        ) from None
    if not all(math.isfinite(v) for v in (x0, x1, y0, y1)) or not (x0 < x1 and y0 < y1):
        raise UserError(
            f"Invalid domain: {domain!r} (expected finite bounds with x_min < x_max, y_min < y_max)"
        )


def _point(what: str, point: Sequence[float]) -> Point:
    try:
        x, y = (float(c) for c in point)
    except (TypeError, ValueError):
        raise UserError(f"Invalid {what}: {point!r} (expected two numbers x, y)") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise UserError(f"Invalid {what}: {point!r} (expected finite numbers x, y)")
    return (x, y)


# ---- the built-in surfaces ---------------------------------------------------------------------


def _saddle(x: Tensor, y: Tensor) -> Tensor:
    return x**2 - y**2


def _valley(x: Tensor, y: Tensor) -> Tensor:
    return 0.05 * x**2 + 5.0 * y**2


#: the rotated valley's long axis runs at this angle to the x axis
_ROTATION = math.pi / 4
_COS, _SIN = math.cos(_ROTATION), math.sin(_ROTATION)


def _rotated_valley(x: Tensor, y: Tensor) -> Tensor:
    # the valley in coordinates (u, v) turned by 45 degrees: no coordinate is its steep axis
    u = _COS * x + _SIN * y
    v = -_SIN * x + _COS * y
    return _valley(u, v)


def rotated_point(u: float, v: float) -> tuple[float, float]:
    """A point of the valley in the rotated valley's coordinates."""
    return (_COS * u - _SIN * v, _SIN * u + _COS * v)


def _rosenbrock(x: Tensor, y: Tensor) -> Tensor:
    return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


def _beale(x: Tensor, y: Tensor) -> Tensor:
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def _himmelblau(x: Tensor, y: Tensor) -> Tensor:
    return (x**2 + y - 11.0) ** 2 + (x + y**2 - 7.0) ** 2


def _rastrigin(x: Tensor, y: Tensor) -> Tensor:
    two_pi = 2.0 * math.pi
    return 20.0 + x**2 - 10.0 * torch.cos(two_pi * x) + y**2 - 10.0 * torch.cos(two_pi * y)


def _monkey_saddle(x: Tensor, y: Tensor) -> Tensor:
    return x**3 - 3.0 * x * y**2


def registry_optimizers(surface: str) -> tuple[str, ...]:
    """The default specs of a built-in surface: every registered optimizer whose entry gives a
    learning rate for it (``OptimizerEntry.surfaces``), in the registry's order."""
    return tuple(
        f"{name}:lr={format_value(entry(name).surfaces[surface])}"
        for name in available()
        if surface in entry(name).surfaces
    )


_BUILTIN: tuple[Surface, ...] = (
    Surface(
        name="saddle",
        optimizers=registry_optimizers("saddle"),
        function=_saddle,
        formula="f(x, y) = x^2 - y^2",
        domain=((-1.5, 1.5), (-1.5, 1.5)),
        start=(1.0, 1e-3),
        critical_point=(0.0, 0.0),
        escape_value=-1.0,
        # long enough for every default path to escape: SGD at lr 0.02 does so at step 177
        steps=300,
        description="seed 002's saddle, started just off the ridge y = 0: SGD creeps to the "
        "saddle point, methods that rescale by gradient size step off it",
    ),
    Surface(
        name="valley",
        optimizers=registry_optimizers("valley"),
        function=_valley,
        formula="f(x, y) = 0.05 x^2 + 5 y^2",
        domain=((-10.0, 10.0), (-3.0, 3.0)),
        start=(-9.0, 2.0),
        minima=((0.0, 0.0),),
        # long enough for every default path to come within 1e-3 of the minimum
        steps=600,
        description="seed 002's elongated valley (condition number 100): SGD zig-zags across "
        "the steep direction and crawls along the floor; momentum averages the zig-zag away and "
        "keeps its speed along the floor",
    ),
    Surface(
        name="rotated-valley",
        optimizers=registry_optimizers("valley"),
        function=_rotated_valley,
        formula="f = 0.05 u^2 + 5 v^2, u = (x + y)/sqrt2, v = (y - x)/sqrt2",
        domain=((-10.0, 10.0), (-8.0, 8.0)),
        start=rotated_point(-9.0, 2.0),
        minima=((0.0, 0.0),),
        steps=600,
        description="the valley turned by 45 degrees, at the valley's learning rates: its axes "
        "are no longer the coordinates, so the per-coordinate step sizes of AdaGrad, RMSProp and "
        "Adam no longer match its curvature",
    ),
    Surface(
        name="rosenbrock",
        optimizers=registry_optimizers("rosenbrock"),
        function=_rosenbrock,
        formula="f(x, y) = (1 - x)^2 + 100 (y - x^2)^2",
        domain=((-2.0, 2.0), (-1.0, 3.0)),
        start=(-1.5, 2.0),
        minima=((1.0, 1.0),),
        steps=500,
        description="a curved, flat-floored valley; the minimum at (1, 1) is slow to reach",
    ),
    Surface(
        name="beale",
        optimizers=registry_optimizers("beale"),
        function=_beale,
        formula="f(x, y) = (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2",
        domain=((-4.5, 4.5), (-4.5, 4.5)),
        start=(1.0, 1.5),
        minima=((3.0, 0.5),),
        steps=500,
        description="flat plateaus and sharp ridges; minimum at (3, 0.5)",
    ),
    Surface(
        name="himmelblau",
        optimizers=registry_optimizers("himmelblau"),
        function=_himmelblau,
        formula="f(x, y) = (x^2 + y - 11)^2 + (x + y^2 - 7)^2",
        domain=((-5.0, 5.0), (-5.0, 5.0)),
        start=(-0.27, -0.9),
        minima=(
            (3.0, 2.0),
            (-2.805118086952745, 3.131312518250573),
            (-3.779310253377747, -3.283185991286170),
            (3.584428340330492, -1.848126526964404),
        ),
        steps=300,
        description="four global minima (f = 0); started near the local maximum, paths pick one",
    ),
    Surface(
        name="rastrigin",
        optimizers=registry_optimizers("rastrigin"),
        function=_rastrigin,
        formula="f(x, y) = 20 + x^2 - 10 cos(2 pi x) + y^2 - 10 cos(2 pi y)",
        domain=((-5.12, 5.12), (-5.12, 5.12)),
        start=(3.7, 4.3),
        minima=((0.0, 0.0),),
        steps=300,
        description="a grid of local minima around the global one at (0, 0): most paths stop "
        "in the nearest one, larger steps hop a few cells",
    ),
    Surface(
        name="monkey-saddle",
        optimizers=registry_optimizers("monkey-saddle"),
        function=_monkey_saddle,
        formula="f(x, y) = x^3 - 3 x y^2",
        domain=((-1.5, 1.5), (-1.5, 1.5)),
        start=(1.0, 1e-3),
        critical_point=(0.0, 0.0),
        escape_value=-1.0,
        steps=150,
        description="a degenerate saddle (zero gradient and curvature at the origin), unbounded "
        "below along three valleys",
    ),
)

SURFACES: dict[str, Surface] = {s.name: s for s in _BUILTIN}

#: the surfaces ``optimlab surface`` draws when given none (seed 002's two pictures, and the
#: valley turned so that its axes are not the coordinates)
DEFAULT_SURFACES: tuple[str, ...] = ("saddle", "valley", "rotated-valley")



def surface_names() -> list[str]:
    """The names :func:`get_surface` accepts."""
    return list(SURFACES)


def get_surface(name: str) -> Surface:
    """The built-in surface ``name``; unknown names raise :class:`UserError` listing the valid ones."""
    key = name.strip().lower() if isinstance(name, str) else name
    try:
        return SURFACES[key]
    except (KeyError, TypeError):
        raise UserError(
            f"Unknown surface {name!r} (expected one of {', '.join(SURFACES)})"
        ) from None
