"""Hyperparameter tuning with equal budgets: Optuna studies, search spaces, workers, final seeds.

The protocol (``optimlab tune``):

1. **Search.** Every optimizer spec gets its own Optuna study with the *same* budget of ``N``
   trials. A trial samples the optimizer's declared search space (:data:`SPACES`), trains on the
   training split minus a held-out validation fraction (``RunSpec(validation_fraction=...)``) and
   scores the last epoch's **validation** accuracy. The test split is never read while tuning.
   Each epoch's validation accuracy is reported to Optuna's ``MedianPruner``, which stops trials
   below the median of earlier trials at the same epoch; a run that diverges is pruned too. A
   pruned trial uses up its place in the budget, so every optimizer gets exactly ``N`` trials
   that ended ``COMPLETE`` or ``PRUNED``.
2. **Final evaluation.** The best trial of each optimizer (highest validation accuracy) is
   re-run on the whole training split over ``seeds`` seeds and evaluated on the test split.

Storage and workers. The studies live in one Optuna RDB storage: by default one SQLite file,
``<out>/tune.db``; ``--storage postgresql://...`` shares them between machines. The budget is
enforced through the storage itself: when a study is created, ``N`` *waiting* trials (one per
budget slot, ``user_attrs["slot"]``) are enqueued, and a worker only ever *claims* a waiting trial
(a transactional ``WAITING -> RUNNING`` update that exactly one worker wins); it never creates a
trial. So any number of workers, on any number of machines, finish with exactly ``N`` finished
trials per optimizer, and none is run twice. A running trial records a heartbeat every
``heartbeat_interval`` seconds; when a worker dies (kill -9, power cut) its trial goes stale after
``grace_period`` seconds, the next worker that looks marks it ``FAIL``, and Optuna's
``RetryFailedTrialCallback`` enqueues a waiting copy with the same hyperparameters and slot, which
some worker then runs. A trial that raises an error is marked ``FAIL`` and its slot re-enqueued,
and the error stops that worker.

SQLite note: Python's ``sqlite3`` starts its transactions lazily, at the first write, so two
processes can both read a trial as ``WAITING`` and both "win" it. Storages opened here make every
SQLite transaction ``BEGIN IMMEDIATE`` (one writer at a time, waiting up to 60 s for the lock) and
use WAL journaling, which makes the claim atomic. PostgreSQL gets this from ``SELECT ... FOR
UPDATE``, which Optuna already issues.

Passwords: storage URLs are shown only through :func:`mask_url` (``postgresql://user:***@host/db``),
and :func:`scrub` removes a password from any text (error messages) before it is shown or stored.
Local worker processes get the URL through the ``OPTIMLAB_STORAGE`` environment variable, so it
never appears in a process list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from .errors import UserError
from .spec import Phase, parse_spec, split_specs

log = logging.getLogger(__name__)

#: the seeds' nine optimizers (SEEDS.md), tuned by ``optimlab tune`` without arguments
DEFAULT_OPTIMIZERS = (
    "sgd", "momentum", "nag", "adagrad", "adadelta", "rmsprop", "adam", "nadam", "adamax",
)
DEFAULT_TASK = "mnist-mlp"
DEFAULT_BUDGET = 6
DEFAULT_EPOCHS = 2
DEFAULT_SEEDS = 5
DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_STUDY = "optimlab-tune"
DEFAULT_HEARTBEAT_S = 10
DEFAULT_GRACE_S = 60
#: a trial whose worker died this many times is given up (its slot stays unfilled and is reported)
DEFAULT_MAX_RETRY = 3
STORAGE_ENV = "OPTIMLAB_STORAGE"
DB_NAME = "tune.db"
CONFIG_VERSION = 1

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


# ---- search spaces, as data -----------------------------------------------------------------------
@dataclass(frozen=True)
class Dimension:
    """One tuned quantity, sampled uniformly in ``[low, high]`` (in log space when ``log``).

    The sampled value ``x`` sets hyperparameter ``key`` (element ``index`` of a tuple such as
    ``betas``) to ``x``, or to ``1 - x`` when ``complement``: momentum-like coefficients are
    searched as ``1 - beta`` on a log scale, so that 0.9, 0.99 and 0.999 are equally likely.
    """

    name: str
    low: float
    high: float
    key: str
    log: bool = True
    complement: bool = False
    index: int | None = None

    def value(self, x: float) -> float:
        return 1.0 - x if self.complement else x


@dataclass(frozen=True)
class SearchSpace:
    """A protocol's tuned dimensions per optimizer name, with where the protocol comes from."""

    name: str
    source: str
    dimensions: dict[str, tuple[Dimension, ...]]


