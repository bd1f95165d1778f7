"""Declaring tasks reads nothing: a module of tasks imports anywhere; bad settings stop whoever uses them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.workers import REPO_ROOT

pytestmark = pytest.mark.e2e

SHOP_JOBS = """
from storefront_jobs import Priority, priority_task

@priority_task(Priority.CRITICAL, queue="payments.webhooks", retry={"max_retries": 2})
def confirm_payment(order_id: str) -> None:
    print("confirmed", order_id)
"""

BAD_VARIABLE = "STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT"


@pytest.fixture
def shop(tmp_path: Path) -> dict[str, str]:
    """A user's module of tasks, and an environment with one invalid storefront setting."""
    (tmp_path / "shop_jobs.py").write_text(SHOP_JOBS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOREFRONT_JOBS_")}
    env.update(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO_ROOT}", **{BAD_VARIABLE: "lots"})
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO_ROOT,
    )


def test_importing_a_module_of_tasks_reads_no_setting_and_builds_no_app(shop: dict[str, str]) -> None:
    code = textwrap.dedent(
        """
        import shop_jobs
        from storefront_jobs import application
        assert application.get_default_app.cache_info().currsize == 0, "an app was built at import"
        print("imported")
        """
    )
    done = run(shop, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "imported"


def test_a_worker_with_a_bad_setting_stops_at_start_naming_it(shop: dict[str, str]) -> None:
    done = run(shop, "-m", "storefront_jobs", "worker", "--imports", "shop_jobs")
    assert done.returncode != 0
    assert BAD_VARIABLE in done.stderr
    assert "lots" in done.stderr


def test_a_producer_with_a_bad_setting_fails_on_its_first_job_naming_it(shop: dict[str, str]) -> None:
    code = textwrap.dedent(
        """
        import shop_jobs
        from storefront_jobs import ConfigurationError
        try:
            shop_jobs.confirm_payment.delay("o-1")
        except ConfigurationError as exc:
            print("refused:", exc)
        """
    )
    done = run(shop, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused:")
    assert BAD_VARIABLE in done.stdout


def test_the_retry_policy_comes_from_the_settings_when_the_task_binds(shop: dict[str, str]) -> None:
    # Settings set after the import still count: nothing was read at import.
    code = textwrap.dedent(
        """
        import os
        import shop_jobs
        os.environ.pop("STOREFRONT_JOBS_QUEUE_CAPACITY__DEFAULT")
        os.environ["STOREFRONT_JOBS_RETRY__HIGH__MAX_RETRIES"] = "7"
        from storefront_jobs import Priority
        task = shop_jobs.confirm_payment
        print(task.policy_for(Priority.CRITICAL).max_retries, task.policy_for(Priority.HIGH).max_retries)
        """
    )
    done = run(shop, "-c", code)
    assert done.returncode == 0, done.stderr
    # CRITICAL: the task's own override; HIGH: the lane's table from the settings.
    assert done.stdout.split() == ["2", "7"]
