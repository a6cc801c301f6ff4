"""What the coordinator prints: readable lines for people, one JSON object per line for machines.

Per-worker and per-task lines go to the ``*.events`` loggers, which ``--quiet`` turns off;
start-up, shutdown and problems go to their parents (``browsergrid.server``,
``browsergrid.worker``).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import msgspec

from browsergrid.config import LogFormat

_EVENT_LOGGERS = ("browsergrid.server.events", "browsergrid.worker.events")

_json = msgspec.json.Encoder()


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "message"),
        }
        entry.update(getattr(record, "fields", {}))
        if "event" not in record.__dict__:
            entry["message"] = record.getMessage()
        return _json.encode(entry).decode()


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        prefix = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return f"{stamp} {prefix}{record.getMessage()}"


class _PeerMistakes(logging.Filter):
    """uvicorn logs some of a peer's doings as errors: a text frame that is not UTF-8 (the
    peer's mistake, closed with 1007), and an upgrade refused with an HTTP answer (403, 429;
    websockets-sansio does not count it as a finished handshake). They are warnings here:
    no peer can write error lines."""

    _PREFIXES = ("Invalid UTF-8", "ASGI callable returned without completing handshake")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.getMessage().startswith(self._PREFIXES):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup_console(fmt: LogFormat, *, quiet: bool, stream: TextIO | None = None) -> None:
    """Route browsergrid's and uvicorn's log records to ``stream`` (stdout) in ``fmt``."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    for name in ("browsergrid", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.getLogger("browsergrid").setLevel(logging.INFO)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.setLevel(logging.WARNING)
    if not any(isinstance(f, _PeerMistakes) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_PeerMistakes())
    for name in _EVENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)


def emit(
    logger: logging.Logger, event: str, text: str, level: int = logging.INFO, **fields: Any
) -> None:
    """Log ``text`` for people; ``event`` and ``fields`` are what the JSON format carries."""
    if logger.isEnabledFor(level):
        logger.log(level, text, extra={"event": event, "fields": fields})
