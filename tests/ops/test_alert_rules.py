"""The Prometheus alert rules in deploy/prometheus: valid, tested, and reading only real series.

``promtool check rules`` and ``promtool test rules`` come from Debian's
``prometheus`` package (.ci/run installs it). Without promtool these two tests
skip on a developer's machine but fail in CI, so a missing tool can never turn
the check green.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.metrics.definitions import metric_names
from tests.ops import promql

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "storefront-jobs-alerts.yaml"
UNIT_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yaml"))
RUNBOOK = "https://github.com/storefront-jobs/storefront-jobs/blob/main/docs/runbook.md"
#: The runbook's troubleshooting headings each alert links to.
RUNBOOK_HEADINGS = (
    "Scenario 1: CRITICAL Queue Backing Up",
    "Scenario 2: Dead-Letter Queue Accumulating",
    "Scenario 3: Queue Overflow Events",
    "Scenario 4: Jobs Stuck in Queue (Not Processing)",
)
#: The runbook's seven alerts, plus worker-pool-down; severity follows the incident priority.
EXPECTED = {
    "StorefrontJobsCriticalQueueBacklog": "P1",
    "StorefrontJobsDefaultQueueBacklog": "P2",
    "StorefrontJobsQueueBackpressure": "P1",
    "StorefrontJobsDeadLetterQueueHigh": "P2",
    "StorefrontJobsWaitTimeAboveTarget": "P2",
    "StorefrontJobsDefaultDurationHigh": "P2",
    "StorefrontJobsQueueOverflow": "P1",
    "StorefrontJobsLaneWorkersDown": "P1",
}
SEVERITY = {"P1": "critical", "P2": "warning"}


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


ALERTS = _alerts()


def _alert_id(rule: dict[str, Any]) -> str:
    return f"{rule['alert']}-{rule['labels'].get('priority', 'any')}"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def test_promtool_check_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert UNIT_TESTS, "no promtool unit tests found"
    result = _run(promtool, "test", "rules", *map(str, UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runbook_alerts_are_all_there() -> None:
    assert {rule["alert"] for rule in ALERTS} == set(EXPECTED)
    by_name = {rule["alert"]: rule for rule in ALERTS}
    # The runbook's durations: CRITICAL depth for 2 minutes, DEFAULT depth for 5.
    assert by_name["StorefrontJobsCriticalQueueBacklog"]["for"] == "2m"
    assert by_name["StorefrontJobsDefaultQueueBacklog"]["for"] == "5m"
    assert by_name["StorefrontJobsCriticalQueueBacklog"]["expr"].endswith("> 100")
    assert by_name["StorefrontJobsDefaultQueueBacklog"]["expr"].endswith("> 1000")
    assert by_name["StorefrontJobsQueueBackpressure"]["expr"].endswith("> 10000")
    assert by_name["StorefrontJobsDeadLetterQueueHigh"]["expr"].endswith("> 10")
    assert by_name["StorefrontJobsDefaultDurationHigh"]["expr"].strip().endswith("> 60")
    assert "[5m])) > 0" in by_name["StorefrontJobsQueueOverflow"]["expr"]


def test_one_wait_rule_per_priority_at_twice_its_target() -> None:
    rules = {r["labels"]["priority"]: r for r in ALERTS if r["alert"] == "StorefrontJobsWaitTimeAboveTarget"}
    targets = {p.label: p.target_latency_s for p in Priority if p.target_latency_s is not None}
    # Bulk is best effort: no target, no rule.
    assert set(rules) == set(targets)
    for label, target_s in targets.items():
        expr = rules[label]["expr"]
        assert f'priority="{label}"' in expr
        assert expr.strip().endswith(f"> 2 * {target_s:g}"), expr


@pytest.mark.parametrize("rule", ALERTS, ids=[_alert_id(r) for r in ALERTS])
def test_labels_and_annotations(rule: dict[str, Any]) -> None:
    labels, annotations = rule["labels"], rule["annotations"]
    incident = EXPECTED[rule["alert"]]
    assert labels["incident_priority"] == incident
    assert labels["severity"] == SEVERITY[incident]
    assert labels["service"] == "storefront-jobs"
    assert annotations["summary"]
    assert annotations["description"]
    anchors = {f"{RUNBOOK}#{github_anchor(h)}" for h in RUNBOOK_HEADINGS}
    assert annotations["runbook_url"] in anchors


@pytest.mark.parametrize("rule", ALERTS, ids=[_alert_id(r) for r in ALERTS])
def test_expression_parses_and_reads_only_defined_series(rule: dict[str, Any]) -> None:
    expr = rule["expr"]
    assert promql.problems(expr) == []
    for selector in promql.selectors(expr):
        assert promql.family_of(selector.name) in metric_names(), selector.name


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else silent).add(check["alertname"])
    assert set(EXPECTED) - fired == set(), "alerts never tested firing"
    assert set(EXPECTED) - silent == set(), "alerts never tested staying silent"


def test_github_anchor() -> None:
    assert github_anchor("Scenario 4: Jobs Stuck in Queue (Not Processing)") == (
        "scenario-4-jobs-stuck-in-queue-not-processing"
    )
    assert github_anchor("Scenario 2: Dead-Letter Queue Accumulating") == (
        "scenario-2-dead-letter-queue-accumulating"
    )
