"""Generate the "Background Job Health" Grafana dashboard from code.

    python dashboards/generate.py            # rewrite dashboards/background-job-health.json
    python dashboards/generate.py --check    # exit 1 if the committed JSON is stale

The JSON is committed so it can be imported or provisioned without Python, but
it is never edited by hand: tests/ops/test_dashboards.py regenerates it and
fails on any difference, parses every query, and checks every metric a query
names against ``storefront_jobs.metrics.definitions``.

The builders come from grafana-foundation-sdk, pinned exactly in
pyproject.toml (``dashboards`` and ``test`` extras): an unpinned install
resolves to an old epoch-versioned build for Grafana 10.1 whose API differs.

It writes the classic (v1) dashboard JSON, which every Grafana from 10 on
imports; the SDK's deprecation warning points at the v2 schema, which Grafana
12 only serves behind a feature flag.

Layout, top to bottom: lanes (depth, oldest job, overflow, worker pools),
throughput and latency (the runbook's duration percentiles and the wait time
against each priority's target), retries and the dead-letter queue. Overflow
events are also drawn as annotations on every panel.
"""

from __future__ import annotations

import argparse
import itertools
import json
import string
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, heatmap, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from storefront_jobs.jobs.priorities import Priority

OUTPUT = Path(__file__).with_name("background-job-health.json")
UID = "background-job-health"

# Every panel, target and annotation reads the data source the viewer picks,
# never a hard-coded uid that exists only on one Grafana.
DATASOURCE = common.DataSourceRef(type_val="prometheus", uid="${datasource}")
# All storefront series come from one scrape job (docs/metrics.md, "One scrape job").
JOB = 'job=~"$job"'
RATE = "$__rate_interval"
# Aggregation: broker-side series (depth, age, workers, overflow, DLQ) are read
# from Redis by the admin service, so every admin replica reports the same
# value: take the max. Pool series (executions, durations, waits) are counted
# by each worker pool separately: sum them.

#: The priorities that promise a wait (bulk is best effort), with their target in seconds.
TARGETS_S: dict[str, float] = {
    p.label: target for p in Priority if (target := p.target_latency_s) is not None
}


def _query(expr: str, legend: str, ref_id: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend).ref_id(ref_id).range()
    )