#: learning-rate ranges per optimizer: four to five decades around each one's usual default
#: (torch.optim / Keras). DeepOBS tunes every optimizer on one grid 1e-5..1e2; that grid is
#: available as ``--lr-range 1e-5:1e2``, but with budgets of a few trials most of its points
#: diverge or stall, so the default ranges are narrower.
LR_RANGES: dict[str, tuple[float, float]] = {
    "sgd": (1e-3, 3.0),
    "momentum": (1e-4, 1.0),
    "nag": (1e-4, 1.0),
    "adagrad": (1e-3, 1.0),
    "adadelta": (1e-2, 30.0),
    "rmsprop": (1e-5, 1e-1),
    "rmsprop-tf1": (1e-5, 1e-1),
    "adam": (1e-5, 1e-1),
    "amsgrad": (1e-5, 1e-1),
    "adamw": (1e-5, 1e-1),
    "nadam": (1e-5, 1e-1),
    "adamax": (1e-5, 1e-1),
}


def _lr(name: str) -> Dimension:
    low, high = LR_RANGES[name]
    return Dimension("lr", low, high, "lr")


# The "full" space tunes every hyperparameter of the update rule, Adam's eps included, in the
# parameterisation of Choi et al. 2019 (log scale on 1 - beta and on eps); their ranges are per
# workload, these are chosen for small MLP/softmax tasks. Upper ends of 1 - momentum stop at 0.9
# so that NAG keeps a nonzero momentum (torch requires one with nesterov=True).
_ONE_MINUS_MOMENTUM = Dimension("one_minus_momentum", 1e-3, 0.9, "momentum", complement=True)
_ONE_MINUS_BETA1 = Dimension("one_minus_beta1", 1e-3, 1.0, "betas", complement=True, index=0)
_ONE_MINUS_BETA2 = Dimension("one_minus_beta2", 1e-4, 1e-1, "betas", complement=True, index=1)
_EPS = Dimension("eps", 1e-10, 1.0, "eps")
_ONE_MINUS_ALPHA = Dimension("one_minus_alpha", 1e-3, 1e-1, "alpha", complement=True)
_ONE_MINUS_RHO = Dimension("one_minus_rho", 1e-3, 1e-1, "rho", complement=True)
_WEIGHT_DECAY = Dimension("weight_decay", 1e-6, 1e-1, "weight_decay")

SPACES: dict[str, SearchSpace] = {
    "lr-only": SearchSpace(
        "lr-only",
        "DeepOBS (Schneider et al. 2019): only the learning rate is tuned, on a log scale; every "
        "other hyperparameter keeps its default",
        {name: (_lr(name),) for name in LR_RANGES},
    ),
    "full": SearchSpace(
        "full",
        "Choi et al. 2019, 'On Empirical Comparisons of Optimizers for Deep Learning': every "
        "hyperparameter is tuned (log scale on lr, 1 - beta and eps, Adam's eps included)",
        {
            "sgd": (_lr("sgd"),),
            "momentum": (_lr("momentum"), _ONE_MINUS_MOMENTUM),
            "nag": (_lr("nag"), _ONE_MINUS_MOMENTUM),
            "adagrad": (_lr("adagrad"), _EPS),
            "adadelta": (_lr("adadelta"), _ONE_MINUS_RHO, _EPS),
            "rmsprop": (_lr("rmsprop"), _ONE_MINUS_ALPHA, _EPS),
            "rmsprop-tf1": (_lr("rmsprop-tf1"), _ONE_MINUS_ALPHA, _EPS),
            "adam": (_lr("adam"), _ONE_MINUS_BETA1, _ONE_MINUS_BETA2, _EPS),
            "amsgrad": (_lr("amsgrad"), _ONE_MINUS_BETA1, _ONE_MINUS_BETA2, _EPS),
            "adamw": (_lr("adamw"), _ONE_MINUS_BETA1, _ONE_MINUS_BETA2, _EPS, _WEIGHT_DECAY),
            "nadam": (_lr("nadam"), _ONE_MINUS_BETA1, _ONE_MINUS_BETA2, _EPS),
            "adamax": (_lr("adamax"), _ONE_MINUS_BETA1, _ONE_MINUS_BETA2, _EPS),
        },
    ),
}


def dimensions(space: str, phase: Phase, lr_range: tuple[float, float] | None = None
               ) -> tuple[Dimension, ...]:
    """The tuned dimensions of ``phase`` under ``space``.

    Hyperparameters the spec sets explicitly (``adam:betas=0.9/0.99``) are fixed, not tuned;
    ``lr_range`` replaces the learning-rate range.
    """
    if space not in SPACES:
        raise UserError(f"Unknown search space {space!r} (expected one of {', '.join(SPACES)})")
    dims = SPACES[space].dimensions.get(phase.name)
    if dims is None:
        raise UserError(
            f"No search space for optimizer {phase.name!r} "
            f"(tunable: {', '.join(SPACES[space].dimensions)})"
        )
    out = []
    for d in dims:
        if d.key in phase.hyperparameters:
            continue
        if d.key == "lr" and lr_range is not None:
            d = Dimension("lr", lr_range[0], lr_range[1], "lr")
        out.append(d)
    return tuple(out)


