"""``optimlab surface``: the real optimizer classes on 2-D surfaces, measured and drawn (seed 002).

Rooms: :mod:`.catalog` (the surfaces, and your own with ``Surface.from_function``), :mod:`.run`
(paths and their measurements), :mod:`.draw` (PNG, GIF, MP4), :mod:`.page` (the interactive
HTML page), :mod:`.api` (the library function :func:`surface` and :func:`write_outputs`),
:mod:`.cli` (the command). ``optimlab.lab.surface`` is the function; import the rooms with
``from optimlab.lab.surface import run``.
"""

from .api import SurfaceResult, surface, write_outputs
from .catalog import Surface, get_surface, surface_names
from .run import SurfaceRun, run_surface, run_trajectory

__all__ = [
    "Surface",
    "SurfaceResult",
    "SurfaceRun",
    "get_surface",
    "run_surface",
    "run_trajectory",
    "surface",
    "surface_names",
    "write_outputs",
]
