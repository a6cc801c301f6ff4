"""``SqliteStore``: the default store, one SQLite file written by one thread in group commits.

Writes: every write call puts its work on a queue with an asyncio future. One thread owns
the writing connection; it takes everything queued at that moment, runs each piece inside
its own savepoint of ONE transaction, commits once, then resolves the futures. A hundred
concurrent ``add_outcomes`` calls cost one commit. A piece that fails is rolled back to its
savepoint and its caller gets the error; the others are committed.

Reads: a few reading connections in a small thread pool, each read in one snapshot, never
on the event loop. ``outcomes()`` reads a page at a time, keyed by ``outcome_seq``.

Schema: a new (empty) file gets ``SCHEMA``, the whole schema at ``SCHEMA_VERSION``, in one
transaction. An older file is migrated step by step: ``MIGRATIONS[n]`` takes it from version
n to n + 1, one transaction (and one log line) each. ``meta.schema_version`` says where a
file is; a newer one than this code knows is refused. To change the schema, append a
migration AND update ``SCHEMA`` and ``SCHEMA_VERSION``; a test checks that both roads end
at the same schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeVar

import msgspec

from browsergrid.protocol import FailureRecord, Replica, ResultRecord
from browsergrid.store._base import (
    JobInfo,
    JobState,
    JobSummary,
    Outcome,
    StoreError,
    TaskRecord,
    ThroughputSample,
    WorkerRecord,
)

log = logging.getLogger("browsergrid.store")

_V1: Final = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES
    ('last_job_id', 0),       -- ids are never reused, even after prune
    ('last_task_id', 0),
    ('last_outcome_seq', 0);  -- the order outcomes were recorded in

CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    op TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    submitted_by TEXT NOT NULL,
    lease_timeout REAL,
    max_attempts INTEGER,
    client_key TEXT UNIQUE,
    state TEXT NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'finished', 'cancelled')),
    finished_at REAL,
    total INTEGER NOT NULL DEFAULT 0,  -- counts of its tasks, kept by every write
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_running ON jobs (job_id) WHERE state = 'running';
CREATE INDEX jobs_ended ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE tasks (
    task_id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (job_id),
    idx INTEGER NOT NULL,
    op TEXT NOT NULL,
    args TEXT NOT NULL,                   -- JSON object
    attempts INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'done', 'failed', 'cancelled')),
    outcome_seq INTEGER,                  -- set when a result or failure is recorded
    result TEXT,                          -- JSON
    worker_id INTEGER,
    worker_key TEXT,
    duration_ms REAL,
    lease_ms REAL,
    finished_at REAL
);
-- A job's tasks by state (its unfinished ones, in task id order), and the job's outcomes
-- in the order recorded. outcome_seq is unique: one writer hands it out.
CREATE INDEX tasks_job_state ON tasks (job_id, state);
CREATE UNIQUE INDEX tasks_outcomes ON tasks (job_id, outcome_seq)
    WHERE outcome_seq IS NOT NULL;

CREATE TABLE workers (
    worker_key TEXT PRIMARY KEY,
    agent TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    tasks_done INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    compute_ms REAL NOT NULL
) WITHOUT ROWID;
"""

_V2: Final = """
CREATE TABLE throughput (
    at INTEGER PRIMARY KEY,  -- Unix second
    done INTEGER NOT NULL,   -- tasks that finished in it
    failed INTEGER NOT NULL
);
"""

_V3: Final = """
-- Result validation: a job's replication options, how each result was accepted (and the
-- replicas gathered for it), and each worker's standing. Rows from before read back with
-- the defaults: redundancy 1, no verdict, no replicas, a new worker's standing.
ALTER TABLE jobs ADD COLUMN redundancy INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN max_replicas INTEGER;
ALTER TABLE jobs ADD COLUMN adaptive INTEGER NOT NULL DEFAULT 0;

ALTER TABLE tasks ADD COLUMN verdict TEXT;   -- 'unchecked', 'quorum' or 'trusted'; NULL: none
ALTER TABLE tasks ADD COLUMN replicas TEXT;  -- JSON list of replicas; NULL when there are none

ALTER TABLE workers ADD COLUMN valid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN invalid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN consecutive_valid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN error_rate REAL NOT NULL DEFAULT 0.1;
ALTER TABLE workers ADD COLUMN quarantined INTEGER NOT NULL DEFAULT 0;
"""

_V4: Final = """
-- Each worker's loss record beside its standing: the leases it lost (errors, passed
-- deadlines, dropped connections) and its loss rate. Its finished tasks are tasks_done.
-- Rows from before read back as a clean record: nothing lost.
ALTER TABLE workers ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN loss_rate REAL NOT NULL DEFAULT 0.0;
"""

_V5: Final = """
-- The job tasks each worker finished (tasks_done counts its welcome tasks too, which any
-- identity minted for the purpose answers): what makes its standing reliable. Rows from
-- before start at 0: such a worker earns it again with its next finished job task.
ALTER TABLE workers ADD COLUMN job_tasks_done INTEGER NOT NULL DEFAULT 0;
"""

MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5]
"""``MIGRATIONS[n]`` takes the schema from version n to n + 1 (0 is an empty file). Append
a script to change the schema, then update ``SCHEMA`` to match; never edit one that has
shipped."""

SCHEMA_VERSION: Final = 5
SCHEMA: Final = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES
    ('last_job_id', 0),       -- ids are never reused, even after prune
    ('last_task_id', 0),
    ('last_outcome_seq', 0);  -- the order outcomes were recorded in

CREATE TABLE jobs (
    job_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    op TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    submitted_by TEXT NOT NULL,
    lease_timeout REAL,
    max_attempts INTEGER,
    client_key TEXT UNIQUE,
    state TEXT NOT NULL DEFAULT 'running'
        CHECK (state IN ('running', 'finished', 'cancelled')),
    finished_at REAL,
    total INTEGER NOT NULL DEFAULT 0,  -- counts of its tasks, kept by every write
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    redundancy INTEGER NOT NULL DEFAULT 1,  -- replication options (result validation)
    max_replicas INTEGER,
    adaptive INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_running ON jobs (job_id) WHERE state = 'running';
CREATE INDEX jobs_ended ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE tasks (
    task_id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs (job_id),
    idx INTEGER NOT NULL,
    op TEXT NOT NULL,
    args TEXT NOT NULL,                   -- JSON object
    attempts INTEGER NOT NULL DEFAULT 0,
    reasons TEXT NOT NULL DEFAULT '[]',   -- JSON list of strings
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'done', 'failed', 'cancelled')),
    outcome_seq INTEGER,                  -- set when a result or failure is recorded
    result TEXT,                          -- JSON
    worker_id INTEGER,
    worker_key TEXT,
    duration_ms REAL,
    lease_ms REAL,
    finished_at REAL,
    verdict TEXT,    -- 'unchecked', 'quorum' or 'trusted'; NULL: none
    replicas TEXT    -- JSON list of replicas; NULL when there are none
);
-- A job's tasks by state (its unfinished ones, in task id order), and the job's outcomes
-- in the order recorded. outcome_seq is unique: one writer hands it out.
CREATE INDEX tasks_job_state ON tasks (job_id, state);
CREATE UNIQUE INDEX tasks_outcomes ON tasks (job_id, outcome_seq)
    WHERE outcome_seq IS NOT NULL;

