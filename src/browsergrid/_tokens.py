"""Access tokens on disk and on the wire, shared by the coordinator, the clients and the CLI.

The coordinator keeps its admin token in ``<data dir>/token`` (mode 0600). Submitters on the
same machine read it from there by themselves; for any other host they must be given it
(``token=``, ``--token`` or $BROWSERGRID_TOKEN): the file's token is never sent elsewhere.

On the wire a token travels as ``Authorization: Bearer TOKEN``, or as ``?token=TOKEN`` in a
WebSocket URL (a browser cannot set headers on a WebSocket). docs/security.md says which
token opens what.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from browsergrid.config import TOKEN_ENV, TOKEN_FILE, default_data_dir, env_token
from browsergrid.errors import ConfigError

TOKEN_BYTES = 32
"""Random bytes in a created token (``secrets.token_urlsafe``: 43 characters)."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) and "localhost"."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def token_path(data_dir: Path) -> Path:
    """Where the admin token of a coordinator with this data directory is kept."""
    return data_dir / TOKEN_FILE


def read_token(path: Path) -> str | None:
    """The token saved in ``path``; None when there is no such file. Raises ConfigError
    when the file cannot be read or holds no token (delete it: the coordinator then creates
    a new one at its next start)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read the token file {path}: {reason}") from None
    token = text.strip()
    if not token or any(not "!" <= char <= "~" for char in token):
        raise ConfigError(
            f"the token file {path} holds no token; delete it to have a new one created"
        )
    return token


def create_token(path: Path) -> str:
    """Save a new random token in ``path``, readable by this user only (0600), creating the
    directory if needed, and return it. Raises FileExistsError when the file exists (another
    process made it first: read that one) and ConfigError when it cannot be written."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise
    except OSError as exc:
        raise ConfigError(f"cannot create the token file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(token + "\n")
    return token


def readable_by_others(path: Path) -> bool:
    """Whether group or others may read or write ``path`` (then say ``chmod 600 PATH``)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def same_token(presented: str | None, expected: str) -> bool:
    """Whether ``presented`` is ``expected``, in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header; None for anything else."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def auth_headers(token: str | None) -> dict[str, str]:
    """``Authorization: Bearer TOKEN`` for ``token``; no header for None."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def refusal_detail(body: bytes | bytearray | str) -> str:
    """The ``detail`` of a coordinator's 401 body (``{"detail": ..., "code": ...}``), or ""."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return ""
    return detail if isinstance(detail, str) else ""


def client_token(token: str | None, url: str) -> str | None:
    """The admin token a submitter sends to the coordinator at ``url``: ``token``, else
    $BROWSERGRID_TOKEN, else, only when ``url``'s host is loopback, the token file in this
    machine's default data directory. None: send none (a coordinator with ``--no-token``
    needs none; any other answers 401, and the caller raises AuthError)."""
    if token:
        return token
    from_env = env_token(TOKEN_ENV)
    if from_env:
        return from_env
    host = urlsplit(url).hostname
    if host is None or not is_loopback(host):
        return None
    try:
        return read_token(token_path(default_data_dir()))
    except ConfigError:
        return None


def with_token(url: str, token: str | None) -> str:
    """``url`` with ``?token=TOKEN`` added (or replaced); ``url`` itself when ``token`` is
    None."""
    if token is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def hide_token(url: str) -> str:
    """``url`` with the value of a ``token`` query parameter replaced by ``***``, for logs."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "***" if k == "token" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote, safe="*")))
