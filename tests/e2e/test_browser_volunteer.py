"""The worker page as a volunteer meets it, in real headless Chromium against a real
coordinator: Pause hands every task back (another tab runs them as first attempts), the
settings survive a reload, a hidden tab or a battery pauses, a 360-px phone sees every
control, Spanish, and the coordinator's name and message."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._support import Coordinator, job_results, job_state, submit_job, wait_for, wait_until

pytestmark = pytest.mark.browser

LONG_TASK = 200_000_000
"""``samples`` of a monte_carlo_pi task that takes a tab about two seconds: long enough to
pause in the middle of one."""

CONTROLS = (
    "#pause",
    "#workers",
    "#share",
    "#pause-hidden",
    "#pause-battery",
    "#lang-en",
    "#lang-es",
)


def frames_sent(page: Any) -> list[dict[str, Any]]:
    """Every JSON frame the page sends on any of its WebSockets, as they go (a live list)."""
    frames: list[dict[str, Any]] = []

    def watch(ws: Any) -> None:
        ws.on("framesent", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", watch)
    return frames


def of_type(frames: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["type"] == kind]


def set_visibility(page: Any, hidden: bool) -> None:
    """What a browser does when its tab goes to the background or comes back. Headless
    Chromium cannot minimise or hide a tab (nor has CDP a way), so the page is told so as a
    browser tells it: document.visibilityState, then a visibilitychange event."""
    page.evaluate(
        """(hidden) => {
            for (const [name, value] of [['visibilityState', hidden ? 'hidden' : 'visible'],
                                         ['hidden', hidden]]) {
                Object.defineProperty(document, name, { configurable: true, get: () => value });
            }
            document.dispatchEvent(new Event('visibilitychange'));
        }""",
        hidden,
    )


FAKE_BATTERY = """
    window.fakeBattery = Object.assign(new EventTarget(), { charging: true, level: 0.5 });
    window.fakeBattery.unplug = () => {
        window.fakeBattery.charging = false;
        window.fakeBattery.dispatchEvent(new Event('chargingchange'));
    };
    Object.defineProperty(navigator, 'getBattery', {
        configurable: true, value: async () => window.fakeBattery,
    });
