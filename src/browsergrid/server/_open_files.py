"""The open-files limit: every connection takes a file, so a coordinator raises its own.

Linux starts most processes with a soft limit of 1,024 open files and a hard limit far above
it. At the soft limit the coordinator can accept no one, worker or page; raising the soft
limit to the hard one needs no privilege. Where there is no such limit (Windows), nothing
is done.
"""

from __future__ import annotations

import contextlib
import logging
import sys

from browsergrid._console import emit

log = logging.getLogger("browsergrid.server")

LOW_LIMIT = 4096
"""Below this many open files, say how to raise the hard limit."""
_UNLIMITED_SOFT = 1 << 20
"""The soft limit asked for when the hard one is unlimited (macOS): the kernel refuses an
unlimited soft limit for open files, and a million is as many as a coordinator needs."""


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise the soft limit of open files to the hard limit, and log it once (a warning when
    it stays below ``LOW_LIMIT``). Returns (soft limit before, soft limit now), or None
    where the platform has no such limit."""
    if sys.platform == "win32":
        return None
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _UNLIMITED_SOFT if hard == resource.RLIM_INFINITY else hard
    now = soft
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):  # e.g. past the kernel's own cap
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    shown = "unlimited" if now == resource.RLIM_INFINITY else str(now)
    if now != resource.RLIM_INFINITY and now < LOW_LIMIT:
        emit(
            log,
            "open_files_limit",
            f"at most {shown} open files (connections each take one): raise the hard limit, "
            "e.g. 'ulimit -Hn 65536' as root, or LimitNOFILE=65536 in a systemd unit",
            level=logging.WARNING,
            before=soft,
            limit=now,
        )
    elif now != soft:
        emit(
            log,
            "open_files_limit",
            f"open-files limit raised from {soft} to {shown} (connections each take one)",
            before=soft,
            limit=now,
        )
    return soft, now
