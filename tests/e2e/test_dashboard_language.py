"""The dashboard in English and Spanish, in real headless Chromium: the browser's language,
the header's switch (remembered) and ?lang=."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._support import TEST_TOKEN, Coordinator, Process

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 900}


def wait_live(page: Any) -> None:
    page.wait_for_function("window.dashboard.connection === 'live'")


def wait_text(page: Any, selector: str, text: str) -> None:
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector)?.textContent === text",
        arg=[selector, text],
    )


def pressed(page: Any) -> str:
    return str(page.get_attribute("button[data-lang][aria-pressed='true']", "data-lang"))


def state_cells(page: Any, table: str) -> list[list[str]]:
    """[state as sent, state as shown] for each row of a table."""
    cells: list[list[str]] = page.eval_on_selector_all(
        f"#{table} tbody tr",
        "rows => rows.map(tr => [tr.dataset.state, tr.querySelector('td.state').textContent])",
    )
    return cells


def cut_off(page: Any) -> list[str]:
    """Headings and column heads too long for their room (the page's widths are fixed)."""
    cut: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('h1, h2, th, dt, button')]
          .filter((e) => e.offsetParent !== null && !e.matches('.visually-hidden'))
          .filter((e) => e.scrollWidth > e.clientWidth + 1)
          .map((e) => e.textContent)"""
    )
    return cut


def test_spanish_from_the_browser_english_from_the_switch_remembered_and_lang_wins(
    coordinator: Coordinator,
    start_worker: Callable[..., Process],
    browser: Any,
    artifacts: Path,
) -> None:
    worker = start_worker(coordinator.ws_url, "--quiet")
    worker.wait_for_line(lambda line: "connected to" in line)
    base = f"http://127.0.0.1:{coordinator.port}/dashboard?token={TEST_TOKEN}"
    context = browser.new_context(locale="es-ES", viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(base)
        wait_live(page)
        # the browser says Spanish: fixed and live texts are Spanish, numbers too
        assert page.evaluate("navigator.language") == "es-ES"
        assert page.evaluate("document.documentElement.lang") == "es"
        assert page.title() == "panel de browsergrid"
        assert page.inner_text("#jobs-heading") == "Trabajos"
        assert page.inner_text("#workers-heading") == "Trabajadores conectados"
        assert page.inner_text("#conn-state") == "en vivo"
        assert pressed(page) == "es"
        wait_text(page, "#workers-table tbody tr td.state", "en espera")
        wait_text(page, "#workers-range", "1\u20131 de 1")
        assert page.inner_text("#jobs-empty") == "Todavía no hay trabajos."
        page.locator("#demo-button").click()
        page.locator("#demo-message").filter(has_text="enviado: 80 teselas.").wait_for()
        page.wait_for_function("document.querySelector('#demo-status').textContent !== ''")
        assert page.inner_text("#demo-status").startswith("Trabajo ")
        page.locator("#jobs-table tbody tr").wait_for()
        spanish = {
            "running": "en curso",
            "finished": "terminado",
            "idle": "en espera",
            "busy": "ocupado",
        }
        for sent, shown in state_cells(page, "jobs-table") + state_cells(page, "workers-table"):
            assert shown == spanish[sent]
        assert cut_off(page) == []
        page.screenshot(path=str(artifacts / "dashboard-es.png"), full_page=True)

        # the switch: every text in English at once, without a reload
        frames = page.evaluate("window.dashboard.snapshots")
        page.get_by_role("group", name="Idioma").get_by_role("button", name="EN").click()
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.title() == "browsergrid dashboard"
        assert page.inner_text("#jobs-heading") == "Jobs"
        assert page.inner_text("#conn-state") == "live"
        assert page.inner_text("#workers-range") == "1\u20131 of 1"
        for sent, shown in state_cells(page, "jobs-table") + state_cells(page, "workers-table"):
            assert shown == sent  # English names a state as the feed does
        assert "submitted: 80 tiles." in page.inner_text("#demo-message")
        assert page.inner_text("#demo-status").startswith("Job ")
        assert page.get_attribute("#workers-filter", "placeholder") == (
            "id, browser, OS, address, state…"
        )
        assert page.get_by_role("group", name="Language").is_visible()
        assert pressed(page) == "en"
        assert cut_off(page) == []
        assert page.evaluate("window.dashboard.snapshots") == frames  # the page was not reloaded

        # remembered: a reload stays English although the browser says Spanish
        page.reload()
        wait_live(page)
        assert page.inner_text("#jobs-heading") == "Jobs"
        assert page.evaluate("localStorage.getItem('browsergrid.language')") == "en"

        # ?lang= (a shared link) wins over the remembered choice; the switch then updates it
        page.goto(f"{base}&lang=es")
        wait_live(page)
        assert page.inner_text("#jobs-heading") == "Trabajos"
        assert pressed(page) == "es"
        page.locator("button[data-lang='en']").click()
        assert "lang=en" in page.url and f"token={TEST_TOKEN}" in page.url
        page.reload()
        wait_live(page)
        assert page.inner_text("#jobs-heading") == "Jobs"
    finally:
        context.close()


def test_a_browser_in_neither_language_gets_english(coordinator: Coordinator, browser: Any) -> None:
    context = browser.new_context(locale="fr-FR", viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"http://127.0.0.1:{coordinator.port}/dashboard?token={TEST_TOKEN}")
        wait_live(page)
        assert page.evaluate("document.documentElement.lang") == "en"
        assert page.inner_text("#jobs-heading") == "Jobs"
        assert pressed(page) == "en"
    finally:
        context.close()
