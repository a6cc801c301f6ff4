"""Settings of ``browsergrid serve``. Every default is documented here, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from browsergrid.core import WelcomeTask
from browsergrid.errors import ConfigError
from browsergrid.protocol import MAX_FRAME_BYTES

LogFormat = Literal["text", "json"]


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
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` (one object per line) for machines."""
    quiet: bool = False
    """Leave out the per-worker and per-task lines (large grids)."""
    shutdown_timeout_s: int = 5
    """How long a graceful shutdown waits for connections to close."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, not {self.port}")
        if self.lease_timeout_s <= 0:
            raise ConfigError("--lease-timeout must be positive")
        if self.work_buffer_s < 0:
            raise ConfigError("--work-buffer must be >= 0")
        if self.max_attempts < 1:
            raise ConfigError("--max-attempts must be at least 1")
        if self.heartbeat_interval_s <= 0 or self.heartbeat_timeout_s <= 0:
            raise ConfigError("--heartbeat-interval and --heartbeat-timeout must be positive")
