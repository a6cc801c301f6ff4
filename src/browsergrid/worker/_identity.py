"""A Python worker's lasting identity: a key kept in its data directory, so that its history
follows it across restarts. Several workers on one machine each take a slot of their own."""

from __future__ import annotations

import fcntl
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from browsergrid.errors import ConfigError

_SLOTS = 1024


@dataclass
class Identity:
    """The key, and the open lock file that reserves its slot while this process runs."""

    key: str
    lock: IO[str]


def claim_identity(data_dir: Path) -> Identity:
    """Take the first free slot ``workers/N.key`` under ``data_dir`` (creating its key on
    first use); the slot stays taken until this process exits."""
    folder = data_dir / "workers"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder}: {exc.strerror}") from None
    for slot in range(_SLOTS):
        path = folder / f"{slot}.key"
        handle = _open_private(path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue  # another worker on this machine holds it
        handle.seek(0)
        key = handle.read().strip()
        if not key:
            key = f"py-{uuid.uuid4().hex}"
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return Identity(key, handle)
    raise ConfigError(f"all {_SLOTS} worker slots in {folder} are taken")


def _open_private(path: Path) -> IO[str]:
    """``path`` open for reading and appending, readable by its owner alone: a key is a
    credential (an established identity's trust). A new file is made 0600; one an older
    version made 0644 is tightened."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot open {path}: {exc.strerror}") from None
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(
            f"cannot make {path} private (chmod 600 it, or remove it): {exc.strerror}"
        ) from None
    return os.fdopen(fd, "a+", encoding="utf-8")
