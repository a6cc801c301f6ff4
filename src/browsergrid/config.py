"""Settings of ``browsergrid serve``. Every default is documented here, in one place."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from browsergrid.core import WelcomeTask
from browsergrid.errors import ConfigError
from browsergrid.protocol import MAX_FRAME_BYTES

LogFormat = Literal["text", "json"]
DATA_DIR_ENV = "BROWSERGRID_DATA_DIR"
TOKEN_ENV = "BROWSERGRID_TOKEN"
"""The admin token, for ``serve`` (instead of the token file) and for every submitter."""
WORKER_TOKEN_ENV = "BROWSERGRID_WORKER_TOKEN"
"""The join token, for ``serve`` (``--worker-token``) and ``browsergrid worker`` (``--token``)."""
DASHBOARD_TOKEN_ENV = "BROWSERGRID_DASHBOARD_TOKEN"
"""The read token, for ``serve`` (``--dashboard-token``)."""
REDIS_ENV = "BROWSERGRID_REDIS"
"""The Redis URL for ``serve`` (``--redis``), unless ``--memory`` is given."""
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
TOKEN_FILE = "token"
"""The admin token's file in the data directory, created at first start with mode 0600."""
_MAX_TOKEN_CHARS = 1024
DEFAULT_NAME = "browsergrid"
"""The coordinator's name on the worker page when ``serve`` is given no ``--name``."""
MAX_NAME_CHARS = 80
MAX_MESSAGE_CHARS = 500


DEFAULT_BLOB_CACHE_BYTES: Final = 1024**3
"""What a Python worker keeps of fetched blobs on disk by default (``--blob-cache-bytes``)."""


