"""``optimlab claims``: the seeds' claims about optimizers, each checked as numbers.

A claim is data (:mod:`.catalog`): what a seed says, the experiment that tests it, the quantity
measured and the threshold that decides it. :func:`run_claims` runs each experiment once under a
fair protocol (:mod:`.experiments`: equal tuning budgets, the same initial weights per seed,
several seeds or start points), measures every check (:mod:`.quantities`) with a confidence
interval, and decides ``holds``, ``does not hold`` or ``inconclusive`` (:mod:`.verdicts`).
:func:`write_outputs` writes ``claims.csv`` and ``claims.html``.
"""

from __future__ import annotations

from .catalog import CLAIMS, EXPERIMENTS, Check, Claim, get_claims
from .experiments import Scale, SurfaceExperiment, TrainingExperiment
from .page import write_outputs
from .run import ClaimResult, ClaimsReport, run_claims

__all__ = [
    "CLAIMS",
    "EXPERIMENTS",
    "Check",
    "Claim",
    "ClaimResult",
    "ClaimsReport",
    "Scale",
    "SurfaceExperiment",
    "TrainingExperiment",
    "get_claims",
    "run_claims",
    "write_outputs",
]
