"""Where tuning studies live: Optuna RDB storages (SQLite or PostgreSQL), URL secrecy, and
creating and reading a study.

The studies live in one Optuna RDB storage: by default one SQLite file, ``<out>/tune.db``;
``--storage postgresql://...`` shares them between machines.

SQLite note: Python's ``sqlite3`` starts its transactions lazily, at the first write, so two
processes can both read a trial as ``WAITING`` and both "win" it. Storages opened here make every
SQLite transaction ``BEGIN IMMEDIATE`` (one writer at a time, waiting up to 60 s for the lock) and
use WAL journaling, which makes the claim atomic. PostgreSQL gets this from ``SELECT ... FOR
UPDATE``, which Optuna already issues.

Passwords: storage URLs are read with SQLAlchemy's ``make_url`` and shown only through its
password masking (:func:`mask_url`, ``postgresql://user:***@host/db``); :func:`scrub` removes a
password from any text (error messages) before it is shown or stored. A password holding ``@``,
``:`` or ``/`` is read whole (:mod:`optimlab.lab.urls`).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, StorageInternalError
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError

from ..errors import UserError
from ..store import read_tables
from ..trackers import TrackerConfig
from ..urls import connect_string, scrub, show_url
from .config import DEFAULT_MAX_RETRY, TuneConfig

DB_NAME = "tune.db"

#: storage URLs are shown and scrubbed by the lab's one URL reader (:mod:`optimlab.lab.urls`)
mask_url = show_url


def default_storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / DB_NAME).resolve()}"


def check_url(url: str) -> None:
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
    check_url(url)
    given, url = url, _with_driver(connect_string(url))
    engine_kwargs: dict[str, Any] = {}
    sqlite = url.startswith("sqlite")
    if sqlite:
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            _check_foreign_sqlite(Path(path))
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


#: tables every Optuna RDB storage has (its schema's core)
_OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})


def _check_foreign_sqlite(path: Path) -> None:
    """Refuse an SQLite file with tables that is not an Optuna storage: Optuna would add its
    tables to another program's database."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    found = read_tables(path, "storage")
    if found and not _OPTUNA_TABLES <= set(found):
        shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
        raise UserError(
            f"Cannot open storage {path}: not an Optuna storage (its tables: {shown}); it is left "
            "as it is: choose another --storage or --out"
        )


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


def record_run(storage: RDBStorage, name: str, provenance: dict[str, Any],
               trackers: TrackerConfig | None) -> None:
    """Append this invocation's provenance to study ``name``, and set the trackers its workers
    log to (kept apart from the configuration: logging does not change results)."""
    root = _study_id(storage, name)
    attrs = storage.get_study_user_attrs(root)
    storage.set_study_user_attr(root, "optimlab_provenance",
                                [*attrs.get("optimlab_provenance", []), provenance])
    storage.set_study_user_attr(root, "optimlab_trackers", None if trackers is None else {
        "names": list(trackers.names), "out": str(Path(trackers.out).resolve())})


def provenance(storage: RDBStorage, name: str) -> list[dict[str, Any]]:
    """The provenance records of study ``name``, oldest first."""
    return storage.get_study_user_attrs(_study_id(storage, name)).get("optimlab_provenance", [])


def load_trackers(storage: RDBStorage, name: str) -> TrackerConfig | None:
    """The trackers that runs of study ``name`` log to, if any."""
    found = storage.get_study_user_attrs(_study_id(storage, name)).get("optimlab_trackers")
    return TrackerConfig(tuple(found["names"]), Path(found["out"])) if found else None


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


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN), lists and tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
