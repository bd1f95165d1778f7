"""The Kubernetes manifests in deploy/k8s: they render, validate, and say what the platform needs.

Rendering uses the real kustomize (standalone, or embedded in kubectl:
tests/ops/k8s.py); without one these tests skip on a developer's machine and
fail in CI. Built-in kinds validate offline against the schemas that
kubernetes-validate ships, strictly (an unknown field is an error); the custom
resources against the CRD subsets in tests/ops/crd_schemas.yaml. Then each
promise the manifests make is checked against the code that has to keep it:
settings names against storefront_jobs.settings, container arguments against
the CLI, queries against the metric definitions (and, through promtool, against
sample series), the PrometheusRule against the alert rules file, and the
runbook's kubectl lines in docs/deployment.md against the objects they name.
"""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml
from pydantic import BaseModel

from storefront_jobs.broker.clients import SENTINEL_PORT, SentinelTarget
from storefront_jobs.cli import main as cli
from storefront_jobs.cli.flower import check_passthrough
from storefront_jobs.embedded import EmbeddedRedis
from storefront_jobs.errors import ConfigurationError
from storefront_jobs.jobs.priorities import Priority, parse_priorities
from storefront_jobs.metrics.definitions import metric_names
from storefront_jobs.settings import ENV_PREFIX, Settings, basic_auth_pairs, load_settings
from tests.ops import k8s, promql

Obj = dict[str, Any]

RENDERS = {
    "base": k8s.K8S / "base",
    "production": k8s.K8S / "overlays" / "production",
    "production-hpa": k8s.K8S / "overlays" / "production-hpa",
    "production-sentinel": k8s.K8S / "overlays" / "production-sentinel",
}
#: The overlays meant to be applied: each sets the namespace and drops the placeholder Secret.
PRODUCTION_OVERLAYS = ("production", "production-hpa", "production-sentinel")
NAMESPACE = "storefront-jobs"
SCRAPE_JOB = "storefront-celery"
CONFIGMAP, SECRET = "storefront-jobs-config", "storefront-jobs-secrets"
IMAGE = "storefront-jobs"
DOCS = k8s.ROOT / "docs" / "deployment.md"
#: Oldest Kubernetes the manifests support (policy/v1, autoscaling/v2, PDB unhealthyPodEvictionPolicy).
K8S_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())

#: The runbook's dedicated pools: pool label -> lanes it consumes.
POOLS = {
    "critical": [Priority.CRITICAL, Priority.HIGH],
    "default": [Priority.DEFAULT],
    "low": [Priority.LOW],
    "bulk": [Priority.BULK],
}
#: The runbook's worker sizing: (cpu request, cpu limit, memory request, memory limit).
RUNBOOK_SIZING = {
    "critical": ("500m", "2000m", "1Gi", "4Gi"),  # CRITICAL/HIGH workers
    "default": ("250m", "1000m", "512Mi", "2Gi"),  # DEFAULT workers
    "low": ("100m", "500m", "256Mi", "1Gi"),  # BULK (and LOW) workers
    "bulk": ("100m", "500m", "256Mi", "1Gi"),
}
#: The runbook's capacity thresholds: queue depth at which to scale up.
RUNBOOK_THRESHOLDS = {
    Priority.CRITICAL: 100,
    Priority.HIGH: 500,
    Priority.DEFAULT: 1000,
    Priority.LOW: 5000,
    Priority.BULK: 5000,
}
#: The runbook's HPA behaviour.
RUNBOOK_BEHAVIOR = {
    "scaleUp": {
        "stabilizationWindowSeconds": 60,
        "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
    },
    "scaleDown": {
        "stabilizationWindowSeconds": 300,
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
    },
}
#: Warm shutdown: the grace period is the pool's longest job plus this margin.
SHUTDOWN_MARGIN_S = 30
#: The longest retry delay of any priority (runbook: max delay 5 m).
LONGEST_RETRY_DELAY_S = 300
#: Volume types the "restricted" Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim"}
RESTRICTED_VOLUMES |= {"projected", "secret"}


# --- rendering -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renders() -> dict[str, list[Obj]]:
    if k8s.kustomize_command() is None:
        message = "no kustomize >= 4: install kubectl (its `kubectl kustomize`) or kustomize"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must render the overlays")
        pytest.skip(message)
    return {name: k8s.render(path) for name, path in RENDERS.items()}


@pytest.fixture(scope="module")
def production(renders: dict[str, list[Obj]]) -> list[Obj]:
    return renders["production"]


