"""The Celery app of bench/throughput.py: one trivial task, ``inc``.

Its 2 worker processes (``celery -A bench._celery_app worker``) are started by
``bench/_peer_systems.py``, which passes the URL of its own ``redis-server`` (broker and result
backend) in ``$BENCH_CELERY_REDIS``. Everything else is Celery's default.
"""

from __future__ import annotations

import os

from celery import Celery  # type: ignore[import-untyped]

URL = os.environ.get("BENCH_CELERY_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("bench._celery_app", broker=URL, backend=URL)
app.conf.broker_connection_retry_on_startup = True  # silences a deprecation warning of 5.3+


@app.task  # type: ignore[untyped-decorator]
def inc(x: int) -> int:
    return x + 1
