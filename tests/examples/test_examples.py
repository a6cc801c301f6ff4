"""The worked examples of examples/, each run as a process the way its docstring says, against a
real coordinator and two real Python workers (conftest's ``served``; sir_sweep.py gets two more
started with ``--python-functions``), in a temporary directory. Each must exit 0 and print
what its docstring shows (tests/examples/_examples.py), and what it prints must be right."""

from __future__ import annotations

import math
import os
import re
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from browsergrid.ops import run_op
from tests._support import Coordinator, Process
from tests.conftest import Served
from tests.examples._examples import (
    EXAMPLES,
    arguments,
    assert_prints_what_its_docstring_shows,
    load,
    run,
)

pytestmark = pytest.mark.timeout(120)


def run_example(name: str, index: int, served: Served, cwd: Path, **env: str) -> str:
    """Run the docstring's ``index``-th command of examples/NAME with this Python against
    ``served``; the admin token comes from $BROWSERGRID_TOKEN (tests/conftest.py)."""
    argv = [sys.executable, str(EXAMPLES / name), *arguments(name, index, served.url)]
    return run(argv, cwd, {**os.environ, **env})


def test_pi(served: Served, tmp_path: Path) -> None:
    output = run_example("pi.py", 0, served, tmp_path)
    assert_prints_what_its_docstring_shows("pi.py", output)
    found = re.search(r"pi ~ (\S+) from 2,000,000 samples", output)
    assert found is not None and abs(float(found[1]) - math.pi) < 0.01


def test_primes_with_the_token_on_its_command_line(served: Served, tmp_path: Path) -> None:
    # no token in the environment, and no token file (tests/conftest.py): only --token
    output = run_example("primes.py", 1, served, tmp_path, BROWSERGRID_TOKEN="")
    assert_prints_what_its_docstring_shows("primes.py", output)
    assert "78,498 primes below 1,000,000" in output
    assert "5,761,455 primes below 100,000,000 (20 tasks, " in output  # pi(10**8)


def test_mandelbrot_writes_the_png(served: Served, tmp_path: Path) -> None:
    output = run_example("mandelbrot.py", 0, served, tmp_path)
    assert_prints_what_its_docstring_shows("mandelbrot.py", output)
    width, height, pixels = read_png(tmp_path / "mandelbrot.png")
    assert (width, height) == (512, 384)

    def pixel(x: int, y: int) -> bytes:
        return pixels[y][3 * x : 3 * x + 3]

    assert pixel(341, 191) == b"\0\0\0"  # c = -0.25: the main cardioid's centre is inside
    assert pixel(0, 0) != b"\0\0\0"  # c = -2.25 + 1.125i is outside
    # one tile, computed here, is where it belongs and the right way up
    example = load("mandelbrot.py")
    row, column = 2, 3  # re -1.125 to -0.75, im 0 to 0.375: the top edge of the 2-bulb
    counts = run_op("mandelbrot_tile", example.tiles()[row * 8 + column])["counts"]
    for y in range(64):
        expected = b"".join(map(example.colour, counts[(63 - y) * 64 : (64 - y) * 64]))
        assert pixels[row * 64 + y][column * 192 : (column + 1) * 192] == expected, y


def start_function_workers(served: Served, start_worker: Callable[..., Process]) -> None:
    """Two more Python workers, started with ``--python-functions``, once they are ready."""
    for _ in range(2):
        worker = start_worker(served.coordinator.ws_url, "--python-functions", "--quiet")
        worker.wait_for_line(lambda line: "runs the Python functions clients submit" in line)


def test_sir_sweep_sends_a_plain_function(
    served: Served, start_worker: Callable[..., Process], tmp_path: Path
) -> None:
    start_function_workers(served, start_worker)
    output = run_example("sir_sweep.py", 0, served, tmp_path)
    assert_prints_what_its_docstring_shows("sir_sweep.py", output)
    example = load("sir_sweep.py")
    top = 100 * example.peak_infected(0.6, 0.05)  # computed here, as on the workers
    assert f"largest peak: {top:.1f}% of the population at beta=0.60, gamma=0.050" in output
    assert len([line for line in output.splitlines() if line.startswith("  beta ")]) == 11


@pytest.mark.browser
def test_sir_sweep_in_a_browser_tab(coordinator: Coordinator, page: Any, tmp_path: Path) -> None:
    """As its docstring says, a browser tab alone runs the function too (in Pyodide)."""
    page.goto(coordinator.page_url)
    assert "python" in coordinator.event("worker_introduced")["ops"]
    url = f"http://127.0.0.1:{coordinator.port}"
    argv = [sys.executable, str(EXAMPLES / "sir_sweep.py"), *arguments("sir_sweep.py", 0, url)]
    assert_prints_what_its_docstring_shows("sir_sweep.py", run(argv, tmp_path))
    # the welcome task, then 121 simulations
    page.wait_for_function("document.querySelector('#tasks-done').textContent === '122'")


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit RGB PNG whose rows all use filter 0 (as
    examples/mandelbrot.py writes them)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: dict[bytes, bytes] = {}
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks[kind] = chunks.get(kind, b"") + body
        offset += 12 + length
    assert list(chunks) == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour_type, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour_type) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * width
    assert len(raw) == height * stride
    rows = [raw[y * stride : (y + 1) * stride] for y in range(height)]
    assert all(row[0] == 0 for row in rows)
    return width, height, [row[1:] for row in rows]


