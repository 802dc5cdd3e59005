"""Checking claims: run the experiments they need once, measure each check, decide, write.

:func:`run_claims` returns a :class:`ClaimsReport`; :func:`write_outputs` writes ``claims.csv``
(one row per check, the claim's verdict on each of its rows) and ``claims.html``
(:mod:`.page`). Rows hold no
timings, so the same seed gives the same rows.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import UserError
from ..limits import check_count
from ..stats import Interval
from .catalog import CLAIMS, EXPERIMENTS, Check, Claim
from .experiments import (
    Experiment,
    ExperimentResult,
    Progress,
    Scale,
    TrainingExperiment,
    run_experiments,
)
from .quantities import QUANTITIES, Measurement
from .verdicts import INCONCLUSIVE, combine

CSV_NAME = "claims.csv"
HTML_NAME = "claims.html"
LEVEL = 0.95

CSV_COLUMNS = (
    "claim_id", "claim", "seed", "experiment", "verdict", "check", "quantity", "statistic",
    "estimate", "ci_low", "ci_high", "ci_level", "n", "test", "check_verdict",
    "replicate_verdicts", "evidence",
)


@dataclass(frozen=True)
class Replicate:
    """A check measured on one tuning replicate of its experiment."""

    measurement: Measurement
    interval: Interval
    verdict: str

    def numbers(self) -> str:
        m, iv = self.measurement, self.interval
        return f"{m.show(iv.estimate)} [{m.show(iv.low)}, {m.show(iv.high)}]"


@dataclass(frozen=True)
class CheckResult:
    """A check on every replicate: its verdict is theirs when they agree, else inconclusive."""

    check: Check
    replicates: tuple[Replicate, ...]

    @property
    def verdict(self) -> str:
        verdicts = {r.verdict for r in self.replicates}
        return verdicts.pop() if len(verdicts) == 1 else INCONCLUSIVE

    @property
    def within_tuning_noise(self) -> bool:
        """The replicates of the tuning study disagree about this check."""
        return len({r.verdict for r in self.replicates}) > 1

    @property
    def measurement(self) -> Measurement:
        return self.replicates[0].measurement

    @property
    def interval(self) -> Interval:
        return self.replicates[0].interval

    def test_text(self) -> str:
        t, show = self.check.test, self.measurement.show
        if t.kind == "within":
            return (f"holds if the interval lies within ±{show(t.margin).lstrip('+')}; does not "
                    "hold if it lies wholly outside")
        if t.fail == t.hold:
            return (f"holds if the interval lies above {show(t.hold)}; does not hold if it lies "
                    f"below; inconclusive if it contains {show(t.hold)}")
        return (f"holds if the interval lies above {show(t.hold)}; otherwise does not hold if it "
                f"lies below {show(t.fail)} (a smaller effect does not count); inconclusive otherwise")

    def replicate_text(self) -> str:
        """``""`` for one replicate, else each replicate's numbers and verdict."""
        if len(self.replicates) == 1:
            return ""
        text = "; ".join(f"tuning replicate {i + 1}: {r.numbers()} ({r.verdict})"
                         for i, r in enumerate(self.replicates))
        if self.within_tuning_noise:
            text += "; within tuning noise: the replicates disagree"
        return text

    def numbers_text(self) -> str:
        """Each replicate's numbers and verdict, or the one replicate's numbers."""
        return self.replicate_text() or self.replicates[0].numbers()

    def evidence(self) -> str:
        m = self.measurement
        return f"{m.what}: {self.numbers_text()} ({m.summary(LEVEL)}); {m.context}"


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> str:
        return combine([c.verdict for c in self.checks])

    def evidence(self) -> str:
        return " | ".join(f"{c.check.label}: {c.verdict}. {c.evidence()}" for c in self.checks)


@dataclass
class ClaimsReport:
    claims: list[ClaimResult]
    experiments: dict[str, ExperimentResult]
    definitions: dict[str, Experiment]
    scale: Scale
    seconds: float = 0.0  # wall time of the whole check (shown, never in the rows)
    extra: dict[str, str] = field(default_factory=dict)


def measure(check: Check, result: ExperimentResult) -> CheckResult:
    """Measure one check on every replicate of its experiment's result and decide it."""
    out = []
    for view in result.views():
        measurement = QUANTITIES[check.quantity](view, **check.kwargs())
        interval = measurement.interval(LEVEL)
        out.append(Replicate(measurement, interval, check.test.decide(interval)))
    return CheckResult(check, tuple(out))


