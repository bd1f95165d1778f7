"""docs/runbook.md made true: every block it shows is run, evaluated or checked here.

The blocks are read from the Markdown itself (:func:`blocks`), in document
order, and handled by language:

- ``bash`` without ``kubectl``: run with ``bash -e -o pipefail`` against a real
  platform started by :func:`platform`: the suite's private Redis, a worker pool
  consuming every lane with the example jobs, ``storefront-jobs serve``, and
  dead letters made by real failing jobs. The environment is what the runbook
  asks the reader for (``STOREFRONT_ADMIN_URL``, ``ADMIN_TOKEN``,
  ``STOREFRONT_DEV_LOGS``, a broker for the CLI); files one block writes (the
  export, the backup) are there for the next.
- ``bash`` with ``kubectl``: needs a cluster. Each kubectl line must name
  objects and labels that exist in the rendered ``deploy/k8s`` overlays, with
  the same checks tests/ops/test_k8s_manifests.py applies to docs/deployment.md.
- ``promql``: one query per line. Each must read only series storefront-jobs
  exposes, with their labels (tests/ops/promql.py); promtool must accept it as
  a rule and evaluate it on series scraped from the running platform, where it
  must return something unless it is a comparison that filters.
- ``python``: run against the platform's broker.
- ``json``/``yaml``: must parse; a yaml block headed ``# deploy/k8s/<file>``
  must be an excerpt of that file, field for field.
- ``text``: prose in a box (the scaling formula).

Commands in inline code (`storefront-jobs ...`) must parse with the real CLI,
and every ``STOREFRONT_JOBS_*`` name must be a setting.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from storefront_jobs.broker import keys
from storefront_jobs.cli import main as cli
from storefront_jobs.deadletter import Filter, store_for
from storefront_jobs.embedded import EmbeddedRedis, free_port
from tests.ops import k8s, promql
from tests.ops.test_k8s_manifests import (
    NAMESPACE,
    RENDERS,
    pod_labels,
    referenced_objects,
    selector_matches,
    selectors_of,
    workloads,
)
from tests.support.settings_doc import is_setting_variable
from tests.support.workers import REPO_ROOT, WorkerFactory, WorkerProcess, wait_until, worker_env

pytestmark = pytest.mark.e2e

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
ALERT_RULES = REPO_ROOT / "deploy" / "prometheus" / "storefront-jobs-alerts.yaml"
LANGUAGES = {"bash", "promql", "python", "json", "yaml", "text"}
ADMIN_TOKEN = "runbook-admin-token-0123"
#: Headings that alert rules link to by anchor; renaming one breaks every such link.
SCENARIOS = (
    "Scenario 1: CRITICAL Queue Backing Up",
    "Scenario 2: Dead-Letter Queue Accumulating",
    "Scenario 3: Queue Overflow Events",
    "Scenario 4: Jobs Stuck in Queue (Not Processing)",
)
#: The old runbook's outline, kept so that a reader of either finds the same place.
OUTLINE = (
    "Overview",
    "Architecture Summary",
    "Job Priorities",
    "Retry Policies",
    "Monitoring & Alerting",
    "Key Prometheus Metrics",
    "Example Queries",
    "Grafana Dashboards",
    "Common Operations",
    "1. Investigating Job Failures",
    "2. Manual Job Reprocessing",
    "3. Pausing/Resuming Queue Processing",
    "4. Clearing Dead-Letter Queue",
    "Scaling Guidance",
    "Horizontal Pod Autoscaling (HPA)",
    "Dedicated Worker Pools",
    "Capacity Planning",
    "Troubleshooting Scenarios",
    *SCENARIOS,
    "Runbook Maintenance",
    "Emergency Contacts",
)
#: The job queue the runbook's DLQ procedures work on, and what the seeded failures put there.
EXPORT_QUEUE = "reporting.export"
_COMPARISON = re.compile(r"==|!=|>=|<=|(?<![=!<>])[<>](?!=)")


# --- reading the runbook -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int

    @property
    def needs_cluster(self) -> bool:
        return "kubectl" in self.text

    def __str__(self) -> str:
        return f"docs/runbook.md:{self.line} ({self.language})"


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block, in order; an indented fence (inside a list) has its indentation removed."""
    found: list[Block] = []
    opened: tuple[str, str, int, list[str]] | None = None
    for number, line in enumerate((text or RUNBOOK.read_text()).splitlines(), start=1):
        stripped = line.lstrip()
        if opened is None:
            if stripped.startswith("```"):
                opened = (line[: len(line) - len(stripped)], stripped[3:].strip(), number, [])
            continue
        indent, language, start, body = opened
        if stripped.startswith("```"):
            found.append(Block(language, "\n".join(body) + "\n", start))
            opened = None
        else:
            body.append(line.removeprefix(indent))
    assert opened is None, f"unclosed block at line {opened[2]}"
    return found