def default_data_dir() -> Path:
    """$BROWSERGRID_DATA_DIR, else $XDG_DATA_HOME/browsergrid, else ~/.local/share/browsergrid."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "browsergrid"


def env_token(name: str) -> str | None:
    """The token in environment variable ``name``; None when unset or empty."""
    return os.environ.get(name) or None


def check_token(option: str, token: str | None) -> None:
    """A token travels in an HTTP header and a URL: printable ASCII without spaces. Raises
    ConfigError naming ``option`` otherwise."""
    if token is None:
        return
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise ConfigError(f"{option} must be 1 to {_MAX_TOKEN_CHARS} characters long")
    if not all("!" <= char <= "~" for char in token):
        raise ConfigError(f"{option} may hold printable ASCII characters only, without spaces")


def check_page_text(option: str, text: str, limit: int, *, one_line: bool) -> None:
    """A text for the worker page: 1 to ``limit`` characters, not only spaces, without control
    characters (but line breaks when not ``one_line``). Raises ConfigError naming ``option``."""
    if not text.strip() or len(text) > limit:
        raise ConfigError(f"{option} must be 1 to {limit} characters long (not only spaces)")
    allowed = "" if one_line else "\n"
    if any((ord(char) < 32 or 127 <= ord(char) < 160) and char not in allowed for char in text):
        lines = "on one line, " if one_line else ""
        raise ConfigError(f"{option} must be plain text, {lines}without control characters")


def parse_duration(text: str) -> float:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"45s"`` or plain seconds -> seconds."""
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1.0)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 7d, 12h, 30m)") from None
    if seconds <= 0:
        raise ConfigError(f"a duration must be positive, not {text!r}")
    return seconds


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeConfig:
    """Options of the coordinator; ``browsergrid serve --help`` shows the same defaults."""

    host: str = "127.0.0.1"
    """Address to listen on. Loopback by default: nothing outside this machine can join."""
    port: int = 8765
    """The exercise's port. 0 picks a free port (printed when ready)."""
    welcome: WelcomeTask | None = field(default_factory=WelcomeTask)
    """The task sent to every worker on connect; None turns it off (--no-welcome-task)."""
    lease_timeout_s: float = 60.0
    """A task not answered this long after it was sent is taken back and queued again; for
    ops without a default of their own (built-in ops have one; a job may set its own)."""
    max_attempts: int = 3
    """How many leases a task gets before it fails."""
    work_buffer_s: float = 0.1
    """Work queued at a worker beyond what it runs, in seconds at its measured speed: many
    tiny tasks are in flight at once, long ones one at a time (never above its prefetch)."""
    heartbeat_interval_s: float = 20.0
    """Seconds between WebSocket pings to each worker."""
    heartbeat_timeout_s: float = 20.0
    """A worker whose pong is this late is disconnected (close code 1011)."""
    max_frame_bytes: int = MAX_FRAME_BYTES
    """Largest frame accepted; a larger one closes the connection with 1009."""
    data_dir: Path = field(default_factory=default_data_dir)
    """Where the SQLite database (``browsergrid.db``) lives; created when missing."""
    memory: bool = False
    """Keep everything in memory instead (nothing survives a restart; for tests and benches)."""
    redis_url: str | None = None
    """Keep jobs, results and worker history in Redis instead of SQLite; one coordinator for
    now. The CLI takes it from ``--redis redis://HOST:PORT/DB``, else $BROWSERGRID_REDIS
    (unless ``--memory``). ``?prefix=NAME:`` sets the prefix of every key (default
    ``browsergrid:``). ``data_dir`` still holds the token file."""
    sync: Literal["normal", "full"] = "normal"
    """SQLite's synchronous mode: ``normal`` survives a crash of the coordinator process,
    ``full`` also a power cut (slower: every commit waits for the disk)."""
    retain_s: float = 7 * 86400.0
    """Finished jobs older than this are removed, with their results, and the history of
    workers not seen for as long but quarantined ones (--retain 7d)."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` (one object per line) for machines."""
    quiet: bool = False
    """Leave out the per-worker and per-task lines (large grids)."""
    shutdown_timeout_s: int = 5
    """How long a graceful shutdown waits for connections to close."""
    allow_origins: tuple[str, ...] = ()
    """Web origins (``https://host:port``) whose pages may open WebSockets here, besides the
    coordinator's own; ``*`` allows any. Pages opened from a file (origin ``null``) may
    connect from this machine only, unless ``null`` is listed here."""
    max_connections_per_address: int = 256
    """WebSocket connections open at once from one IP address (0: no limit); one more is
    refused with HTTP 429. A classroom behind one NAT address shares it."""
    max_tasks_per_job: int = 1_000_000
    """Tasks one job may hold; a submit that would pass it is refused (``too_many_tasks``)."""
    max_args_bytes: int = 64 * 1024
    """Size of one task's arguments as JSON; a larger one is refused (``args_too_large``)."""
    max_body_bytes: int = 8 * 1024 * 1024
    """Largest HTTP request body (a job of about 100,000 small tasks); a larger one gets 413.
    The body is parsed whole, so this bounds the memory one request can take."""
    max_blob_size: int = 256 * 1024 * 1024
    """Largest blob one upload may hold (``POST /api/blobs``, a worker's ``PUT /blobs``);
    a larger one gets 413 ``blob_too_large``."""
    max_blob_bytes: int = 10 * 1024**3
    """All blobs kept, in bytes: an upload that would pass it gets 507 ``blob_store_full``
    rather than fill the disk (blobs no task needs go after ``retain_s``)."""
    max_environment_bytes: int = 512 * 1024 * 1024
    """The wheels of one task's environment (``client.options(packages=...)``), in bytes
    in all; a submit naming a larger one is refused (``environment_too_large``)."""
    blob_store: str | None = None
    """``s3://BUCKET[/PREFIX]``: keep blobs in this S3-compatible object store, shared by
    every coordinator given it (the disk is then a cache). Endpoint and credentials come
    from the standard ``AWS_*`` settings. Without it, a grid on Redis keeps small blobs in
    its Redis, and a coordinator of its own on its disk."""
    request_timeout_s: float = 10.0
    """An HTTP request's headers must arrive within this many seconds of the connection
    opening (or, on a kept-alive connection, of the request's first byte), and its body
    within as long again after them, plus a second per KiB received; a slower request gets
    HTTP 408 and its connection is closed, so slow senders cannot hold connections open."""
    max_messages_per_s: float = 5000.0
    """Frames per second one connection may send on average (bursts of twice that); above
    it the connection gets an ``error`` frame and is closed with 1008."""
    seed: int | None = None
    """Seed of the scheduler's random draws (the spot checks of adaptive replication);
    None draws one at start. The seed used is logged (``scheduler_seeded``), so a run's
    draws can be replayed with ``--seed``."""
    max_outbox_bytes: int = 4 * 1024 * 1024
    """Unsent bytes one connection may have waiting; past this, or when nothing it was sent
    drains for ``heartbeat_timeout_s``, the peer is not reading and is closed with 1008 (its
    leases go back to the queue at once)."""
    certfile: Path | None = None
    """A PEM certificate (chain): with ``keyfile``, serve https:// and wss:// instead of
    http:// and ws://. Both files are read at start."""
    keyfile: Path | None = None
    """The certificate's PEM private key, unencrypted; give both files or neither."""
    ops_python: tuple[Path, ...] = ()
    """Python files of custom ops (``--ops-python``, repeatable; browsergrid/ops/_custom.py
    says what they hold): loaded at start, so that the coordinator accepts their ops and
    compares replicas with their ``agree_<name>``. Their lease is ``lease_timeout_s``."""
    token: str | None = field(default_factory=lambda: env_token(TOKEN_ENV))
    """The admin token (``--token``, else $BROWSERGRID_TOKEN): submitting, cancelling and
    every other change need it, and it grants every read. None: the file ``token`` in
    ``data_dir``, created at first start (mode 0600) and printed once."""
    no_token: bool = False
    """No admin token at all (``--no-token``): anyone who reaches the port may submit and
    cancel. Overrides ``token``."""
    worker_token: str | None = field(default_factory=lambda: env_token(WORKER_TOKEN_ENV))
    """The join token (``--worker-token``, else $BROWSERGRID_WORKER_TOKEN): workers must
    present it (or the admin token) to connect. None: any worker may join."""
    dashboard_token: str | None = field(default_factory=lambda: env_token(DASHBOARD_TOKEN_ENV))
    """The read token (``--dashboard-token``, else $BROWSERGRID_DASHBOARD_TOKEN): the live
    dashboard feed, ``GET /api/...`` and ``/metrics`` need it (or the admin token). None:
    anyone may read."""
    ops_module: Path | None = None
    """An ES module of custom JavaScript ops (``--ops-module``): the coordinator serves it
    as ``/ops-module.js`` and each worker page offers its exported functions as ops."""
    name: str = DEFAULT_NAME
    """The coordinator's name, the heading of the worker page (``--name``): who a
    volunteer's tab computes for. 1 to 80 characters, one line; shown as text."""
    message: str | None = None
    """A message to volunteers under that heading (``--message``), up to 500 characters
    (line breaks kept); None: none. Shown as text, never as HTML."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, not {self.port}")
        if self.lease_timeout_s <= 0:
            raise ConfigError("--lease-timeout must be positive")
        if self.work_buffer_s < 0:
            raise ConfigError("--work-buffer must be >= 0")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")
        if self.max_connections_per_address < 0:
            raise ConfigError("--max-connections-per-address must be >= 0")
        if min(self.max_tasks_per_job, self.max_args_bytes, self.max_body_bytes) < 1:
            raise ConfigError("--max-tasks-per-job, --max-args-bytes, --max-body-bytes: >= 1")
        if min(self.max_blob_size, self.max_blob_bytes, self.max_environment_bytes) < 1:
            raise ConfigError(
                "--max-blob-size, --max-blob-bytes, --max-environment-bytes must be at least 1"
            )
        if self.blob_store is not None and not self.blob_store.startswith("s3://"):
            raise ConfigError(f"--blob-store takes s3://BUCKET[/PREFIX], not {self.blob_store!r}")
        if not 0 < self.request_timeout_s < math.inf:
            raise ConfigError("--request-timeout must be a positive number of seconds")
        if self.max_messages_per_s < 1:
            raise ConfigError("--max-messages-per-s must be at least 1")
        if self.max_outbox_bytes < self.max_frame_bytes:
            raise ConfigError(
                "--max-outbox-bytes must be at least --max-frame-bytes "
                f"({self.max_frame_bytes}), or honest peers would be closed"
            )
        if self.heartbeat_interval_s <= 0 or self.heartbeat_timeout_s <= 0:
            raise ConfigError("--heartbeat-interval and --heartbeat-timeout must be positive")
        if self.memory and self.redis_url is not None:
            raise ConfigError("--memory and --redis do not go together: give one or the other")
        if self.redis_url is not None and not self.redis_url.startswith(REDIS_SCHEMES):
            raise ConfigError(
                f"--redis takes a URL like redis://HOST:PORT/DB, not {self.redis_url!r}"
            )
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("--certfile and --keyfile go together: give both, or neither")
        check_token("--token", self.token)
        check_token("--worker-token", self.worker_token)
        check_token("--dashboard-token", self.dashboard_token)
        check_page_text("--name", self.name, MAX_NAME_CHARS, one_line=True)
        if self.message is not None:
            check_page_text("--message", self.message, MAX_MESSAGE_CHARS, one_line=False)
        if self.ops_module is not None and not self.ops_module.is_file():
            raise ConfigError(
                f"--ops-module {self.ops_module} is not a file: give the path of a JavaScript "
                "module that exports functions (see examples/ops/my_ops.js)"
            )