"""
"""A battery the test can unplug (headless Chromium's always charges)."""


def test_pause_hands_every_task_back_and_another_tab_runs_them_as_first_attempts(
    coordinator: Coordinator, page: Any, browser: Any
) -> None:
    frames = frames_sent(page)
    page.goto(f"{coordinator.page_url}?workers=1")
    page.wait_for_function("window.browsergrid.tasksDone === 1")  # the welcome task
    args = [{"samples": LONG_TASK, "seed": seed} for seed in range(3)]
    job_id = submit_job(coordinator.port, {"op": "monte_carlo_pi", "args": args})
    page.wait_for_function(
        "window.browsergrid.held.length >= 1 && window.browsergrid.state === 'working'"
    )
    held = page.evaluate("window.browsergrid.held")
    page.click("#pause")
    wait_until(page, lambda: bool(of_type(frames, "hand_back")))
    assert of_type(frames, "capacity") == [{"type": "capacity", "concurrency": 0}]
    [handed] = of_type(frames, "hand_back")
    assert handed["task_ids"] == held
    assert page.text_content("#state") == "paused"
    assert page.text_content("#pause") == "Resume"
    assert page.evaluate("window.browsergrid.held") == []
    tab_id = page.evaluate("window.browsergrid.workerId")

    other = browser.new_context().new_page()
    other.goto(f"{coordinator.page_url}?workers=1")
    wait_for(lambda: job_state(coordinator.port, job_id)["state"] == "finished", timeout=60)
    outcomes = job_results(coordinator.port, job_id)
    other_id = other.evaluate("window.browsergrid.workerId")
    assert [o["status"] for o in outcomes] == ["done"] * 3
    assert all(o["attempts"] == 1 for o in outcomes)  # a task handed back was no attempt
    assert {o["worker_id"] for o in outcomes} == {other_id} != {tab_id}
    assert page.evaluate("window.browsergrid.tasksDone") == 1  # the paused tab ran none
    other.context.close()

    page.click("#pause")  # Resume: work again
    wait_until(page, lambda: len(of_type(frames, "capacity")) == 2)
    assert of_type(frames, "capacity")[1] == {"type": "capacity", "concurrency": 1, "prefetch": 16}
    short = {"op": "monte_carlo_pi", "args": [{"samples": 1000, "seed": 1}]}
    again = submit_job(coordinator.port, short)
    wait_for(lambda: job_state(coordinator.port, again)["state"] == "finished", timeout=30)
    [outcome] = job_results(coordinator.port, again)
    assert outcome["worker_id"] == tab_id and outcome["attempts"] == 1
    page.wait_for_function("window.browsergrid.tasksDone === 2")
    # an object result is shown as JSON (the page redraws for results within 250 ms)
    shown = json.dumps(json.dumps(outcome["result"], separators=(",", ":")))
    page.wait_for_function(f"document.querySelector('#last-result').textContent === {shown}")


def test_the_settings_and_the_language_survive_a_reload(
    coordinator: Coordinator, page: Any
) -> None:
    frames = frames_sent(page)
    page.goto(coordinator.page_url)
    page.wait_for_function("window.browsergrid.workerId !== null")
    cores = page.evaluate("navigator.hardwareConcurrency")
    workers = str(min(2, cores))
    page.select_option("#workers", workers)
    page.select_option("#share", "0.5")
    page.check("#pause-hidden")
    page.wait_for_selector("#pause-battery", state="visible")  # Chromium has the Battery Status API
    page.check("#pause-battery")
    page.click("#lang-es")
    assert page.get_attribute("html", "lang") == "es"
    wait_until(page, lambda: of_type(frames, "capacity")[-1].get("share") == 0.5)
    frames.clear()

    page.reload()
    page.wait_for_function("window.browsergrid.workerId !== null")
    assert page.input_value("#workers") == workers
    assert page.input_value("#share") == "0.5"
    assert page.is_checked("#pause-hidden") and page.is_checked("#pause-battery")
    assert page.get_attribute("html", "lang") == "es"
    assert page.text_content("#pause") == "Pausar"
    [hello] = of_type(frames, "hello")
    assert hello["concurrency"] == int(workers)
    wait_until(page, lambda: bool(of_type(frames, "capacity")))
    assert of_type(frames, "capacity")[0]["share"] == 0.5  # said right after the welcome
    assert page.evaluate("window.browsergrid.workers") == int(workers)


def test_a_hidden_tab_pauses_when_the_setting_is_on_and_so_does_a_battery(
    coordinator: Coordinator, page: Any
) -> None:
    frames = frames_sent(page)
    page.add_init_script(FAKE_BATTERY)
    page.goto(coordinator.page_url)
    page.wait_for_function("window.browsergrid.workerId !== null")
    set_visibility(page, hidden=True)  # setting off: nothing happens
    assert page.evaluate("window.browsergrid.paused") is False
    set_visibility(page, hidden=False)

    page.check("#pause-hidden")
    set_visibility(page, hidden=True)
    page.wait_for_function("window.browsergrid.state === 'paused'")
    wait_until(page, lambda: bool(of_type(frames, "capacity")))
    assert of_type(frames, "capacity")[-1] == {"type": "capacity", "concurrency": 0}
    assert page.text_content("#activity") == "Paused while this tab is hidden (your setting below)."
    set_visibility(page, hidden=False)
    page.wait_for_function("window.browsergrid.paused === false")
    wait_until(page, lambda: of_type(frames, "capacity")[-1]["concurrency"] >= 1)

    page.check("#pause-battery")
    assert page.evaluate("window.browsergrid.paused") is False  # charging
    page.evaluate("window.fakeBattery.unplug()")
    page.wait_for_function("window.browsergrid.pauseReasons.includes('battery')")
    paused = {"type": "capacity", "concurrency": 0}
    wait_until(page, lambda: of_type(frames, "capacity")[-1] == paused)


def test_a_360_px_phone_sees_every_control_without_scrolling_sideways(
    coordinator: Coordinator, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        is_mobile=True,
        has_touch=True,
        device_scale_factor=2,
    )
    try:
        phone = context.new_page()
        phone.goto(f"{coordinator.page_url}?workers=1")
        phone.wait_for_function("window.browsergrid.tasksDone === 1")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        for selector in CONTROLS:
            box = phone.locator(selector).bounding_box()
            assert box is not None, f"{selector} is not shown"
            assert box["x"] >= 0 and box["x"] + box["width"] <= 360, (selector, box)
            if selector not in ("#pause-hidden", "#pause-battery"):  # their labels are the targets
                assert box["height"] >= 40, (selector, box)
        for row in ("label:has(#pause-hidden)", "#battery-row"):
            box = phone.locator(row).bounding_box()
            assert box is not None and box["height"] >= 40 and box["x"] + box["width"] <= 360, row
        phone.tap("#pause")
        phone.wait_for_function("window.browsergrid.paused === true")
        phone.tap("#pause")
        phone.wait_for_function("window.browsergrid.paused === false")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 360
        phone.screenshot(path=str(artifacts / "worker-page-phone.png"), full_page=True)
    finally:
        context.close()


def test_a_spanish_browser_gets_the_page_in_spanish_and_the_switch_is_remembered(
    coordinator: Coordinator, browser: Any, artifacts: Path
) -> None:
    context = browser.new_context(locale="es-ES")
    try:
        tab = context.new_page()
        tab.goto(coordinator.page_url)
        tab.wait_for_function("window.browsergrid.tasksDone === 1")
        # drawn for the result within 250 ms
        tab.wait_for_function("document.querySelector('#state').dataset.state === 'connected'")
        assert tab.get_attribute("html", "lang") == "es"
        assert tab.text_content("#pause") == "Pausar"
        assert tab.text_content("h2") == "Calculando ahora"
        assert tab.text_content("#state") == "conectado"
        assert tab.get_attribute("#state", "data-state") == "connected"  # machines read English
        about = tab.text_content("#about")
        assert "presta el procesador de este equipo a este coordinador de browsergrid" in about
        tab.screenshot(path=str(artifacts / "worker-page-es.png"), full_page=True)
        tab.click("#lang-en")
        assert tab.get_attribute("html", "lang") == "en"
        assert tab.text_content("#pause") == "Pause"
        assert tab.get_attribute("#lang-en", "aria-pressed") == "true"
        tab.reload()
        tab.wait_for_function("window.browsergrid.workerId !== null")
        assert tab.get_attribute("html", "lang") == "en"
        assert tab.text_content("h2") == "Now computing"
    finally:
        context.close()


def test_the_coordinators_name_and_message_are_shown_as_text(
    start_coordinator: Callable[..., Coordinator], page: Any, artifacts: Path
) -> None:
    message = "Thanks for lending your laptop!\n<b>Room 3</b> closes at 18:00."
    coordinator = start_coordinator("--name", "Physics 101 grid", "--message", message)
    page.goto(coordinator.page_url)
    page.wait_for_function("window.browsergrid.tasksDone === 1")
    assert page.text_content("h1") == "Physics 101 grid"
    assert page.text_content("#message") == message  # as text: no <b> element was made
    assert page.locator("#message b").count() == 0
    assert page.is_visible("#message")
    about = page.text_content("#about")
    assert "lends this computer's processor to Physics 101 grid, which" in about
    assert page.title() == "Physics 101 grid · browsergrid worker"
    page.screenshot(path=str(artifacts / "worker-page-named.png"), full_page=True)


DUTY_CYCLE = """async (share) => {
  const worker = new Worker('/static/js/compute-worker.js', { type: 'module' });
  const run = (task_id) => new Promise((resolve) => {
    worker.onmessage = ({ data }) => resolve({ ...data, at: performance.now() });
    const args = { samples: 20000000, seed: task_id };
    worker.postMessage({ task_id, op: 'monte_carlo_pi', args });
  });
  try {
    worker.postMessage({ share });
    const first = await run(1);
    const second = await run(2); // posted at once: the worker rests first
    return { first: first.duration_ms, second: second.duration_ms, gap: second.at - first.at };
  } finally {
    worker.terminate();
  }
}"""


@pytest.mark.parametrize("share", [0.25, 1])
def test_a_cpu_share_makes_the_compute_worker_rest_after_each_task(
    coordinator: Coordinator, page: Any, share: float
) -> None:
    """At share s, after a task of t ms the next starts (1/s - 1) * t ms later at the earliest."""
    page.goto(coordinator.page_url)
    timing = page.evaluate(DUTY_CYCLE, share)
    rest = timing["first"] * (1 / share - 1)
    assert timing["gap"] >= 0.95 * (rest + timing["second"]), timing
    if share == 1:
        assert timing["gap"] < timing["first"] + timing["second"] + 1000, timing  # no rest at all