def of_language(language: str) -> list[Block]:
    return [block for block in blocks() if block.language == language]


def queries() -> list[tuple[Block, str]]:
    return [(b, line.strip()) for b in of_language("promql") for line in b.text.splitlines() if line.strip()]


def headings() -> list[str]:
    return [line.lstrip("#").strip() for line in prose().splitlines() if line.startswith("#")]


def prose() -> str:
    """The runbook without its fenced blocks."""
    return re.sub(r"^\s*```.*?^\s*```", "", RUNBOOK.read_text(), flags=re.MULTILINE | re.DOTALL)


def inline_code() -> list[str]:
    """Every inline code span of the prose, paired left to right on each line, as Markdown does."""
    return [span for line in prose().splitlines() for span in re.findall(r"`([^`]+)`", line)]


def github_anchor(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


# --- the document --------------------------------------------------------------------------------------


def test_every_block_names_its_language() -> None:
    found = blocks()
    assert len(found) > 60
    assert [str(b) for b in found if b.language not in LANGUAGES] == []


def test_the_old_runbooks_outline_and_the_alert_anchors_are_there() -> None:
    present = headings()
    assert [h for h in OUTLINE if h not in present] == []
    anchors = {github_anchor(h) for h in present}
    urls = re.findall(r'runbook_url: "[^"]*docs/runbook\.md#([^"]+)"', ALERT_RULES.read_text())
    assert urls
    assert sorted(set(urls) - anchors) == []


def test_links_lead_to_documents_and_headings_that_exist() -> None:
    links = re.findall(r"\]\(([^)#]*)(?:#([^)]+))?\)", RUNBOOK.read_text())
    assert len(links) > 10
    broken = []
    for target, anchor in links:
        document = RUNBOOK.parent / target if target else RUNBOOK
        if not document.is_file():
            broken.append(target)
            continue
        titles = [
            line.lstrip("#").strip() for line in document.read_text().splitlines() if line.startswith("#")
        ]
        if anchor and anchor not in {github_anchor(title) for title in titles}:
            broken.append(f"{target}#{anchor}")
    assert broken == []


def test_json_and_yaml_blocks_parse_and_excerpts_match_the_manifests() -> None:
    for block in of_language("json"):
        json.loads(block.text)
    excerpts = 0
    for block in of_language("yaml"):
        excerpt = yaml.safe_load(block.text)
        source = block.text.splitlines()[0].removeprefix("# ").strip()
        if not source.startswith("deploy/"):
            continue
        excerpts += 1
        documents = [d for d in yaml.safe_load_all((REPO_ROOT / source).read_text()) if d]
        same = [
            d
            for d in documents
            if (d["kind"], d["metadata"]["name"]) == (excerpt["kind"], excerpt["metadata"]["name"])
        ]
        assert len(same) == 1, f"{block}: no {excerpt['kind']} {excerpt['metadata']['name']} in {source}"
        assert _differences(excerpt, same[0]) == [], f"{block} differs from {source}"
    assert excerpts >= 3


def _differences(part: Any, whole: Any, path: str = "") -> list[str]:
    """Where ``part`` is not an excerpt of ``whole`` (mappings: keys kept; lists: items by position)."""
    if isinstance(part, dict):
        if not isinstance(whole, dict):
            return [f"{path}: not a mapping"]
        return [
            problem
            for key, value in part.items()
            for problem in (
                _differences(value, whole[key], f"{path}.{key}")
                if key in whole
                else [f"{path}.{key}: missing"]
            )
        ]
    if isinstance(part, list):
        if not isinstance(whole, list) or len(part) > len(whole):
            return [f"{path}: not a list this long"]
        return [
            p
            for i, (a, b) in enumerate(zip(part, whole, strict=False))
            for p in _differences(a, b, f"{path}[{i}]")
        ]
    return [] if part == whole else [f"{path}: {part!r} != {whole!r}"]


def test_every_setting_named_exists() -> None:
    named = set(re.findall(r"\bSTOREFRONT_JOBS_[A-Z0-9_]+", RUNBOOK.read_text()))
    assert named
    assert sorted(name for name in named if not is_setting_variable(name)) == []


def test_queries_read_only_series_we_expose() -> None:
    found = queries()
    assert len(found) > 30
    assert [f"{block}: {q}: {promql.problems(q)}" for block, q in found if promql.problems(q)] == []


def _cli_args(command: str) -> list[str] | None:
    """The arguments of a `storefront-jobs ...` command line; None when it holds a placeholder."""
    if "<" in command:
        return None
    return shlex.split(command)[1:]


def parse_cli(args: list[str]) -> None:
    """Parse a storefront-jobs command line with the real CLI, down to its last subcommand; run nothing."""
    command: click.Command = cli
    name = "storefront-jobs"
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name, *args = args
        sub = command.commands.get(name)
        assert sub is not None, f"no command {name!r}"
        command = sub
    if isinstance(command, click.Group) and not args:
        return  # a group named on its own, e.g. "storefront-jobs dlq"
    command.make_context(name, list(args))


def test_inline_commands_parse_with_the_cli() -> None:
    spans = [span for span in inline_code() if span.startswith("storefront-jobs ")]
    spans += [
        line.split(" -- ", 1)[1]
        for b in of_language("bash")
        for line in b.text.splitlines()
        if " -- storefront-jobs " in line
    ]
    assert len(spans) > 10
    for span in spans:
        args = _cli_args(span)
        if args is not None:
            try:
                parse_cli(args)
            except click.ClickException as exc:
                pytest.fail(f"`{span}`: {exc.format_message()}")


# --- kubectl lines against the rendered manifests ------------------------------------------------------


def kubectl_commands() -> list[str]:
    """Every kubectl command of the runbook (bash blocks and inline code), up to a pipe."""
    fragments = [
        line
        for block in of_language("bash")
        for line in block.text.replace("\\\n", " ").splitlines()
        if "kubectl " in line
    ]
    fragments += [span for span in inline_code() if "kubectl " in span]
    return [f[f.index("kubectl ") :].split(" | ")[0].strip() for f in fragments]


def test_kubectl_lines_name_objects_that_exist() -> None:
    if k8s.kustomize_command() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no kustomize >= 4 in CI")
        pytest.skip("no kustomize >= 4: install kubectl or kustomize")
    everything = [obj for path in RENDERS.values() for obj in k8s.render(path)]
    existing = {(obj["kind"], obj["metadata"]["name"]) for obj in everything}
    label_sets = [obj["metadata"].get("labels", {}) for obj in everything]
    label_sets += [pod_labels(w) for w in workloads(everything)]
    commands = kubectl_commands()
    assert len(commands) >= 25
    problems = []
    for command in commands:
        tokens = shlex.split(command)
        if "--" in tokens:  # what follows runs inside the container
            tokens = tokens[: tokens.index("--")]
        refs, selectors = list(referenced_objects(tokens)), list(selectors_of(tokens))
        namespace = tokens[tokens.index("-n") + 1] if "-n" in tokens else None
        if len(tokens) > 2 and namespace != NAMESPACE:
            problems.append(f"{command}: give the namespace, -n {NAMESPACE}")
        problems += [f"{command}: no {kind} {name}" for kind, name in refs if (kind, name) not in existing]
        for selector in selectors:
            if not any(selector_matches({"matchLabels": selector}, labels) for labels in label_sets):
                problems.append(f"{command}: selector {selector} matches nothing")
    assert problems == []


# --- the platform --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Platform:
    admin_url: str
    metrics_urls: list[str]
    env: dict[str, str]
    work_dir: Path


def _seed(app: Any, worker: WorkerProcess) -> None:
    """Real failures, so that the DLQ, its metrics and the "Job moved to DLQ" log lines are all real."""
    from storefront_jobs.examples import analytics, archive, notifications, payments, reporting
    from storefront_jobs.examples.support import FLAKY_HEADER
    from storefront_jobs.jobs.tenancy import tenant

    period = {"start": "2025-01-01", "end": "2025-01-31"}
    with tenant("t-42"):  # data errors: PermanentFailure, straight to the DLQ
        reporting.generate_report.delay(
            "sales_by_period", "csv", {"start": "2025-02-01", "end": "2025-01-01"}, "a@b.co"
        )
    reporting.generate_report.delay("sales_by_quarter", "csv", period, "admin@villagecompute.com")
    reporting.generate_report.delay("sales_by_period", "xlsx", period, "admin@villagecompute.com")
    payments.process_payment_webhook.delay("evt-1", "bitcoin", "o-1", 1999)
    # An outage: a BULK job never retries, so its TransientError is final (replayed, it succeeds)
    archive.archive_orders.apply_async(("2024-01-01", 100), headers={FLAKY_HEADER: 1})
    # A transient error that a retry fixes (HIGH waits 1 s), and jobs that just succeed
    notifications.send_notification.apply_async(("u-1", "email", "order_shipped"), headers={FLAKY_HEADER: 1})
    reporting.generate_report.delay("sales_by_period", "csv", period, "admin@villagecompute.com")
    payments.confirm_order.delay("o-2", "c@shop.example", 4200)
    analytics.warm_cache.delay("home", 10)

    def settled() -> bool:
        done = app.redis.hget(keys.DEMO_PROGRESS, "send_notification:done")
        # The log line follows the record: the runbook greps it next
        logged = sum(1 for r in worker.log_records() if r.get("message") == "Job moved to DLQ")
        return store_for(app).count(Filter()) == 5 and logged == 5 and done is not None

    wait_until(settled, timeout_s=90)


def _wait_http(url: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
    def answers() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, interval_s=0.1)


@pytest.fixture
def platform(
    app: Any, redis_server: EmbeddedRedis, workers: WorkerFactory, tmp_path: Path
) -> Iterator[Platform]:
    # Worker logs land in tmp_path (the factory's), which plays storefront-jobs dev's log directory.
    imports = "tests.integration.jobs,storefront_jobs.examples"
    worker = workers.start("all", concurrency=2, settings={"imports": imports})
    tokens = json.dumps({ADMIN_TOKEN: ["dlq:read", "dlq:replay", "dlq:delete"]})
    port = free_port()
    serve_dir = tmp_path / "serve"
    serve_dir.mkdir()
    log = serve_dir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "storefront_jobs", "serve", "--port", str(port)],
            env=worker_env(redis_server.url, admin_tokens=tokens, imports=imports),
            cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        admin_url = f"http://127.0.0.1:{port}"
        _wait_http(f"{admin_url}/q/health", log, proc)
        _seed(app, worker)
        work_dir = tmp_path / "work"
        work_dir.mkdir()
        env = worker_env(redis_server.url, imports=imports)
        env.update(
            PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            STOREFRONT_ADMIN_URL=admin_url,
            ADMIN_TOKEN=ADMIN_TOKEN,
            STOREFRONT_DEV_LOGS=str(tmp_path),
            # rich tables as wide as a terminal, so that a failure's output is readable
            COLUMNS="160",
        )
        yield Platform(admin_url, [f"{admin_url}/q/metrics", worker.metrics_url], env, work_dir)
    finally:
        proc.terminate()
        proc.wait(30)


