"""``optimlab tune``: every optimizer tuned with the same budget on a validation split, then its
best configuration tested over several seeds (Choi et al. 2019; DeepOBS; AlgoPerf).

Rooms: :mod:`.space` (search spaces, from the registry), :mod:`.config` (a study's
configuration), :mod:`.storage` (Optuna storages, URL secrecy, creating a study), :mod:`.worker`
(claiming and running trials), :mod:`.finals` (the best configurations over the evaluation
seeds), :mod:`.results` (what a study holds, summarized), :mod:`.profiles` (time-to-target,
performance profiles, verdicts), :mod:`.report` (``report.html``, ``tune_summary.csv``),
:mod:`.api` (the library function :func:`tune`), :mod:`.cli` (the command).
``optimlab.lab.tune`` is the function; import the rooms with
``from optimlab.lab.tune import worker``.
"""

from .api import TuneListener, TuneResult, tune
from .config import TuneConfig

__all__ = ["TuneConfig", "TuneListener", "TuneResult", "tune"]
