"""Running a coordinator: bind, start uvicorn, print where to connect, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn

from browsergrid._console import emit, setup_console
from browsergrid._loop import loop_factory
from browsergrid._tokens import is_loopback, with_token
from browsergrid.config import ServeConfig
from browsergrid.errors import ConfigError
from browsergrid.ops import load_ops_files, register_ops
from browsergrid.server._access import Access, AdminToken, load_admin_token
from browsergrid.server._app import create_app
from browsergrid.server._clients import serve_client
from browsergrid.server._coordinator import Coordinator
from browsergrid.server._dashboard import close_all_viewers
from browsergrid.server._http_timeouts import timed_http
from browsergrid.server._open_files import raise_open_files_limit
from browsergrid.server._websocket import Connection
from browsergrid.server._workers import close_all_workers, serve_worker
from browsergrid.server._ws_direct import direct_websockets
from browsergrid.store import MemoryStore, RedisStore, SqliteStore, Store, StoreError

log = logging.getLogger("browsergrid.server")


def register_custom_ops(config: ServeConfig) -> None:
    """Load the ``--ops-python`` files and add their ops to the table the coordinator uses;
    ConfigError says what is wrong with a file."""
    if not config.ops_python:
        return
    ops = load_ops_files(config.ops_python, lease_timeout_s=config.lease_timeout_s)
    try:
        register_ops(ops)
    except ValueError as exc:
        raise ConfigError(f"--ops-python: {exc}") from None
    names = sorted(ops)
    emit(log, "custom_ops", f"custom ops (--ops-python): {', '.join(names)}", ops=names)


def serve(config: ServeConfig) -> None:
    """Run a coordinator until Ctrl-C or SIGTERM, then close every worker with 1001.

    The admin token comes from ``config`` or the data directory's token file, created (and
    printed once) when missing. Raises ConfigError when the address cannot be bound (for
    example, the port is in use), the TLS certificate and key cannot be used, or the token
    file cannot be read or created.
    """
    setup_console(config.log_format, quiet=config.quiet)
    raise_open_files_limit()
    check_tls(config)
    register_custom_ops(config)
    sock = bind(config.host, config.port)
    try:
        admin = load_admin_token(config)
    except ConfigError:
        sock.close()
        raise
    tell_about_token(admin, base_urls(sock, tls=config.certfile is not None)[0])
    warning = network_warning(config)
    if warning:
        emit(
            log,
            "open_to_the_network",
            warning,
            level=logging.WARNING,
            lines=True,
            host=config.host,
            open=open_doors(config),
        )
    coordinator = Coordinator(config, open_store(config))
    access = Access.of(config, admin.value)
    server = _Server(_uvicorn_config(config, coordinator, access), coordinator, admin, access)

    async def run() -> None:
        try:
            await coordinator.start()
        except StoreError as exc:
            raise ConfigError(str(exc)) from None
        tune_gc()
        try:
            await server.serve(sockets=[sock])
        finally:
            await coordinator.stop()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(run())


def base_urls(sock: socket.socket, *, tls: bool) -> tuple[str, str]:
    """(``http(s)://HOST:PORT``, ``ws(s)://HOST:PORT``) of a listening socket."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    ws, http = ("wss", "https") if tls else ("ws", "http")
    return f"{http}://{shown}:{port}", f"{ws}://{shown}:{port}"


def tell_about_token(admin: AdminToken, base: str) -> None:
    """Print a token file's token once, when it was just created, with the dashboard link
    that carries it (``base``: the coordinator's http(s)://HOST:PORT); warn about a token
    file others may read."""
    if admin.source == "created":
        emit(
            log,
            "token_created",
            f"created the admin token and saved it in {admin.path} (readable by you only):\n"
            f"  {admin.value}\n"
            "  submitting, cancelling and the demo need it: clients on this machine read that "
            "file by themselves; elsewhere pass --token or set BROWSERGRID_TOKEN. "
            "'browsergrid token' prints it again.\n"
            f"  dashboard with the demo: {with_token(base + '/dashboard', admin.value)}",
            token=admin.value,
            path=str(admin.path),
        )
    if admin.readable_by_others:
        emit(
            log,
            "token_file_readable",
            f"the token file {admin.path} can be read by other users of this machine: "
            f"chmod 600 {admin.path}",
            level=logging.WARNING,
            path=str(admin.path),
        )


def open_doors(config: ServeConfig) -> list[str]:
    """What anyone who reaches the port may do, or see, for want of a token or of TLS."""
    doors = []
    if config.no_token:
        doors.append("anyone who can reach this port can submit work and cancel jobs (--no-token)")
    if config.worker_token is None:
        doors.append("anyone who can reach this port can join as a worker (no --worker-token)")
    if config.dashboard_token is None:
        doors.append(
            "anyone who can reach this port can watch the dashboard and read every job's "
            "results (no --dashboard-token)"
        )
    if config.certfile is None:
        doors.append("traffic travels in clear, tokens included (no --certfile/--keyfile)")
    return doors


def network_warning(config: ServeConfig) -> str | None:
    """What to tell someone who listens beyond this machine: one line per door left open
    (``open_doors``); None on loopback, or with every door closed."""
    doors = [] if is_loopback(config.host) else open_doors(config)
    if not doors:
        return None
    lines = "".join(f"\n  - {door}" for door in doors)
    return f"listening on {config.host}, beyond this machine:{lines}\nsee docs/security.md"


def open_store(config: ServeConfig) -> Store:
    """The store ``config`` asks for (not opened yet: the coordinator opens it on start)."""
    if config.memory:
        return MemoryStore()
    if config.redis_url is not None:
        try:
            return RedisStore(config.redis_url)
        except ValueError as exc:
            raise ConfigError(f"--redis: {exc}") from None
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the data directory {config.data_dir}: {exc.strerror}"
        ) from None
    return SqliteStore(config.data_dir / "browsergrid.db", synchronous=config.sync)