CREATE TABLE workers (
    worker_key TEXT PRIMARY KEY,
    agent TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    tasks_done INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    compute_ms REAL NOT NULL,
    valid INTEGER NOT NULL DEFAULT 0,  -- its standing (result validation)
    invalid INTEGER NOT NULL DEFAULT 0,
    consecutive_valid INTEGER NOT NULL DEFAULT 0,
    error_rate REAL NOT NULL DEFAULT 0.1,
    quarantined INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,  -- its loss record
    loss_rate REAL NOT NULL DEFAULT 0.0,
    job_tasks_done INTEGER NOT NULL DEFAULT 0  -- of tasks_done, job tasks (no welcome)
) WITHOUT ROWID;

CREATE TABLE throughput (
    at INTEGER PRIMARY KEY,  -- Unix second
    done INTEGER NOT NULL,   -- tasks that finished in it
    failed INTEGER NOT NULL
);
"""
"""The whole schema at ``SCHEMA_VERSION``, what a new (empty) file gets in one step.

When you change the schema: append a migration to ``MIGRATIONS`` (for the files that exist
already), then make this script the schema that migration reaches (columns in the order
``ALTER TABLE ... ADD COLUMN`` leaves them: at the end) and set ``SCHEMA_VERSION`` to
``len(MIGRATIONS)``. ``test_new_schema_is_the_one_the_migrations_reach`` in
``tests/store/test_sqlite.py`` fails until the two agree (comments and layout aside)."""

_PAGE_SIZE = 1000  # outcomes per query of outcomes()
_PRUNE_BATCH = 10_000  # tasks deleted per transaction of prune()
_PRUNE_JOBS = 1000  # jobs looked at per transaction of prune()
_IN_CHUNK = 500  # ids per "IN (...)" query
_READERS = 4  # reading connections (and threads)
_BUSY_TIMEOUT_MS = 5000  # wait this long for a lock another process holds
# The writer connection checkpoints the WAL itself (not SQLite's auto-checkpoint, which
# could run inside a write made on the event loop): after this many commits, on its thread.
_CHECKPOINT_EVERY = 250
_INLINE_MOST = 4  # tasks or outcomes a write may hold to be made on the event loop

_T = TypeVar("_T")
_WriteFn = Callable[[sqlite3.Connection, set[int]], Any]
"""Work for the writer thread: runs statements, adds the job ids whose followers should be
woken after the commit, returns what the caller gets."""

_encode = msgspec.json.Encoder().encode
_decode_args = msgspec.json.Decoder(dict[str, Any]).decode
_decode_reasons = msgspec.json.Decoder(list[str]).decode
_decode_result = msgspec.json.Decoder().decode
_decode_replicas = msgspec.json.Decoder(list[Replica]).decode

_JOB_COLUMNS: Final = (
    "job_id, name, op, priority, created_at, submitted_by, lease_timeout, max_attempts, "
    "client_key, state, finished_at, total, done, failed, cancelled, redundancy, max_replicas, "
    "adaptive"
)
_OUTCOME_COLUMNS: Final = (  # the last: a failure's reasons, or a result's replicas
    "outcome_seq, state, task_id, job_id, idx, result, worker_id, attempts, duration_ms, "
    "worker_key, lease_ms, finished_at, verdict, "
    "CASE state WHEN 'failed' THEN reasons ELSE replicas END"
)
_WORKER_COLUMNS: Final = (
    "worker_key, agent, first_seen, last_seen, tasks_done, failures, compute_ms, valid, "
    "invalid, consecutive_valid, error_rate, quarantined, lost, loss_rate, job_tasks_done"
)


_OUTCOME_PAGE: Final = (
    f"SELECT {_OUTCOME_COLUMNS} FROM tasks WHERE job_id = ? AND outcome_seq > ? "
    "ORDER BY outcome_seq LIMIT ?"
)
_UNFINISHED_TASKS: Final = (  # CROSS JOIN: running jobs first, then their queued tasks
    "SELECT t.task_id, t.job_id, t.idx, t.op, t.args, t.attempts, t.reasons "
    "FROM jobs AS j CROSS JOIN tasks AS t ON t.job_id = j.job_id AND t.state = 'queued' "
    "WHERE j.state = 'running' ORDER BY t.task_id"
)
_PRUNE_CANDIDATES: Final = (
    "SELECT job_id FROM jobs WHERE finished_at < ? AND state != 'running' "
    "ORDER BY finished_at LIMIT ?"
)
_PRUNE_THROUGHPUT: Final = (
    "DELETE FROM throughput WHERE at IN "
    "(SELECT at FROM throughput WHERE at < ? ORDER BY at LIMIT ?)"
)
_PRUNE_WORKERS: Final = (  # the kept keys: a JSON array (json_each), as there may be many
    "DELETE FROM workers WHERE worker_key IN "
    "(SELECT worker_key FROM workers WHERE last_seen < ? AND NOT quarantined "
    "AND worker_key NOT IN (SELECT value FROM json_each(?)) LIMIT ?)"
)
_THROUGHPUT_SINCE: Final = "SELECT at, done, failed FROM throughput WHERE at >= ? ORDER BY at"
_ADD_THROUGHPUT: Final = (
    "INSERT INTO throughput (at, done, failed) VALUES (?, ?, ?) ON CONFLICT (at) "
    "DO UPDATE SET done = done + excluded.done, failed = failed + excluded.failed"
)
_RECORD_RESULT: Final = (
    "UPDATE tasks SET state = 'done', outcome_seq = ?, result = ?, worker_id = ?, "
    "worker_key = ?, attempts = ?, duration_ms = ?, lease_ms = ?, finished_at = ?, "
    "verdict = ? WHERE task_id = ? AND job_id = ? AND state = 'queued'"
)
_RECORD_REPLICATED_RESULT: Final = (  # a replicated task's result: with its replicas
    "UPDATE tasks SET state = 'done', outcome_seq = ?, result = ?, worker_id = ?, "
    "worker_key = ?, attempts = ?, duration_ms = ?, lease_ms = ?, finished_at = ?, "
    "verdict = ?, replicas = ? WHERE task_id = ? AND job_id = ? AND state = 'queued'"
)
_RECORD_FAILURE: Final = (
    "UPDATE tasks SET state = 'failed', outcome_seq = ?, reasons = ?, finished_at = ? "
    "WHERE task_id = ? AND job_id = ? AND state = 'queued'"
)
_RECORD_WORKERS: Final = (
    f"INSERT OR REPLACE INTO workers ({_WORKER_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_COUNT_OUTCOMES: Final = (  # a job's new outcomes; the job is finished when they were its last
    "UPDATE jobs SET done = done + :done, failed = failed + :failed, "
    "state = CASE WHEN state = 'running' AND done + :done + failed + :failed + cancelled >= total "
    "THEN 'finished' ELSE state END, "
    "finished_at = CASE WHEN state = 'running' AND done + :done + failed + :failed + cancelled "
    ">= total THEN :at ELSE finished_at END "
    "WHERE job_id = :job"
)
_INSERT_TASKS: Final = (
    "INSERT INTO tasks (task_id, job_id, idx, op, args, attempts, reasons) VALUES "
)

# Many rows per statement: each statement costs the writer thread a round of the GIL and
# SQLite's per-statement work, so tasks are inserted, and outcomes recorded, up to
# _INSERT_ROWS / _UPDATE_ROWS at a time. Both stay under 999 values per statement (the limit
# of SQLite before 3.32). Outcomes go through UPDATE ... FROM (SQLite 3.33 or later; older
# versions record them one by one, as do calls that name a task twice).
_INSERT_ROWS: Final = 128  # 7 values a row
_UPDATE_ROWS: Final = 64  # at most 12 values a row
_UPDATE_FROM: Final = sqlite3.sqlite_version_info >= (3, 33, 0)
_BATCH_UPDATES: Final = {  # the one-row statement -> its columns, and what it sets
    _RECORD_RESULT: (
        "seq, result, worker_id, worker_key, attempts, duration_ms, lease_ms, finished_at, "
        "verdict, task_id, job_id",
        "state = 'done', outcome_seq = v.seq, result = v.result, worker_id = v.worker_id, "
        "worker_key = v.worker_key, attempts = v.attempts, duration_ms = v.duration_ms, "
        "lease_ms = v.lease_ms, finished_at = v.finished_at, verdict = v.verdict",
    ),
    _RECORD_REPLICATED_RESULT: (
        "seq, result, worker_id, worker_key, attempts, duration_ms, lease_ms, finished_at, "
        "verdict, replicas, task_id, job_id",
        "state = 'done', outcome_seq = v.seq, result = v.result, worker_id = v.worker_id, "
        "worker_key = v.worker_key, attempts = v.attempts, duration_ms = v.duration_ms, "
        "lease_ms = v.lease_ms, finished_at = v.finished_at, verdict = v.verdict, "
        "replicas = v.replicas",
    ),
    _RECORD_FAILURE: (
        "seq, reasons, finished_at, task_id, job_id",
        "state = 'failed', outcome_seq = v.seq, reasons = v.reasons, finished_at = v.finished_at",
    ),
}


@functools.cache
def _insert_sql(rows: int) -> str:
    """INSERT of ``rows`` tasks."""
    return _INSERT_TASKS + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)


@functools.cache
def _update_sql(single: str, rows: int) -> str:
    """The statement ``single`` (one of _BATCH_UPDATES) for ``rows`` outcomes at once; each
    row's values are those of ``single``, in its order."""
    columns, assignments = _BATCH_UPDATES[single]
    names = columns.split(", ")
    values = ", ".join(["(" + ", ".join("?" * len(names)) + ")"] * rows)
    named = ", ".join(f"column{n} AS {name}" for n, name in enumerate(names, 1))
    return (  # starts with UPDATE: Python's sqlite3 counts the rows it changed
        f"UPDATE tasks SET {assignments} FROM (SELECT {named} FROM (VALUES {values})) AS v "
        "WHERE tasks.task_id = v.task_id AND tasks.job_id = v.job_id AND tasks.state = 'queued'"
    )