def test_wordfreq_puts_its_text_once_and_counts_it_on_the_grid(
    served: Served, start_worker: Callable[..., Process], tmp_path: Path
) -> None:
    start_function_workers(served, start_worker)
    output = run_example("wordfreq.py", 0, served, tmp_path)
    assert_prints_what_its_docstring_shows("wordfreq.py", output)
    assert "the same as a count made here" in output


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_wordfreq_counts_and_merges_in_a_tree_in_browser_tabs(
    coordinator: Coordinator, page: Any, tmp_path: Path
) -> None:
    """Tabs alone (two compute workers, in Pyodide) count the blobs and merge the counts
    pairwise: each merge task waits for the two counts it names, and gets them."""
    page.goto(f"{coordinator.page_url}?workers=2")
    assert "python" in coordinator.event("worker_introduced")["ops"]
    url = f"http://127.0.0.1:{coordinator.port}"
    argv = [sys.executable, str(EXAMPLES / "wordfreq.py"), *arguments("wordfreq.py", 0, url)]
    output = run(argv, tmp_path, dict(os.environ))
    assert_prints_what_its_docstring_shows("wordfreq.py", output)
    assert "the same as a count made here" in output
    # 8 counts, then 4 + 2 + 1 merges: every one ran in the tab (and its welcome task)
    page.wait_for_function("document.querySelector('#tasks-done').textContent === '16'")


def series_at_half() -> dict[str, Any]:
    """Each series of examples/series.py (its terms below x**8) at x = 1/2, exactly, from
    the textbook coefficients of the Taylor series (without sympy)."""
    from fractions import Fraction

    def at_half(coefficient: Callable[[int], Fraction]) -> Fraction:
        return sum((coefficient(k) * Fraction(1, 2) ** k for k in range(8)), Fraction(0))

    def inverse_factorial(k: int) -> Fraction:
        return Fraction(1, math.factorial(k))

    def binomial_half(k: int) -> Fraction:  # (1/2 choose k)
        return math.prod((Fraction(1, 2) - j for j in range(k)), start=Fraction(1)) / (
            math.factorial(k)
        )

    return {
        "sin(x)": at_half(lambda k: (-1) ** (k // 2) * inverse_factorial(k) if k % 2 else 0),
        "cos(x)": at_half(lambda k: 0 if k % 2 else (-1) ** (k // 2) * inverse_factorial(k)),
        "exp(x)": at_half(inverse_factorial),
        "log(1 + x)": at_half(lambda k: Fraction((-1) ** (k + 1), k) if k else 0),
        "atan(x)": at_half(lambda k: Fraction((-1) ** (k // 2), k) if k % 2 else 0),
        "sqrt(1 + x)": at_half(binomial_half),
    }


def series_results(output: str) -> list[str]:
    """What examples/series.py printed but for its timing line (the sympy version line, then
    one line per series)."""
    lines = output.splitlines()
    assert lines[-1].startswith("6 series in "), output
    return lines[:-1]


def assert_series_are_right(output: str) -> None:
    """Each series' value at 1/2 is what its textbook coefficients give (computed here,
    without sympy); sympy came from PyPI, in the version the example pins."""
    results = series_results(output)
    assert results[0] == "the workers ran sympy 1.13.3, from PyPI through packages="
    expected = series_at_half()
    assert len(results) == 1 + len(expected)
    for line, (expression, value) in zip(results[1:], expected.items(), strict=True):
        assert line.startswith(f"{expression:<11} "), line
        assert line.endswith(f"   at x = 1/2: {value.numerator}/{value.denominator}"), line


def test_series_runs_sympy_from_pypi_on_python_workers(
    served: Served, start_worker: Callable[..., Process], tmp_path: Path
) -> None:
    """Two Python workers started with --python-functions, sharing one data directory (as
    two workers on one machine do by default), make sympy's virtual environment (uv, from
    the wheels the example uploads) and run the tasks in it."""
    start_function_workers(served, start_worker)
    output = run_example("series.py", 0, served, tmp_path)
    assert_prints_what_its_docstring_shows("series.py", output)
    assert_series_are_right(output)


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_series_in_a_browser_tab_gives_what_a_python_worker_gives(
    coordinator: Coordinator, page: Any, start_worker: Callable[..., Process], tmp_path: Path
) -> None:
    """A tab alone runs the example (sympy's pure-Python wheels unpacked into its Pyodide);
    then, the tab gone, a Python worker runs it again (in a virtual environment): the two
    print the same results, line for line."""
    page.goto(f"{coordinator.page_url}?workers=1")
    tab = coordinator.event("worker_introduced")
    assert "python" in tab["ops"]
    url = f"http://127.0.0.1:{coordinator.port}"
    argv = [sys.executable, str(EXAMPLES / "series.py"), *arguments("series.py", 1, url)]
    in_the_tab = run(argv, tmp_path, dict(os.environ))
    assert_prints_what_its_docstring_shows("series.py", in_the_tab)
    assert_series_are_right(in_the_tab)
    page.goto("about:blank")  # the tab leaves: the Python worker is the only one
    coordinator.event("worker_disconnected", worker_id=tab["worker_id"])
    data = str(tmp_path / "worker")
    worker = start_worker(coordinator.ws_url, "--python-functions", "--quiet", "--data-dir", data)
    worker.wait_for_line(lambda line: "runs the Python functions clients submit" in line)
    on_the_worker = run(argv, tmp_path, dict(os.environ))
    assert series_results(on_the_worker) == series_results(in_the_tab)
    # the version and six series, twice (the coordinator's lines may come after the results)
    for _ in range(100):
        ran = [
            e for e in coordinator.events() if e.get("event") == "result" and e["op"] == "python"
        ]
        if len(ran) >= 14:
            break
        page.wait_for_timeout(100)
    agents = [e["agent"] for e in ran]
    assert len(agents) == 14, agents
    assert all("Chrome" in agent for agent in agents[:7]), agents
    assert all(agent.startswith("browsergrid-python/") for agent in agents[7:]), agents