def hyperparameters(phase: Phase, dims: Sequence[Dimension], values: dict[str, float]
                    ) -> dict[str, Any]:
    """The phase's explicit hyperparameters plus the tuned ones, from the sampled ``values``.

    A tuple key (``betas``) tuned in only one element takes the other from the class default.
    """
    hps: dict[str, Any] = dict(phase.hyperparameters)
    tuples: dict[str, list[Any]] = {}
    for d in dims:
        v = d.value(values[d.name])
        if d.index is None:
            hps[d.key] = v
        else:
            if d.key not in tuples:
                tuples[d.key] = list(_default(phase, d.key))
            tuples[d.key][d.index] = v
    for key, items in tuples.items():
        hps[key] = tuple(items)
    return hps


def _default(phase: Phase, key: str) -> Any:
    """The value ``key`` takes for ``phase`` when the spec leaves it out."""
    import inspect

    from ..optim.registry import entry, resolve

    resolved = resolve(phase.name, phase.convention)
    if key in resolved:
        return resolved[key]
    for klass in entry(phase.name).cls.__mro__:
        params = inspect.signature(klass.__init__).parameters
        if key in params and params[key].default is not inspect.Parameter.empty:
            return params[key].default
    raise UserError(f"Optimizer {phase.name!r} has no hyperparameter {key!r}")


def trial_spec(phase: Phase, hps: dict[str, Any]) -> str:
    """The spec text of ``phase`` with hyperparameters ``hps`` (parses back exactly).

    Exponents are written without ``+`` (``1e+37`` -> ``1e37``): ``+`` separates the phases of
    a spec, and no other part of a label can contain it.
    """
    return Phase(phase.name, phase.convention, hps, None).label().replace("e+", "e")


def parse_lr_range(text: str | None) -> tuple[float, float] | None:
    """``"1e-5:1e2"`` -> ``(1e-5, 100.0)``; None stays None."""
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        low = high = math.nan
    if not sep or not (0 < low < high) or not math.isfinite(high):
        raise UserError(f"Invalid lr range {text!r} (expected LOW:HIGH with 0 < LOW < HIGH)")
    return (low, high)


