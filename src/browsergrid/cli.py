"""The ``browsergrid`` command: ``serve`` a coordinator, run a Python ``worker``,
``submit``, follow (``status``), export (``results``) and ``cancel`` jobs, and print the
admin ``token``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from browsergrid._cli_jobs import add_job_commands, run_job_command
from browsergrid._console import setup_console
from browsergrid._loop import loop_factory
from browsergrid._version import __version__
from browsergrid.client import SERVER_ENV
from browsergrid.config import (
    DASHBOARD_TOKEN_ENV,
    DATA_DIR_ENV,
    DEFAULT_BLOB_CACHE_BYTES,
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    REDIS_ENV,
    TOKEN_ENV,
    WORKER_TOKEN_ENV,
    ServeConfig,
    default_data_dir,
    env_token,
    parse_duration,
)
from browsergrid.core import WelcomeTask
from browsergrid.errors import BrowsergridError, ConfigError


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    defaults = ServeConfig()
    welcome = WelcomeTask()
    wargs = dict(welcome.args)
    parser = _Parser(prog="browsergrid", description="A self-hosted browser compute grid.")
    parser.add_argument("--version", action="version", version=f"browsergrid {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser(
        "serve",
        help="run a coordinator",
        description="Run a coordinator: one port serves the worker page, /healthz and the "
        "WebSocket endpoints (/ and /ws). Open its URL in a browser to add a worker.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    serve.add_argument("--host", default=defaults.host, help="address to listen on")
    serve.add_argument("--port", type=int, default=defaults.port, help="port (0: any free port)")
    serve.add_argument(
        "--no-welcome-task",
        action="store_true",
        help="do not send the repeat_multiply welcome task to each worker on connect",
    )
    serve.add_argument(
        "--welcome-initial", type=float, default=wargs["initial"], help="welcome task: initial"
    )
    serve.add_argument(
        "--welcome-factor", type=float, default=wargs["factor"], help="welcome task: factor"
    )
    serve.add_argument(
        "--welcome-times", type=int, default=wargs["times"], help="welcome task: times"
    )
    serve.add_argument(
        "--lease-timeout",
        type=float,
        default=defaults.lease_timeout_s,
        help="seconds a worker has to answer a task before it is re-issued, for ops "
        "without a default of their own (a job's lease_timeout overrides both)",
    )
    serve.add_argument(
        "--max-attempts",
        type=int,
        default=defaults.max_attempts,
        help="leases a task gets before it fails",
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the SQLite database lives (default: ${DATA_DIR_ENV}, else "
        "$XDG_DATA_HOME/browsergrid, else ~/.local/share/browsergrid)",
    )
    serve.add_argument(
        "--memory", action="store_true", help="keep everything in memory (lost on restart)"
    )
    serve.add_argument(
        "--redis",
        metavar="URL",
        help="keep jobs, results and worker history in Redis instead of SQLite: "
        "redis://HOST:PORT/DB[?prefix=NAME:]; every coordinator started with the same URL "
        "and prefix shares one grid (docs/deploy.md) "
        f"(default: ${REDIS_ENV}, unless --memory)",
    )
    serve.add_argument(
        "--sync",
        choices=("normal", "full"),
        default=defaults.sync,
        help="SQLite durability: normal survives a crash of this process, full a power cut",
    )
    serve.add_argument(
        "--retain",
        default="7d",
        help="remove finished jobs (and their results) older than this, and the history of "
        "workers not seen for as long (but quarantined ones): 7d, 12h, 30m",
    )
    serve.add_argument(
        "--work-buffer",
        type=float,
        default=defaults.work_buffer_s,
        help="seconds of work to queue at each worker beyond what it runs",
    )
    serve.add_argument(
        "--heartbeat-interval",
        type=float,
        default=defaults.heartbeat_interval_s,
        help="seconds between WebSocket pings",
    )
    serve.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=defaults.heartbeat_timeout_s,
        help="seconds to wait for a pong before dropping the worker",
    )
    serve.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a web origin (https://host:port) whose pages may open WebSockets here, besides "
        "the coordinator's own; repeat for more; * allows any",
    )
    serve.add_argument(
        "--max-connections-per-address",
        type=int,
        default=defaults.max_connections_per_address,
        help="WebSocket connections open at once from one IP address (0: no limit)",
    )
    serve.add_argument(
        "--max-tasks-per-job",
        type=int,
        default=defaults.max_tasks_per_job,
        help="tasks one job may hold",
    )
    serve.add_argument(
        "--max-args-bytes",
        type=int,
        default=defaults.max_args_bytes,
        help="size of one task's arguments as JSON",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="largest HTTP request body (larger ones get 413)",
    )
    serve.add_argument(
        "--max-blob-size",
        type=int,
        default=defaults.max_blob_size,
        metavar="BYTES",
        help="largest blob one upload may hold (larger ones get 413)",
    )
    serve.add_argument(
        "--max-blob-bytes",
        type=int,
        default=defaults.max_blob_bytes,
        metavar="BYTES",
        help="all blobs kept, in bytes: an upload past it gets 507 instead of filling the disk",
    )
    serve.add_argument(
        "--max-environment-bytes",
        type=int,
        default=defaults.max_environment_bytes,
        metavar="BYTES",
        help="the wheels of one task's environment (client.options(packages=...)), in all: "
        "a submit naming a larger one is refused",
    )
    serve.add_argument(
        "--blob-store",
        metavar="s3://BUCKET[/PREFIX]",
        help="keep blobs in this S3-compatible object store (AWS S3, MinIO, R2), shared by "
        "the coordinators given it; endpoint and credentials from the AWS_* settings "
        "(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)",
    )
    serve.add_argument(
        "--request-timeout",
        type=float,
        default=defaults.request_timeout_s,
        metavar="SECONDS",
        help="an HTTP request's headers must arrive within this many seconds, and its body "
        "within as long again plus 1 s per KiB; slower ones get 408 and are closed",
    )
    serve.add_argument(
        "--max-messages-per-s",
        type=float,
        default=defaults.max_messages_per_s,
        help="frames per second one connection may send (bursts of twice that); above it "
        "the connection is closed with 1008",
    )
    serve.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the scheduler's random draws (spot checks); the seed used is logged "
        "at start, so a run can be replayed",
    )
    serve.add_argument(
        "--max-outbox-bytes",
        type=int,
        default=defaults.max_outbox_bytes,
        help="unsent bytes one connection may have waiting; past this, or when nothing "
        "drains for --heartbeat-timeout, it is not reading and is closed with 1008",
    )
    serve.add_argument(
        "--certfile",
        type=Path,
        metavar="PATH",
        help="a PEM certificate (chain): serve https:// and wss:// (with --keyfile)",
    )
    serve.add_argument(
        "--keyfile", type=Path, metavar="PATH", help="the certificate's unencrypted PEM key"
    )
    serve.add_argument(
        "--ops-python",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a Python file of custom ops (each public function NAME(args) is op NAME, with "
        "optional verify_NAME and agree_NAME); give workers the same file; repeat for more",
    )
    admin = serve.add_mutually_exclusive_group()
    admin.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"the admin token, needed to submit, cancel and change anything (default: "
        f"${TOKEN_ENV}, else the file 'token' in the data directory, created at first start)",
    )
    admin.add_argument(
        "--no-token",
        action="store_true",
        help="no admin token: anyone who can reach the port may submit and cancel",
    )
    serve.add_argument(
        "--worker-token",
        metavar="TOKEN",
        help=f"workers must present this join token (or the admin token) to connect "
        f"(default: ${WORKER_TOKEN_ENV}, else none: anyone may join)",
    )
    serve.add_argument(
        "--dashboard-token",
        metavar="TOKEN",
        help=f"the dashboard, GET /api/... and /metrics need this token (or the admin token) "
        f"(default: ${DASHBOARD_TOKEN_ENV}, else none: anyone may read)",
    )
    serve.add_argument(
        "--ops-module",
        type=Path,
        metavar="PATH",
        help="a JavaScript module of custom ops: each exported function NAME(args) becomes "
        "op NAME in every worker page (examples/ops/my_ops.js)",
    )
    serve.add_argument(
        "--name",
        default=defaults.name,
        metavar="TEXT",
        help=f"the coordinator's name, the heading of the worker page: who volunteers compute "
        f"for (1 to {MAX_NAME_CHARS} characters)",
    )
    serve.add_argument(
        "--message",
        metavar="TEXT",
        help=f"a message to volunteers, shown under the name on the worker page (up to "
        f"{MAX_MESSAGE_CHARS} characters; shown as text)",
    )
    _add_output_options(serve)

    worker = commands.add_parser(
        "worker",
        help="run a headless Python worker",
        description="Run a headless Python worker that connects to URL (ws://HOST:PORT or "
        "ws://HOST:PORT/ws; wss:// for a coordinator with --certfile, trusting the system's CA "
        "certificates or $SSL_CERT_FILE) and reconnects when the connection drops. Given "
        "several URLs (coordinators of one grid), it starts with the first and moves to the "
        "next, round robin, whenever a connection fails or drops. Ctrl-C stops it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    worker.add_argument(
        "url", nargs="+", help="the coordinator's WebSocket URL; several for failover"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="tasks run at once")
    worker.add_argument(
        "--prefetch",
        type=int,
        default=64,
        help="most tasks to hold beyond --concurrency (the coordinator sends fewer when "
        "they are long: see serve --work-buffer)",
    )
    worker.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the worker keeps its identity across restarts (default: as for serve)",
    )
    worker.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"the coordinator's join token, if it asks for one (default: ${WORKER_TOKEN_ENV}; "
        "a ?token= in URL works too)",
    )
    worker.add_argument(
        "--max-backoff",
        type=float,
        default=30.0,
        help="longest wait between reconnection attempts, in seconds",
    )
    worker.add_argument(
        "--python-functions",
        action="store_true",
        help="run op python: Python functions that clients submit, as source, run here with "
        "this process's rights (only for coordinators whose submitters you trust)",
    )
    worker.add_argument(
        "--no-new-environments",
        action="store_true",
        help="with --python-functions: run only the package environments already made in "
        "the data directory (tasks needing another go to other workers)",
    )
    worker.add_argument(
        "--blob-cache-bytes",
        type=int,
        default=DEFAULT_BLOB_CACHE_BYTES,
        metavar="BYTES",
        help="blobs kept in the data directory (least recently used first out; 0: none)",
    )
    worker.add_argument(
        "--ops-python",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="a Python file of custom ops to run (as given to serve --ops-python); repeat it",
    )
    _add_output_options(worker)
    add_job_commands(commands, _add_server_option)

    token = commands.add_parser(
        "token",
        help="print the admin token of a coordinator on this machine",
        description="Print the admin token a coordinator created in its data directory (on "
        "stdout), and the dashboard link that carries it (on stderr).",
    )
    token.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the coordinator's data directory (default: as for serve)",
    )
    _add_server_url(token)
    return parser


def _add_server_option(parser: argparse.ArgumentParser) -> None:
    _add_server_url(parser)
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"the coordinator's admin token (default: ${TOKEN_ENV}, else, for a coordinator "
        "on this machine, the file 'token' in its default data directory)",
    )


def _add_server_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        help=f"the coordinator, http(s)://HOST:PORT, or several of one grid separated by commas "
        f"(tried in turn) (default: ${SERVER_ENV}, else http://127.0.0.1:8765); https trusts "
        "the system's CA certificates or $SSL_CERT_FILE",
    )


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text for people, json (one object per line) for machines",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="leave out per-worker and per-task lines"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``browsergrid`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "worker":
            return _worker(args)
        if args.command == "token":
            return _token(args)
        return run_job_command(args)
    except ConfigError as exc:
        print(f"browsergrid {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrowsergridError as exc:
        print(f"browsergrid {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"browsergrid {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `browsergrid results 1 | head`: the reader has enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _serve(args: argparse.Namespace) -> int:
    from browsergrid.server import serve

    welcome = None
    if not args.no_welcome_task:
        if args.welcome_times < 0:
            raise ConfigError("--welcome-times must be >= 0")
        welcome = WelcomeTask(
            args=(
                ("initial", args.welcome_initial),
                ("factor", args.welcome_factor),
                ("times", args.welcome_times),
            )
        )
    config = ServeConfig(
        data_dir=args.data_dir or default_data_dir(),
        memory=args.memory,
        redis_url=args.redis or (None if args.memory else os.environ.get(REDIS_ENV) or None),
        sync=args.sync,
        retain_s=parse_duration(args.retain),
        host=args.host,
        port=args.port,
        welcome=welcome,
        lease_timeout_s=args.lease_timeout,
        max_attempts=args.max_attempts,
        work_buffer_s=args.work_buffer,
        heartbeat_interval_s=args.heartbeat_interval,
        heartbeat_timeout_s=args.heartbeat_timeout,
        allow_origins=tuple(args.allow_origin),
        max_connections_per_address=args.max_connections_per_address,
        max_messages_per_s=args.max_messages_per_s,
        max_outbox_bytes=args.max_outbox_bytes,
        seed=args.seed,
        max_tasks_per_job=args.max_tasks_per_job,
        max_args_bytes=args.max_args_bytes,
        max_body_bytes=args.max_body_bytes,
        max_blob_size=args.max_blob_size,
        max_blob_bytes=args.max_blob_bytes,
        max_environment_bytes=args.max_environment_bytes,
        blob_store=args.blob_store,
        request_timeout_s=args.request_timeout,
        certfile=args.certfile,
        keyfile=args.keyfile,
        ops_python=tuple(args.ops_python),
        token=args.token or env_token(TOKEN_ENV),
        no_token=args.no_token,
        worker_token=args.worker_token or env_token(WORKER_TOKEN_ENV),
        dashboard_token=args.dashboard_token or env_token(DASHBOARD_TOKEN_ENV),
        ops_module=args.ops_module,
        name=args.name,
        message=args.message,
        log_format=args.log_format,
        quiet=args.quiet,
    )
    serve(config)
    return 0


def _worker(args: argparse.Namespace) -> int:
    from browsergrid._tokens import hide_token
    from browsergrid.ops import load_ops_files
    from browsergrid.worker import Backoff, BlobCache, Environments, PythonWorker, claim_identity

    for url in args.url:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"URL must start with ws:// or wss://, not {hide_token(url)!r}")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if args.prefetch < 0:
        raise ConfigError("--prefetch must be at least 0")
    setup_console(args.log_format, quiet=args.quiet)

    if args.max_backoff < 1:
        raise ConfigError("--max-backoff must be at least 1 second")
    if args.blob_cache_bytes < 0:
        raise ConfigError("--blob-cache-bytes must be >= 0")
    if args.no_new_environments and not args.python_functions:
        raise ConfigError("--no-new-environments applies to --python-functions only")
    custom_ops = load_ops_files(args.ops_python)
    data_dir = args.data_dir or default_data_dir()
    identity = claim_identity(data_dir)
    cache = BlobCache(data_dir / "blobs", args.blob_cache_bytes) if args.blob_cache_bytes else None

    async def run() -> None:
        worker = PythonWorker(
            args.url,
            concurrency=args.concurrency,
            prefetch=args.prefetch,
            worker_key=identity.key,
            backoff=Backoff(cap_s=args.max_backoff),
            token=args.token or env_token(WORKER_TOKEN_ENV),
            python_functions=args.python_functions,
            custom_ops=custom_ops,
            blob_cache=cache,
            environments=Environments(data_dir / "environments", new=not args.no_new_environments),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        await worker.run()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(run())
    return 0


def _token(args: argparse.Namespace) -> int:
    from browsergrid._tokens import read_token, token_path, with_token
    from browsergrid.client import coordinator_urls

    path = token_path(args.data_dir or default_data_dir())
    token = read_token(path)
    if token is None:
        raise BrowsergridError(
            f"no token file at {path}: a coordinator creates it at its first start with this "
            "data directory (give --data-dir if it has another); one started with --token or "
            f"${TOKEN_ENV} keeps none"
        )
    print(token)
    for base, _ in coordinator_urls(args.server):
        print(f"dashboard: {with_token(base + '/dashboard', token)}", file=sys.stderr)
    return 0