def check_tls(config: ServeConfig) -> None:
    """Try ``--certfile``/``--keyfile`` the way uvicorn loads them when it starts serving: a
    file that cannot be read or used raises ConfigError with a one-line reason, before
    anything is bound or opened."""
    if config.certfile is None or config.keyfile is None:
        return
    certfile, keyfile = config.certfile, config.keyfile
    for option, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        try:
            path.open("rb").close()
        except OSError as exc:
            raise ConfigError(f"cannot read {option} {path}: {exc.strerror}") from None

    def no_password() -> str:  # else OpenSSL would prompt for it on the terminal
        raise ConfigError(f"the key in --keyfile {keyfile} is encrypted; give an unencrypted one")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certfile, keyfile, no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(
                f"--keyfile {keyfile} is not the key of the certificate in --certfile {certfile}"
            ) from None
        if exc.reason not in (None, "PEM_LIB"):  # e.g. EE_KEY_TOO_SMALL, CA_MD_TOO_WEAK
            raise ConfigError(
                f"--certfile {certfile} / --keyfile {keyfile} cannot be used: {exc.reason}"
            ) from None
        try:  # which file is it? OpenSSL says only "PEM lib"
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(certfile)
        except ssl.SSLError:
            raise ConfigError(f"--certfile {certfile} holds no PEM certificate") from None
        raise ConfigError(f"--keyfile {keyfile} holds no PEM private key") from None


def tune_gc() -> None:
    """Garbage collection for a long-running coordinator: what exists once it has started
    (modules, the app, the restored jobs) is frozen out of every collection, and the
    youngest generation is collected every 50,000 allocations rather than 700.

    Why: under load a coordinator made about 6 tracked objects per task and collected them
    hundreds of times a second, with full collections of 75-115 ms that stall every
    connection; py-spy put 25-30% of its CPU in collections (bench/README.md, "Profile,
    then fix"). Cycles are still collected, only less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; raises ConfigError with a one-line reason."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(
    config: ServeConfig, coordinator: Coordinator, access: Access
) -> uvicorn.Config:
    async def worker(conn: Connection) -> None:
        await serve_worker(coordinator, conn, access)

    async def client(conn: Connection) -> None:
        await serve_client(coordinator, conn, access)

    settings = uvicorn.Config(
        create_app(coordinator, access),
        http=timed_http(config.request_timeout_s),  # slow senders get 408 (slowloris)
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # triples memory per connection (bench-anchors.md)
        ws_ping_interval=config.heartbeat_interval_s,
        ws_ping_timeout=config.heartbeat_timeout_s,
        ws_max_size=config.max_frame_bytes,
        loop="none",  # serve() runs uvicorn on its own (uvloop) runner
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=config.shutdown_timeout_s,
        ssl_certfile=config.certfile,
        ssl_keyfile=config.keyfile,
    )
    # Workers and clients are served straight from the event loop; other WebSockets (the
    # dashboard's) go on to websockets-sansio and the app. Proxy headers as uvicorn trusts them.
    settings.ws = direct_websockets(
        {"/": worker, "/ws": worker, "/client": client},
        heartbeat_interval_s=config.heartbeat_interval_s,
        heartbeat_timeout_s=config.heartbeat_timeout_s,
        proxy_headers=settings.proxy_headers,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        max_unsent=config.max_outbox_bytes,
    )
    return settings


def _admin_line(admin: AdminToken) -> str:
    """Where the admin token is, for the ready message."""
    if admin.source == "none":
        return "no admin token (--no-token): anyone who reaches this port may submit and cancel"
    if admin.source == "option":
        return (
            "submitting, cancelling and Run demo need the admin token (--token/BROWSERGRID_TOKEN)"
        )
    return (
        f"submitting, cancelling and Run demo need the admin token in {admin.path} "
        "('browsergrid token' prints it, and the dashboard link with it)"
    )


class _Server(uvicorn.Server):
    """uvicorn's server, plus: say where to connect, close workers with 1001, exit 0 on signals."""

    def __init__(
        self, config: uvicorn.Config, coordinator: Coordinator, admin: AdminToken, access: Access
    ) -> None:
        super().__init__(config)
        self.coordinator = coordinator
        self.admin = admin
        self.access = access

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            base, ws_base = base_urls(sockets[0], tls=self.config.is_ssl)
            self.coordinator.public_url = base  # for the grid's dashboards
            ws_url = with_token(f"{ws_base}/ws", self.access.worker)
            page_url = with_token(f"{base}/", self.access.worker)
            dashboard_url = with_token(f"{base}/dashboard", self.access.dashboard)
            emit(
                log,
                "ready",
                f"browsergrid coordinator ready: workers connect to {ws_url}\n"
                f"open {page_url} in a browser to make it a worker\n"
                f"dashboard: {dashboard_url}\n{_admin_line(self.admin)}",
                lines=True,
                ws_url=ws_url,
                page_url=page_url,
                dashboard_url=dashboard_url,
                host=host,
                port=port,
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        emit(log, "shutting_down", "shutting down: closing worker connections (1001)")
        self.coordinator.closing = True
        await self.coordinator.remember_workers()
        await close_all_workers(self.coordinator)
        await close_all_viewers(self.coordinator.feed)
        await super().shutdown(sockets)
        emit(log, "stopped", "coordinator stopped")

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM start a graceful shutdown; unlike uvicorn's, the signal is not
        raised again afterwards, so the process exits 0."""

        def handle(sig: int, frame: FrameType | None) -> None:
            self.handle_exit(sig, frame)

        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach only the main thread; an embedding program handles them
            return
        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