# ---- configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuneConfig:
    """Everything that defines a tuning study; stored in it, so workers need only its name.

    ``budget`` is one number for every optimizer: the equal budget of the comparison.
    """

    tasks: tuple[str, ...] = (DEFAULT_TASK,)
    optimizers: tuple[str, ...] = DEFAULT_OPTIMIZERS
    budget: int = DEFAULT_BUDGET
    space: str = "lr-only"
    lr_range: tuple[float, float] | None = None
    epochs: int | None = DEFAULT_EPOCHS
    batch_size: int | str | None = None
    seeds: int = DEFAULT_SEEDS
    seed: int = 0
    validation_fraction: float = DEFAULT_VALIDATION_FRACTION
    heartbeat_interval: int = DEFAULT_HEARTBEAT_S
    grace_period: int = DEFAULT_GRACE_S
    max_retry: int = DEFAULT_MAX_RETRY
    data_dir: str | None = None

    def __post_init__(self) -> None:
        def whole(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"Invalid {name} {value!r} (expected a whole number >= {low})")

        whole("budget", self.budget, 1)
        whole("seeds", self.seeds, 1)
        whole("seed", self.seed, 0)
        whole("heartbeat interval", self.heartbeat_interval, 1)
        whole("max retry", self.max_retry, 0)
        if self.epochs is not None:
            whole("epochs", self.epochs, 1)
        if self.grace_period <= self.heartbeat_interval:
            raise UserError(
                f"Invalid grace period {self.grace_period!r} (expected more than the heartbeat "
                f"interval, {self.heartbeat_interval} s)"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise UserError(
                f"Invalid validation fraction {self.validation_fraction!r} "
                "(expected 0 < fraction < 1; the test split is never used for tuning)"
            )
        if not self.tasks:
            raise UserError("No task to tune (expected --task NAME)")
        if not self.optimizers:
            raise UserError("No optimizer to tune (expected --optimizers sgd,adam,...)")
        if self.space not in SPACES:
            raise UserError(f"Unknown search space {self.space!r} (expected one of {', '.join(SPACES)})")

    @classmethod
    def create(cls, *, tasks: Sequence[str], optimizers: Sequence[str] | str, **kw: Any) -> TuneConfig:
        """Validate names and canonicalise the optimizer specs (``adam:lr=1e-3`` -> label)."""
        from .tasks import get_task

        if isinstance(optimizers, str):
            optimizers = split_specs(optimizers)
        labels = []
        for text in optimizers:
            spec = parse_spec(text)
            if len(spec.phases) != 1:
                raise UserError(
                    f"Cannot tune the multi-phase spec {text!r} (expected one optimizer per spec)"
                )
            if spec.label() in labels:
                raise UserError(f"Optimizer {spec.label()!r} is listed twice")
            labels.append(spec.label())
        for t in tasks:
            get_task(t)
        if len(set(tasks)) != len(tasks):
            raise UserError(f"A task is listed twice in {', '.join(tasks)}")
        cfg = cls(tasks=tuple(tasks), optimizers=tuple(labels), **kw)
        for label in labels:  # every optimizer must have a search space
            dimensions(cfg.space, parse_spec(label).phases[0], cfg.lr_range)
        return cfg

    def to_json(self) -> str:
        return json.dumps({"version": CONFIG_VERSION, **asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TuneConfig:
        data = json.loads(text)
        version = data.pop("version", None)
        if version != CONFIG_VERSION:
            raise UserError(
                f"Study was written by a different optimlab (config version {version!r}, "
                f"expected {CONFIG_VERSION})"
            )
        for key in ("tasks", "optimizers"):
            data[key] = tuple(data[key])
        if data.get("lr_range") is not None:
            data["lr_range"] = tuple(data["lr_range"])
        return cls(**data)

    def evaluation_seeds(self) -> list[int]:
        """The seeds of the final runs of each best configuration."""
        return [self.seed + i for i in range(self.seeds)]

    def studies(self, name: str) -> list[tuple[str, str, str]]:
        """``(study name, task, optimizer)`` of every sub-study, in a fixed order."""
        return [(substudy_name(name, t, o), t, o) for t in self.tasks for o in self.optimizers]


def substudy_name(name: str, task: str, optimizer: str) -> str:
    return f"{name}/{task}/{optimizer}"


# ---- storage --------------------------------------------------------------------------------------
_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (``postgresql://u:***@host/db``)."""
    return _PASSWORD_IN_URL.sub(r"\1***\3", url)


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):  # unparsable: fall back to the text between ':' and '@'
        m = _PASSWORD_IN_URL.search(url)
        return m.group(2) if m else None


def scrub(text: str, url: str | None) -> str:
    """``text`` with ``url``'s password (raw and URL-quoted) and any URL password masked."""
    text = mask_url(text)
    secret = _password(url) if url else None
    if secret:
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            if form:
                text = text.replace(form, "***")
    return text


def default_storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / DB_NAME).resolve()}"


def _check_url(url: str) -> None:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme.split("+")[0] not in ("sqlite", "postgresql", "mysql"):
        raise UserError(
            f"Invalid storage {mask_url(url)!r} (expected sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE)"
        )


def open_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, max_retry: int = DEFAULT_MAX_RETRY) -> RDBStorage:
    """An Optuna RDB storage at ``url``, with heartbeats when ``heartbeat_interval`` is given.

    SQLite files get WAL journaling, a 60 s lock timeout and ``BEGIN IMMEDIATE`` transactions
    (see the module docstring); errors are re-raised as one-line :class:`UserError` without the
    password.
    """
    _check_url(url)
    given, url = url, _with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60.0, "isolation_level": None}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                storage = RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period if heartbeat_interval else None,
                    heartbeat_stale_trial_callback=(
                        _retry_callback(max_retry) if heartbeat_interval else None
                    ),
                )
            break
        except ImportError as e:
            raise UserError(f"Cannot open storage {mask_url(given)}: {scrub(str(e), url)} "
                            "(for PostgreSQL: pip install psycopg2-binary)") from None
        except (SQLAlchemyError, StorageInternalError, ValueError, OSError) as e:
            # processes that open a new storage at once race to create its tables: retry
            if attempt < 4 and isinstance(e, (SQLAlchemyError, StorageInternalError)):
                time.sleep(0.2 * (attempt + 1))
                continue
            first = scrub(str(e), url).strip().splitlines()
            raise UserError(
                f"Cannot open storage {mask_url(given)}: {first[0] if first else type(e).__name__}"
            ) from None
    if sqlite:
        _serialize_sqlite(storage)
    return storage


def _with_driver(url: str) -> str:
    """``postgresql://`` with the driver that is installed.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3; optimlab depends on psycopg2
    (``psycopg2-binary``), so a bare URL uses psycopg2 unless psycopg 3 is importable.
    """
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def _retry_callback(max_retry: int) -> Callable[[optuna.Study, FrozenTrial], None]:
    # Optuna 4.9 renamed RetryFailedTrialCallback; both enqueue a WAITING copy of a stale trial
    # (same params, user_attrs, and the retry history in system_attrs)
    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if cls is None:
        cls = optuna.storages.RetryFailedTrialCallback
    return cls(max_retry=max_retry)


