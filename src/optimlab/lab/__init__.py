"""The lab: the seeds' experiments run end to end (tasks -> runs -> store -> report).

The three commands as library calls, each with the command line's options as keyword arguments
and a result object (its summary as plain rows, ``.table()``, and the files written)::

    from optimlab import lab

    result = lab.compare(task="iris-softmax", optimizers="sgd:lr=0.1,adam", seeds=2, out="runs/i")
    result = lab.tune(task="digits-mlp", optimizers="sgd,adam", budget=4, out="runs/t")
    result = lab.surface(function="valley", optimizers="sgd,momentum", out="runs/s")

Folders are features: :mod:`.compare`, :mod:`.tune` and :mod:`.surface` (each its run logic, its
report and its command), over a shared core (:mod:`.tasks`, :mod:`.data`, :mod:`.runner`,
:mod:`.store`, :mod:`.checkpoint`, :mod:`.spec`, :mod:`.schedules`, :mod:`.stats`,
:mod:`.pages`, :mod:`.files`, :mod:`.parallel`). The names ``compare``, ``tune`` and ``surface``
here are the functions; import a feature's modules with ``from optimlab.lab.tune import worker``.
"""

from .compare import CompareResult, compare
from .errors import UserError
from .runspec import RunResult, RunSpec
from .surface import SurfaceResult, surface
from .tasks import DataOptions, Dataset, Task
from .tune import TuneResult, tune

__all__ = [
    "CompareResult",
    "DataOptions",
    "Dataset",
    "RunResult",
    "RunSpec",
    "SurfaceResult",
    "Task",
    "TuneResult",
    "UserError",
    "compare",
    "surface",
    "tune",
]
