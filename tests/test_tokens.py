"""browsergrid._tokens: the token file, comparing and carrying tokens, and which token a
submitter sends where (never the local file's to another host)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from browsergrid._tokens import (
    auth_headers,
    bearer_token,
    client_token,
    create_token,
    hide_token,
    read_token,
    readable_by_others,
    refusal_detail,
    same_token,
    token_path,
    with_token,
)
from browsergrid.config import ServeConfig
from browsergrid.errors import ConfigError


def test_a_created_token_is_random_readable_by_its_owner_only_and_read_back(
    tmp_path: Path,
) -> None:
    path = token_path(tmp_path / "new" / "dir")
    token = create_token(path)
    assert len(token) >= 43 and token != create_token(tmp_path / "other")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_token(path) == token
    assert not readable_by_others(path)
    with pytest.raises(FileExistsError):
        create_token(path)  # never overwritten


def test_reading_a_missing_empty_or_unreadable_token_file(tmp_path: Path) -> None:
    assert read_token(tmp_path / "token") is None
    (tmp_path / "token").write_text("\n")
    with pytest.raises(ConfigError, match="holds no token; delete it"):
        read_token(tmp_path / "token")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="cannot read the token file"):
        read_token(tmp_path / "dir")


def test_a_token_file_others_may_read_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc\n")
    os.chmod(path, 0o644)
    assert readable_by_others(path)
    os.chmod(path, 0o600)
    assert not readable_by_others(path)
    assert not readable_by_others(tmp_path / "missing")


def test_tokens_compare_exactly() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abd", "abc")
    assert not same_token("ab", "abc")
    assert not same_token(None, "abc")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_the_bearer_token_of_an_authorization_header(
    header: str | None, expected: str | None
) -> None:
    assert bearer_token(header) == expected


def test_headers_urls_and_refusals() -> None:
    assert auth_headers("t") == {"Authorization": "Bearer t"}
    assert auth_headers(None) == {}
    assert with_token("ws://h:1/ws", None) == "ws://h:1/ws"
    assert with_token("ws://h:1/ws", "a+b/c") == "ws://h:1/ws?token=a%2Bb%2Fc"
    assert with_token("http://h/?workers=2&token=old", "new") == "http://h/?workers=2&token=new"
    assert hide_token("ws://h/ws?token=secret&x=1") == "ws://h/ws?token=***&x=1"
    assert hide_token("ws://h/ws") == "ws://h/ws"
    assert refusal_detail(b'{"detail": "why", "code": "unauthorized"}') == "why"
    assert refusal_detail(b"not json") == ""
    assert refusal_detail("[1]") == ""


def test_a_submitter_sends_its_own_token_else_the_environment_else_the_local_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSERGRID_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    local = "http://127.0.0.1:8765"
    assert client_token(None, local) is None  # no file yet
    saved = create_token(token_path(tmp_path))
    for url in (local, "http://localhost:1", "ws://[::1]:2/client"):
        assert client_token(None, url) == saved
    for remote in ("http://10.0.0.7:8765", "https://grid.example", "http://127.0.0.1.example"):
        assert client_token(None, remote) is None  # the local file never leaves the machine
    assert client_token("given", "http://10.0.0.7:8765") == "given"
    monkeypatch.setenv("BROWSERGRID_TOKEN", "from-env")
    assert client_token(None, "http://10.0.0.7:8765") == "from-env"
    assert client_token(None, local) == "from-env"
    assert client_token("given", local) == "given"


def test_a_broken_local_token_file_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSERGRID_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BROWSERGRID_TOKEN")
    token_path(tmp_path).write_text("")
    assert client_token(None, "http://127.0.0.1:8765") is None


@pytest.mark.parametrize("bad", ["", "with space", "caf\u00e9", "x" * 1025])
def test_tokens_must_be_printable_ascii_without_spaces(bad: str) -> None:
    for option in ("token", "worker_token", "dashboard_token"):
        with pytest.raises(ConfigError, match="--"):
            ServeConfig(**{option: bad})  # type: ignore[arg-type]


def test_the_tokens_come_from_the_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSERGRID_TOKEN", "a")
    monkeypatch.setenv("BROWSERGRID_WORKER_TOKEN", "w")
    monkeypatch.setenv("BROWSERGRID_DASHBOARD_TOKEN", "")
    config = ServeConfig()
    assert (config.token, config.worker_token, config.dashboard_token) == ("a", "w", None)
