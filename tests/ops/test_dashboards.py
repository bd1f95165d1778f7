"""The "Background Job Health" dashboard: reproducible, importable, and reading only real series.

No Grafana server can be installed here (it is not packaged for Debian), so the
dashboard is checked statically: it is exactly what dashboards/generate.py
produces; it survives a round trip through the SDK's typed model of Grafana's
dashboard schema; it has the structure Grafana's importer needs; every query
parses as PromQL and reads only series defined in
storefront_jobs/metrics/definitions.py; and it follows the dashboard-linter
rules that matter (datasource and job variables, $__rate_interval, units,
titles and descriptions).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.metrics.definitions import metric_names
from tests.ops import promql

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "dashboards" / "generate.py"
DASHBOARD = ROOT / "dashboards" / "background-job-health.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
UNITS = {"s", "short", "reqps", "percentunit"}


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dashboards_generate", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _queries() -> list[tuple[str, str]]:
    """(where, expr) for every PromQL query: panel targets and annotation queries."""
    found = [
        (f"panel {p['title']!r} target {t['refId']}", t["expr"]) for p in _panels() for t in p["targets"]
    ]
    found += [
        (f"annotation {a['name']!r}", a["expr"]) for a in _dashboard()["annotations"]["list"] if "expr" in a
    ]
    return found


QUERIES = _queries()

# The classic (v1) schema is deliberate (dashboards/generate.py); the SDK
# warns about it when its v1 model module is first imported.
pytestmark = pytest.mark.filterwarnings("ignore:Prefer using dashboardv2:DeprecationWarning")


def _by_title(title: str) -> dict[str, Any]:
    matches = [p for p in _panels() if p["title"] == title]
    assert len(matches) == 1, f"expected one panel titled {title!r}"
    return matches[0]


def test_committed_json_is_what_the_generator_writes() -> None:
    # Given the generator, pinned SDK and all
    generator = _load_generator()
    # When it renders the dashboard
    rendered = generator.render()
    # Then the committed file is byte for byte the same
    assert rendered == DASHBOARD.read_text(), "dashboard JSON is stale: run python dashboards/generate.py"
    assert generator.main(["--check"]) == 0


def test_round_trips_through_the_sdk_dashboard_model() -> None:
    # The SDK's models are generated from Grafana's dashboard schema: a field
    # they do not know, or a value of the wrong type, would not survive.
    from grafana_foundation_sdk.models.dashboard import Dashboard  # warns on import: see pytestmark

    data = _dashboard()
    model = Dashboard.from_json(data)
    assert json.loads(JSONEncoder(sort_keys=True).encode(model)) == data


def test_has_what_grafana_import_requires() -> None:
    data = _dashboard()
    assert isinstance(data["schemaVersion"], int)
    assert data["schemaVersion"] >= 39
    assert data["title"] == "Background Job Health"
    assert data["uid"] == "background-job-health"
    assert isinstance(data["templating"]["list"], list)
    assert isinstance(data["annotations"]["list"], list)
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in data["panels"]:
        assert {"type", "title", "gridPos"} <= panel.keys(), panel.get("title")
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in _dashboard()["panels"]:
        pos = panel["gridPos"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def test_datasource_and_job_variables() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    job = variables["job"]
    assert job["type"] == "query"
    assert job["datasource"] == DATASOURCE
    # refresh 2: re-query when the time range changes (dashboard-linter's rule).
    assert job["refresh"] == 2
    metric = re.fullmatch(r"label_values\((\w+), job\)", job["query"])
    assert metric is not None, job["query"]
    assert promql.exposed_series()[metric.group(1)][0] == "gauge"


def test_every_panel_has_title_description_unit_and_datasource() -> None:
    for panel in _panels():
        assert panel["title"]
        assert panel.get("description"), panel["title"]
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']!r} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
        if panel["type"] == "heatmap":
            unit = panel["options"]["yAxis"]["unit"]
        else:
            unit = panel["fieldConfig"]["defaults"]["unit"]
        assert unit in UNITS, f"{panel['title']!r}: unit {unit!r}"


def test_the_runbook_panels_are_there() -> None:
    # Panel 1: queue depth by priority, stacked area.
    depth = _by_title("Queue depth by priority")
    assert depth["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"
    assert depth["fieldConfig"]["defaults"]["custom"]["fillOpacity"] > 0
    # Panel 2: throughput by status, success and failed rates.
    throughput = _by_title("Job throughput by status")
    assert [t["legendFormat"] for t in throughput["targets"]] == ["success", "failed"]
    assert all("rate(" in t["expr"] for t in throughput["targets"])
    # Panel 3: DLQ depth over time.
    assert (
        "storefront_jobs_dlq_depth" in _by_title("Dead-letter queue depth by job queue")["targets"][0]["expr"]
    )
    # Panel 4: duration p50/p95/p99 by priority.
    duration = _by_title("Job duration p50/p95/p99 by priority")
    quantiles = [re.match(r"histogram_quantile\(([\d.]+),", t["expr"]) for t in duration["targets"]]
    assert [m.group(1) for m in quantiles if m] == ["0.5", "0.95", "0.99"]
    assert all("by (priority, le)" in t["expr"] for t in duration["targets"])
    # Panel 5: retry attempt distribution, a heatmap by attempt.
    retries = _by_title("Retry attempt distribution")
    assert retries["type"] == "heatmap"
    assert "by (attempt)" in retries["targets"][0]["expr"]
    # Panel 6: overflow events as annotations, and as a panel.
    annotations = {a["name"]: a for a in _dashboard()["annotations"]["list"]}
    overflow = annotations["Queue overflow"]
    assert overflow["datasource"] == DATASOURCE
    assert overflow["enable"]
    assert re.search(
        r"increase\(storefront_jobs_queue_overflow_total\{[^}]*\}\[1m\]\)\) > 0$", overflow["expr"]
    )
    _by_title("Queue overflow events")
    # Beyond the runbook: oldest job age, and the wait against each target.
    assert (
        "storefront_jobs_job_age_seconds"
        in _by_title("Oldest waiting job age by priority")["targets"][0]["expr"]
    )
    _by_title("Wait time p95 by priority vs target")
    _by_title("Wait time p95 relative to target")


def test_wait_targets_are_the_priorities_targets() -> None:
    targets = {p.label: p.target_latency_s for p in Priority if p.target_latency_s is not None}
    # Constant series: "vector(<target>)" named "<priority> target".
    absolute = _by_title("Wait time p95 by priority vs target")
    constants = {
        t["legendFormat"].removesuffix(" target"): float(m.group(1))
        for t in absolute["targets"]
        if (m := re.fullmatch(r"vector\(([\d.]+)\)", t["expr"]))
    }
    assert constants == targets
    # Ratio: "<p95 of that priority> / <target>", with the 2x alert threshold drawn.
    ratio = _by_title("Wait time p95 relative to target")
    divisors = {
        t["legendFormat"]: float(t["expr"].rsplit("/", 1)[1])
        for t in ratio["targets"]
        if f'priority="{t["legendFormat"]}"' in t["expr"]
    }
    assert divisors == targets
    steps = ratio["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 2 in [s["value"] for s in steps]


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[where for where, _ in QUERIES])
def test_query_parses_and_reads_only_defined_series(where: str, expr: str) -> None:
    selectors = promql.selectors(promql.substitute_grafana(expr))
    assert promql.problems(promql.substitute_grafana(expr)) == [], where
    for selector in selectors:
        # The runbook's rule, stated plainly: the family without its suffix is defined.
        assert promql.family_of(selector.name) in metric_names(), selector.name
        # Every selector filters on the dashboard's job variable.
        assert ("job", "=~", promql.JOB_SENTINEL) in selector.matchers, f"{where}: {selector.name}"


def test_panel_ranges_use_rate_interval() -> None:
    # $__rate_interval is never shorter than four scrape intervals, so rate()
    # always has two samples; the overflow annotation keeps a fixed 1m window on purpose.
    for panel in _panels():
        for target in panel["targets"]:
            ranges = re.findall(r"\[([^\]]+)\]", target["expr"])
            assert all(r == "$__rate_interval" for r in ranges), f"{panel['title']!r}: {ranges}"


def test_the_checks_catch_a_bad_query() -> None:
    # The helpers above must not pass everything: a typo, a counter read raw,
    # and a histogram named without its suffix are each reported ...
    assert promql.problems("storefront_jobs_queue_dept") != []
    assert promql.problems("storefront_jobs_job_completed_total") != []
    assert promql.problems("rate(storefront_jobs_job_duration_seconds[5m])") != []
    # ... as are a label the metric does not carry, matched or grouped by.
    assert promql.problems('storefront_jobs_queue_depth{queue="payments.webhooks"}') != []
    assert promql.problems("max by (queue) (storefront_jobs_queue_depth)") != []
    assert promql.problems("max by (job, priority) (storefront_jobs_queue_depth)") == []
    with pytest.raises(ValueError, match=r"bracket|unexpected"):
        promql.parse("rate(storefront_jobs_job_completed_total[$__rate_interval])")
