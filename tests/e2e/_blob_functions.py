"""Plain functions that read blobs and return large results, run by tabs (Pyodide) and the
Python worker alike (module level, standard library only: they travel as source)."""

import hashlib


def blob_digest(data, meta):  # type: ignore[no-untyped-def]
    """What a worker got: the bytes' length and SHA-256, and the sum of a JSON blob."""
    return {"len": len(data), "sha": hashlib.sha256(data).hexdigest(), "total": sum(meta)}


def counting(n):  # type: ignore[no-untyped-def]
    """A result of about 4 bytes of JSON per item: large for a frame when n is large."""
    return [i % 1000 for i in range(n)]