@pytest.fixture(scope="module")
def base(renders: dict[str, list[Obj]]) -> list[Obj]:
    return renders["base"]


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [obj for obj in objs if obj["kind"] == kind]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    found = [obj for obj in of_kind(objs, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def workloads(objs: list[Obj]) -> list[Obj]:
    return [obj for obj in objs if obj["kind"] in ("Deployment", "StatefulSet")]


def pool_of(obj: Obj) -> str:
    return str(obj["metadata"]["labels"]["storefront-jobs/pool"])


def pools(objs: list[Obj]) -> dict[str, Obj]:
    workers = [d for d in of_kind(objs, "Deployment") if d["metadata"]["labels"].get("storefront-jobs/pool")]
    return {pool_of(d): d for d in workers}


def our_containers(objs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, container) for every container running the storefront-jobs image."""
    for workload in workloads(objs):
        for container in workload["spec"]["template"]["spec"]["containers"]:
            if container["image"].split(":")[0].rsplit("/", 1)[-1] == IMAGE:
                yield workload, container


def config_data(objs: list[Obj]) -> dict[str, str]:
    return dict(named(objs, "ConfigMap", CONFIGMAP)["data"])


def secret_data(objs: list[Obj]) -> dict[str, str]:
    return dict(named(objs, "Secret", SECRET)["stringData"])


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against a label set."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if (op == "In" and value not in expr["values"]) or (op == "NotIn" and value in expr["values"]):
            return False
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def pod_labels(workload: Obj) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def test_every_kustomization_renders(renders: dict[str, list[Obj]]) -> None:
    for name, objs in renders.items():
        kinds = {obj["kind"] for obj in objs}
        assert {
            "Deployment",
            "StatefulSet",
            "ConfigMap",
            "Service",
            "PodMonitor",
            "PrometheusRule",
        } <= kinds, name


def test_the_base_is_namespace_agnostic_and_the_overlays_set_one(renders: dict[str, list[Obj]]) -> None:
    assert not [obj["metadata"]["name"] for obj in renders["base"] if "namespace" in obj["metadata"]]
    for overlay in PRODUCTION_OVERLAYS:
        objs = renders[overlay]
        assert named(objs, "Namespace", NAMESPACE)
        assert {obj["metadata"].get("namespace") for obj in objs if obj["kind"] != "Namespace"} == {NAMESPACE}


# --- schemas -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_against_its_schema(renders: dict[str, list[Obj]], version: str) -> None:
    problems = [
        f"{render}: {obj['kind']}/{obj['metadata']['name']}: {problem}"
        for render, objs in renders.items()
        for obj in objs
        for problem in k8s.schema_problems(obj, version)
    ]
    assert not problems, "\n".join(problems)


def test_the_custom_resources_are_validated_too(renders: dict[str, list[Obj]]) -> None:
    objs = renders["production"] + renders["production-hpa"]
    assert {obj["kind"] for obj in objs if k8s.is_custom_resource(obj)} == {
        "ScaledObject",
        "PodMonitor",
        "PrometheusRule",
    }


def test_validation_is_strict_enough_to_catch_a_typo(production: list[Obj]) -> None:
    """A misspelt field passes `kubectl apply` (pruned, or ignored by the controller); here it fails."""
    deployment = copy.deepcopy(of_kind(production, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    assert k8s.schema_problems(deployment, K8S_VERSIONS[0])
    scaled = copy.deepcopy(of_kind(production, "ScaledObject")[0])
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 100  # a number, where KEDA wants a string
    assert k8s.schema_problems(scaled, K8S_VERSIONS[0])
    monitor = copy.deepcopy(of_kind(production, "PodMonitor")[0])
    monitor["spec"]["podMetricsEndpoints"][0]["relabelling"] = []
    assert k8s.schema_problems(monitor, K8S_VERSIONS[0])


def test_every_manifest_file_is_part_of_a_kustomization() -> None:
    listed: set[Path] = set()
    for kustomization in k8s.K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        patch_files = [patch["path"] for patch in spec.get("patches", []) if "path" in patch]
        for entry in [*spec.get("resources", []), *patch_files]:
            listed.add((kustomization.parent / entry).resolve())
    files = {p.resolve() for p in k8s.K8S.rglob("*.yaml") if p.name != "kustomization.yaml"}
    assert not sorted(str(p) for p in files - listed), "manifests no kustomization uses"


# --- settings ------------------------------------------------------------------------------------------


def known_variables() -> set[str]:
    """Every environment variable storefront-jobs reads, nested settings spelt out with ``__``."""
    names = {"WORKER_PRIORITY_FILTER", "PROMETHEUS_MULTIPROC_DIR"}

    def walk(prefix: str, model: type[BaseModel]) -> None:
        for field, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(f"{prefix}{field.upper()}__", annotation)
            else:
                names.add(prefix + field.upper())

    walk(ENV_PREFIX, Settings)
    return names


def test_configmap_and_secret_hold_only_known_settings(base: list[Obj]) -> None:
    known = known_variables()
    assert set(config_data(base)) - known == set()
    assert set(secret_data(base)) - known == set()
    assert "STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT" in known  # nested names are spelt out


def container_environment(
    objs: list[Obj], container: Obj, secrets: dict[str, str] | None = None
) -> dict[str, str]:
    """What the container's process sees from envFrom and env (Secret keys: ``secrets``, else ``objs``')."""
    secrets = secret_data(objs) if secrets is None else secrets
    sources = {("configMapRef", CONFIGMAP): config_data(objs), ("secretRef", SECRET): secrets}
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ((kind, ref),) = source.items()
        environment.update(sources[(kind, ref["name"])])
    for var in container.get("env", []):
        if "value" in var:
            environment[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET, var
            environment[var["name"]] = secrets[ref["key"]]
    return environment


def load_with(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> Settings:
    for var in list(os.environ):
        if var.upper().startswith(ENV_PREFIX) or var == "WORKER_PRIORITY_FILTER":
            monkeypatch.delenv(var)
    for var, value in environment.items():
        monkeypatch.setenv(var, value)
    return load_settings()


def test_every_container_starts_with_valid_settings(base: list[Obj], monkeypatch: pytest.MonkeyPatch) -> None:
    """Each container's whole environment (ConfigMap, Secret, its own env) loads, as at start-up."""
    known = known_variables()
    for workload, container in our_containers(base):
        environment = container_environment(base, container)
        ours = {v for v in environment if v.startswith(ENV_PREFIX) or v == "WORKER_PRIORITY_FILTER"}
        assert ours <= known, (workload["metadata"]["name"], ours - known)
        settings = load_with(monkeypatch, environment)
        if "storefront-jobs/pool" in workload["metadata"]["labels"]:
            assert settings.worker_priority_filter == POOLS[pool_of(workload)]


def test_service_links_are_off_because_they_would_break_the_settings(
    base: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes injects <SERVICE>_PORT=tcp://... for each Service; ours start with STOREFRONT_JOBS_."""
    for workload in workloads(base):
        assert workload["spec"]["template"]["spec"].get("enableServiceLinks") is False, workload["metadata"]
    links: dict[str, str] = {}
    for service in of_kind(base, "Service"):
        var = service["metadata"]["name"].upper().replace("-", "_")
        port = service["spec"]["ports"][0]["port"]
        links[f"{var}_SERVICE_HOST"] = "10.0.0.7"
        links[f"{var}_PORT"] = f"tcp://10.0.0.7:{port}"
    assert "STOREFRONT_JOBS_ADMIN_PORT" in links  # the admin port setting's own name
    _, container = next(our_containers(base))
    with pytest.raises(ConfigurationError):
        load_with(monkeypatch, {**container_environment(base, container), **links})


def test_container_arguments_parse_with_the_cli(base: list[Obj]) -> None:
    for workload, container in our_containers(base):
        assert container["command"] == ["storefront-jobs"], workload["metadata"]["name"]
        name, *args = container["args"]
        ctx = cli.commands[name].make_context(name, list(args))
        if name == "flower":
            check_passthrough(ctx.args)
        if name == "worker":
            assert ctx.params["concurrency"] >= 1
            assert not ctx.params["priorities"], "lanes come from WORKER_PRIORITY_FILTER, as in the runbook"


def test_beat_keeps_its_schedule_on_a_writable_volume(base: list[Obj]) -> None:
    beat = named(base, "Deployment", "storefront-jobs-beat")
    (container,) = beat["spec"]["template"]["spec"]["containers"]
    ctx = cli.commands["beat"].make_context("beat", container["args"][1:])
    directory = str(ctx.params["schedule_file"].parent)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in beat["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[directory]]  # the root filesystem is read-only


# --- worker pools --------------------------------------------------------------------------------------


def test_one_pool_per_runbook_class_covering_every_lane_once(base: list[Obj]) -> None:
    found = pools(base)
    assert set(found) == set(POOLS)
    consumed: list[Priority] = []
    for pool, deployment in found.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {var["name"]: var.get("value") for var in container["env"]}
        lanes = parse_priorities(env["WORKER_PRIORITY_FILTER"])
        assert lanes == POOLS[pool], pool
        consumed += lanes
    assert sorted(consumed) == list(Priority)


def test_pool_resources_are_the_runbook_sizing(base: list[Obj]) -> None:
    for pool, deployment in pools(base).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        resources = container["resources"]
        got = (
            resources["requests"]["cpu"],
            resources["limits"]["cpu"],
            resources["requests"]["memory"],
            resources["limits"]["memory"],
        )
        assert got == RUNBOOK_SIZING[pool], pool


def test_grace_period_covers_the_longest_job_and_stays_within_the_visibility_timeout(base: list[Obj]) -> None:
    visibility_timeout_s = int(config_data(base)["STOREFRONT_JOBS_VISIBILITY_TIMEOUT_S"])
    for pool, deployment in pools(base).items():
        longest_s = int(deployment["metadata"]["annotations"]["storefront-jobs/longest-job-seconds"])
        grace_s = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace_s == longest_s + SHUTDOWN_MARGIN_S, pool
        # A job longer than the visibility timeout would be handed to a second worker while it runs.
        assert longest_s + LONGEST_RETRY_DELAY_S < visibility_timeout_s, pool


def test_pools_serve_metrics_from_a_memory_backed_multiprocess_directory(base: list[Obj]) -> None:
    metrics_port = int(config_data(base)["STOREFRONT_JOBS_METRICS_PORT"])
    for pool, deployment in pools(base).items():
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = {var["name"]: var.get("value") for var in container["env"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volume = next(v for v in spec["volumes"] if v["name"] == mounts[env["PROMETHEUS_MULTIPROC_DIR"]])
        assert volume["emptyDir"]["medium"] == "Memory", pool
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": metrics_port}, pool
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            # TCP, not GET /metrics: with METRICS_TOKEN set that answers 401 (docs/deployment.md).
            assert container[probe] == {**container[probe], "tcpSocket": {"port": "metrics"}}, (pool, probe)


def test_pools_differ_only_in_what_makes_them_a_pool(base: list[Obj]) -> None:
    """Shape drift between the four hand-written pool files shows up here."""

    def shape(deployment: Obj) -> Obj:
        d = copy.deepcopy(deployment)
        pool = pool_of(d)
        text = yaml.safe_dump(d).replace(f"storefront-jobs/pool: {pool}", "storefront-jobs/pool: X")
        d = yaml.safe_load(text.replace(f"storefront-jobs-workers-{pool}", "storefront-jobs-workers-X"))
        spec = d["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        for gone in (d["metadata"]["annotations"], d["spec"], spec, container):
            for key in ("storefront-jobs/longest-job-seconds", "replicas", "terminationGracePeriodSeconds"):
                gone.pop(key, None)
            gone.pop("resources", None)
        container["args"] = container["args"][:2]  # the concurrency value may differ
        container["env"] = [v for v in container["env"] if v["name"] != "WORKER_PRIORITY_FILTER"]
        spec.pop("topologySpreadConstraints", None)
        return d

    shapes = {pool: shape(deployment) for pool, deployment in pools(base).items()}
    first = shapes.pop("critical")
    for pool, other in shapes.items():
        assert other == first, pool


def test_every_worker_pool_and_the_admin_have_a_disruption_budget(base: list[Obj]) -> None:
    budgets = of_kind(base, "PodDisruptionBudget")
    for workload in workloads(base):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        covering = [b for b in budgets if selector_matches(b["spec"]["selector"], pod_labels(workload))]
        if component in ("worker", "admin"):
            assert len(covering) == 1, workload["metadata"]["name"]
            # ... and only that workload's pods.
            others = [w for w in workloads(base) if w is not workload]
            assert not [w for w in others if selector_matches(covering[0]["spec"]["selector"], pod_labels(w))]
        else:
            # beat, Flower, Redis: single replicas, which a budget would only stop node drains for.
            assert not covering, workload["metadata"]["name"]


# --- process model and security ------------------------------------------------------------------------


def test_sigterm_reaches_only_the_celery_main_process(base: list[Obj]) -> None:
    for workload, container in our_containers(base):
        spec = workload["spec"]["template"]["spec"]
        # Exec form with no shell: the storefront-jobs process is PID 1 and receives the SIGTERM.
        assert container["command"] == ["storefront-jobs"], workload["metadata"]["name"]
        assert not spec.get("shareProcessNamespace"), workload["metadata"]["name"]


def test_every_pod_meets_the_restricted_pod_security_standard(production: list[Obj]) -> None:
    namespace = named(production, "Namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for workload in workloads(production):
        name, spec = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        assert spec.get("automountServiceAccountToken") is False, name
        assert not any(spec.get(host) for host in ("hostNetwork", "hostPID", "hostIPC")), name
        assert {key for volume in spec.get("volumes", []) for key in volume} - {"name"} <= RESTRICTED_VOLUMES
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert security["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])
            assert security["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert security.get("runAsUser", pod_security.get("runAsUser")) not in (None, 0)
            assert "hostPort" not in str(container.get("ports", []))


def test_beat_runs_as_a_single_scheduler(renders: dict[str, list[Obj]]) -> None:
    for objs in renders.values():
        beat = named(objs, "Deployment", "storefront-jobs-beat")
        assert beat["spec"]["replicas"] == 1
        # Recreate: a rollout stops the old scheduler before it starts the new one.
        assert beat["spec"]["strategy"] == {"type": "Recreate"}
        (container,) = beat["spec"]["template"]["spec"]["containers"]
        assert (
            container_environment(renders["base"], container)["STOREFRONT_JOBS_SCHEDULER_ENABLED"] == "true"
        )
        scalers = of_kind(objs, "ScaledObject") + of_kind(objs, "HorizontalPodAutoscaler")
        assert "storefront-jobs-beat" not in {s["spec"]["scaleTargetRef"]["name"] for s in scalers}


# --- metrics and alerts --------------------------------------------------------------------------------


def test_the_prometheusrule_is_generated_from_the_alert_rules(base: list[Obj]) -> None:
    assert k8s.PROMETHEUSRULE.read_text() == k8s.prometheusrule_text(), (
        "deploy/k8s/base/prometheusrule.yaml is stale: run `python -m tests.ops.k8s`"
    )
    (rule,) = of_kind(base, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(k8s.ALERT_RULES.read_text())["groups"]


def test_one_scrape_job_for_the_admin_and_every_pool(base: list[Obj]) -> None:
    (monitor,) = of_kind(base, "PodMonitor")
    selected = [w for w in workloads(base) if selector_matches(monitor["spec"]["selector"], pod_labels(w))]
    components = {w["metadata"]["labels"]["app.kubernetes.io/component"] for w in selected}
    assert components == {"worker", "admin"}  # never Flower: its counters are not ours (docs/flower.md)
    assert {pool_of(w) for w in selected if "storefront-jobs/pool" in w["metadata"]["labels"]} == set(POOLS)
    config = config_data(base)
    expected_ports = {
        "metrics": int(config["STOREFRONT_JOBS_METRICS_PORT"]),
        "http": int(config["STOREFRONT_JOBS_ADMIN_PORT"]),
    }
    served: set[str] = set()
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert {"action": "replace", "targetLabel": "job", "replacement": SCRAPE_JOB} in endpoint[
            "relabelings"
        ]
        assert endpoint["path"] == "/metrics"
        credentials = endpoint["authorization"]["credentials"]
        assert endpoint["authorization"]["type"] == "Bearer"
        assert credentials == {"name": SECRET, "key": "STOREFRONT_JOBS_METRICS_TOKEN"}
        for workload in selected:
            for container in workload["spec"]["template"]["spec"]["containers"]:
                for port in container.get("ports", []):
                    if port["name"] == endpoint["port"]:
                        assert port["containerPort"] == expected_ports[port["name"]]
                        served.add(workload["metadata"]["name"])
    assert served == {w["metadata"]["name"] for w in selected}, "a selected pod that no endpoint scrapes"


def test_every_metrics_endpoint_asks_for_the_token(base: list[Obj]) -> None:
    assert secret_data(base)["STOREFRONT_JOBS_METRICS_TOKEN"]
    for workload, container in our_containers(base):
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        if component in ("worker", "admin"):
            environment = container_environment(base, container)
            assert environment["STOREFRONT_JOBS_METRICS_TOKEN"], workload["metadata"]["name"]


# --- Flower --------------------------------------------------------------------------------------------


def test_flower_is_reachable_only_through_a_proxy_that_hides_its_metrics(base: list[Obj]) -> None:
    deployment = named(base, "Deployment", "storefront-jobs-flower")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    flower, proxy = containers["flower"], containers["proxy"]
    environment = container_environment(base, flower)
    # Flower itself: loopback only (the setting's default), basic auth from the Secret, no port.
    assert "STOREFRONT_JOBS_FLOWER_ADDRESS" not in environment
    assert Settings.model_fields["flower_address"].default == "127.0.0.1"
    assert flower["env"][0]["valueFrom"]["secretKeyRef"]["key"] == "STOREFRONT_JOBS_FLOWER_BASIC_AUTH"
    # ... from our Secret, holding valid users, and never switched off on the command line.
    assert flower["env"][0]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    assert basic_auth_pairs(secret_data(base)["STOREFRONT_JOBS_FLOWER_BASIC_AUTH"])
    assert not [arg for arg in flower.get("args", []) if arg.startswith("--no-auth")], flower["args"]
    assert "ports" not in flower
    # The proxy: the pod's only port, in front of Flower's port, and /metrics answered by nginx itself.
    (port,) = proxy["ports"]
    config = named(base, "ConfigMap", "storefront-jobs-flower-proxy")["data"]["default.conf"]
    assert f"listen {port['containerPort']};" in config
    assert f"proxy_pass http://127.0.0.1:{environment['STOREFRONT_JOBS_FLOWER_PORT']};" in config
    blocked = re.search(r"location = /metrics \{\s*return 404;\s*\}", config)
    assert blocked, config
    assert config.index("location = /metrics") < config.index("location / {"), "the catch-all comes after"
    service = named(base, "Service", "storefront-jobs-flower")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [port["name"]]
    # Only the ingress controller's namespace may connect.
    policy = named(base, "NetworkPolicy", "storefront-jobs-flower")
    assert selector_matches(policy["spec"]["podSelector"], pod_labels(deployment))
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": port["containerPort"]}]
    assert all(source["namespaceSelector"].get("matchLabels") for source in rule["from"])


# --- Redis ---------------------------------------------------------------------------------------------


def memory_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "kb": 2**10, "mb": 2**20, "gb": 2**30}
    match = re.fullmatch(r"(\d+)(\w*)", quantity)
    assert match, quantity
    return int(match.group(1)) * units.get(match.group(2), 1)


def test_redis_is_durable_and_never_evicts(base: list[Obj]) -> None:
    conf = named(base, "ConfigMap", "storefront-jobs-redis-config")["data"]["redis.conf"]
    directives = dict(
        line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#")
    )
    assert directives["appendonly"] == "yes"
    assert directives["appendfsync"] == "everysec"
    assert directives["maxmemory-policy"] == "noeviction"
    redis = named(base, "StatefulSet", "storefront-jobs-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    limit = memory_bytes(container["resources"]["limits"]["memory"])
    # Room for the fork of an AOF rewrite.
    assert memory_bytes(directives["maxmemory"]) <= limit // 2
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]}
    assert mounts[directives["dir"]] in claims


def test_the_broker_url_points_at_the_redis_service(base: list[Obj]) -> None:
    url = config_data(base)["STOREFRONT_JOBS_BROKER_URL"]
    match = re.fullmatch(r"redis://([\w-]+):(\d+)/\d+", url)
    assert match, url
    host, port = match.groups()
    service = named(base, "Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    redis = named(base, "StatefulSet", "storefront-jobs-redis")
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(redis))
    policy = named(base, "NetworkPolicy", "storefront-jobs-redis")
    (rule,) = policy["spec"]["ingress"]
    for workload, _ in our_containers(base):
        assert selector_matches(rule["from"][0]["podSelector"], pod_labels(workload))


# --- autoscaling ---------------------------------------------------------------------------------------


def query_lanes(query: str) -> list[set[str]]:
    """The lanes each selector of a query matches, from its priority matcher."""
    lanes = []
    for selector in promql.selectors(query):
        (matcher,) = [m for m in selector.matchers if m[0] == "priority"]
        _, op, value = matcher
        lanes.append(set(value.split("|")) if op == "=~" else {value})
    return lanes


def test_keda_scales_each_pool_on_its_full_backlog(production: list[Obj]) -> None:
    scaled = {pool_of(s): s for s in of_kind(production, "ScaledObject")}
    deployments = pools(production)
    assert set(scaled) == set(deployments) == set(POOLS)
    for pool, obj in scaled.items():
        spec = obj["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployments[pool]["metadata"]["name"],
        }
        assert "replicas" not in deployments[pool]["spec"], "KEDA owns the replica count"
        (trigger,) = spec["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "prometheus"
        assert trigger["metricType"] == "AverageValue"  # ceil(backlog / threshold) replicas
        query = meta["query"]
        assert promql.problems(query) == [], pool
        families = {promql.family_of(s.name) for s in promql.selectors(query)}
        assert families <= metric_names()
        assert {"storefront_jobs_queue_depth", "storefront_jobs_queue_reserved"} <= families
        pool_lanes = {p.label for p in POOLS[pool]}
        assert all(lanes == pool_lanes for lanes in query_lanes(query)), pool
        for selector in promql.selectors(query):
            assert ("job", "=", SCRAPE_JOB) in selector.matchers
            assert ("namespace", "=", NAMESPACE) in selector.matchers
        assert meta["threshold"] == str(min(RUNBOOK_THRESHOLDS[p] for p in POOLS[pool])), pool
        assert meta["activationThreshold"] == "0"
        # An empty answer (admin not scraped) is an error, so fallback takes over instead of 0 replicas.
        assert meta["ignoreNullValues"] == "false"
        assert spec["fallback"]["replicas"] >= max(spec["minReplicaCount"], 1)
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == RUNBOOK_BEHAVIOR
        # Only the pools without a tight latency target scale to zero.
        assert (spec["minReplicaCount"] == 0) == (pool in ("low", "bulk")), pool


def series(name: str, priority: str, instance: str, value: int, namespace: str = NAMESPACE) -> Obj:
    labels = f'job="{SCRAPE_JOB}", namespace="{namespace}", priority="{priority}", instance="{instance}"'
    return {"series": f"{name}{{{labels}}}", "values": f"{value}x5"}


def backlog_case(
    pool: str, query: str, depth: dict[str, int], held: dict[str, int], paused: set[str], expected: int | None
) -> Obj:
    """A promtool test: two admin replicas report the same lanes; another namespace adds noise."""
    inputs = []
    for lane in (p.label for p in Priority):
        for instance in ("admin-a:8080", "admin-b:8080"):
            if lane in depth:
                inputs.append(series("storefront_jobs_queue_depth", lane, instance, depth[lane]))
                inputs.append(series("storefront_jobs_queue_reserved", lane, instance, held[lane]))
                inputs.append(series("storefront_jobs_lane_paused", lane, instance, int(lane in paused)))
        inputs.append(series("storefront_jobs_queue_depth", lane, "other:8080", 999_999, namespace="staging"))
    samples = [] if expected is None else [{"labels": "{}", "value": expected}]
    return {
        "interval": "1m",
        "input_series": inputs,
        "promql_expr_test": [{"expr": query, "eval_time": "2m", "exp_samples": samples}],
        "name": pool,
    }


def test_keda_queries_compute_the_backlog(production: list[Obj], promtool: str, tmp_path: Path) -> None:
    """Evaluated by Prometheus' own engine: no double count over admin replicas, paused lanes left out."""
    cases = []
    for obj in of_kind(production, "ScaledObject"):
        pool, query = pool_of(obj), obj["spec"]["triggers"][0]["metadata"]["query"]
        lanes = [p.label for p in POOLS[pool]]
        depth = {lane: 100 * (i + 1) for i, lane in enumerate(lanes)}
        held = {lane: 3 * (i + 1) for i, lane in enumerate(lanes)}
        every = sum(depth.values()) + sum(held.values())
        cases.append(backlog_case(pool, query, depth, held, set(), every))
        # A paused lane's waiting jobs scale nothing; its running jobs still count.
        cases.append(backlog_case(pool, query, depth, held, {lanes[-1]}, every - depth[lanes[-1]]))
        cases.append(backlog_case(pool, query, depth, held, set(lanes), sum(held.values())))
        # No admin series at all: no answer, which KEDA treats as an error (fallback).
        cases.append(backlog_case(pool, query, {}, {}, set(), None))
    for case in cases:
        case.pop("name")
    test_file = tmp_path / "keda-queries.test.yaml"
    test_file.write_text(yaml.safe_dump({"rule_files": [], "tests": cases}, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(test_file)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_legacy_hpa_scales_each_pool_on_queue_depth(renders: dict[str, list[Obj]]) -> None:
    objs = renders["production-hpa"]
    hpas = {pool_of(h): h for h in of_kind(objs, "HorizontalPodAutoscaler")}
    keda = {pool_of(s): s["spec"] for s in of_kind(renders["production"], "ScaledObject")}
    assert set(hpas) == set(POOLS)
    for pool, hpa in hpas.items():
        spec = hpa["spec"]
        assert spec["scaleTargetRef"]["name"] == f"storefront-jobs-workers-{pool}"
        assert spec["behavior"] == RUNBOOK_BEHAVIOR
        # The same bounds as with KEDA, except that an HPA cannot scale to zero.
        assert spec["minReplicas"] == max(keda[pool]["minReplicaCount"], 1), pool
        assert spec["maxReplicas"] == keda[pool]["maxReplicaCount"], pool
        (metric,) = spec["metrics"]
        assert metric["type"] == "External"
        assert metric["external"]["metric"]["name"] in metric_names()
        (expr,) = metric["external"]["metric"]["selector"]["matchExpressions"]
        assert (expr["key"], expr["operator"]) == ("priority", "In")
        assert expr["values"] == [p.label for p in POOLS[pool]]
        threshold = min(RUNBOOK_THRESHOLDS[p] for p in POOLS[pool])
        assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": str(threshold)}


def test_the_two_production_overlays_differ_only_in_their_autoscalers(renders: dict[str, list[Obj]]) -> None:
    def without_scalers(objs: list[Obj]) -> list[Obj]:
        kept = [o for o in objs if o["kind"] not in ("ScaledObject", "HorizontalPodAutoscaler")]
        return sorted(kept, key=lambda o: (o["kind"], o["metadata"]["name"]))

    assert without_scalers(renders["production"]) == without_scalers(renders["production-hpa"])


# --- the Sentinel overlay ------------------------------------------------------------------------------

SENTINEL_OVERLAY = "production-sentinel"
REDIS_GROUP = "storefront-jobs-redis"
BROKER_KEYS = (
    "STOREFRONT_JOBS_BROKER_URL",
    "STOREFRONT_JOBS_BROKER_MASTER_NAME",
    "STOREFRONT_JOBS_BROKER_MIN_REPLICAS",
)
#: What the Sentinel overlay may change: the broker's objects (and the broker keys of the ConfigMap).
BROKER_OBJECTS = {
    ("ConfigMap", "storefront-jobs-redis-config"),
    ("StatefulSet", REDIS_GROUP),
    ("Service", REDIS_GROUP),
    ("Service", f"{REDIS_GROUP}-headless"),
    ("NetworkPolicy", REDIS_GROUP),
    ("PodDisruptionBudget", REDIS_GROUP),
}


@pytest.fixture(scope="module")
def sentinel_overlay(renders: dict[str, list[Obj]]) -> list[Obj]:
    return renders[SENTINEL_OVERLAY]


def redis_pod_names(objs: list[Obj]) -> list[str]:
    """Each Redis pod's stable DNS name, through the StatefulSet's governing Service."""
    group = named(objs, "StatefulSet", REDIS_GROUP)
    domain = f"{group['spec']['serviceName']}.{NAMESPACE}.svc"
    return [f"{REDIS_GROUP}-{ordinal}.{domain}" for ordinal in range(group["spec"]["replicas"])]


def test_the_sentinel_overlay_is_production_with_another_broker(renders: dict[str, list[Obj]]) -> None:
    def outside_the_broker(objs: list[Obj]) -> list[Obj]:
        kept = []
        for obj in objs:
            if (obj["kind"], obj["metadata"]["name"]) in BROKER_OBJECTS:
                continue
            if (obj["kind"], obj["metadata"]["name"]) == ("ConfigMap", CONFIGMAP):
                config = copy.deepcopy(obj)
                for key in BROKER_KEYS:
                    config["data"].pop(key, None)
                kept.append(config)
            else:
                kept.append(obj)
        return sorted(kept, key=lambda o: (o["kind"], o["metadata"]["name"]))

    assert outside_the_broker(renders["production"]) == outside_the_broker(renders[SENTINEL_OVERLAY])


def test_every_process_finds_the_primary_through_the_sentinel_nodes(
    renders: dict[str, list[Obj]], sentinel_overlay: list[Obj], monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = sentinel_overlay
    group = named(objs, "StatefulSet", REDIS_GROUP)
    headless = named(objs, "Service", group["spec"]["serviceName"])
    containers = {c["name"]: c for c in group["spec"]["template"]["spec"]["containers"]}
    # Given three Redis pods, each with a Sentinel node, named by a headless Service from the start
    assert group["spec"]["replicas"] == 3
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert selector_matches({"matchLabels": headless["spec"]["selector"]}, pod_labels(group))
    assert SENTINEL_PORT in [p["port"] for p in headless["spec"]["ports"]]
    assert [p["containerPort"] for p in containers["sentinel"]["ports"]] == [SENTINEL_PORT]
    # and no Service that would spread clients over replicas
    assert [
        s["metadata"]["name"] for s in of_kind(objs, "Service") if s["metadata"]["name"] == REDIS_GROUP
    ] == []
    policy = named(objs, "NetworkPolicy", REDIS_GROUP)
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} == {6379, SENTINEL_PORT}
    # Then every storefront-jobs container asks those three nodes for the group's primary
    master_name = config_data(objs)["STOREFRONT_JOBS_BROKER_MASTER_NAME"]
    assert list(our_containers(objs))
    for workload, container in our_containers(objs):
        settings = load_with(
            monkeypatch, container_environment(objs, container, secret_data(renders["base"]))
        )
        assert settings.broker_url is not None
        target = SentinelTarget.parse(settings.broker_url)
        assert target.nodes == [(pod, SENTINEL_PORT) for pod in redis_pod_names(objs)], workload["metadata"]
        assert settings.broker_master_name == master_name
        # and waits for one of the two replicas after every write
        assert settings.broker_min_replicas == 1
    # And the Redis pods' start-up script monitors the same group
    (init,) = group["spec"]["template"]["spec"]["initContainers"]
    env = {var["name"]: var["valueFrom"] for var in init["env"]}
    assert env["STOREFRONT_JOBS_BROKER_MASTER_NAME"]["configMapKeyRef"] == {
        "name": CONFIGMAP,
        "key": "STOREFRONT_JOBS_BROKER_MASTER_NAME",
    }


class StartScript:
    """The Redis pods' start.sh from the rendered overlay, run here with a stand-in ``redis-cli``.

    The stand-in answers ``SENTINEL get-master-addr-by-name`` for the pods in
    ``answers`` and fails like an unreachable node for the others.
    """

    def __init__(self, objs: list[Obj], root: Path) -> None:
        self.data = named(objs, "ConfigMap", "storefront-jobs-redis-config")["data"]
        self.master_name = config_data(objs)["STOREFRONT_JOBS_BROKER_MASTER_NAME"]
        self.pods = redis_pod_names(objs)
        self.root = root
        self.config = root / "config"
        self.config.mkdir()
        for key in ("redis.conf", "sentinel.conf", "start.sh"):
            (self.config / key).write_text(self.data[key])
        self.bin = root / "bin"
        self.bin.mkdir()
        stub = self.bin / "redis-cli"
        stub.write_text(
            "#!/bin/sh\n"
            "# redis-cli -h HOST -p PORT --raw SENTINEL get-master-addr-by-name NAME\n"
            'answer="$STUB_ANSWERS/$2"\n'
            '[ -f "$answer" ] || { echo "Could not connect to Redis at $2:$4" >&2; exit 1; }\n'
            'cat "$answer"\n'
        )
        stub.chmod(0o755)

    def run(self, ordinal: int, answers: dict[int, str]) -> Path:
        """Start pod ``ordinal``: the directory with the redis.conf and sentinel.conf it wrote."""
        run_dir = self.root / f"run-{ordinal}-{len(list(self.root.iterdir()))}"
        run_dir.mkdir()
        answer_dir = run_dir / "answers"
        answer_dir.mkdir()
        for node, text in answers.items():
            (answer_dir / self.pods[node]).write_text(text)
        environment = {
            "PATH": f"{self.bin}:{os.environ['PATH']}",
            "HOSTNAME": f"{REDIS_GROUP}-{ordinal}",
            "POD_NAMESPACE": NAMESPACE,
            "STOREFRONT_JOBS_BROKER_MASTER_NAME": self.master_name,
            "STUB_ANSWERS": str(answer_dir),
        }
        subprocess.run(
            ["sh", str(self.config / "start.sh"), str(self.config), str(run_dir)],
            env=environment, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        return run_dir


def directives(conf: str, name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in conf.splitlines() if line.split(None, 1)[:1] == [name]]


@pytest.fixture
def start_script(sentinel_overlay: list[Obj], tmp_path: Path) -> StartScript:
    return StartScript(sentinel_overlay, tmp_path)


def test_a_redis_pod_replicates_the_primary_the_sentinel_nodes_name(start_script: StartScript) -> None:
    pods = start_script.pods
    # When the group first starts and no node answers yet, pod 0 is the primary and the others replicate it
    first = start_script.run(0, answers={})
    assert directives((first / "redis.conf").read_text(), "replicaof") == []
    second = start_script.run(1, answers={})
    assert directives((second / "redis.conf").read_text(), "replicaof") == [f"{pods[0]} 6379"]
    # When pod 0 comes back after a failover made pod 2 the primary, it replicates pod 2
    after_failover = start_script.run(0, answers={1: f"{pods[2]}\n6379\n"})
    assert directives((after_failover / "redis.conf").read_text(), "replicaof") == [f"{pods[2]} 6379"]
    # A node that does not know the group, or answers an error, is passed over for the next one
    passed_over = start_script.run(0, answers={1: "\n", 2: f"{pods[1]}\n6379\n"})
    assert directives((passed_over / "redis.conf").read_text(), "replicaof") == [f"{pods[1]} 6379"]
    refused = start_script.run(1, answers={0: "NOAUTH Authentication required.\n"})
    assert directives((refused / "redis.conf").read_text(), "replicaof") == [f"{pods[0]} 6379"]
    # And every server and node announces its stable name, and the nodes monitor the same primary
    for run_dir, primary in ((first, pods[0]), (after_failover, pods[2])):
        redis_conf, sentinel_conf = (
            (run_dir / "redis.conf").read_text(),
            (run_dir / "sentinel.conf").read_text(),
        )
        assert directives(redis_conf, "replica-announce-ip") == [pods[0]]
        assert f"monitor {start_script.master_name} {primary} 6379 2" in directives(sentinel_conf, "sentinel")
        assert f"announce-ip {pods[0]}" in directives(sentinel_conf, "sentinel")


class ConfiguredRedis(EmbeddedRedis):
    """A redis-server (or Sentinel node) on a file start.sh wrote, bound to loopback on a free port."""

    def __init__(self, config: Path, data_dir: Path, *, sentinel: bool = False) -> None:
        super().__init__(data_dir=data_dir)
        self.config = config
        self.sentinel = sentinel

    def command(self) -> list[str]:
        mode = ["--sentinel"] if self.sentinel else []
        return [self.executable, str(self.config), *mode, "--port", str(self.port), "--bind", "127.0.0.1"]


def on_loopback(conf: str, data_dir: Path, names: dict[str, str]) -> str:
    """The file as this machine can run it: its own data directory, and pod names swapped for addresses."""
    lines = [f"dir {data_dir}" if line.startswith("dir ") else line for line in conf.splitlines()]
    text = "\n".join(lines) + "\n"
    for name, address in names.items():
        text = text.replace(name, address)
    return text


def test_the_files_start_script_writes_run_on_redis_server(start_script: StartScript, tmp_path: Path) -> None:
    """The pod names do not resolve here: the node's file has the primary's name swapped for its address."""
    primary_dir = start_script.run(0, answers={})
    replica_dir = start_script.run(1, answers={})
    folders = {name: tmp_path / name for name in ("primary", "replica", "sentinel")}
    for folder in folders.values():
        folder.mkdir()
    primary_conf = folders["primary"] / "redis.conf"
    primary_conf.write_text(on_loopback((primary_dir / "redis.conf").read_text(), folders["primary"], {}))
    with ConfiguredRedis(primary_conf, folders["primary"]) as primary:
        # The replica's own file, as written: it names pod 0, which does not resolve here
        replica_conf = folders["replica"] / "redis.conf"
        replica_conf.write_text(on_loopback((replica_dir / "redis.conf").read_text(), folders["replica"], {}))
        with ConfiguredRedis(replica_conf, folders["replica"]) as replica:
            info = redis.Redis(port=replica.port).info("replication")
            assert (info["role"], info["master_host"]) == ("slave", start_script.pods[0])
        node_conf = folders["sentinel"] / "sentinel.conf"
        node_conf.write_text(
            on_loopback(
                (replica_dir / "sentinel.conf").read_text(),
                folders["sentinel"],
                {f"{start_script.pods[0]} 6379": f"127.0.0.1 {primary.port}"},
            )
        )
        with ConfiguredRedis(node_conf, folders["sentinel"], sentinel=True) as node:
            answer = redis.Redis(port=node.port).execute_command(
                "SENTINEL", "get-master-addr-by-name", start_script.master_name
            )
            assert [part.decode() for part in answer] == ["127.0.0.1", str(primary.port)]


# --- production hygiene --------------------------------------------------------------------------------


def test_placeholders_are_marked_and_never_reach_production(renders: dict[str, list[Obj]]) -> None:
    assert all(value.count("CHANGE-ME") == 1 for value in secret_data(renders["base"]).values())
    for overlay in PRODUCTION_OVERLAYS:
        objs = renders[overlay]
        assert not of_kind(objs, "Secret"), "the real Secret is created out of band"
        assert "CHANGE-ME" not in yaml.safe_dump_all(objs)
        for _, container in our_containers(objs):
            name, _, tag = container["image"].rpartition(":")
            assert "/" in name, f"{container['image']}: the overlay names the registry"
            assert tag not in ("", "latest"), f"{container['image']}: the overlay pins a version"


# --- the runbook's kubectl lines -----------------------------------------------------------------------

#: kubectl's resource names and short names -> kind.
KINDS = {
    "deployment": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "configmap": "ConfigMap",
    "secret": "Secret",
    "service": "Service",
    "svc": "Service",
    "scaledobject": "ScaledObject",
    "hpa": "HorizontalPodAutoscaler",
    "pdb": "PodDisruptionBudget",
}
_REFERENCING_VERBS = {"edit", "get", "describe", "annotate", "patch", "delete", "scale"}


def docs_kubectl_commands() -> list[str]:
    """Every kubectl command in docs/deployment.md (shell blocks and code spans), up to a pipe.

    The first column of a table holds the runbook's own lines, which name the
    old service on purpose, so it is left out.
    """
    fragments: list[str] = []
    block: list[str] | None = None
    for line in DOCS.read_text().splitlines():
        if line.lstrip().startswith("```"):
            if block is None:
                block = [] if line.strip() in ("```bash", "```sh", "```console") else ["<not shell>"]
            else:
                if block[:1] != ["<not shell>"]:
                    joined = "\n".join(block).replace("\\\n", " ")
                    fragments += [text for text in joined.splitlines() if "kubectl " in text]
                block = None
            continue
        if block is not None:
            block.append(line)
            continue
        cells = re.split(r"(?<!\\)\|", line)[2:] if line.startswith("|") else [line]
        fragments += re.findall(r"`([^`]*kubectl [^`]*)`", "|".join(cells))
    commands = []
    for fragment in fragments:
        start = fragment.index("kubectl ")
        commands.append(fragment[start:].replace("\\|", "|").split(" | ")[0].strip())
    return commands


def referenced_objects(tokens: list[str]) -> Iterator[tuple[str, str]]:
    for i, token in enumerate(tokens):
        kind, slash, name = token.partition("/")
        if slash and kind in KINDS and name and not name.startswith("<"):
            yield KINDS[kind], name
        elif token in KINDS and i > 1 and tokens[i - 1] in _REFERENCING_VERBS:
            nxt = tokens[i + 1] if i + 1 < len(tokens) else "-"
            if not nxt.startswith(("-", "<")) and "=" not in nxt:
                yield KINDS[token], nxt


def selectors_of(tokens: list[str]) -> Iterator[dict[str, str]]:
    for i, token in enumerate(tokens):
        value = None
        if token in ("-l", "--selector") and i + 1 < len(tokens):
            value = tokens[i + 1]
        elif token.startswith(("-l=", "--selector=")):
            value = token.split("=", 1)[1]
        if value is not None:
            yield dict(pair.split("=", 1) for pair in value.split(","))


def test_the_docs_kubectl_lines_name_objects_that_exist(renders: dict[str, list[Obj]]) -> None:
    commands = docs_kubectl_commands()
    assert len(commands) >= 15, "docs/deployment.md maps the runbook's kubectl lines"
    everything = [obj for objs in renders.values() for obj in objs]
    existing = {(obj["kind"], obj["metadata"]["name"]) for obj in everything}
    label_sets = [obj["metadata"].get("labels", {}) for obj in everything]
    label_sets += [pod_labels(w) for w in workloads(everything)]
    problems = []
    for command in commands:
        tokens = shlex.split(command)
        if "--" in tokens:  # what follows runs inside the container
            tokens = tokens[: tokens.index("--")]
        paths = [tokens[i + 1] for i, token in enumerate(tokens[:-1]) if token in ("-f", "-k", "kustomize")]
        problems += [f"{command}: no file {path}" for path in paths if not (k8s.ROOT / path).exists()]
        tokens = [token for token in tokens if token not in paths]
        refs, selectors = list(referenced_objects(tokens)), list(selectors_of(tokens))
        namespace = tokens[tokens.index("-n") + 1] if "-n" in tokens else None
        if (refs or selectors or "exec" in tokens or "logs" in tokens) and namespace != NAMESPACE:
            problems.append(f"{command}: give the namespace, -n {NAMESPACE}")
        problems += [f"{command}: no {kind} {name}" for kind, name in refs if (kind, name) not in existing]
        for selector in selectors:
            if not any(selector_matches({"matchLabels": selector}, labels) for labels in label_sets):
                problems.append(f"{command}: selector {selector} matches nothing")
    assert not problems, "\n".join(problems)


def test_the_scheduler_switch_lands_in_beat_and_admin(production: list[Obj], tmp_path: Path) -> None:
    """The runbook's `kubectl set env` line, run offline (--local) on the rendered Deployments."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    targets = [named(production, "Deployment", n) for n in ("storefront-jobs-beat", "storefront-jobs-admin")]
    manifest = tmp_path / "deployments.yaml"
    manifest.write_text(yaml.safe_dump_all(targets))
    command = [kubectl, "set", "env", "--local", "-o", "yaml", "-f", str(manifest)]
    result = subprocess.run(
        [*command, "STOREFRONT_JOBS_SCHEDULER_ENABLED=false"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    changed = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    items = changed[0]["items"] if changed[0]["kind"] == "List" else changed
    assert len(items) == len(targets)
    for deployment in items:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {var["name"]: var.get("value") for var in container["env"]}
        # An explicit env entry wins over the ConfigMap's envFrom value.
        assert env["STOREFRONT_JOBS_SCHEDULER_ENABLED"] == "false", deployment["metadata"]["name"]
