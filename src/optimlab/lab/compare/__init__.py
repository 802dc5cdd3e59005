"""``optimlab compare``: every optimizer on one task over several seeds, stored and reported.

Rooms: :mod:`.plan` (the options checked and parsed once, the runs), :mod:`.run` (the
library function :func:`compare`), :mod:`.summary` (the numbers read back from the store),
:mod:`.report` (``report.html``, ``summary.csv``), :mod:`.figures` (the PNGs), :mod:`.cli` (the
command). ``optimlab.lab.compare`` is the function; import the rooms with
``from optimlab.lab.compare import report``.
"""

from .plan import CompareConfig
from .run import CompareListener, CompareResult, compare

__all__ = ["CompareConfig", "CompareListener", "CompareResult", "compare"]
