"""Count the words of a text too large for task arguments: put it once, in blobs, count
each blob on the grid, and merge the counts on the grid too, pairwise in a tree.

The text (about 4 MB: 1,000,000 words drawn from a small vocabulary with a fixed seed, so
every run counts the same) is cut into 8 chunks; ``client.put(chunk)`` uploads each once
and returns a ``Ref``, and ``client.submit(count_words, ref)`` runs one task per chunk:
each worker fetches its chunk over HTTP, checks its SHA-256, and ``count_words`` receives
the bytes themselves. Each ``merge_counts(a, b)`` task takes two futures as arguments: the
coordinator holds it until both counts are done, then hands it their results, so the 8
partial counts become 4, 2, then 1 without passing through this script. Only the final
count comes back here, to be checked against a count of the whole text made here.

Run it against a running coordinator with at least one worker that runs Python functions: a
browser tab on http://127.0.0.1:8765/ (in Pyodide), or ``browsergrid worker
ws://127.0.0.1:8765 --python-functions``:

    python examples/wordfreq.py                        # the coordinator on http://127.0.0.1:8765
    python examples/wordfreq.py http://HOST:PORT --token TOKEN

It prints:

    1,000,000 words in 8 blobs of 0.5 MB, counted and merged in 1.2 s: the same as a count made here
    most frequent: the (191,710), of (95,873), and (63,981), to (47,864), a (38,243)
"""

from __future__ import annotations

import argparse
import collections
import random
import time

from browsergrid import Client

WORDS = 1_000_000
CHUNKS = 8
VOCABULARY = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "it",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "from",
    "have",
    "or",
    "by",
    "one",
    "had",
    "not",
    "but",
    "what",
    "all",
    "were",
    "when",
    "we",
    "there",
    "can",
    "an",
    "your",
    "which",
    "their",
    "said",
    "if",
    "do",
    "will",
    "each",
    "about",
    "how",
    "up",
    "out",
    "them",
    "then",
    "she",
    "many",
    "some",
    "so",
    "these",
    "would",
    "other",
    "into",
    "has",
    "more",
    "her",
    "two",
    "like",
    "him",
    "see",
    "time",
    "could",
    "no",
    "make",
    "than",
    "first",
    "been",
    "its",
    "who",
    "now",
    "people",
    "my",
    "made",
    "over",
    "did",
    "down",
    "only",
    "way",
    "find",
    "use",
    "may",
    "water",
    "long",
    "little",
    "very",
    "after",
    "words",
    "called",
    "just",
    "where",
    "most",
    "know",
    "grid",
    "browser",
    "worker",
    "task",
    "blob",
    "coordinator",
    "result",
]


def count_words(chunk: bytes) -> dict[str, int]:
    """How often each word occurs in ``chunk`` (bytes of UTF-8 text)."""
    counts: dict[str, int] = {}
    for word in chunk.decode().split():
        counts[word] = counts.get(word, 0) + 1
    return counts


def merge_counts(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    """The counts of ``a`` and ``b`` together."""
    merged = dict(a)
    for word, count in b.items():
        merged[word] = merged.get(word, 0) + count
    return merged


def text() -> list[str]:
    """The words, with a Zipf-like spread: the first words of the vocabulary most often."""
    rng = random.Random(2026)
    weights = [1 / (rank + 1) for rank in range(len(VOCABULARY))]
    return rng.choices(VOCABULARY, weights, k=WORDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default="http://127.0.0.1:8765")
    parser.add_argument("--token", help="the coordinator's admin token")
    args = parser.parse_args()
    words = text()
    size = len(words) // CHUNKS
    chunks = [" ".join(words[k * size : (k + 1) * size]).encode() for k in range(CHUNKS)]
    with Client(args.url, token=args.token) as client:
        started = time.perf_counter()
        refs = [client.put(chunk) for chunk in chunks]  # each uploaded once
        counts = [client.submit(count_words, ref) for ref in refs]
        while len(counts) > 1:  # a tree: each level merges pairs of the level below
            pairs = zip(counts[0::2], counts[1::2], strict=False)
            merged = [client.submit(merge_counts, a, b) for a, b in pairs]
            counts = merged + counts[len(merged) * 2 :]  # an odd one out waits a level
        total = collections.Counter(counts[0].result(timeout=300))
        took = time.perf_counter() - started
    same = total == collections.Counter(words)
    mean_mb = sum(len(chunk) for chunk in chunks) / CHUNKS / 1e6
    print(
        f"{sum(total.values()):,} words in {CHUNKS} blobs of {mean_mb:.1f} MB, counted and "
        f"merged in {took:.1f} s: {'the same as' if same else 'NOT the same as'} a count "
        "made here"
    )
    top = ", ".join(f"{word} ({count:,})" for word, count in total.most_common(5))
    print(f"most frequent: {top}")


if __name__ == "__main__":
    main()
