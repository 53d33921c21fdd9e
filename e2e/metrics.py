"""Prometheus scrapes, parsed with prometheus-client's own parser, and deltas between two."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
Key = tuple[str, Labels]


@dataclass(frozen=True)
class Samples:
    """Every sample of one scrape (or the sum over replicas), by sample name and labels."""

    values: Mapping[Key, float]
    gauges: frozenset[str]
    """Names of gauge samples: summed they mean nothing, so `combine` keeps their maximum."""

    @classmethod
    def parse(cls, text: str) -> Samples:
        values: dict[Key, float] = {}
        gauges: set[str] = set()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                assert key not in values, f"sample {key} exposed twice"
                values[key] = sample.value
                if family.type == "gauge":
                    gauges.add(sample.name)
        return cls(values, frozenset(gauges))

    @classmethod
    def combine(cls, scrapes: Iterable[Samples]) -> Samples:
        """One view of several replicas: counters and histograms add up, gauges peak."""
        values: dict[Key, float] = {}
        gauges: set[str] = set()
        for scrape in scrapes:
            gauges |= scrape.gauges
            for key, value in scrape.values.items():
                if key[0] in scrape.gauges:
                    values[key] = max(values.get(key, value), value)
                else:
                    values[key] = values.get(key, 0.0) + value
        return cls(values, frozenset(gauges))

    def get(self, name: str, **labels: str) -> float:
        """The sample's value; a missing series is an error (series exist from start-up)."""
        key = (name, frozenset(labels.items()))
        assert key in self.values, f"no sample {name}{labels or ''} in the scrape"
        return self.values[key]

    def series(self, name: str) -> dict[Labels, float]:
        """Every labelled sample of this name."""
        return {labels: value for (sample, labels), value in self.values.items() if sample == name}

    def delta(self, before: Samples, name: str) -> dict[Labels, float]:
        """How each series of `name` changed since `before`; series that did not are left out."""
        earlier = before.series(name)
        changes = {
            labels: value - earlier.get(labels, 0.0) for labels, value in self.series(name).items()
        }
        return {labels: change for labels, change in changes.items() if change}


def labels(**pairs: str) -> Labels:
    return frozenset(pairs.items())
