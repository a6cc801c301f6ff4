"""What a worker is, read from its agent string: kind, browser and operating system."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

import ua_parser

WorkerKind = Literal["browser", "python", "exercise", "other"]

MAX_AGENT_CHARS = 512
"""How much of an agent string is read: as much as a ``hello`` may carry. A User-Agent
header may be far longer, and ua-parser's regular expressions take seconds on 60 KB."""

# browsergrid's Python worker: "browsergrid-python/0.1.0 (Python 3.11.7; Linux)".
_PYTHON = re.compile(r"browsergrid-python/\S+(?: \(Python (?P<py>[\d.]+); (?P<os>[^)]+)\))?")


@dataclass(frozen=True, slots=True)
class Agent:
    """A worker's agent, read for people: ``label`` reads like "Chrome 131 on Linux"."""

    kind: WorkerKind
    browser: str | None
    os: str | None

    @property
    def label(self) -> str:
        if self.kind == "exercise" and self.browser is None:
            return "exercise page"
        parts = [self.browser or "unknown"]
        if self.os:
            parts.append(f"on {self.os}")
        return " ".join(parts)


def describe(agent: str | None, *, introduced: bool = True) -> Agent:
    """Read ``agent`` (a browser's User-Agent or the Python worker's agent). A worker that
    never said hello is the classroom exercise's page (``kind="exercise"``). Only its first
    ``MAX_AGENT_CHARS`` characters are read."""
    browser, os_name, kind = _parse((agent or "")[:MAX_AGENT_CHARS])
    if not introduced:
        kind = "exercise"
    return Agent(kind=kind, browser=browser, os=os_name)


@functools.lru_cache(maxsize=256)  # a grid has few distinct agents; parsing one takes ~1 ms
def _parse(agent: str) -> tuple[str | None, str | None, WorkerKind]:
    if not agent:
        return None, None, "other"
    python = _PYTHON.match(agent)
    if python:
        version = python.group("py")
        return (f"Python {version}" if version else "Python"), python.group("os"), "python"
    parsed = ua_parser.parse(agent)
    browser = None
    if parsed.user_agent is not None and parsed.user_agent.family != "Other":
        family = parsed.user_agent.family.removeprefix("Headless")
        browser = f"{family} {parsed.user_agent.major}" if parsed.user_agent.major else family
    os_name = None
    if parsed.os is not None and parsed.os.family != "Other":
        os_name = f"{parsed.os.family} {parsed.os.major}" if parsed.os.major else parsed.os.family
    kind: WorkerKind = "browser" if agent.startswith("Mozilla/") else "other"
    return browser, os_name, kind
