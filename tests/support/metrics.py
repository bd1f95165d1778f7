"""Reading Prometheus metrics in tests: a pool's endpoint, or the admin service's broker collector."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from storefront_jobs import get_default_app
from storefront_jobs.metrics.broker import BrokerCollector

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, metric: str, /, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and wanted <= set(ls))


def label_sets(samples: Samples, name: str) -> Iterable[dict[str, str]]:
    return [dict(ls) for (n, ls) in samples if n == name]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=30) as response:
        return parse(response.read().decode())


def broker_samples(client: redis.Redis) -> Samples:
    app = get_default_app()
    registry = CollectorRegistry()
    registry.register(BrokerCollector(client, app.storefront_settings))  # type: ignore[arg-type]
    return parse(generate_latest(registry).decode())
