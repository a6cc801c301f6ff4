"""Who may do what: a coordinator's three tokens, and the checks that ask for them.

- the **admin token** opens every change (submit, cancel, the demo: any request under
  ``/api`` but GET, HEAD and OPTIONS, and the ``/client`` WebSocket) and every door below;
- the **join token** (``--worker-token``) opens the worker WebSockets ``/`` and ``/ws``;
- the **read token** (``--dashboard-token``) opens ``/dashboard/live``, ``GET /api/...``
  and ``/metrics``.

A door whose token is not set is open. The admin token is always set unless ``--no-token``:
``load_admin_token`` creates one at first start. ``/healthz``, the pages, static files,
``/docs`` and ``/openapi.json`` are always open. HTTP requests present a token as
``Authorization: Bearer TOKEN``; WebSocket upgrades also as ``?token=TOKEN`` (a browser
cannot set headers on a WebSocket). A refusal is HTTP 401 before anything else happens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from browsergrid._console import emit
from browsergrid._tokens import (
    bearer_token,
    create_token,
    read_token,
    readable_by_others,
    same_token,
    token_path,
)
from browsergrid.config import ServeConfig
from browsergrid.errors import ConfigError

events = logging.getLogger("browsergrid.server.events")

UNAUTHORIZED = "unauthorized"
"""The ``code`` of every refusal for want of a token (HTTP 401)."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(StrEnum):
    """What a request is about to do, and so which token it needs."""

    WORKER = "worker"  # join as a worker: the join token (or the admin token)
    READ = "read"  # watch the dashboard, read jobs, results and metrics: the read token (or admin)
    ADMIN = "admin"  # submit, cancel, run the demo, change anything: the admin token


_WHAT = {
    Role.ADMIN: "this needs the admin token",
    Role.READ: "reading this needs the dashboard token or the admin token",
    Role.WORKER: "joining as a worker needs the join token or the admin token",
}
_WHERE = {
    Role.ADMIN: "the coordinator's admin token is in the file 'token' in its data directory, "
    "on its machine ('browsergrid token' there prints it), or in $BROWSERGRID_TOKEN where it "
    "was started; send it as 'Authorization: Bearer TOKEN'",
    Role.READ: "the dashboard token is the coordinator's --dashboard-token: open "
    "/dashboard?token=TOKEN, or send 'Authorization: Bearer TOKEN'",
    Role.WORKER: "the join token is the coordinator's --worker-token: open the worker page as "
    "/?token=TOKEN, run 'browsergrid worker URL --token TOKEN', or add ?token=TOKEN to the "
    "WebSocket URL",
}


@dataclass(frozen=True, slots=True)
class Access:
    """The tokens a coordinator asks for; None leaves that door open."""

    admin: str | None = None
    worker: str | None = None
    dashboard: str | None = None

    @classmethod
    def of(cls, config: ServeConfig, admin: str | None) -> Access:
        """The tokens of ``config``, with the admin token ``load_admin_token`` found."""
        return cls(admin=admin, worker=config.worker_token, dashboard=config.dashboard_token)

    def closed(self, role: Role) -> bool:
        """Whether doing ``role`` needs a token at all."""
        if role is Role.ADMIN:
            return self.admin is not None
        return (self.worker if role is Role.WORKER else self.dashboard) is not None

    def allows(self, role: Role, presented: str | None) -> bool:
        """May a peer that presented ``presented`` (None: no token) do ``role``? The admin
        token opens every door; the join and read tokens only their own."""
        if not self.closed(role):
            return True
        own = {Role.WORKER: self.worker, Role.READ: self.dashboard, Role.ADMIN: None}[role]
        return any(
            token is not None and same_token(presented, token) for token in (own, self.admin)
        )

    def refusal(self, role: Role, presented: str | None) -> str:
        """What to tell a peer refused for ``role``: what it lacks and where to get it."""
        given = "no token was sent" if presented is None else "the token sent is not valid"
        return f"{_WHAT[role]} ({given}): {_WHERE[role]}"


@dataclass(frozen=True, slots=True)
class AdminToken:
    """The admin token a coordinator starts with, and where it came from."""

    value: str | None
    source: Literal["option", "file", "created", "none"]
    """``option``: --token or $BROWSERGRID_TOKEN; ``file``: the token file; ``created``: the
    token file was created just now (print the token once); ``none``: --no-token."""
    path: Path | None = None
    """The token file (``file`` and ``created``)."""
    readable_by_others: bool = False
    """The token file's mode lets group or others in: warn, saying ``chmod 600 PATH``."""


