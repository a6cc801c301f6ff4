"""What the coordinator prints: readable lines for people, one JSON object per line for machines.

Per-worker and per-task lines go to the ``*.events`` loggers, which ``--quiet`` turns off;
start-up, shutdown and problems go to their parents (``browsergrid.server``,
``browsergrid.worker``).

Peers choose much of what is logged (agents, op names, error messages, close reasons), so
the text format writes their control characters escaped (``\n``, ``\r``, ``\x1b``): a
peer cannot add a line that looks like the coordinator's, nor drive the terminal. A record
starts with its time; a line break the code itself writes stays only before an indented
line (``emit(..., lines=True)`` keeps all of them: its text holds nothing from peers). The
JSON format is safe as it is: every value is a JSON string.
"""

from __future__ import annotations

import logging
import re
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


# C0 controls, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_INDENTED_BREAKS = re.compile("\n(?!  )|[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_BREAKS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (line breaks too): safe to print on
    one line whoever wrote it."""
    return _CONTROL.sub(_escaped, text) if _CONTROL.search(text) else text


def _safe_text(text: str, fields: dict[str, Any], *, lines: bool) -> str:
    """``text`` to print: the field values found in it on one line each, then every other
    control character escaped but for line breaks before an indented line (every line
    break if ``lines``)."""
    for value in fields.values():
        for item in value if isinstance(value, list | tuple) else (value,):
            if isinstance(item, str) and item and _CONTROL.search(item):
                text = text.replace(item, one_line(item))
    other = _CONTROL_BUT_BREAKS if lines else _CONTROL_BUT_INDENTED_BREAKS
    return other.sub(_escaped, text)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        prefix = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        message = record.getMessage()
        if _CONTROL.search(message):
            fields = getattr(record, "fields", {})
            message = _safe_text(message, fields, lines=getattr(record, "lines", False))
        return f"{stamp} {prefix}{message}"


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
    logger: logging.Logger,
    event: str,
    text: str,
    level: int = logging.INFO,
    *,
    lines: bool = False,
    **fields: Any,
) -> None:
    """Log ``text`` for people; ``event`` and ``fields`` are what the JSON format carries.

    Put every value a peer chose into ``fields`` as well: the text format escapes its
    control characters wherever it appears in ``text``. ``lines=True`` keeps every line
    break of ``text`` (else only those before an indented line): only for texts that hold
    nothing from peers."""
    if logger.isEnabledFor(level):
        logger.log(level, text, extra={"event": event, "fields": fields, "lines": lines})