def scrape(urls: list[str]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every storefront_jobs_* sample the endpoints serve now, by (name, labels)."""
    samples = {}
    for url in urls:
        text = httpx.get(url, timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith("storefront_jobs_") and math.isfinite(sample.value):
                    samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def run_bash(block: Block, platform: Platform) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        env=platform.env, cwd=platform.work_dir, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"{block} exited {result.returncode}:\n{block.text}\n{result.stdout}\n{result.stderr}"
    )
    return result


def run_python(block: Block, platform: Platform) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", block.text],
        env=platform.env, cwd=platform.work_dir, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{block}:\n{result.stderr}"
    return result


def test_every_command_block_runs_against_a_real_platform(app: Any, platform: Platform) -> None:
    before = scrape(platform.metrics_urls)
    outputs: dict[int, str] = {}
    ran = 0
    for block in blocks():
        if block.language == "bash" and not block.needs_cluster:
            outputs[block.line] = run_bash(block, platform).stdout
            ran += 1
        elif block.language == "python":
            outputs[block.line] = run_python(block, platform).stdout
    after = scrape(platform.metrics_urls)
    assert ran >= 25

    _check_outcomes(app, platform, outputs)
    _evaluate_queries(before, after, platform.work_dir)


def _output_of(outputs: dict[int, str], fragment: str) -> str:
    lines = [b.line for b in blocks() if fragment in b.text and b.line in outputs]
    assert lines, fragment
    return outputs[lines[0]]


def _check_outcomes(app: Any, platform: Platform, outputs: dict[int, str]) -> None:
    """What the procedures must have done, beyond exiting 0."""
    # The runbook's capacity example: ceil(3000 / 10 / 0.5) = 600
    assert re.search(r"\b600\b", _output_of(outputs, "--depth 3000"))
    # Step 3's replay of one exported entry
    replay = json.loads(_output_of(outputs, "-d @job_payload.json"))
    assert replay["replayedCount"] == 1
    # The interim code path enqueued an export, which a worker ran
    job_id = _output_of(outputs, "enqueue_export(").strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", job_id)
    # The log greps found the real log lines
    assert "PermanentFailure" in _output_of(outputs, "jq -r '.lastError' | sort")
    # A lane paused and resumed, a DLQ cleared and restored from its backup, all of it audited
    assert "p1.high paused" in _output_of(outputs, "queues pause HIGH")
    assert not app.redis.smembers(keys.PAUSED_LANES)
    assert store_for(app).count(Filter(queue=EXPORT_QUEUE)) > 0
    assert list(platform.work_dir.glob("dlq_backup_*.json"))
    actions = {entry.to_dict()["action"] for entry in store_for(app).audit.entries(50)}
    assert {"replay", "purge", "import"} <= actions


# --- the queries, evaluated by promtool ----------------------------------------------------------------


def _series(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    pairs = [("job", "storefront-celery"), *labels]
    body = ", ".join(f'{key}="{json.dumps(value)[1:-1]}"' for key, value in pairs)
    return f"{name}{{{body}}}"


def _values(name: str, first: float | None, second: float | None) -> str:
    """Three samples 30 s apart at the first scrape's values, then two at the second's.

    A counter not there at the first scrape was 0 (it appears on its first
    increment); a gauge missing from a scrape is left out there (``_``).
    """
    counter = name.endswith(("_total", "_bucket", "_sum", "_count"))
    if first is None and counter:
        first = 0.0
    a = "_" if first is None else repr(first)
    b = "_" if second is None else repr(second)
    return f"{a} {a} {a} {b} {b}"


def _evaluate_queries(before: dict[Any, float], after: dict[Any, float], work_dir: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        return  # the parse and series checks above still ran; promtool's evaluation needs the tool
    found = queries()
    rules = {
        "groups": [
            {
                "name": "runbook",
                "rules": [{"record": f"runbook:q{i}", "expr": q} for i, (_, q) in enumerate(found)],
            }
        ]
    }
    (work_dir / "runbook-rules.yaml").write_text(yaml.safe_dump(rules))
    checks = []
    for _block, query in found:
        filters = bool(_COMPARISON.search(re.sub(r"\{[^}]*\}", "", query)))
        # A comparison may rightly return nothing; every other query must find series.
        expr = (
            f"(count({query}) >= bool 0) * 0 or vector(0)"
            if filters
            else f"(count({query}) >= bool 0) or vector(0)"
        )
        checks.append(
            {"expr": expr, "eval_time": "2m", "exp_samples": [{"labels": "{}", "value": 0 if filters else 1}]}
        )
    series = [
        {
            "series": _series(name, labels),
            "values": _values(name, before.get((name, labels)), after.get((name, labels))),
        }
        for name, labels in sorted(set(before) | set(after))
    ]
    tests = {
        "rule_files": ["runbook-rules.yaml"],
        "evaluation_interval": "30s",
        "tests": [{"interval": "30s", "input_series": series, "promql_expr_test": checks}],
    }
    (work_dir / "runbook-queries.test.yaml").write_text(yaml.safe_dump(tests, width=1000))
    result = subprocess.run(
        [promtool, "test", "rules", "runbook-queries.test.yaml"],
        cwd=work_dir, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_block_reader() -> None:
    text = "a\n```bash\necho 1\n```\n1. x\n   ```promql\n   up\n   ```\n"
    assert blocks(text) == [Block("bash", "echo 1\n", 2), Block("promql", "up\n", 6)]
    assert Block("bash", "kubectl get pods\n", 1).needs_cluster
    assert _differences({"a": [{"b": 1}]}, {"a": [{"b": 1, "c": 2}, {}], "d": 3}) == []
    assert _differences({"a": 1}, {"a": 2}) == [".a: 1 != 2"]
    assert _values("x_total", None, 3.0) == "0.0 0.0 0.0 3.0 3.0"
    assert _values("x", None, 3.0) == "_ _ _ 3.0 3.0"