def _serialize_sqlite(storage: RDBStorage) -> None:
    from sqlalchemy import event

    engine = storage.engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=FULL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    # connections opened while the storage set itself up lack the pragmas: start afresh
    engine.dispose()


# ---- creating and reading a study ----------------------------------------------------------------
def _quiet() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def create_study(storage: RDBStorage, name: str, cfg: TuneConfig) -> None:
    """Create (or reopen) study ``name`` for ``cfg``: its sub-studies and their budget slots.

    Reopening with a different configuration raises :class:`UserError` naming the differences.
    Only one process should create a given study; workers wait until it is marked ready.
    """
    _quiet()
    root = optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                               direction="maximize")
    stored = root.user_attrs.get("optimlab_config")
    if stored is None:
        root.set_user_attr("optimlab_config", cfg.to_json())
    elif stored != cfg.to_json():
        old = json.loads(stored)
        new = json.loads(cfg.to_json())
        diff = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
                         for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
        raise UserError(
            f"Study {name!r} exists with another configuration ({diff}); "
            "use another --study or --out"
        )
    for sub, task, optimizer in cfg.studies(name):
        study = optuna.create_study(study_name=sub, storage=storage, load_if_exists=True,
                                    direction="maximize")
        if "slots" not in study.user_attrs:
            for slot in range(cfg.budget):
                study.enqueue_trial({}, user_attrs={"slot": slot})
            study.set_user_attr("task", task)
            study.set_user_attr("optimizer", optimizer)
            study.set_user_attr("slots", cfg.budget)
    root.set_user_attr("ready", True)


def load_config(storage: RDBStorage, name: str, *, wait_s: float = 0.0) -> TuneConfig:
    """The configuration of study ``name``; waits up to ``wait_s`` for it to become ready."""
    _quiet()
    deadline = time.monotonic() + wait_s
    while True:
        try:
            root = optuna.load_study(study_name=name, storage=storage)
            if root.user_attrs.get("ready") and "optimlab_config" in root.user_attrs:
                return TuneConfig.from_json(root.user_attrs["optimlab_config"])
        except KeyError:
            pass
        if time.monotonic() >= deadline:
            raise UserError(
                f"No tuning study {name!r} in {mask_url(storage.url)} "
                "(create it first with optimlab tune --storage URL --study NAME)"
            )
        time.sleep(0.5)


def _study_id(storage: RDBStorage, name: str) -> int:
    return storage.get_study_id_from_name(name)


def counts(storage: RDBStorage, sub: str) -> dict[str, int]:
    """Number of trials of sub-study ``sub`` per state name (``COMPLETE``, ``PRUNED``, ...)."""
    out = {s.name: 0 for s in TrialState}
    for t in storage.get_all_trials(_study_id(storage, sub), deepcopy=False):
        out[t.state.name] += 1
    return out


def finished_count(storage: RDBStorage, sub: str) -> int:
    c = counts(storage, sub)
    return c["COMPLETE"] + c["PRUNED"]


# ---- the worker -----------------------------------------------------------------------------------
RunFn = Callable[..., Any]


def _derive_seed(*parts: Any) -> int:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _sampler(cfg: TuneConfig, index: int, worker_id: str) -> optuna.samplers.BaseSampler:
    # TPE after a random start of a third of the budget; constant_liar keeps concurrent workers
    # from proposing the same point. Seeded per (study seed, sub-study, worker): one worker
    # replays the same trials, several workers do not duplicate each other's proposals.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=_derive_seed(cfg.seed, index, worker_id),
            n_startup_trials=max(2, cfg.budget // 3),
            constant_liar=True,
        )


def _pruner(cfg: TuneConfig) -> optuna.pruners.BasePruner:
    # prune a trial below the median of the earlier ones at the same epoch, once two have ended
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


def _claim(storage: RDBStorage, study_id: int) -> int | None:
    """Move one waiting trial to RUNNING; exactly one concurrent caller wins each trial."""
    for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except UpdateFinishedTrialError:
            continue
    return None