def _spans(count: int, most: int) -> Iterator[tuple[int, int]]:
    """(start, size) of the statements that cover ``count`` rows: ``most`` (a power of two)
    at a time, then smaller powers of two, so that few distinct statements are prepared."""
    start, size = 0, most
    while start < count:
        while size > count - start:
            size //= 2
        yield start, size
        start += size


class _Update(NamedTuple):
    """One outcome to record: its statement and values, encoded by the caller."""

    job_id: int
    task_id: int
    finished_at: float | None
    sql: str
    values: tuple[Any, ...]


@dataclass(eq=False, slots=True)
class _Write:
    fn: _WriteFn
    future: asyncio.Future[Any]
    touched: set[int] = field(default_factory=set)
    value: Any = None
    error: BaseException | None = None


class SqliteStore:
    """``Store`` in one SQLite file (created with its directory when missing).

    Durability: a call that has returned is committed. With ``synchronous="normal"`` (the
    default; WAL journal) a commit survives the process being killed (``kill -9``, a crash),
    because the WAL is written before the commit returns; a power cut or OS crash may lose
    the last commits (never corrupting the file). With ``"full"`` every commit also waits
    for the disk (fsync), so it survives a power cut too, at the price of one fsync per
    group commit.

    Errors: a write the disk refuses (full, read-only, not a database) raises StoreError
    naming the file, and nothing of that call is stored; the store keeps going, so a later
    write succeeds once the condition clears. Breaking a rule of the interface (an id used
    twice, tasks of an unknown or cancelled job) raises ValueError.

    Writes are applied in the order the calls were made (each is queued before the call's
    first ``await``). Use the store from the event loop that opened it.

    A small, lone write (of at most 4 tasks or outcomes, while the writer thread has
    nothing queued or uncommitted and no other write was made this way in this pass of
    the event loop) is committed at once on the event loop's thread (with ``"normal"``
    only: no fsync), which spares a single task's writes the two thread hand-offs (about
    0.12 ms of their 0.2 ms here). Larger writes, and writes that arrive together or while
    others wait, go to the writer thread and are committed together, in order, while the
    event loop goes on.
    """

    commits: int
    """Transactions committed by the writer thread (tests check group commit with it)."""

    def __init__(self, path: Path, *, synchronous: Literal["normal", "full"] = "normal") -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self._path = Path(path)
        self._synchronous = synchronous
        self._lock = threading.Lock()  # guards _state, _broken and the queue's last item
        self._state = "new"  # new -> open -> closing -> closed (-> open again)
        self._broken: str | None = None  # why the writer thread stopped, if it did
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._queued = 0  # writes handed to the writer thread and not yet committed (_lock)
        self._committing = threading.Lock()  # held by whoever uses the writer connection
        self._since_checkpoint = 0
        self._inline_used = False  # a write was committed inline in this pass of the loop
        self._inline_writes = synchronous == "normal"  # see the class docstring
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._idle: list[sqlite3.Connection] = []
        self._reading: list[sqlite3.Connection] = []  # every reading connection
        self._loop: asyncio.AbstractEventLoop | None = None
        self._followers: dict[int, set[asyncio.Event]] = {}
        self._last_seq = 0
        self._page_size = _PAGE_SIZE
        self._connection: sqlite3.Connection | None = None  # the writer's; tests reach it
        self.commits = 0

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    # --- opening and closing -----------------------------------------------------------

    async def open(self) -> None:
        if self._state == "open":
            return
        connection = await asyncio.to_thread(self._connect_writer)
        self._loop = asyncio.get_running_loop()
        self._connection = connection
        self._queue = queue.SimpleQueue()
        self._queued = self._since_checkpoint = 0
        self._broken = None
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="browsergrid-store-read")
        self._writer = threading.Thread(
            target=self._writer_main, args=(connection,), name="browsergrid-store-write"
        )
        self._writer.daemon = True  # committed data is safe even if nobody calls close()
        self._state = "open"
        self._writer.start()
        log.debug("opened %s", self._path)

    def _connect_writer(self) -> sqlite3.Connection:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of {self._path}: {exc}") from exc
        try:
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self._path}: {_describe(exc)}") from exc
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            connection.execute("PRAGMA wal_autocheckpoint = 0")  # see _CHECKPOINT_EVERY
            connection.execute("PRAGMA foreign_keys = ON")
            self._migrate(connection)
            row = connection.execute("SELECT value FROM meta WHERE key = 'last_outcome_seq'")
            self._last_seq = int(row.fetchone()[0])
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"cannot open {self._path}: {_describe(exc)}") from exc
        except StoreError:
            connection.close()
            raise
        return connection

    def _migrate(self, connection: sqlite3.Connection) -> None:
        """Bring the file to version ``len(MIGRATIONS)``: create the schema in a new file,
        migrate an older one a version at a time, refuse a newer one."""
        version = self._schema_version(connection)
        supported = len(MIGRATIONS)
        if version > supported:
            raise StoreError(
                f"{self._path} has schema version {version}, but this browsergrid supports "
                f"version {supported} at most: upgrade browsergrid, or use another data "
                "directory"
            )
        if version == 0:
            try:
                connection.executescript(_versioned(SCHEMA, SCHEMA_VERSION))
            except sqlite3.Error as exc:
                _rollback(connection)
                raise StoreError(
                    f"cannot create {self._path} at schema version {SCHEMA_VERSION} "
                    f"(nothing was written to it): {_describe(exc)}"
                ) from exc
            log.info("%s: created at schema version %d", self._path, SCHEMA_VERSION)
            # SCHEMA_VERSION is len(MIGRATIONS) (a test checks it); were it behind, the
            # loop below would bring the new file the rest of the way.
            version = SCHEMA_VERSION
        for target in range(version + 1, supported + 1):
            try:
                connection.executescript(_versioned(MIGRATIONS[target - 1], target))
            except sqlite3.Error as exc:
                _rollback(connection)
                raise StoreError(
                    f"cannot migrate {self._path} to schema version {target} "
                    f"(it stays at {target - 1}): {_describe(exc)}"
                ) from exc
            log.info("%s: schema migrated to version %d", self._path, target)

    def _schema_version(self, connection: sqlite3.Connection) -> int:
        tables = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "meta" not in tables:
            if tables:
                raise StoreError(
                    f"{self._path} is an SQLite database, but not browsergrid's "
                    f"(it has no meta table; its tables: {', '.join(sorted(tables))})"
                )
            return 0  # a new, empty file
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        found = row.fetchone()
        if found is None:
            raise StoreError(f"{self._path}: the meta table has no schema_version")
        return int(found[0])

    async def close(self) -> None:
        with self._lock:
            if self._state != "open":
                return
            self._state = "closing"
            self._queue.put(None)  # after everything queued: the writer drains, then stops
        assert self._writer is not None and self._readers is not None
        await asyncio.to_thread(self._readers.shutdown)  # reads in progress end first
        for connection in self._reading:
            connection.close()
        self._idle.clear()
        self._reading.clear()
        await asyncio.to_thread(self._writer.join)  # closing the last connection checkpoints
        self._state = "closed"
        for events in self._followers.values():
            for event in events:
                event.set()  # they find the store closed and raise StoreError
        log.debug("closed %s", self._path)

    def _unusable(self) -> StoreError | None:
        if self._state != "open":
            return StoreError(f"the store {self._path} is not open")
        if self._broken is not None:
            return StoreError(f"the store {self._path} cannot write: {self._broken}")
        return None

    # --- the writer thread ---------------------------------------------------------------

    async def _write(
        self, fn: Callable[[sqlite3.Connection, set[int]], _T], *, small: bool = False
    ) -> _T:
        """Run ``fn`` on the writer connection, in the writer thread's next group commit;
        a ``small`` one at once when nothing else is waiting to be written (see the class
        docstring).

        Also the test hook for the writer connection (``PRAGMA max_page_count`` etc.).
        """
        item = _Write(fn, asyncio.get_running_loop().create_future())
        with self._lock:
            if (error := self._unusable()) is not None:
                raise error
            inline = (
                small
                and not self._inline_used
                and self._queued == 0
                and self._inline_writes
                and self._since_checkpoint < _CHECKPOINT_EVERY
                and self._committing.acquire(blocking=False)
            )
            if not inline:
                self._queued += 1
                self._queue.put(item)
        if inline:
            # the writes made in the rest of this pass (a burst) go to the writer, together
            self._inline_used = True
            item.future.get_loop().call_soon(self._end_inline_pass)
            assert self._connection is not None
            try:
                self._commit_batch(self._connection, [item])
            except Exception as exc:  # a bug (the data's and the disk's errors are the item's)
                log.critical("a write to %s failed", self._path, exc_info=True)
                with self._lock:
                    self._broken = f"a write failed ({exc!r}); restart the coordinator"
                item.error = StoreError(f"the store {self._path} cannot write: {self._broken}")
            finally:
                self._committing.release()
            self._settle([item], item.touched if item.error is None else set())
        result: _T = await item.future
        return result

    def _writer_main(self, connection: sqlite3.Connection) -> None:
        batch: list[_Write] = []
        try:
            while True:
                batch, stop = self._take_batch()
                with self._committing:
                    self._commit_batch(connection, batch)
                    if self._since_checkpoint >= _CHECKPOINT_EVERY or stop:
                        self._checkpoint(connection)
                    with self._lock:
                        self._queued -= len(batch)
                self._deliver(batch)
                batch = []
                if stop:
                    return
        except BaseException as exc:  # a bug: say so, and refuse every write from now on
            log.critical("the writer thread of %s stopped", self._path, exc_info=True)
            with self._lock:
                self._broken = f"the writer thread stopped ({exc!r}); restart the coordinator"
                batch += self._drain()
            for item in batch:
                item.error = StoreError(f"the store {self._path} cannot write: {self._broken}")
            self._deliver(batch)
        finally:
            connection.close()

    def _end_inline_pass(self) -> None:
        self._inline_used = False

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        """Copy the WAL into the database file (PASSIVE: readers are never waited for)."""
        self._since_checkpoint = 0
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one tries again; the WAL keeps everything
            log.warning("%s: cannot checkpoint the WAL: %s", self._path, _describe(exc))

    def _drain(self) -> list[_Write]:
        """Everything left in the queue (nothing more can come: the store is broken)."""
        items: list[_Write | None] = []
        with contextlib.suppress(queue.Empty):
            while True:
                items.append(self._queue.get_nowait())
        return [item for item in items if item is not None]

    def _take_batch(self) -> tuple[list[_Write], bool]:
        """Everything queued now (waiting for the first); True when close() asked to stop."""
        first = self._queue.get()
        if first is None:
            return [], True
        batch = [first]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, False
            if item is None:
                return batch, True
            batch.append(item)

    def _commit_batch(self, connection: sqlite3.Connection, batch: list[_Write]) -> None:
        """Run the batch in one transaction; each item ends with a value or an error."""
        todo = batch
        while todo:
            try:
                connection.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._fail(todo, exc)
                return
            lost = False
            lone = len(todo) == 1  # no savepoint: undoing it is undoing the transaction
            for item in todo:
                item.touched = set()
                try:
                    if not lone:
                        connection.execute("SAVEPOINT item")
                    item.value = item.fn(connection, item.touched)
                    if not lone:
                        connection.execute("RELEASE item")
                except Exception as exc:
                    item.error = self._translate(exc)
                    if isinstance(item.error, StoreError):
                        log.error("%s", item.error)
                    if lone:
                        _rollback(connection)
                        return
                    if not self._undo_item(connection):
                        lost = True  # the whole transaction is gone
                        break
            todo = [item for item in todo if item.error is None]
            if lost:
                continue  # run the others again, in a new transaction
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(connection)
                self._fail(todo, exc)
                return
            self.commits += 1
            self._since_checkpoint += 1
            return

    def _undo_item(self, connection: sqlite3.Connection) -> bool:
        """Roll back the failed item's savepoint; False if the transaction is gone (SQLite
        rolls back a whole transaction on some errors, e.g. SQLITE_FULL mid-statement)."""
        if not connection.in_transaction:
            return False
        try:
            connection.execute("ROLLBACK TO item")
            connection.execute("RELEASE item")
        except sqlite3.Error:
            log.warning("%s: cannot roll back to a savepoint; redoing the batch", self._path)
            _rollback(connection)
            return False
        return True

    def _fail(self, items: Iterable[_Write], exc: sqlite3.Error) -> None:
        log.error("cannot write to %s: %s", self._path, _describe(exc))
        for item in items:
            item.error = StoreError(f"cannot write to {self._path}: {_describe(exc)}")
            item.error.__cause__ = exc

    def _translate(self, exc: Exception) -> BaseException:
        if isinstance(exc, sqlite3.IntegrityError):
            error: Exception = ValueError(f"{self._path}: {exc}")  # the caller broke a rule
        elif isinstance(exc, sqlite3.Error):
            error = StoreError(f"cannot write to {self._path}: {_describe(exc)}")
        else:
            return exc
        error.__cause__ = exc
        return error

    def _deliver(self, batch: list[_Write]) -> None:
        """Hand the outcomes of ``batch`` to the event loop (from the writer thread)."""
        if not batch:
            return
        touched: set[int] = set()
        for item in batch:
            if item.error is None:
                touched |= item.touched
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            self._loop.call_soon_threadsafe(self._settle, batch, touched)

    def _settle(self, batch: list[_Write], touched: set[int]) -> None:
        for job_id in touched:
            for event in self._followers.get(job_id, ()):
                event.set()
        for item in batch:
            if item.future.done():  # the caller was cancelled
                continue
            if item.error is not None:
                item.future.set_exception(item.error)
            else:
                item.future.set_result(item.value)

    # --- reading -----------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` in one snapshot on a reading connection, in a reading thread."""
        with self._lock:
            if self._state != "open":
                raise StoreError(f"the store {self._path} is not open")
            loop = asyncio.get_running_loop()
            pending = loop.run_in_executor(self._readers, self._read_sync, fn)
        return await pending

    def _read_sync(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        connection: sqlite3.Connection | None = None
        try:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                connection = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
                with self._lock:
                    self._reading.append(connection)
                connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                connection.execute("PRAGMA query_only = ON")
            connection.execute("BEGIN")
            try:
                return fn(connection)
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")  # a read: nothing to keep
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self._path}: {_describe(exc)}") from exc
        finally:
            if connection is not None:
                with self._lock:
                    self._idle.append(connection)

    # --- writes ------------------------------------------------------------------------

    async def add_job(self, job: JobInfo, tasks: Sequence[TaskRecord]) -> None:
        for task in tasks:
            if task.job_id != job.job_id:
                raise ValueError(f"task {task.task_id} belongs to job {task.job_id}, not this one")
        row = (
            job.job_id,
            job.name,
            job.op,
            job.priority,
            job.created_at,
            job.submitted_by,
            job.lease_timeout,
            job.max_attempts,
            job.client_key,
            job.redundancy,
            job.max_replicas,
            job.adaptive,
        )
        rows = _task_rows(tasks)

        def write(connection: sqlite3.Connection, touched: set[int]) -> None:
            connection.execute(
                "INSERT INTO jobs (job_id, name, op, priority, created_at, submitted_by, "
                "lease_timeout, max_attempts, client_key, redundancy, max_replicas, adaptive) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            connection.execute(
                "UPDATE meta SET value = max(value, ?) WHERE key = 'last_job_id'", (job.job_id,)
            )
            _insert_tasks(connection, rows)

        await self._write(write, small=len(rows) <= _INLINE_MOST)

    async def add_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        if not tasks:
            return
        rows = _task_rows(tasks)

        def write(connection: sqlite3.Connection, touched: set[int]) -> None:
            for job_id in sorted({row[1] for row in rows}):
                found = connection.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,))
                state = found.fetchone()
                if state is None:
                    raise ValueError(f"job {job_id} does not exist")
                if state[0] == JobState.CANCELLED:
                    raise ValueError(f"job {job_id} is cancelled")
            _insert_tasks(connection, rows)  # a finished job that gets more tasks runs again

        await self._write(write, small=len(rows) <= _INLINE_MOST)

    async def add_outcomes(self, outcomes: Sequence[Outcome]) -> list[bool]:
        if not outcomes:
            return []
        updates: list[_Update] = []
        for o in outcomes:  # encoded here: a result that is not JSON fails in the caller
            values: tuple[Any, ...]
            if isinstance(o, ResultRecord):
                result = _encode(o.result).decode()
                values = (result, o.worker_id, o.worker_key, o.attempts, o.duration_ms)
                values += (o.lease_ms, o.finished_at, o.verdict)
                sql = _RECORD_RESULT  # replicas stays NULL (binding a None is not free)
                if o.replicas:
                    values += (_encode(o.replicas).decode(),)
                    sql = _RECORD_REPLICATED_RESULT
                values += (o.task_id, o.job_id)
                updates.append(_Update(o.job_id, o.task_id, o.finished_at, sql, values))
            else:
                values = (_encode(o.reasons).decode(), o.finished_at, o.task_id, o.job_id)
                updates.append(_Update(o.job_id, o.task_id, o.finished_at, _RECORD_FAILURE, values))
        record = functools.partial(self._record_outcomes, updates)
        return await self._write(record, small=len(updates) <= _INLINE_MOST)

    def _record_outcomes(
        self,
        updates: list[_Update],
        connection: sqlite3.Connection,
        touched: set[int],
    ) -> list[bool]:
        counts: dict[int, list[int]] = {}  # job -> [done, failed]
        latest: dict[int, float | None] = {}  # job -> latest finished_at of its outcomes
        first = self._last_seq + 1  # each outcome gets the next seq, in the order given
        seq = self._last_seq + len(updates)
        if _UPDATE_FROM and len(updates) > 1 and len({u.task_id for u in updates}) == len(updates):
            recorded = _record_many(connection, updates, first)
        else:  # one by one: of two outcomes for one task, the first that fits counts
            recorded = [
                connection.execute(update.sql, (at, *update.values)).rowcount == 1
                for at, update in enumerate(updates, first)
            ]
        for update, new in zip(updates, recorded, strict=True):
            if new:
                job_id, finished_at = update.job_id, update.finished_at
                counts.setdefault(job_id, [0, 0])[update.sql is _RECORD_FAILURE] += 1
                when = latest.get(job_id)
                if finished_at is not None and (when is None or finished_at > when):
                    when = finished_at
                latest[job_id] = when
        if not counts:
            return recorded
        self._last_seq = seq  # seqs of a rolled-back call are skipped, never reused
        connection.execute("UPDATE meta SET value = ? WHERE key = 'last_outcome_seq'", (seq,))
        for job_id, (n_done, n_failed) in counts.items():
            when = latest[job_id]
            at = time.time() if when is None else when
            connection.execute(
                _COUNT_OUTCOMES, {"job": job_id, "done": n_done, "failed": n_failed, "at": at}
            )
            touched.add(job_id)
        return recorded

    async def record_attempt(self, task_id: int, reason: str) -> None:
        def write(connection: sqlite3.Connection, touched: set[int]) -> None:
            row = connection.execute(
                "SELECT reasons FROM tasks WHERE task_id = ? AND state = 'queued'", (task_id,)
            ).fetchone()
            if row is None:
                return  # unknown or final: nothing to keep
            reasons = _encode([*_decode_reasons(row[0]), reason]).decode()
            connection.execute(
                "UPDATE tasks SET attempts = attempts + 1, reasons = ? WHERE task_id = ?",
                (reasons, task_id),
            )

        await self._write(write)

    async def cancel_job(self, job_id: int, at: float) -> list[int]:
        def write(connection: sqlite3.Connection, touched: set[int]) -> list[int]:
            row = connection.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,))
            found = row.fetchone()
            if found is None or found[0] != JobState.RUNNING:
                return []
            ids = [
                task_id
                for (task_id,) in connection.execute(
                    "SELECT task_id FROM tasks WHERE job_id = ? AND state = 'queued' "
                    "ORDER BY task_id",
                    (job_id,),
                )
            ]
            connection.execute(
                "UPDATE tasks SET state = 'cancelled', finished_at = ? "
                "WHERE job_id = ? AND state = 'queued'",
                (at, job_id),
            )
            connection.execute(
                "UPDATE jobs SET state = 'cancelled', finished_at = ?, "
                "cancelled = cancelled + ? WHERE job_id = ?",
                (at, len(ids), job_id),
            )
            touched.add(job_id)
            return ids

        return await self._write(write)

    async def record_workers(self, workers: Sequence[WorkerRecord]) -> None:
        if not workers:
            return
        rows = [
            (
                w.worker_key,
                w.agent,
                w.first_seen,
                w.last_seen,
                w.tasks_done,
                w.failures,
                w.compute_ms,
                w.valid,
                w.invalid,
                w.consecutive_valid,
                w.error_rate,
                w.quarantined,
                w.lost,
                w.loss_rate,
                w.job_tasks_done,
            )
            for w in workers
        ]

        def write(connection: sqlite3.Connection, touched: set[int]) -> None:
            connection.executemany(_RECORD_WORKERS, rows)

        await self._write(write)

    async def record_throughput(self, samples: Sequence[ThroughputSample]) -> None:
        if not samples:
            return
        rows = [(s.at, s.done, s.failed) for s in samples]

        def write(connection: sqlite3.Connection, touched: set[int]) -> None:
            connection.executemany(_ADD_THROUGHPUT, rows)

        await self._write(write)

    async def prune(self, finished_before: float) -> int:
        removed = 0
        while True:
            step = functools.partial(_prune_step, finished_before, _PRUNE_BATCH)
            count, more = await self._write(step)
            removed += count
            if not more:
                break
        samples = functools.partial(_prune_throughput, finished_before, _PRUNE_BATCH)
        while await self._write(samples):
            pass
        return removed

    async def prune_workers(self, seen_before: float, *, keep: Collection[str] = ()) -> int:
        kept = _encode(sorted(set(keep))).decode()  # text: JSON functions refuse a BLOB
        removed = 0
        while True:
            step = functools.partial(_prune_workers, seen_before, kept, _PRUNE_BATCH)
            count = await self._write(step)
            removed += count
            if count < _PRUNE_BATCH:
                return removed

    # --- reads -------------------------------------------------------------------------

    async def job_for(self, client_key: str) -> int | None:
        def read(connection: sqlite3.Connection) -> int | None:
            row = connection.execute("SELECT job_id FROM jobs WHERE client_key = ?", (client_key,))
            found = row.fetchone()
            return None if found is None else int(found[0])

        return await self._read(read)

    async def job(self, job_id: int) -> JobSummary | None:
        def read(connection: sqlite3.Connection) -> JobSummary | None:
            row = connection.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            return None if row is None else _summary(row)

        return await self._read(read)

    async def jobs(self, *, limit: int = 100, before: int | None = None) -> list[JobSummary]:
        def read(connection: sqlite3.Connection) -> list[JobSummary]:
            if before is None:
                sql = f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY job_id DESC LIMIT ?"
                rows = connection.execute(sql, (max(limit, 0),))
            else:
                sql = (
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id < ? ORDER BY job_id DESC LIMIT ?"
                )
                rows = connection.execute(sql, (before, max(limit, 0)))
            return [_summary(row) for row in rows]

        return await self._read(read)

    async def outcomes(self, job_id: int, *, follow: bool = False) -> AsyncIterator[Outcome]:
        arrived = asyncio.Event()
        if follow:
            self._followers.setdefault(job_id, set()).add(arrived)
        try:
            after = 0
            while True:
                arrived.clear()  # before reading: a commit from now on sets it again
                page_size = self._page_size
                read = functools.partial(_outcome_page, job_id, after, page_size)
                page, after, final = await self._read(read)
                for outcome in page:
                    yield outcome
                if len(page) == page_size:
                    continue
                if final or not follow:
                    return
                await arrived.wait()
        finally:
            followers = self._followers.get(job_id, set())
            followers.discard(arrived)
            if not followers:
                self._followers.pop(job_id, None)

    async def outcomes_of(self, task_ids: Sequence[int]) -> list[Outcome]:
        if not task_ids:
            return []
        wanted = list(task_ids)

        def read(connection: sqlite3.Connection) -> list[Outcome]:
            found: dict[int, Outcome] = {}
            unique = sorted(set(wanted))
            for start in range(0, len(unique), _IN_CHUNK):
                chunk = unique[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                rows = connection.execute(
                    f"SELECT {_OUTCOME_COLUMNS} FROM tasks "
                    f"WHERE task_id IN ({marks}) AND outcome_seq IS NOT NULL",
                    chunk,
                )
                for row in rows:
                    found[row[2]] = _outcome(row)
            return [found[task_id] for task_id in wanted if task_id in found]

        return await self._read(read)

    async def unfinished(self) -> tuple[list[JobInfo], list[TaskRecord]]:
        def read(connection: sqlite3.Connection) -> tuple[list[JobInfo], list[TaskRecord]]:
            jobs = [
                _summary(row).info
                for row in connection.execute(
                    f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'running' ORDER BY job_id"
                )
            ]
            tasks = [
                TaskRecord(
                    task_id=row[0],
                    job_id=row[1],
                    index=row[2],
                    op=row[3],
                    args=_decode_args(row[4]),
                    attempts=row[5],
                    reasons=_decode_reasons(row[6]),
                )
                for row in connection.execute(_UNFINISHED_TASKS)
            ]
            return jobs, tasks

        return await self._read(read)

    async def next_ids(self) -> tuple[int, int]:
        def read(connection: sqlite3.Connection) -> tuple[int, int]:
            rows = dict(
                connection.execute(
                    "SELECT key, value FROM meta WHERE key IN ('last_job_id', 'last_task_id')"
                ).fetchall()
            )
            return int(rows["last_job_id"]) + 1, int(rows["last_task_id"]) + 1

        return await self._read(read)

    async def workers(self, *, limit: int | None = None) -> list[WorkerRecord]:
        count = -1 if limit is None else max(limit, 0)  # LIMIT -1: no limit

        def read(connection: sqlite3.Connection) -> list[WorkerRecord]:
            rows = connection.execute(
                f"SELECT {_WORKER_COLUMNS} FROM workers "
                "ORDER BY last_seen DESC, worker_key LIMIT ?",
                (count,),
            )
            return [_worker(row) for row in rows]

        return await self._read(read)

    async def worker(self, worker_key: str) -> WorkerRecord | None:
        def read(connection: sqlite3.Connection) -> WorkerRecord | None:
            row = connection.execute(
                f"SELECT {_WORKER_COLUMNS} FROM workers WHERE worker_key = ?", (worker_key,)
            ).fetchone()
            return None if row is None else _worker(row)

        return await self._read(read)

    async def throughput(self, since: float) -> list[ThroughputSample]:
        def read(connection: sqlite3.Connection) -> list[ThroughputSample]:
            rows = connection.execute(_THROUGHPUT_SINCE, (since,))
            return [ThroughputSample(*row) for row in rows]

        return await self._read(read)


# --- helpers run in the writer and reader threads ------------------------------------------


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


def _versioned(script: str, version: int) -> str:
    """``script``, then the setting of ``meta.schema_version`` to ``version``, as one
    transaction (for ``executescript``)."""
    return (
        f"BEGIN IMMEDIATE;\n{script}\n;"
        f"INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', {version});"
        "\nCOMMIT;"
    )


def _rollback(connection: sqlite3.Connection) -> None:
    """End the transaction, if one is active (a failed ROLLBACK shows up at the next BEGIN)."""
    with contextlib.suppress(sqlite3.Error):
        connection.execute("ROLLBACK")


def _task_rows(tasks: Sequence[TaskRecord]) -> list[tuple[Any, ...]]:
    return [
        (
            task.task_id,
            task.job_id,
            task.index,
            task.op,
            _encode(task.args).decode(),
            task.attempts,
            _encode(task.reasons).decode(),
        )
        for task in tasks
    ]


def _record_many(connection: sqlite3.Connection, updates: list[_Update], first: int) -> list[bool]:
    """Record ``updates`` (distinct tasks; seqs from ``first`` on, in order) with a few
    multi-row statements; per update, whether it was recorded (its task was queued)."""
    by_kind: dict[str, list[tuple[Any, ...]]] = {}
    for at, update in enumerate(updates, first):
        by_kind.setdefault(update.sql, []).append((at, *update.values))
    changed = 0
    for single, rows in by_kind.items():
        for start, size in _spans(len(rows), _UPDATE_ROWS):
            values = list(chain.from_iterable(rows[start : start + size]))
            changed += connection.execute(_update_sql(single, size), values).rowcount
    if changed == len(updates):
        return [True] * len(updates)
    # Some were not recorded (unknown, final already, or of another job): a task that was
    # holds the seq its update carried.
    held: dict[int, int | None] = {}
    ids = [update.task_id for update in updates]
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows_found = connection.execute(
            f"SELECT task_id, outcome_seq FROM tasks WHERE task_id IN ({marks})", chunk
        )
        held.update(rows_found.fetchall())
    return [held.get(u.task_id) == at for at, u in enumerate(updates, first)]


def _insert_tasks(connection: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    for start, size in _spans(len(rows), _INSERT_ROWS):
        values = list(chain.from_iterable(rows[start : start + size]))
        connection.execute(_insert_sql(size), values)
    for job_id, count in Counter(row[1] for row in rows).items():
        connection.execute(
            "UPDATE jobs SET total = total + ?, state = 'running', finished_at = NULL "
            "WHERE job_id = ?",
            (count, job_id),
        )
    connection.execute(
        "UPDATE meta SET value = max(value, ?) WHERE key = 'last_task_id'",
        (max(row[0] for row in rows),),
    )


def _prune_step(
    finished_before: float, budget: int, connection: sqlite3.Connection, touched: set[int]
) -> tuple[int, bool]:
    """Remove ended jobs, deleting at most ``budget`` tasks; (jobs removed, more to do)."""
    candidates = connection.execute(_PRUNE_CANDIDATES, (finished_before, _PRUNE_JOBS)).fetchall()
    removed = 0
    for (job_id,) in candidates:
        deleted = connection.execute(
            "DELETE FROM tasks WHERE task_id IN "
            "(SELECT task_id FROM tasks WHERE job_id = ? LIMIT ?)",
            (job_id, budget),
        ).rowcount
        budget -= deleted
        if budget <= 0:
            return removed, True  # this job may have more tasks: the next step goes on
        connection.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        touched.add(job_id)  # its followers end
        removed += 1
    return removed, len(candidates) == _PRUNE_JOBS


def _prune_throughput(
    finished_before: float, budget: int, connection: sqlite3.Connection, touched: set[int]
) -> bool:
    """Remove at most ``budget`` throughput samples of seconds before ``finished_before``;
    True when there may be more."""
    return connection.execute(_PRUNE_THROUGHPUT, (finished_before, budget)).rowcount == budget


def _prune_workers(
    seen_before: float, kept: str, budget: int, connection: sqlite3.Connection, touched: set[int]
) -> int:
    """Remove at most ``budget`` workers seen before ``seen_before``, neither quarantined
    nor in ``kept`` (JSON); returns how many."""
    count: int = connection.execute(_PRUNE_WORKERS, (seen_before, kept, budget)).rowcount
    return count


def _summary(row: tuple[Any, ...]) -> JobSummary:
    info = JobInfo(
        job_id=row[0],
        name=row[1],
        op=row[2],
        priority=row[3],
        created_at=row[4],
        submitted_by=row[5],
        lease_timeout=row[6],
        max_attempts=row[7],
        client_key=row[8],
        redundancy=row[15],
        max_replicas=row[16],
        adaptive=bool(row[17]),
    )
    return JobSummary(
        info=info,
        state=JobState(row[9]),
        total=row[11],
        done=row[12],
        failed=row[13],
        cancelled=row[14],
        finished_at=row[10],
    )


def _outcome(row: tuple[Any, ...]) -> Outcome:
    # outcome_seq, state, task_id, job_id, idx, result, worker_id, attempts, duration_ms,
    # worker_key, lease_ms, finished_at, verdict, reasons (a failure) or replicas (a result).
    # A result's reasons are never read: not fetching them pays for fetching its replicas.
    if row[1] == "done":
        return ResultRecord(
            task_id=row[2],
            job_id=row[3],
            index=row[4],
            result=_decode_result(row[5]),
            worker_id=row[6],
            attempts=row[7],
            duration_ms=row[8],
            worker_key=row[9],
            lease_ms=row[10],
            finished_at=row[11],
            verdict=row[12],
            replicas=[] if row[13] is None else _decode_replicas(row[13]),
        )
    return FailureRecord(
        task_id=row[2],
        job_id=row[3],
        index=row[4],
        reasons=_decode_reasons(row[13]),
        finished_at=row[11],
    )


def _worker(row: tuple[Any, ...]) -> WorkerRecord:
    # worker_key, agent, first_seen, last_seen, tasks_done, failures, compute_ms, valid,
    # invalid, consecutive_valid, error_rate, quarantined, lost, loss_rate, job_tasks_done
    return WorkerRecord(
        worker_key=row[0],
        agent=row[1],
        first_seen=row[2],
        last_seen=row[3],
        tasks_done=row[4],
        failures=row[5],
        compute_ms=row[6],
        valid=row[7],
        invalid=row[8],
        consecutive_valid=row[9],
        error_rate=row[10],
        quarantined=bool(row[11]),
        lost=row[12],
        loss_rate=row[13],
        job_tasks_done=row[14],
    )


def _outcome_page(
    job_id: int, after: int, size: int, connection: sqlite3.Connection
) -> tuple[list[Outcome], int, bool]:
    """Up to ``size`` outcomes recorded after ``after``; (them, last seq, job ended).

    Both come from one snapshot, so when the job has ended no outcome can come after."""
    state = connection.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    rows = connection.execute(_OUTCOME_PAGE, (job_id, after, size)).fetchall()
    last = rows[-1][0] if rows else after
    return [_outcome(row) for row in rows], last, state is None or state[0] != "running"


if TYPE_CHECKING:
    from browsergrid.store._base import Store

    def _implements(store: SqliteStore) -> Store:
        return store
