"""Fixtures shared by the ops tests (alert rules, dashboards, manifests)."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's promtool: skipped locally when missing, a failure in CI (.ci/run installs it)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return path
