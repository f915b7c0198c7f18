"""The snapshot in Prometheus' text format, for GET /metrics.

Counters are counts of rows in raw_items, so they are exact, survive restarts and agree
between API processes; Prometheus' rate() and increase() turn them into throughput. The
latency histogram counts every processed item by its landing-to-outcome time (cumulative
buckets, like any Prometheus histogram): `histogram_quantile(0.95, sum by (le)
(rate(crm_ingest_item_latency_seconds_bucket[5m])))` gives the recent p95.
"""
from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric)

PREFIX = "crm_ingest_"
# The classic text format, which every Prometheus reads (our names need nothing newer); newer
# prometheus-client's CONTENT_TYPE_LATEST names version 1.0.0.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SnapshotCollector:
    """Yields the metric families of one snapshot (a fresh registry per scrape holds it)."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        snap = self.snap
        landed = CounterMetricFamily(PREFIX + "items_landed", "Items landed into raw_items.", labels=["source"])
        for source, count in snap["landed_by_source"].items():
            landed.add_metric([source], count)
        yield landed

        processed = CounterMetricFamily(PREFIX + "items_processed", "Items processed to an outcome.",
                                        labels=["source", "record_type", "outcome"])
        for row in snap["processed"]:
            processed.add_metric([row["source"], row["record_type"], row["outcome"]], row["items"])
        yield processed

        failed = GaugeMetricFamily(PREFIX + "items_failed", "Items set aside after their last attempt "
                                   "(`ingest retry` queues them again).", labels=["source"])
        for source, count in snap["failed_by_source"].items():
            failed.add_metric([source], count)
        yield failed

        states = GaugeMetricFamily(PREFIX + "items_unfinished", "Items landed and not yet finished, by state.",
                                   labels=["state"])
        for state in ("pending", "processing"):
            states.add_metric([state], snap["items"]["by_state"].get(state, 0))
        yield states

        yield GaugeMetricFamily(PREFIX + "oldest_unfinished_item_age_seconds",
                                "Age of the oldest item still pending or processing (0: none).",
                                value=snap["oldest_unfinished_age_seconds"] or 0)

        latency = HistogramMetricFamily(PREFIX + "item_latency_seconds",
                                        "Time from landing to outcome of processed items.", labels=["source"])
        for source, hist in snap["latency_seconds"]["histogram"].items():
            buckets = [(_le(bound), count) for bound, count in hist["buckets"]]
            latency.add_metric([source], buckets, sum_value=hist["sum"])
        yield latency

        records = GaugeMetricFamily(PREFIX + "records", "CRM records stored, by record type.",
                                    labels=["record_type"])
        for record_type, count in snap["records"].items():
            records.add_metric([record_type], count)
        yield records

        yield from self._sources(snap["sources"])
        yield from self._broker(snap)

    def _sources(self, sources: list[dict[str, Any]]) -> Iterator[Metric]:
        polled = [s for s in sources if s["polled"]]
        healthy = GaugeMetricFamily(PREFIX + "source_healthy", "1 when a polled source's last poll succeeded.",
                                    labels=["source"])
        failures = GaugeMetricFamily(PREFIX + "source_consecutive_failures", "Failed polls in a row.",
                                     labels=["source"])
        credentials = GaugeMetricFamily(PREFIX + "source_credentials_failed",
                                        "1 when the source refused our credentials.", labels=["source"])
        success = GaugeMetricFamily(PREFIX + "source_last_success_timestamp_seconds",
                                    "Unix time of the source's last successful poll.", labels=["source"])
        expiry = GaugeMetricFamily(PREFIX + "source_credentials_expiry_timestamp_seconds",
                                   "Unix time the source's credentials expire (only sources that know it).",
                                   labels=["source"])
        for s in polled:
            if s.get("credentials_expire_at") is not None:
                expiry.add_metric([s["source"]], s["credentials_expire_at"].timestamp())
            healthy.add_metric([s["source"]], 1 if s["healthy"] else 0)
            failures.add_metric([s["source"]], s["failures"])
            credentials.add_metric([s["source"]], 1 if s["credentials_failed"] else 0)
            if s["last_success_at"] is not None:
                success.add_metric([s["source"]], s["last_success_at"].timestamp())
        yield from (healthy, failures, credentials, success, expiry)

    def _broker(self, snap: dict[str, Any]) -> Iterator[Metric]:
        queues = snap["queues"]
        if queues is None:  # embedded: no broker, no workers
            return
        yield GaugeMetricFamily(PREFIX + "broker_up", "1 when the broker answered.",
                                value=0 if "error" in queues else 1)
        if "error" in queues:
            return
        depth = GaugeMetricFamily(PREFIX + "queue_depth", "Messages waiting in a queue, over all its "
                                  "priority lists.", labels=["queue"])
        for queue, count in queues["depth"].items():
            depth.add_metric([queue], count)
        yield depth
        yield GaugeMetricFamily(PREFIX + "queue_unacked", "Messages delivered to workers and not yet "
                                "acknowledged (in flight).", value=queues["unacked"])
        if snap["workers_online"] is not None:
            yield GaugeMetricFamily(PREFIX + "workers_online", "Celery workers answering a ping.",
                                    value=snap["workers_online"])


def _le(bound: float | str) -> str:
    return bound if isinstance(bound, str) else repr(float(bound))


def render(snap: dict[str, Any]) -> bytes:
    """The snapshot in the Prometheus text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return generate_latest(registry)