def load_admin_token(config: ServeConfig) -> AdminToken:
    """The admin token per ``config``: ``--no-token``, else ``--token`` or $BROWSERGRID_TOKEN,
    else the token file in the data directory, created (mode 0600, with the directory) when
    missing. The caller prints a created token once and warns about a loose file. Raises
    ConfigError when the file cannot be read or created."""
    if config.no_token:
        return AdminToken(None, "none")
    if config.token is not None:
        return AdminToken(config.token, "option")
    path = token_path(config.data_dir)
    token = read_token(path)
    if token is None:
        try:
            return AdminToken(create_token(path), "created", path)
        except FileExistsError:  # another coordinator made it just now
            token = read_token(path)
            if token is None:
                raise ConfigError(f"the token file {path} vanished while it was read") from None
    return AdminToken(token, "file", path, readable_by_others(path))


def http_role(method: str, path: str) -> Role | None:
    """What an HTTP request does: ADMIN for a change under ``/api``, READ for a read under
    ``/api`` or ``/metrics``; None for what is always open (``/healthz``, pages, static
    files, ``/docs``, ``/openapi.json``)."""
    if path == "/metrics":
        return Role.READ
    if path == "/api" or path.startswith("/api/"):
        return Role.READ if method.upper() in _SAFE_METHODS else Role.ADMIN
    return None


def presented_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token a peer presented: its ``Authorization: Bearer`` header, else ``?token=``
    (pass None for HTTP requests, which must use the header)."""
    return bearer_token(authorization) or query_token or None


def challenge(presented: str | None) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401 (RFC 6750)."""
    if presented is None:
        return {"WWW-Authenticate": 'Bearer realm="browsergrid"'}
    return {"WWW-Authenticate": 'Bearer realm="browsergrid", error="invalid_token"'}


def unauthorized_response(detail: str, presented: str | None) -> JSONResponse:
    """HTTP 401 in the API's error shape, with the code ``unauthorized``."""
    return JSONResponse(
        {"detail": detail, "code": UNAUTHORIZED}, status_code=401, headers=challenge(presented)
    )


class AccessChecks:
    """ASGI middleware: an HTTP request that needs a token (``http_role``) and does not
    present the right one as ``Authorization: Bearer`` gets 401 before its body is read.
    ``refused()`` is called for each refusal (the coordinator counts them)."""

    def __init__(self, app: ASGIApp, access: Access, refused: Callable[[], None]) -> None:
        self.app = app
        self.access = access
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        role = http_role(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if role is None or not self.access.closed(role):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        presented = presented_token(headers.get("authorization"), None)
        if self.access.allows(role, presented):
            await self.app(scope, receive, send)
            return
        self.refused()
        detail = self.access.refusal(role, presented)
        client = scope.get("client")
        address = client[0] if client else "unknown"
        emit(
            events,
            UNAUTHORIZED,
            f"refused {scope['method']} {scope['path']} from {address}: {detail}",
            level=logging.WARNING,
            address=address,
            path=scope["path"],
            method=scope["method"],
            detail=detail,
        )
        await unauthorized_response(detail, presented)(scope, receive, send)


def query_token(query_string: bytes) -> str | None:
    """The ``token`` parameter of a raw query string, if any."""
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "token":
            return value or None
    return None


_UNAUTHORIZED_SCHEMA = {
    "title": "Unauthorized",
    "type": "object",
    "description": "The request needs a token it did not present: the detail says which "
    "and where to find it.",
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "code": {"type": "string", "const": UNAUTHORIZED, "title": "Code"},
    },
    "required": ["detail", "code"],
}


def document_access(schema: dict[str, Any], access: Access) -> dict[str, Any]:
    """Declare the bearer scheme in an OpenAPI schema (``/docs`` then has an Authorize
    button): every operation under ``/api`` and ``/metrics`` takes it, required (with a 401
    answer) where this coordinator asks for a token, optional where it does not."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (changes and reads), or the dashboard token (reads): "
        "'browsergrid token' on the coordinator's machine prints the admin token.",
    }
    components.setdefault("schemas", {})["Unauthorized"] = _UNAUTHORIZED_SCHEMA
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            role = http_role(method, path)
            if role is None or not isinstance(operation, dict):
                continue
            if not access.closed(role):
                operation["security"] = [{"bearer": []}, {}]
                continue
            operation["security"] = [{"bearer": []}]
            operation.setdefault("responses", {})["401"] = {
                "description": "no token, or not the right one: the detail says which token "
                "this needs and where to find it",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Unauthorized"}}
                },
            }
    return schema
