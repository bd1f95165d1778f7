"""The dev supervisor against real processes: readiness, ordered stop, kills, no survivors."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from storefront_jobs.devserver.supervisor import ChildSpec, Supervisor
from storefront_jobs.errors import StorefrontJobsError
from tests.support.workers import READY_S, wait_until


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


SLEEPER = _python("import time; time.sleep(60)")
#: Writes "<name> stopped" to a file on SIGTERM, so a test can see the stop order; creates the file
#: named by its third argument once its handler is installed (a SIGTERM before that would just kill it).
RECORDER = """
import pathlib, signal, sys, time
def stop(*_):
    with open(sys.argv[1], "a") as f:
        f.write(sys.argv[2] + " stopped\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
pathlib.Path(sys.argv[3]).touch()
time.sleep(60)
"""


def test_children_stop_by_layer_highest_first(tmp_path: Path) -> None:
    order = tmp_path / "order"
    with Supervisor(tmp_path) as supervisor:
        children = []
        for name, layer in (("infra", 0), ("app-a", 1), ("app-b", 1)):
            ready = tmp_path / f"{name}.ready"
            argv = [*_python(RECORDER), str(order), name, str(ready)]
            children.append(supervisor.start(ChildSpec(name, argv, layer=layer, ready=ready.exists)))
        assert supervisor.wait_ready(children, timeout_s=READY_S)  # every handler is installed
    lines = order.read_text().splitlines()
    assert sorted(lines[:2]) == ["app-a stopped", "app-b stopped"]
    assert lines[2] == "infra stopped"
    assert [r.killed for r in supervisor.stopped] == [False, False, False]


def test_a_child_that_ignores_sigterm_is_killed_with_its_grandchildren(tmp_path: Path) -> None:
    # Given a child that ignores SIGTERM and has a grandchild (like a prefork pool process)
    stubborn = _python(
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    supervisor = Supervisor(tmp_path)
    child = supervisor.start(ChildSpec("stubborn", stubborn, stop_timeout_s=0.5))
    log = tmp_path / "stubborn.log"
    grandchild = int(wait_until(lambda: log.read_text().strip()).split()[0])  # printed after SIG_IGN

    # When it is stopped
    [result] = supervisor.stop_all()

    # Then it was killed after its timeout, and nothing of its group survives
    assert result.killed
    assert result.returncode == -signal.SIGKILL
    assert not _alive(child.pid)
    wait_until(lambda: not _alive(grandchild))


def test_a_second_stop_request_skips_the_grace_period(tmp_path: Path) -> None:
    # Given a child that ignores SIGTERM (it says so once it does), with a grace period of 60 s
    force = threading.Event()
    supervisor = Supervisor(tmp_path, force=force)
    ignoring = tmp_path / "ignoring"
    stubborn = (
        f"import pathlib, signal, time; signal.signal(15, 1); pathlib.Path({str(ignoring)!r}).touch(); "
        "time.sleep(600)"
    )
    child = supervisor.start(
        ChildSpec("stubborn", _python(stubborn), ready=ignoring.exists, stop_timeout_s=60)
    )
    assert supervisor.wait_ready([child], timeout_s=READY_S)

    # When the stop is forced
    force.set()
    started = time.monotonic()
    [result] = supervisor.stop_all()

    # Then it is killed at once. The kill takes milliseconds even on a loaded machine; half the grace
    # period tells "skipped it" from "waited it out" with room to spare.
    assert result.killed
    assert time.monotonic() - started < 30


def test_wait_ready_polls_the_probe(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    slow_start = f"import pathlib, time; time.sleep(0.3); pathlib.Path({str(flag)!r}).touch(); time.sleep(60)"
    with Supervisor(tmp_path) as supervisor:
        child = supervisor.start(ChildSpec("slow", _python(slow_start), ready=flag.exists))
        assert supervisor.wait_ready([child], timeout_s=READY_S)
        assert flag.exists()


def test_a_child_that_dies_during_start_up_is_reported_with_its_last_log_line(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        child = supervisor.start(
            ChildSpec(
                "broken", _python("import sys; print('port 6390 in use'); sys.exit(3)"), ready=lambda: False
            )
        )
        with pytest.raises(
            StorefrontJobsError, match=r"broken \(pid \d+\) exited with code 3: port 6390 in use"
        ):
            supervisor.wait_ready([child], timeout_s=READY_S)
        assert supervisor.crashed() == [child]


def test_wait_ready_gives_up_after_its_timeout_or_when_cancelled(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        child = supervisor.start(ChildSpec("mute", SLEEPER, ready=lambda: False))
        with pytest.raises(StorefrontJobsError, match=r"mute not ready after 0\.2 s"):
            supervisor.wait_ready([child], timeout_s=0.2)
        cancel = threading.Event()
        cancel.set()
        assert supervisor.wait_ready([child], timeout_s=READY_S, cancel=cancel) is False


def test_children_are_in_their_own_process_groups_so_a_terminal_ctrl_c_misses_them(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        child = supervisor.start(ChildSpec("sleeper", SLEEPER))
        assert os.getpgid(child.pid) == child.pid != os.getpgrp()


def test_children_die_with_a_killed_supervisor(tmp_path: Path) -> None:
    # A supervisor process that is SIGKILLed cannot stop its children; the death signal does.
    script = _python(
        f"""
        import sys, time
        from pathlib import Path
        from storefront_jobs.devserver.supervisor import ChildSpec, Supervisor
        child = Supervisor(Path({str(tmp_path)!r})).start(ChildSpec("orphan", {SLEEPER!r}))
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    import subprocess

    parent = subprocess.Popen(script, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    orphan = int(parent.stdout.readline())
    assert _alive(orphan)
    parent.kill()
    parent.wait()
    wait_until(lambda: not _alive(orphan))


def test_a_child_killed_from_outside_is_reported_as_such(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        child = supervisor.start(ChildSpec("victim", SLEEPER))
        os.kill(child.pid, signal.SIGKILL)
        child.proc.wait()
        assert supervisor.crashed() == [child]
        assert child.describe_exit().startswith(f"victim (pid {child.pid}) was killed by SIGKILL (log: ")
