"""The results store: one SQLite file ``<out>/results.db`` that reports read and nothing else.

Tables (schema version :data:`SCHEMA_VERSION`, recorded in ``schema_version``)::

    experiment(key PRIMARY KEY, value)         'config': the compare configuration, JSON;
                                               'provenance': what ran it, a JSON list
    runs(run_id PRIMARY KEY, position, task, optimizer, seed, config, status, diverged_step,
         wall_time_s, step_time_share, epochs_done, steps_done, source, updated_at,
         skipped_steps)                        skipped_steps: steps skip_nonfinite left out
    steps(run_id, step, loss, time_s, PRIMARY KEY (run_id, step))
    epochs(run_id, epoch, train_loss, test_loss, test_accuracy, wall_time_s, step,
           PRIMARY KEY (run_id, epoch))

Rows are keyed by (run, step) and (run, epoch) and written with ``INSERT OR REPLACE``, so that a
write replayed after a crash replaces instead of duplicating. Each write is one transaction; the
database runs in WAL mode with ``synchronous=FULL``, so a committed epoch survives a kill -9 or a
power cut. A run commits its rows when it saves its checkpoint (every few seconds, not every
epoch: :mod:`optimlab.lab.bookkeeping`), so the rows of an unfinished run never go past its
checkpoint. Non-finite losses (a diverged step) are stored as NULL and read back as ``nan``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .runspec import EpochRecord

SCHEMA_VERSION = 1
DB_NAME = "results.db"

#: run statuses: ``running`` (started or interrupted before its end), ``finished``, ``diverged``
STATUSES = ("running", "finished", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS experiment (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    task TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    diverged_step INTEGER,
    wall_time_s REAL NOT NULL DEFAULT 0,
    step_time_share REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    steps_done INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    skipped_steps INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    loss REAL,
    time_s REAL NOT NULL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    train_loss REAL,
    test_loss REAL,
    test_accuracy REAL,
    wall_time_s REAL NOT NULL,
    step INTEGER NOT NULL,
    PRIMARY KEY (run_id, epoch)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class StoredRun:
    """One row of ``runs``, as a report sees it."""

    run_id: str
    position: int
    task: str
    optimizer: str
    seed: int
    config: dict[str, Any]
    status: str
    diverged_step: int | None
    wall_time_s: float
    step_time_share: float | None
    epochs_done: int
    steps_done: int
    source: str
    skipped_steps: int = 0


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _nan_if_none(x: float | None) -> float:
    return math.nan if x is None else float(x)


class Store:
    """An open results database. Use :meth:`open` on an output folder, or the path directly."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UserError(f"No results store at {self.path} (run `optimlab compare --out ...` first)")
        if self.path.is_file() and self.path.stat().st_size > 0:
            check_schema(self.path)  # before anything is written to it, WAL mode included
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            raise UserError(f"Cannot open results store {self.path}: {e}") from None

    @classmethod
    def open(cls, out_dir: Path, *, create: bool = True) -> Store:
        """The store of output folder ``out_dir`` (``<out_dir>/results.db``)."""
        return cls(Path(out_dir) / DB_NAME, create=create)

    def close(self) -> None:
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- schema ---------------------------------------------------------------------------------
    def _init_schema(self) -> None:
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            rows = self._db.execute("SELECT version FROM schema_version").fetchall()
            if not rows:
                self._db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif rows[0][0] != SCHEMA_VERSION:
                raise UserError(
                    f"Results store {self.path} has schema version {rows[0][0]}, this optimlab reads "
                    f"version {SCHEMA_VERSION}; re-run the comparison into a new --out folder"
                )
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(runs)")}
            if "skipped_steps" not in columns:  # a store written before the column existed
                self._db.execute("ALTER TABLE runs ADD COLUMN skipped_steps INTEGER NOT NULL DEFAULT 0")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    def transaction(self) -> _Transaction:
        """A block whose writes commit together (one fsync); writes inside it join it."""
        return self._transaction()

    # ---- experiment -----------------------------------------------------------------------------
    def get_experiment(self) -> dict[str, Any] | None:
        """The stored compare configuration, or None."""
        row = self._db.execute("SELECT value FROM experiment WHERE key = 'config'").fetchone()
        return json.loads(row[0]) if row else None

    def set_experiment(self, config: dict[str, Any]) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO experiment VALUES ('config', ?)", (json.dumps(config, sort_keys=True),)
            )

    def add_provenance(self, record: dict[str, Any]) -> None:
        """Append what this invocation ran on (:func:`optimlab.lab.provenance.collect`); a
        comparison resumed N times holds N + 1 records, the first one the command that began it."""
        with self._transaction():
            records = self.provenance() + [record]
            self._db.execute("INSERT OR REPLACE INTO experiment VALUES ('provenance', ?)",
                             (json.dumps(records, sort_keys=True),))

    def provenance(self) -> list[dict[str, Any]]:
        """The provenance records, oldest first (empty for a store written before they existed)."""
        row = self._db.execute("SELECT value FROM experiment WHERE key = 'provenance'").fetchone()
        return json.loads(row[0]) if row else []

    def clear(self) -> None:
        """Delete every run, step, epoch, the experiment configuration and its provenance."""
        with self._transaction():
            for table in ("steps", "epochs", "runs", "experiment"):
                self._db.execute(f"DELETE FROM {table}")

    # ---- writing a run --------------------------------------------------------------------------
    def begin_run(
        self,
        run_id: str,
        *,
        task: str,
        optimizer: str,
        seed: int,
        config: dict[str, Any],
        source: str = "",
        position: int | None = None,
    ) -> None:
        """Create the run's row (status ``running``), or mark an existing one ``running`` again.

        Existing step and epoch rows are kept; :meth:`truncate` drops those past a checkpoint.
        """
        with self._transaction():
            row = self._db.execute("SELECT position FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is not None:
                self._db.execute(
                    "UPDATE runs SET status = 'running', diverged_step = NULL, config = ?, source = ?, "
                    "updated_at = ? WHERE run_id = ?",
                    (json.dumps(config, sort_keys=True), source, time.time(), run_id),
                )
                return
            if position is None:
                position = self._db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM runs").fetchone()[0]
            self._db.execute(
                "INSERT INTO runs (run_id, position, task, optimizer, seed, config, status, source, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?)",
                (run_id, position, task, optimizer, seed, json.dumps(config, sort_keys=True), source,
                 time.time()),
            )

    def set_order(self, run_ids: list[str]) -> None:
        """Give the runs the comparison's order (runs trained at once start in any order)."""
        with self._transaction():
            self._db.executemany(
                "UPDATE runs SET position = ? WHERE run_id = ?",
                [(i, run_id) for i, run_id in enumerate(run_ids)],
            )

    def truncate(self, run_id: str, *, after_step: int, after_epoch: int) -> None:
        """Delete the run's rows past a checkpoint (step > after_step, epoch > after_epoch)."""
        with self._transaction():
            self._db.execute("DELETE FROM steps WHERE run_id = ? AND step > ?", (run_id, after_step))
            self._db.execute("DELETE FROM epochs WHERE run_id = ? AND epoch > ?", (run_id, after_epoch))
            self._db.execute(
                "UPDATE runs SET epochs_done = ?, steps_done = ?, updated_at = ? WHERE run_id = ?",
                (after_epoch, after_step, time.time(), run_id),
            )

    def write_progress(
        self,
        run_id: str,
        *,
        steps: Iterable[tuple[int, float, float]],
        epochs: Iterable[EpochRecord],
        wall_time_s: float,
        step_time_share: float | None,
        status: str = "running",
        diverged_step: int | None = None,
        skipped_steps: int = 0,
    ) -> None:
        """Write step rows ``(step, loss, time_s)``, epoch rows and the run's totals in one transaction."""
        if status not in STATUSES:
            raise ValueError(f"Invalid status: {status!r} (expected one of {', '.join(STATUSES)})")
        step_rows = [(run_id, s, _finite_or_none(loss), t) for s, loss, t in steps]
        epoch_rows = [
            (run_id, e.epoch, _finite_or_none(e.train_loss), _finite_or_none(e.test_loss),
             _finite_or_none(e.test_accuracy), e.wall_time_s, e.step)
            for e in epochs
        ]
        with self._transaction():
            if step_rows:
                self._db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?)", step_rows)
            if epoch_rows:
                self._db.executemany("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?)", epoch_rows)
            self._db.execute(
                "UPDATE runs SET status = ?, diverged_step = ?, wall_time_s = ?, step_time_share = ?, "
                "epochs_done = (SELECT COUNT(*) FROM epochs WHERE run_id = ?), "
                "steps_done = (SELECT COALESCE(MAX(step), 0) FROM steps WHERE run_id = ?), "
                "updated_at = ?, skipped_steps = ? WHERE run_id = ?",
                (status, diverged_step, wall_time_s, step_time_share, run_id, run_id, time.time(),
                 skipped_steps, run_id),
            )

    def delete_run(self, run_id: str) -> None:
        with self._transaction():
            for table in ("steps", "epochs", "runs"):
                self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    # ---- reading --------------------------------------------------------------------------------
    def run_status(self, run_id: str) -> str | None:
        row = self._db.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def runs(self) -> list[StoredRun]:
        """Every run, in the order the comparison listed them."""
        rows = self._db.execute(
            "SELECT run_id, position, task, optimizer, seed, config, status, diverged_step, wall_time_s, "
            "step_time_share, epochs_done, steps_done, source, skipped_steps FROM runs "
            "ORDER BY position, run_id"
        ).fetchall()
        return [
            StoredRun(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], r[9], r[10],
                      r[11], r[12], r[13])
            for r in rows
        ]

    def steps(self, run_id: str) -> tuple[list[int], list[float], list[float]]:
        """The run's (steps, losses, cumulative training seconds), ordered by step."""
        rows = self._db.execute(
            "SELECT step, loss, time_s FROM steps WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        return [r[0] for r in rows], [_nan_if_none(r[1]) for r in rows], [r[2] for r in rows]

    def epochs(self, run_id: str) -> list[EpochRecord]:
        rows = self._db.execute(
            "SELECT epoch, train_loss, test_loss, test_accuracy, wall_time_s, step FROM epochs "
            "WHERE run_id = ? ORDER BY epoch",
            (run_id,),
        ).fetchall()
        return [
            EpochRecord(r[0], _nan_if_none(r[1]), _nan_if_none(r[2]), _nan_if_none(r[3]), r[4], r[5])
            for r in rows
        ]

    def last_update(self) -> float | None:
        """When a run was last written (seconds since the epoch), or None for an empty store."""
        return self._db.execute("SELECT MAX(updated_at) FROM runs").fetchone()[0]

    def count_rows(self, table: str, run_id: str | None = None) -> int:
        """Rows in ``steps``/``epochs``/``runs`` (of one run when given); for checks and tests."""
        if table not in ("steps", "epochs", "runs"):
            raise ValueError(f"Invalid table: {table!r} (expected steps, epochs or runs)")
        if run_id is None:
            return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return self._db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", (run_id,)
        ).fetchone()[0]


