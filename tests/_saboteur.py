"""A worker that lies, for the validation tests: the real Python worker, except that a share
of its results are wrong. ``python -m tests._saboteur URL SHARE [SEED]``."""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Mapping
from typing import Any

from browsergrid.worker import Backoff, PythonWorker, _runner

KEY = "saboteur-0"
"""Its lasting identity, so that its quarantine can be looked up."""


def main() -> None:
    url, share = sys.argv[1], float(sys.argv[2])
    chance = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    honest = _runner.run_op

    def lying(op: str, args: Mapping[str, Any], **table: Any) -> Any:
        result = honest(op, args, **table)  # table: the worker's ops
        if chance.random() < share:
            return -1 - chance.randrange(10**9)  # never a right answer, never the same lie
        return result

    _runner.run_op = lying  # type: ignore[assignment]
    asyncio.run(PythonWorker(url, worker_key=KEY, backoff=Backoff(cap_s=1)).run())


if __name__ == "__main__":
    main()