@contextmanager
def _heartbeat(storage: RDBStorage, trial_id: int, interval: int) -> Iterator[None]:
    storage.record_heartbeat(trial_id)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                storage.record_heartbeat(trial_id)
            except (SQLAlchemyError, StorageInternalError, OSError) as e:
                # a missed beat is retried at the next interval
                log.warning("heartbeat of trial %d failed: %s", trial_id, scrub(str(e), storage.url))

    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _fail_stale(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def objective(trial: optuna.Trial, cfg: TuneConfig, task: str, optimizer: str,
              run_fn: RunFn | None = None) -> float:
    """Train one sampled configuration on the validation split; its last validation accuracy.

    Every epoch's validation accuracy is reported to the pruner and appended to
    ``user_attrs["curve"]`` as ``[epoch, accuracy, loss, wall_time_s, step]``. Raises
    ``optuna.TrialPruned`` when the pruner stops the trial or the run diverges
    (``user_attrs["status"] = "diverged"``, with ``diverged_step``).
    """
    from . import runner
    from .tasks import DataOptions

    run_fn = run_fn or runner.run
    phase = parse_spec(optimizer).phases[0]
    dims = dimensions(cfg.space, phase, cfg.lr_range)
    values = {d.name: trial.suggest_float(d.name, d.low, d.high, log=d.log) for d in dims}
    spec_text = trial_spec(phase, hyperparameters(phase, dims, values))
    trial.set_user_attr("spec", spec_text)
    curve: list[list[float]] = []

    def on_epoch(rec: Any) -> None:
        curve.append([rec.epoch, rec.test_accuracy, rec.test_loss, rec.wall_time_s, rec.step])
        trial.set_user_attr("curve", _json_safe(curve))
        if math.isfinite(rec.test_accuracy):
            trial.report(rec.test_accuracy, rec.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation accuracy {rec.test_accuracy:.4f} at "
                                         f"epoch {rec.epoch} is below the median")

    spec = runner.RunSpec(task, spec_text, seed=cfg.seed, epochs=cfg.epochs,
                          batch_size=cfg.batch_size, validation_fraction=cfg.validation_fraction)
    data = DataOptions(Path(cfg.data_dir)) if cfg.data_dir else DataOptions()
    result = run_fn(spec, data=data, on_epoch=on_epoch)
    trial.set_user_attr("status", result.status)
    if result.status == "diverged":
        trial.set_user_attr("diverged_step", result.diverged_step)
        raise optuna.TrialPruned(f"diverged at step {result.diverged_step}")
    if not result.epochs or not math.isfinite(result.epochs[-1].test_accuracy):
        raise optuna.TrialPruned("no finite validation accuracy")
    return float(result.epochs[-1].test_accuracy)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class WorkerReport:
    """What one worker did."""

    worker_id: str
    trials: list[tuple[str, int, str]] = field(default_factory=list)  # (sub-study, number, state)


def work(storage_url: str, name: str, *, worker_id: str = "0", run_fn: RunFn | None = None,
         on_trial: Callable[[str, FrozenTrial], None] | None = None,
         wait_ready_s: float = 60.0, poll_s: float | None = None) -> WorkerReport:
    """Run trials of study ``name`` until every sub-study has used its budget.

    The worker claims waiting trials (never creates one), round-robin over the sub-studies
    starting from a place derived from ``worker_id``. When nothing is waiting but trials are still
    running elsewhere, it keeps polling: a running trial whose worker died becomes a waiting retry
    after the grace period, and this worker then runs it. It returns when nothing is waiting or
    running.
    """
    _quiet()
    plain = open_storage(storage_url)
    cfg = load_config(plain, name, wait_s=wait_ready_s)
    storage = open_storage(storage_url, heartbeat_interval=cfg.heartbeat_interval,
                           grace_period=cfg.grace_period, max_retry=cfg.max_retry)
    subs = cfg.studies(name)
    samplers = {sub: _sampler(cfg, i, worker_id) for i, (sub, _, _) in enumerate(subs)}
    pruner = _pruner(cfg)
    ids = {sub: _study_id(storage, sub) for sub, _, _ in subs}
    report = WorkerReport(worker_id)
    start = _derive_seed(worker_id) % len(subs) if worker_id != "0" else 0
    order = subs[start:] + subs[:start]
    poll = poll_s if poll_s is not None else min(1.0, cfg.heartbeat_interval / 2)
    studies = {sub: optuna.load_study(study_name=sub, storage=storage) for sub, _, _ in subs}
    while True:
        claimed = _claim_any(storage, order, ids)
        if claimed is None:
            # nothing waiting: turn the trials of dead workers into waiting retries, look again
            for sub, _, _ in subs:
                _fail_stale(studies[sub])
            claimed = _claim_any(storage, order, ids)
        if claimed is None:
            running = any(
                storage.get_all_trials(ids[sub], deepcopy=False, states=(TrialState.RUNNING,))
                for sub, _, _ in subs
            )
            if not running:
                return report
            time.sleep(poll)
            continue
        (sub, task, optimizer), trial_id = claimed
        # a fresh Study per trial: its trial cache (read by the sampler) starts empty
        study = optuna.load_study(study_name=sub, storage=storage, sampler=samplers[sub],
                                  pruner=pruner)
        frozen = _run_trial(storage, cfg, study, trial_id, task, optimizer, worker_id, run_fn)
        report.trials.append((sub, frozen.number, frozen.state.name))
        if on_trial is not None:
            on_trial(sub, frozen)


def _claim_any(storage: RDBStorage, order: Sequence[tuple[str, str, str]], ids: dict[str, int]
               ) -> tuple[tuple[str, str, str], int] | None:
    for entry in order:
        trial_id = _claim(storage, ids[entry[0]])
        if trial_id is not None:
            return entry, trial_id
    return None


def _run_trial(storage: RDBStorage, cfg: TuneConfig, study: optuna.Study, trial_id: int,
               task: str, optimizer: str, worker_id: str, run_fn: RunFn | None) -> FrozenTrial:
    with _heartbeat(storage, trial_id, cfg.heartbeat_interval):
        trial = optuna.trial.Trial(study, trial_id)
        trial.set_user_attr("worker", f"{worker_id}@{socket.gethostname()}:{os.getpid()}")
        try:
            value = objective(trial, cfg, task, optimizer, run_fn)
        except optuna.TrialPruned:
            return study.tell(trial, state=TrialState.PRUNED)
        except BaseException as e:
            trial.set_user_attr("error", scrub(f"{type(e).__name__}: {e}", storage.url)[:2000])
            frozen = study.tell(trial, state=TrialState.FAIL)
            # give the slot back, so that the budget can still be met once the cause is fixed
            study.enqueue_trial({}, user_attrs={"slot": frozen.user_attrs.get("slot")})
            raise
        return study.tell(trial, value)


def start_local_workers(storage_url: str, name: str, n: int, *, threads: int = 1
                        ) -> list[subprocess.Popen]:
    """Start ``n`` worker processes (``optimlab tune --worker``) on this machine.

    The URL goes through the environment, not the command line, so a process list never shows
    a password; each uses ``threads`` torch threads.
    """
    procs = []
    for i in range(n):
        env = dict(os.environ)
        env[STORAGE_ENV] = storage_url
        env["OMP_NUM_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "optimlab", "tune", "--worker", "--study", name,
               "--worker-id", str(i), "--threads", str(threads)]
        procs.append(subprocess.Popen(cmd, env=env))
    return procs


def wait_for_budget(storage: RDBStorage, name: str, cfg: TuneConfig, *,
                    procs: Sequence[subprocess.Popen] = (), remote: bool = False,
                    progress: Callable[[int, int], None] | None = None,
                    poll_s: float = 1.0) -> None:
    """Block until every sub-study has ``budget`` finished trials.

    With ``remote`` (workers on other machines do the work) it waits however long it takes.
    Otherwise, once the local worker processes ``procs`` (if any) have exited with the budget
    unmet, the trials left (a dead worker's retry, an error's slot) are run in this process, so
    that an error surfaces with its own message; :class:`UserError` if none is left to run (a
    trial failed more than ``max_retry`` times).
    """
    subs = cfg.studies(name)
    total = cfg.budget * len(subs)
    last = -1
    while True:
        done = sum(min(cfg.budget, finished_count(storage, sub)) for sub, _, _ in subs)
        if progress is not None and done != last:
            progress(done, total)
            last = done
        if done >= total:
            return
        if not remote and all(p.poll() is not None for p in procs):
            pending = 0
            for sub, _, _ in subs:
                c = counts(storage, sub)
                pending += c["WAITING"] + c["RUNNING"]
            if pending == 0:
                codes = ", ".join(str(p.returncode) for p in procs)
                raise UserError(
                    f"Tuning stopped with {done} of {total} trials finished and none left to run "
                    f"(a trial failed more than {cfg.max_retry} times"
                    + (f"; workers exited with {codes}" if procs else "") + ")"
                )
            work(storage.url, name, worker_id="0")
            continue
        time.sleep(poll_s)


# ---- the final evaluation ---------------------------------------------------------------------------
def best_trial(storage: RDBStorage, sub: str) -> FrozenTrial | None:
    """The COMPLETE trial with the highest validation accuracy (earliest on ties)."""
    complete = storage.get_all_trials(_study_id(storage, sub), states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return max(complete, key=lambda t: (t.value, -t.number))


def _final_run(task: str, spec_text: str, seed: int, epochs: int | None,
               batch_size: int | str | None, data_dir: str | None,
               threads: int | None = None) -> dict[str, Any]:
    """One seed of a best configuration, trained on the full training split, tested on test."""
    import torch

    from . import runner
    from .tasks import DataOptions

    if threads:
        torch.set_num_threads(threads)
    data = DataOptions(Path(data_dir)) if data_dir else DataOptions()
    result = runner.run(runner.RunSpec(task, spec_text, seed=seed, epochs=epochs,
                                       batch_size=batch_size), data=data)
    return final_record(result)


def final_record(result: Any) -> dict[str, Any]:
    """The JSON record of a final run, as stored in the sub-study (``user_attrs["final:SEED"]``)."""
    last = result.epochs[-1] if result.epochs else None
    finished = result.status == "finished" and last is not None
    return _json_safe({
        "seed": result.spec.seed,
        "spec": result.spec.optimizer,
        "status": result.status,
        "diverged_step": result.diverged_step,
        "test_accuracy": last.test_accuracy if finished else None,
        "test_loss": last.test_loss if finished else None,
        "wall_time_s": result.wall_time_s,
        "steps": len(result.step_losses),
        "curve": [[e.epoch, e.test_accuracy, e.test_loss, e.wall_time_s, e.step]
                  for e in result.epochs],
    })


def run_finals(storage: RDBStorage, name: str, cfg: TuneConfig, *, workers: int = 1,
               threads: int = 1, progress: Callable[[int, int], None] | None = None) -> None:
    """Re-run each sub-study's best trial over the evaluation seeds; store one record per seed.

    Seeds already stored are skipped, so an interrupted evaluation resumes. With ``workers > 1``
    the runs go to a pool of that many processes, each with ``threads`` torch threads.
    """
    jobs = []
    for sub, task, _ in cfg.studies(name):
        best = best_trial(storage, sub)
        if best is None:
            continue
        study_id = _study_id(storage, sub)
        attrs = storage.get_study_user_attrs(study_id)
        for seed in cfg.evaluation_seeds():
            record = attrs.get(f"final:{seed}")
            if record is not None and record.get("spec") == best.user_attrs["spec"]:
                continue
            jobs.append((study_id, (task, best.user_attrs["spec"], seed, cfg.epochs,
                                    cfg.batch_size, cfg.data_dir)))
    total = len(jobs)
    if progress is not None:
        progress(0, total)
    if workers <= 1 or total <= 1:
        for i, (study_id, args) in enumerate(jobs):
            storage.set_study_user_attr(study_id, f"final:{args[2]}", _final_run(*args))
            if progress is not None:
                progress(i + 1, total)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(_final_run, *args, threads): (study_id, args[2])
                   for study_id, args in jobs}
        for i, fut in enumerate(as_completed(futures)):
            study_id, seed = futures[fut]
            storage.set_study_user_attr(study_id, f"final:{seed}", fut.result())
            if progress is not None:
                progress(i + 1, total)


# ---- reading the results ------------------------------------------------------------------------
@dataclass
class OptimizerResult:
    """One (task, optimizer) of a study: its trials, best configuration and final runs."""

    task: str
    optimizer: str
    budget: int
    trials: list[FrozenTrial]
    best: FrozenTrial | None
    finals: list[dict[str, Any]]

    @property
    def n_complete(self) -> int:
        return sum(t.state == TrialState.COMPLETE for t in self.trials)

    @property
    def n_pruned(self) -> int:
        return sum(t.state == TrialState.PRUNED for t in self.trials)

    @property
    def n_failed(self) -> int:
        return sum(t.state == TrialState.FAIL for t in self.trials)

    def test_accuracies(self) -> list[float]:
        """Final test accuracy of every finished seed (diverged seeds excluded, never as NaN)."""
        return [r["test_accuracy"] for r in self.finals
                if r["status"] == "finished" and r["test_accuracy"] is not None]

    def best_params(self) -> dict[str, Any]:
        """The best trial's hyperparameters as the optimizer takes them (not the sampled 1-x)."""
        if self.best is None:
            return {}
        return dict(parse_spec(self.best.user_attrs["spec"]).phases[0].hyperparameters)


@dataclass
class TuneResults:
    name: str
    storage: str  # masked URL
    config: TuneConfig
    results: dict[tuple[str, str], OptimizerResult]


def load_results(storage: RDBStorage, name: str) -> TuneResults:
    """Everything a report needs, read from the storage only."""
    cfg = load_config(storage, name)
    results: dict[tuple[str, str], OptimizerResult] = {}
    seeds = cfg.evaluation_seeds()
    for sub, task, optimizer in cfg.studies(name):
        study_id = _study_id(storage, sub)
        trials = storage.get_all_trials(study_id)
        attrs = storage.get_study_user_attrs(study_id)
        best = best_trial(storage, sub)
        finals = [attrs[f"final:{s}"] for s in seeds if f"final:{s}" in attrs]
        if best is not None:
            finals = [r for r in finals if r.get("spec") == best.user_attrs.get("spec")]
        results[(task, optimizer)] = OptimizerResult(task, optimizer, cfg.budget, trials, best, finals)
    return TuneResults(name, mask_url(storage.url), cfg, results)
