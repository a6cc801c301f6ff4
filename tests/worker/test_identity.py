"""The Python worker's key files: one slot per process, kept across restarts, readable by
their owner alone (a key is a credential)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from browsergrid.errors import ConfigError
from browsergrid.worker import claim_identity


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that takes nothing away: the file's mode is then what the code asked for."""
    before = os.umask(0)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_file_is_readable_by_its_owner_alone(tmp_path: Path, open_umask: None) -> None:
    identity = claim_identity(tmp_path)
    try:
        assert identity.key.startswith("py-") and len(identity.key) == 35
        path = tmp_path / "workers" / "0.key"
        assert path.read_text(encoding="utf-8") == identity.key + "\n"
        assert mode(path) == 0o600
    finally:
        identity.lock.close()


def test_a_key_file_an_older_version_left_0644_is_tightened_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "workers" / "0.key"
    path.parent.mkdir()
    path.write_text("py-0123456789abcdef0123456789abcdef\n", encoding="utf-8")
    path.chmod(0o644)
    identity = claim_identity(tmp_path)
    try:
        assert identity.key == "py-0123456789abcdef0123456789abcdef"
        assert mode(path) == 0o600
    finally:
        identity.lock.close()


def test_each_process_slot_has_its_own_key_and_keeps_it(tmp_path: Path) -> None:
    first = claim_identity(tmp_path)
    second = claim_identity(tmp_path)  # slot 0 is locked: slot 1
    assert first.key != second.key
    assert mode(tmp_path / "workers" / "1.key") == 0o600
    key = first.key
    first.lock.close()
    again = claim_identity(tmp_path)  # slot 0 is free again, with its key
    try:
        assert again.key == key
    finally:
        again.lock.close()
        second.lock.close()


def test_a_key_file_that_cannot_be_made_private_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "workers" / "0.key"
    path.parent.mkdir()
    path.write_text("py-x\n", encoding="utf-8")
    path.chmod(0o644)

    def refuse(fd: int, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchmod", refuse)
    with pytest.raises(ConfigError, match=r"cannot make .*0\.key private \(chmod 600 it"):
        claim_identity(tmp_path)


def test_a_key_file_that_cannot_be_opened_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "workers" / "0.key").mkdir(parents=True)  # a directory where the file goes
    with pytest.raises(ConfigError, match=r"cannot open .*0\.key"):
        claim_identity(tmp_path)
