"""A User-Agent is read up to ``MAX_AGENT_CHARS``: ua-parser never sees more (it took
seconds on 60 KB), and what it says of a long agent is what it says of its start."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import ua_parser

from browsergrid.server._agents import MAX_AGENT_CHARS, Agent, describe

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every string ua-parser is asked to parse (it still parses them)."""
    seen: list[str] = []
    real: Callable[[str], Any] = ua_parser.parse

    def spy(agent: str) -> Any:
        seen.append(agent)
        return real(agent)

    monkeypatch.setattr(ua_parser, "parse", spy)
    return seen


def test_a_60_kb_agent_is_cut_before_parsing(parsed: list[str]) -> None:
    unique = f" ({uuid.uuid4().hex})"  # past describe's cache
    agent = CHROME + unique + ";" * 60_000
    assert describe(agent) == Agent("browser", "Chrome 131", "Linux")
    (seen,) = parsed
    assert len(seen) == MAX_AGENT_CHARS == 512
    assert seen == agent[:MAX_AGENT_CHARS]


def test_an_agent_within_the_cap_is_parsed_whole(parsed: list[str]) -> None:
    agent = CHROME + f" ({uuid.uuid4().hex})"
    assert describe(agent).label == "Chrome 131 on Linux"
    assert parsed == [agent]
