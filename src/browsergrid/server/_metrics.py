"""``/metrics``: the coordinator's state and counters in Prometheus text format.

Values are read when Prometheus scrapes, from counters the coordinator keeps anyway
(``Stats``, the scheduler's counts); nothing is done per task for metrics' sake.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from browsergrid.core import TaskState
from browsergrid.server._agents import describe
from browsergrid.server._state import CoordinatorState


class CoordinatorCollector(Collector):
    """Reads one coordinator's state at each scrape."""

    def __init__(self, coordinator: CoordinatorState) -> None:
        self.coordinator = coordinator

    def collect(self) -> Iterator[Metric]:
        coordinator = self.coordinator
        stats = coordinator.stats

        workers = GaugeMetricFamily(
            "browsergrid_workers_connected", "Workers connected now, by kind.", labels=["kind"]
        )
        kinds = dict.fromkeys(("browser", "python", "exercise", "other"), 0)
        scheduler_workers = coordinator.scheduler.workers
        for peer in list(coordinator.workers.values()):
            worker = scheduler_workers.get(peer.worker_id)
            introduced = worker is not None and worker.state.value == "introduced"
            kinds[describe(peer.agent, introduced=introduced).kind] += 1
        for kind, count in kinds.items():
            workers.add_metric([kind], count)
        yield workers

        busy = sum(1 for w in scheduler_workers.values() if w.in_flight)
        yield GaugeMetricFamily(
            "browsergrid_workers_busy", "Workers holding at least one task.", value=busy
        )
        yield GaugeMetricFamily(
            "browsergrid_clients_connected",
            "Submitting clients connected now.",
            value=len(coordinator.clients),
        )

        tasks = GaugeMetricFamily(
            "browsergrid_tasks",
            "Tasks of the jobs this coordinator runs, by state (done, failed and cancelled "
            "count since it started or took the job up).",
            labels=["state"],
        )
        by_state = dict.fromkeys(TaskState, 0)
        for job in coordinator.scheduler.jobs.values():
            for state, count in job.counts.items():
                by_state[state] += count
        for state in TaskState:  # jobs that ended and left memory
            by_state[state] += stats.ended[state]
        for state, count in by_state.items():
            tasks.add_metric([state.value], count)
        yield tasks

        yield CounterMetricFamily(
            "browsergrid_results",
            "Results accepted (welcome tasks included); rate() of it is results per second.",
            value=stats.results,
        )
        yield CounterMetricFamily(
            "browsergrid_tasks_failed", "Tasks that used up their attempts.", value=stats.failed
        )
        yield GaugeMetricFamily(
            "browsergrid_results_per_second",
            "Tasks finished per second over the last 5 seconds (as the dashboard shows).",
            value=coordinator.feed.rate(),
        )

        errors = CounterMetricFamily("browsergrid_errors", "Errors seen, by kind.", labels=["kind"])
        lost = coordinator.scheduler.lost_leases
        errors.add_metric(["task_error"], lost["error"])
        errors.add_metric(["lease_expired"], lost["expired"])
        errors.add_metric(["worker_lost"], lost["disconnected"])
        errors.add_metric(["report_rejected"], stats.errors["report_rejected"])
        errors.add_metric(["frame_rejected"], stats.errors["frame_rejected"])
        errors.add_metric(["rate_limited"], stats.errors["rate_limited"])
        errors.add_metric(["store"], stats.errors["store"])
        errors.add_metric(["unauthorized"], stats.errors["unauthorized"])
        errors.add_metric(["quarantined"], stats.errors["quarantined"])
        yield errors

        latency = stats.latency
        yield HistogramMetricFamily(
            "browsergrid_task_latency_seconds",
            "Time from a task being sent to a worker to its result arriving.",
            buckets=[(le, float(count)) for le, count in latency.cumulative()],
            sum_value=latency.sum,
        )
        yield CounterMetricFamily(
            "browsergrid_blobs_stored", "Blobs uploaded that were not held yet.", stats.blobs_stored
        )
        yield CounterMetricFamily(
            "browsergrid_blob_fetches",
            "Blob downloads (GET /blobs/...) answered with content.",
            value=stats.blob_fetches,
        )
        yield CounterMetricFamily(
            "browsergrid_blob_bytes_served",
            "Bytes of blobs sent to workers and clients (a range counts its length).",
            value=stats.blob_bytes_served,
        )
        yield GaugeMetricFamily(
            "browsergrid_store_healthy",
            "1 while the store works, 0 while it fails (work is refused meanwhile).",
            value=1 if coordinator.healthy else 0,
        )


def metrics_registry(coordinator: CoordinatorState) -> CollectorRegistry:
    """A registry of this coordinator's metrics and its process (CPU, memory, open files);
    no process-global state, so several coordinators can live in one test process."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(CoordinatorCollector(coordinator))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
