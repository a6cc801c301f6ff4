"""The JavaScript ops in real headless Chromium give the results of the Python ops: every
vector of tests/fixtures/op_vectors.json, on the page and in the compute Web Worker. (The
python op runs the Python runner itself, under Pyodide: tests/e2e/test_browser_python.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from browsergrid.ops import BUILT_IN_OPS, PYTHON_OP, verify_op
from tests._support import FIXTURES, Coordinator

pytestmark = pytest.mark.browser

JS_OPS = sorted(set(BUILT_IN_OPS) - {PYTHON_OP})
"""The ops web/js/ops.js implements."""
VECTORS: list[dict[str, Any]] = json.loads(
    (FIXTURES / "op_vectors.json").read_text(encoding="utf-8")
)["vectors"]

# Results travel back as JSON text, the way a worker page sends them to the coordinator.
RUN_VECTORS = """async (vectors) => {
  const { runOp, availableOps } = await import('/static/js/ops.js');
  const outcomes = [];
  for (const { op, args } of vectors) {
    try {
      outcomes.push({ result: JSON.stringify(await runOp(op, args)) });
    } catch (err) {
      outcomes.push({ error: String(err) });
    }
  }
  return { available: availableOps(), secure: isSecureContext, outcomes };
}"""

RUN_IN_WEB_WORKER = """async (tasks) => {
  const worker = new Worker('/static/js/compute-worker.js', { type: 'module' });
  const answers = [];
  try {
    for (const { task_id, op, args } of tasks) {
      const answer = new Promise((resolve, reject) => {
        worker.onmessage = ({ data }) => resolve(data);
        worker.onerror = (event) => reject(new Error(event.message || 'worker script error'));
      });
      worker.postMessage({ task_id, op, args });
      const data = await answer;
      answers.push('result' in data ? { ...data, result: JSON.stringify(data.result) } : data);
    }
  } finally {
    worker.terminate();
  }
  return answers;
}"""


def test_every_vector_gives_the_python_result_on_the_page(
    coordinator: Coordinator, page: Any
) -> None:
    page.goto(coordinator.page_url)
    answer = page.evaluate(RUN_VECTORS, VECTORS)
    assert answer["secure"] is True  # 127.0.0.1 is a secure context: crypto.subtle exists
    assert sorted(answer["available"]) == JS_OPS
    assert len(answer["outcomes"]) == len(VECTORS)
    for vector, outcome in zip(VECTORS, answer["outcomes"], strict=True):
        label = f"{vector['op']}: {vector['name']}"
        assert "error" not in outcome, (label, outcome)
        result = json.loads(outcome["result"])
        assert result == vector["result"], label
        assert verify_op(vector["op"], vector["args"], result), label


def test_the_compute_web_worker_runs_each_op(coordinator: Coordinator, page: Any) -> None:
    page.goto(coordinator.page_url)
    tasks = []
    for op in JS_OPS:
        vector = next(v for v in VECTORS if v["op"] == op)
        tasks.append({"task_id": f"t-{op}", "op": op, "args": vector["args"], "vector": vector})
    answers = page.evaluate(RUN_IN_WEB_WORKER, tasks)
    for task, answer in zip(tasks, answers, strict=True):
        assert set(answer) == {"task_id", "result", "duration_ms"}, answer
        assert answer["task_id"] == task["task_id"]
        assert json.loads(answer["result"]) == task["vector"]["result"], task["op"]
        duration = answer["duration_ms"]
        assert isinstance(duration, int | float) and not isinstance(duration, bool)
        assert duration >= 0


def test_the_compute_web_worker_reports_bad_arguments_as_an_error(
    coordinator: Coordinator, page: Any
) -> None:
    page.goto(coordinator.page_url)
    tasks = [
        {"task_id": 1, "op": "prime_count", "args": {"lo": 5, "hi": 1}},
        {"task_id": 2, "op": "hash_search", "args": {"prefix": 1}},
        {"task_id": 3, "op": "nope", "args": {}},
    ]
    answers = page.evaluate(RUN_IN_WEB_WORKER, tasks)
    assert [sorted(answer) for answer in answers] == [["error", "task_id"]] * 3
    assert [answer["task_id"] for answer in answers] == [1, 2, 3]
    assert answers[0]["error"] == "Error: prime_count: hi must be at least lo, got 1"
    assert answers[1]["error"].startswith("Error: hash_search: prefix must be a string")
    assert answers[2]["error"] == 'Error: unknown op: "nope"'
