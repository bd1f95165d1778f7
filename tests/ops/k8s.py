"""Helpers for the Kubernetes manifest checks: render with kustomize, validate, regenerate.

- :func:`render` builds a kustomization with the real kustomize: the standalone
  ``kustomize`` binary, or the one ``kubectl kustomize`` embeds (kustomize 4 or
  newer: Debian bookworm's kubectl 1.20 embeds kustomize 2, which predates
  directories in ``resources``).
- :func:`schema_problems` validates a built-in object offline with the schemas
  that ``kubernetes-validate`` ships, and a custom resource (KEDA ScaledObject,
  Prometheus Operator PodMonitor and PrometheusRule) with the subsets of their
  CRD schemas in ``crd_schemas.yaml`` beside this file.
- :func:`prometheusrule_text` is the PrometheusRule generated from
  ``deploy/prometheus/storefront-jobs-alerts.yaml``; ``python -m tests.ops.k8s``
  writes it to ``deploy/k8s/base/prometheusrule.yaml``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "storefront-jobs-alerts.yaml"
PROMETHEUSRULE = K8S / "base" / "prometheusrule.yaml"
CRD_SCHEMAS = Path(__file__).with_name("crd_schemas.yaml")
#: kustomize 4 brought directories in ``resources`` and ``patches`` with targets.
MIN_KUSTOMIZE = (4, 0)

_HEADER = """\
# GENERATED from deploy/prometheus/storefront-jobs-alerts.yaml by
# `python -m tests.ops.k8s`: edit the alert rules there, then regenerate.
# tests/ops/test_k8s_manifests.py fails while the two differ.
#
# The same rules as a Prometheus Operator object. Load them one way only
# (this object, or the rules file in Prometheus' rule_files), or every alert
# fires twice. Your Prometheus must select it: with kube-prometheus-stack, add
# the label it expects (e.g. release: <helm release>) in your overlay.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: storefront-jobs-alerts
  labels:
    app.kubernetes.io/name: storefront-jobs
    app.kubernetes.io/component: monitoring
spec:
"""


def prometheusrule_text() -> str:
    """The alert rules file, comments and all, indented under ``spec:``."""
    lines = ALERT_RULES.read_text().splitlines()
    body = "".join(f"  {line}\n" if line.strip() else "\n" for line in lines)
    return _HEADER + body


def _version(text: str) -> tuple[int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.cache
def kustomize_command() -> tuple[list[str], str] | None:
    """(command prefix, version) of a kustomize new enough for deploy/k8s, or None."""
    standalone = shutil.which("kustomize")
    if standalone:
        out = subprocess.run([standalone, "version"], capture_output=True, text=True, check=False).stdout
        version = _version(out)
        if version and version >= MIN_KUSTOMIZE:
            return [standalone, "build"], out.strip()
    kubectl = shutil.which("kubectl")
    if kubectl:
        result = subprocess.run(
            [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, check=False
        )
        try:
            embedded = json.loads(result.stdout).get("kustomizeVersion", "")
        except json.JSONDecodeError:
            embedded = ""
        version = _version(embedded)
        if version and version >= MIN_KUSTOMIZE:
            return [kubectl, "kustomize"], embedded
    return None


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects a kustomization builds; raises with kustomize's message when it fails."""
    found = kustomize_command()
    if found is None:
        raise RuntimeError("no kustomize >= 4 (standalone, or embedded in kubectl) on PATH")
    result = subprocess.run(
        [*found[0], str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize failed on {directory}:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@functools.cache
def _crd_schemas() -> dict[str, Any]:
    """apiVersion/kind -> JSON schema, each carrying the shared definitions its $refs point to."""
    loaded: dict[str, Any] = yaml.safe_load(CRD_SCHEMAS.read_text())
    definitions = loaded.pop("definitions")
    return {key: {**schema, "definitions": definitions} for key, schema in loaded.items()}


def is_custom_resource(obj: dict[str, Any]) -> bool:
    return f"{obj['apiVersion']}/{obj['kind']}" in _crd_schemas()


def schema_problems(obj: dict[str, Any], k8s_version: str) -> list[str]:
    """Why ``obj`` is invalid for that Kubernetes version (strict: unknown fields too); empty if valid."""
    key = f"{obj['apiVersion']}/{obj['kind']}"
    if key in _crd_schemas():
        validator = jsonschema.Draft7Validator(_crd_schemas()[key])
        return [
            f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(map(str, exc.path)) or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no schema for {key} in Kubernetes {k8s_version}: {exc}"]
    return []


def main(argv: list[str]) -> int:
    """``python -m tests.ops.k8s``: write the PrometheusRule; ``--check``: exit 1 if stale."""
    text = prometheusrule_text()
    if "--check" in argv:
        return 0 if PROMETHEUSRULE.read_text() == text else 1
    PROMETHEUSRULE.write_text(text)
    print(f"wrote {PROMETHEUSRULE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
