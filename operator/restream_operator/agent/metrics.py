"""The agents' ``/metrics``: prometheus_client's exposition of what an agent reads at
scrape time.

Each agent has its own registry (never the library's global one) holding one collector
that turns the agent's state into metric families when Prometheus asks, plus the
library's process collector (``process_resident_memory_bytes``, CPU seconds, open file
descriptors). The README's "Metrics" section lists every series; a test holds them to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The classic text format, which generate_latest writes and every Prometheus reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def gauge(
    name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> GaugeMetricFamily:
    """A gauge family; every sample of it has the same label names."""
    rows = list(samples)
    family = GaugeMetricFamily(name, help_text, labels=list(rows[0][0]) if rows else [])
    for labels, value in rows:
        family.add_metric(list(labels.values()), value)
    return family


def counter(
    name: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> CounterMetricFamily:
    """A counter family: ``name`` ends in ``_total``, as exposed."""
    rows = list(samples)
    family = CounterMetricFamily(
        name.removesuffix("_total"), help_text, labels=list(rows[0][0]) if rows else []
    )
    for labels, value in rows:
        family.add_metric(list(labels.values()), value)
    return family


class _Collector(Collector):
    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families()


class Exposition:
    """One agent's registry: ``families`` is called at every scrape."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(families))
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
