"""Reading a worker's agent string: kind, browser and operating system."""

from __future__ import annotations

import pytest

from browsergrid.server._agents import Agent, describe
from browsergrid.worker._runner import AGENT

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


@pytest.mark.parametrize(
    ("agent", "expected", "label"),
    [
        (CHROME, Agent("browser", "Chrome 131", "Linux"), "Chrome 131 on Linux"),
        (FIREFOX, Agent("browser", "Firefox 133", "Windows 10"), "Firefox 133 on Windows 10"),
        (IPHONE, Agent("browser", "Mobile Safari 17", "iOS 17"), "Mobile Safari 17 on iOS 17"),
        (
            "browsergrid-python/0.1.0 (Python 3.12.1; Darwin)",
            Agent("python", "Python 3.12.1", "Darwin"),
            "Python 3.12.1 on Darwin",
        ),
        ("browsergrid-python/0.0.9", Agent("python", "Python", None), "Python"),
        ("curl/8.5.0", Agent("other", "curl 8", None), "curl 8"),
        ("", Agent("other", None, None), "unknown"),
        (None, Agent("other", None, None), "unknown"),
    ],
)
def test_describe(agent: str | None, expected: Agent, label: str) -> None:
    assert describe(agent) == expected
    assert describe(agent).label == label


def test_a_worker_that_never_said_hello_is_the_exercise_page() -> None:
    assert describe(CHROME, introduced=False) == Agent("exercise", "Chrome 131", "Linux")
    assert describe(None, introduced=False).label == "exercise page"


def test_the_python_worker_names_its_python_and_system() -> None:
    agent = describe(AGENT)
    assert agent.kind == "python"
    assert agent.browser is not None and agent.browser.startswith("Python 3.")
    assert agent.os