def _timeseries(title: str, description: str, unit: str, *queries: tuple[str, str]) -> timeseries.Panel:
    """A half-width time series panel; each query is ``(expr, legend)``, named A, B, C ... in order."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .legend(
            common_builders.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .span(12)
        .height(8)
    )
    for ref_id, (expr, legend) in zip(string.ascii_uppercase, queries, strict=False):
        panel = panel.with_target(_query(expr, legend, ref_id))
    return panel


def _rate(metric: str, by: str, fn: str = "rate", agg: str = "sum") -> str:
    return f"{agg} by ({by}) ({fn}({metric}{{{JOB}}}[{RATE}]))"


def _quantile(q: float, metric: str, matchers: str = JOB) -> str:
    return f"histogram_quantile({q}, sum by (priority, le) (rate({metric}_bucket{{{matchers}}}[{RATE}])))"


# --- Lanes -------------------------------------------------------------------------------------------


def queue_depth() -> timeseries.Panel:
    return (
        _timeseries(
            "Queue depth by priority",
            "Jobs waiting in each lane, over every Redis priority sub-list, read from the broker at scrape "
            "time. Stacked: the top edge is the whole backlog. Alerts: critical > 100 for 2m (P1), "
            "default > 1000 for 5m (P2), any lane > 10000 (P1).",
            "short",
            (f"max by (priority) (storefront_jobs_queue_depth{{{JOB}}})", "{{priority}}"),
        )
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(35)
    )


def oldest_job_age() -> timeseries.Panel:
    return _timeseries(
        "Oldest waiting job age by priority",
        "How long the oldest job still waiting in each lane has waited (0 when the lane is empty). "
        "A line that only grows while depth is flat means nothing consumes the lane.",
        "s",
        (f"max by (priority) (storefront_jobs_job_age_seconds{{{JOB}}})", "{{priority}}"),
    )


def overflow() -> timeseries.Panel:
    return (
        _timeseries(
            "Queue overflow events",
            "Enqueues refused because the lane was at capacity, per interval. Any overflow pages (P1); the "
            "same events are drawn as red annotations on every panel.",
            "short",
            (_rate("storefront_jobs_queue_overflow_total", "priority", "increase", "max"), "{{priority}}"),
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
    )


def worker_pools() -> timeseries.Panel:
    return _timeseries(
        "Worker pools per lane",
        "Worker pools alive (heartbeat younger than 30 s) that consume each lane. A lane with waiting "
        "jobs and no pool for 5m pages (P1).",
        "short",
        (f"max by (priority) (storefront_jobs_workers{{{JOB}}})", "{{priority}}"),
    )


# --- Throughput and latency --------------------------------------------------------------------------


def throughput() -> timeseries.Panel:
    return _timeseries(
        "Job throughput by status",
        "Executions finished per second: success (completed) and failed (whether a retry follows or "
        "not). Retries count as executions.",
        "reqps",
        (f"sum(rate(storefront_jobs_job_completed_total{{{JOB}}}[{RATE}]))", "success"),
        (f"sum(rate(storefront_jobs_job_failed_total{{{JOB}}}[{RATE}]))", "failed"),
    )


def duration_percentiles() -> timeseries.Panel:
    return _timeseries(
        "Job duration p50/p95/p99 by priority",
        "Run time of one execution, successful or failed. Alert: default p99 > 60s for 5m (P2).",
        "s",
        *(
            (_quantile(q, "storefront_jobs_job_duration_seconds"), f"p{round(q * 100)} {{{{priority}}}}")
            for q in (0.5, 0.95, 0.99)
        ),
    )


def wait_time_against_target() -> timeseries.Panel:
    # Constant series rather than panel thresholds: one threshold set cannot
    # hold four targets that each apply to a different series.
    targets = [(f"vector({target_s:g})", f"{label} target") for label, target_s in TARGETS_S.items()]
    dashed = dashboard_models.DynamicConfigValue(
        id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
    )
    return (
        _timeseries(
            "Wait time p95 by priority vs target",
            "Time from enqueue (a retry: from its due time) to start, p95 per priority; dashed lines are "
            "each priority's target (critical 1s, high 5s, default 30s, low 2m; bulk has none). "
            "Logarithmic axis.",
            "s",
            (_quantile(0.95, "storefront_jobs_job_wait_time_seconds"), "p95 {{priority}}"),
            *targets,
        )
        .scale_distribution(
            common_builders.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)
        )
        .override_by_regexp(".* target", [dashed])
    )


def wait_time_ratio() -> timeseries.Panel:
    ratios = [
        (
            _quantile(0.95, "storefront_jobs_job_wait_time_seconds", f'{JOB}, priority="{label}"')
            + f" / {target_s:g}",
            label,
        )
        for label, target_s in TARGETS_S.items()
    ]
    steps = [
        dashboard_models.Threshold(value=None, color="green"),
        dashboard_models.Threshold(value=1, color="orange"),  # on target
        dashboard_models.Threshold(value=2, color="red"),  # the alert
    ]
    return (
        _timeseries(
            "Wait time p95 relative to target",
            "p95 wait of each priority divided by its target: 100% is on target; above 200% for 5m alerts "
            "(P2). Bulk has no target and is not shown.",
            "percentunit",
            *ratios,
        )
        .thresholds(dashboard.ThresholdsConfig().mode(dashboard_models.ThresholdsMode.ABSOLUTE).steps(steps))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    )


# --- Retries and dead letters ------------------------------------------------------------------------


def retry_heatmap() -> heatmap.Panel:
    query = _query(_rate("storefront_jobs_job_retried_total", "attempt", "increase"), "{{attempt}}", "A")
    return (
        heatmap.Panel()
        .title("Retry attempt distribution")
        .description(
            "Retries scheduled per interval, by the attempt that failed (1 = the first run). Heat moving "
            "up the rows means jobs keep failing after several retries and will reach the dead-letter queue."
        )
        .datasource(DATASOURCE)
        .span(12)
        .height(8)
        .calculate(False)
        # Each attempt is a row of its own: "unknown" lays the series out as
        # ordinal rows named by their legend instead of reading them as bucket bounds.
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.UNKNOWN).value("retries"))
        .y_axis(heatmap.YAxisConfig().unit("short"))
        .cell_values(heatmap.CellValues().unit("short"))
        .with_target(query.format(PromQueryFormat.TIME_SERIES))
    )


def exhausted() -> timeseries.Panel:
    return _timeseries(
        "Jobs failed for good by reason",
        "Jobs that will not run again (retries exhausted, non-retryable error, time limit, worker "
        "lost, ...), per second.",
        "reqps",
        (_rate("storefront_jobs_job_exhausted_total", "reason"), "{{reason}}"),
    )


def dlq_depth() -> timeseries.Panel:
    return _timeseries(
        "Dead-letter queue depth by job queue",
        "Entries waiting in the dead-letter queue for each job queue. Alert: > 10 for a job queue (P2).",
        "short",
        (f"max by (queue) (storefront_jobs_dlq_depth{{{JOB}}})", "{{queue}}"),
    )


def dlq_flow() -> timeseries.Panel:
    return _timeseries(
        "Dead-letter queue inflow and outflow",
        "Entries added per second by reason (exhausted, non_retryable, ...) and removed by action "
        "(replay, delete, trim, expire).",
        "reqps",
        (_rate("storefront_jobs_dlq_added_total", "reason", agg="max"), "added: {{reason}}"),
        (_rate("storefront_jobs_dlq_removed_total", "action", agg="max"), "removed: {{action}}"),
    )


#: Rows, top to bottom, each with its panels left to right (two per line).
LAYOUT: list[tuple[str, list[Callable[[], timeseries.Panel | heatmap.Panel]]]] = [
    ("Lanes", [queue_depth, oldest_job_age, overflow, worker_pools]),
    ("Throughput and latency", [throughput, duration_percentiles, wait_time_against_target, wait_time_ratio]),
    ("Retries and dead letters", [retry_heatmap, exhausted, dlq_depth, dlq_flow]),
]


def overflow_annotation() -> dashboard.AnnotationQuery:
    # A fixed 1m window with a 1m step: each minute with a refused enqueue
    # becomes one marker, whatever the zoom level.
    return (
        dashboard.AnnotationQuery()
        .name("Queue overflow")
        .datasource(DATASOURCE)
        .enable(True)
        .hide(False)
        .icon_color("red")
        .expr(f"max by (priority) (increase(storefront_jobs_queue_overflow_total{{{JOB}}}[1m])) > 0")
        .step("1m")
        .title_format("Queue overflow: {{priority}}")
        .text_format("The {{priority}} lane refused enqueues: it was at capacity.")
        .tag_keys("priority")
    )


def build() -> dashboard.Dashboard:
    """The whole dashboard, as a builder."""
    builtin = (
        dashboard.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(common.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .built_in(1)
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
    )
    board = (
        dashboard.Dashboard("Background Job Health")
        .uid(UID)
        .description(
            "storefront-jobs lanes, throughput, latency against targets, retries and the dead-letter "
            "queue. Generated by dashboards/generate.py: edit the code, not this dashboard."
        )
        .tags(["storefront-jobs", "celery", "generated"])
        .readonly()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("job")
            .label("Job")
            .description("The scrape job of the admin service and the worker pools (storefront-celery).")
            .datasource(DATASOURCE)
            .query("label_values(storefront_jobs_queue_depth, job)")
            .definition("label_values(storefront_jobs_queue_depth, job)")
            .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        )
        .annotation(builtin)
        .annotation(overflow_annotation())
    )
    # Ids in reading order, fixed so that links to a panel (viewPanel=N) stay valid.
    ids = itertools.count(1)
    for row_title, panels in LAYOUT:
        board = board.with_row(dashboard.Row(row_title).id(next(ids)))
        for make_panel in panels:
            board = board.with_panel(make_panel().id(next(ids)))
    return board


def render() -> str:
    """The dashboard as it is committed: sorted keys, two-space indent, final newline."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python dashboards/generate.py", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(json.loads(text)['panels'])} panels and rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