def _columns(schema: str) -> dict[str, set[str]]:
    """Table name -> column names of a ``CREATE TABLE`` script."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: {r[1] for r in db.execute(f"PRAGMA table_info({n})")} for n in names}
    finally:
        db.close()


#: the tables and columns of an optimlab results store
TABLES = _columns(_SCHEMA)


def read_tables(path: Path, what: str = "results store") -> dict[str, set[str]]:
    """The tables of the SQLite file ``path`` and their columns, read without writing a byte
    (``mode=ro``): what a database holds is known before optimlab decides to write to it.

    Raises:
        UserError: ``path`` cannot be opened or is not an SQLite database (``what`` names the
            store expected, e.g. "results store").
    """
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
    except sqlite3.Error as e:
        raise UserError(f"Cannot open {what} {path}: {e}") from None
    try:
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: {r[1] for r in db.execute(f"PRAGMA table_info(\"{n}\")")} for n in names}
    except sqlite3.DatabaseError as e:
        raise UserError(
            f"Cannot open {what} {path}: not an SQLite database ({e}); it is left as it is"
        ) from None
    finally:
        db.close()


def check_schema(path: Path) -> None:
    """Refuse a database that is not an optimlab results store, reading it without writing.

    An optimlab store has exactly :data:`TABLES` (an empty database is accepted too: it is
    initialised). Another program's ``results.db`` (its own ``runs`` table, or any other
    table) is never modified: no rows deleted, no tables added.

    Raises:
        UserError: not an SQLite database, or another schema; naming the tables found.
    """
    found = read_tables(path)
    if found.get("schema_version") == TABLES["schema_version"]:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        try:
            versions = db.execute("SELECT version FROM schema_version").fetchall()
        finally:
            db.close()
        if versions and versions[0][0] != SCHEMA_VERSION:
            raise UserError(
                f"Results store {path} has schema version {versions[0][0]}, this optimlab reads "
                f"version {SCHEMA_VERSION}; re-run the comparison into a new --out folder"
            )
    if found and found != TABLES:
        shown = ", ".join(sorted(found)[:5]) + (", ..." if len(found) > 5 else "")
        raise UserError(
            f"Cannot open results store {path}: not an optimlab results store (its tables: "
            f"{shown}); it is left as it is: choose another --out"
        )


def as_os_error(e: sqlite3.OperationalError, path: Path) -> OSError | None:
    """SQLite's "disk is full" and "readonly database" as the ``OSError`` they stand for.

    SQLite reports a full disk (``SQLITE_FULL``) and a read-only file or file system
    (``SQLITE_READONLY``) with its own exception; as ``OSError`` (ENOSPC, EROFS) they reach the
    CLI's error boundary like any other failed write, naming the file.
    """
    code = getattr(e, "sqlite_errorcode", None)
    text = str(e).lower()
    if code == sqlite3.SQLITE_FULL or "disk is full" in text:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    if code == sqlite3.SQLITE_READONLY or "readonly database" in text:
        return OSError(errno.EROFS, f"{e} (read-only)", str(path))
    return None


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); re-entrant as a no-op.

    A full disk or a read-only database is raised as ``OSError`` (:func:`as_os_error`), after
    the rollback: nothing of the transaction is kept.
    """

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self._owner = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise as_os_error(e, self._path) or e from None
            self._owner = True

    def __exit__(self, exc_type: object, exc: BaseException | None, *rest: object) -> None:
        if not self._owner:
            return
        try:
            if exc_type is None:
                self._db.execute("COMMIT")
                return
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.OperationalError as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise as_os_error(e, self._path) or e from None
        if isinstance(exc, sqlite3.OperationalError):
            translated = as_os_error(exc, self._path)
            if translated is not None:
                raise translated from None

