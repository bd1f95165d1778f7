"""PromQL helpers for the ops checks: which series a query reads, and whether they exist.

A query may only name series that storefront-jobs exposes, in the form its
type exposes them: a counter as ``<name>_total``, a histogram as
``<name>_bucket`` / ``_sum`` / ``_count``, a gauge as ``<name>``. Counters and
histogram series are only meaningful inside a range function (``rate``,
``increase``), so a selector of one outside a range is reported too, and so
is a label that a selector matches or an aggregation groups by when the
metric does not carry it (a typo there silently returns nothing, or one
series for everything).
"""

from __future__ import annotations

import dataclasses
import re

import promql_parser

from storefront_jobs.metrics.definitions import (
    BROKER_METRICS,
    POOL_COUNTERS,
    POOL_GAUGES,
    POOL_HISTOGRAMS,
    metric_names,
)

#: What Grafana puts in place of its built-in variables before the query reaches Prometheus.
GRAFANA_BUILTINS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
#: Labels Prometheus adds to every series at scrape time (namespace: Kubernetes discovery).
TARGET_LABELS = frozenset({"job", "instance", "namespace"})
#: Stands for the dashboard's ``$job`` variable, so a test can see which selectors filter on it.
JOB_SENTINEL = "JOB_VARIABLE"
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# MatchOp values are not hashable: look them up by their repr (``MatchOp.Re``).
_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


@dataclasses.dataclass(frozen=True)
class Selector:
    """One series selector of a query."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, "=~", value)
    in_range: bool  # under a range selector, e.g. rate(x[5m])


def exposed_series() -> dict[str, tuple[str, frozenset[str]]]:
    """Every series name storefront-jobs can expose -> (metric type, its labels)."""
    exposed: dict[str, tuple[str, frozenset[str]]] = {}
    for name, _doc, labels in POOL_COUNTERS.values():
        exposed[name + "_total"] = ("counter", frozenset(labels))
    for name, (kind, _doc, labels) in {**BROKER_METRICS, **POOL_GAUGES}.items():
        exposed[name + "_total" if kind == "counter" else name] = (kind, frozenset(labels))
    for name, _doc, labels, _buckets in POOL_HISTOGRAMS.values():
        exposed[name + "_bucket"] = ("histogram", frozenset({*labels, "le"}))
        exposed[name + "_sum"] = exposed[name + "_count"] = ("histogram", frozenset(labels))
    # A family this helper does not know how to expose would slip through unchecked.
    families = {family_of(series) for series in exposed}
    assert families == metric_names(), sorted(families ^ metric_names())
    return exposed


def family_of(series: str) -> str:
    """``storefront_jobs_job_failed_total`` -> ``storefront_jobs_job_failed`` (the runbook's rule)."""
    for suffix in _SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in metric_names():
            return series.removesuffix(suffix)
    return series


def substitute_grafana(expr: str) -> str:
    """A dashboard query as Prometheus receives it: built-ins replaced, ``$job`` a sentinel, others ``.*``."""
    for variable, value in GRAFANA_BUILTINS.items():
        expr = expr.replace(variable, value)

    def replace(match: re.Match[str]) -> str:
        return JOB_SENTINEL if match.group(1) == "job" else ".*"

    return _VARIABLE.sub(replace, expr)


def parse(expr: str) -> promql_parser.Expr:
    """Parse or raise ``ValueError`` with the parser's message."""
    return promql_parser.parse(expr)


def selectors(expr: str | promql_parser.Expr) -> list[Selector]:
    """Every series selector of a PromQL expression, in order."""
    found: list[Selector] = []
    range_depth = 0

    def pre(node: object) -> None:
        nonlocal range_depth
        if isinstance(node, promql_parser.MatrixSelector):
            range_depth += 1
        elif isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, _OPS[str(m.op)], m.value) for m in node.matchers.matchers)
            name = node.name or next((v for label, _, v in matchers if label == "__name__"), "")
            found.append(Selector(name, matchers, in_range=range_depth > 0))

    def post(node: object) -> None:
        nonlocal range_depth
        if isinstance(node, promql_parser.MatrixSelector):
            range_depth -= 1

    promql_parser.walk(parse(expr) if isinstance(expr, str) else expr, pre, post)
    return found


def _grouping_problems(tree: promql_parser.Expr, exposed: dict[str, tuple[str, frozenset[str]]]) -> list[str]:
    """``sum by (label)`` over series that lack ``label``: every series falls into one group."""
    found: list[str] = []

    def pre(node: object) -> None:
        modifier = getattr(node, "modifier", None)  # None for a plain sum(...)
        if isinstance(node, promql_parser.AggregateExpr) and modifier and str(modifier.type).endswith("By"):
            for selector in selectors(node.expr):
                labels = exposed.get(selector.name, ("", frozenset()))[1] | TARGET_LABELS
                found.extend(
                    f"{selector.name!r} has no label {label!r} to group by"
                    for label in modifier.labels
                    if label not in labels
                )

    promql_parser.walk(tree, pre)
    return found


def problems(expr: str) -> list[str]:
    """What is wrong with the series an expression reads; empty when all is well."""
    exposed = exposed_series()
    tree = parse(expr)
    found: list[str] = []
    for selector in selectors(tree):
        if selector.name not in exposed:
            found.append(f"{selector.name!r} is not exposed (family {family_of(selector.name)!r})")
            continue
        kind, labels = exposed[selector.name]
        if kind != "gauge" and not selector.in_range:
            found.append(f"{selector.name!r} is a {kind} series read outside rate()/increase()")
        found.extend(
            f"{selector.name!r} has no label {label!r}"
            for label, _, _ in selector.matchers
            if label != "__name__" and label not in labels | TARGET_LABELS
        )
    return found + _grouping_problems(tree, exposed)