def check_claims(
    claims: Sequence[Claim] = CLAIMS,
    scale: Scale | None = None,
    *,
    experiments: Mapping[str, Experiment] = EXPERIMENTS,
    jobs: int = 1,
    data_dir: str | None = None,
) -> list[str]:
    """Check everything :func:`run_claims` would be given, before anything runs or is written:
    the scale, ``jobs``, each claim's experiment, quantity and optimizers, and the data files
    under ``data_dir`` of every training experiment. Returns the experiments' names, in order.

    Raises:
        UserError: naming what is wrong.
    """
    check_scale(scale or Scale())
    check_count("jobs", jobs)
    names: list[str] = []
    for c in claims:
        for k in c.checks:
            where = k.experiment or c.experiment
            if where not in experiments:
                raise UserError(f"Claim {c.id!r} names unknown experiment {where!r}")
            if k.quantity not in QUANTITIES:
                raise UserError(f"Claim {c.id!r} names unknown quantity {k.quantity!r}")
            labels = _labels(experiments[where])
            for key in ("a", "b"):
                name = k.kwargs().get(key)
                if name is not None and name not in labels:
                    raise UserError(
                        f"Claim {c.id!r} names {name!r}, which experiment {where!r} does "
                        f"not run (expected one of {', '.join(sorted(labels))})"
                    )
            if where not in names:
                names.append(where)
    if data_dir:
        from pathlib import Path

        from ..tasks import DataOptions, get_task, load_dataset

        for task in dict.fromkeys(getattr(experiments[n], "task", None) for n in names):
            if task is not None:  # the files are found and read here, not in a worker later
                load_dataset(get_task(task), DataOptions(Path(data_dir)))
    return names


def run_claims(
    claims: Sequence[Claim] = CLAIMS,
    scale: Scale | None = None,
    *,
    experiments: Mapping[str, Experiment] = EXPERIMENTS,
    jobs: int = 1,
    data_dir: str | None = None,
    progress: Progress | None = None,
) -> ClaimsReport:
    """Run the experiments ``claims`` need (each once) and check every claim.

    Raises:
        UserError: what :func:`check_claims` finds wrong.
    """
    scale = scale or Scale()
    names = check_claims(claims, scale, experiments=experiments, jobs=jobs, data_dir=data_dir)
    began = time.monotonic()
    results = run_experiments([experiments[n] for n in names], scale, jobs=jobs,
                              data_dir=data_dir, progress=progress)
    out = [ClaimResult(c, tuple(measure(k, results[k.experiment or c.experiment])
                                for k in c.checks)) for c in claims]
    return ClaimsReport(out, results, {n: experiments[n] for n in names}, scale,
                        time.monotonic() - began)


def _labels(exp: Experiment) -> set[str]:
    """The names a check may compare on ``exp``."""
    if isinstance(exp, TrainingExperiment):
        return {*exp.optimizers, *(v[0] for v in exp.variants), *(f[0] for f in exp.fixed),
                "best-tuned"}
    return set(exp.optimizers)


def check_scale(scale: Scale) -> None:
    """Every field of ``scale`` in range; :class:`UserError` otherwise."""
    check_count("seed", scale.seed, minimum=0)
    check_count("seeds", scale.seeds, minimum=2)
    check_count("tune seeds", scale.tune_seeds, minimum=1)
    check_count("replicates", scale.replicates, minimum=1)
    if scale.grid_points is not None:
        check_count("grid points", scale.grid_points, minimum=2)
    check_count("starts", scale.starts, minimum=2)
    if scale.epochs is not None:
        check_count("epochs", scale.epochs, minimum=1)
    if scale.per_decade is not None:
        check_count("points per decade", scale.per_decade, minimum=1)
    if scale.surface_steps is not None:
        check_count("surface steps", scale.surface_steps, minimum=1)


# ---- outputs ------------------------------------------------------------------------------------
def _num(x: float) -> str:
    return repr(float(x))


def rows(report: ClaimsReport) -> list[dict[str, str]]:
    """One row per check, as written to ``claims.csv``."""
    out = []
    for r in report.claims:
        for c in r.checks:
            iv = c.interval
            out.append({
                "claim_id": r.claim.id, "claim": r.claim.text, "seed": r.claim.seed,
                "experiment": r.claim.experiment, "verdict": r.verdict, "check": c.check.label,
                "quantity": c.measurement.what, "statistic": c.measurement.summary(LEVEL),
                "estimate": _num(iv.estimate), "ci_low": _num(iv.low), "ci_high": _num(iv.high),
                "ci_level": f"{iv.level:.4f}", "n": str(iv.n), "test": c.test_text(),
                "check_verdict": c.verdict,
                "replicate_verdicts": "; ".join(r.verdict for r in c.replicates),
                "evidence": c.evidence(),
            })
    return out


def claims_csv(report: ClaimsReport) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(report))
    return buf.getvalue()
