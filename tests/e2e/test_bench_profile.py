"""The profile script of bench/ keeps working: the suite runs its short mode (its numbers are not checked)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.workers import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_the_profile_script_breaks_both_paths_down_by_package() -> None:
    # When the script runs in its short mode, on a Redis and a worker of its own
    result = subprocess.run(
        [sys.executable, "-m", "bench.profile", "--short"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    # Then it reports the enqueue and the execution, each split by package
    assert result.returncode == 0, result.stderr[-3000:]
    for title in ("1. enqueue (noop.delay)", "2. execution (prefork pool"):
        section = result.stdout.split(title, 1)
        assert len(section) == 2, f"{title!r} missing from:\n{result.stdout[-3000:]}"
        assert "storefront-jobs" in section[1]
        assert "celery" in section[1]
        assert "us/job" in section[1]
