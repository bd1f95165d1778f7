"""Imported by a worker that bench.profile starts (``--imports bench.jobs,bench.profiled``): profiles it.

Each process of the pool (the main one, and every prefork child) runs
cProfile from its start to its clean exit and writes its statistics to
``$BENCH_PROFILE_DIR/<role>-<pid>.prof``, for bench.profile to add up. The
receivers are connected at import, which is what a module given to
``--imports`` is for; nothing outside the benchmark imports this one.
"""

from __future__ import annotations

import cProfile
import os
from pathlib import Path
from typing import Any

from celery import signals

#: Where the statistics go; set by bench.profile in the worker's environment.
PROFILE_DIR_VAR = "BENCH_PROFILE_DIR"

_profiles: dict[str, cProfile.Profile] = {}


def _start(role: str) -> None:
    profile = cProfile.Profile()
    _profiles[role] = profile
    profile.enable()


def _dump(role: str) -> None:
    profile = _profiles.pop(role, None)
    if profile is None:
        return
    profile.disable()
    profile.dump_stats(str(Path(os.environ[PROFILE_DIR_VAR]) / f"{role}-{os.getpid()}.prof"))


@signals.worker_init.connect(weak=False)
def _main_started(**_: Any) -> None:
    _main_pid.append(os.getpid())
    _start("main")


@signals.worker_shutdown.connect(weak=False)
def _main_stopping(**_: Any) -> None:
    _dump("main")


#: The main process's pid: the solo pool sends worker_process_init in the main process itself.
_main_pid: list[int] = []


@signals.worker_process_init.connect(weak=False)
def _child_started(**_: Any) -> None:
    if os.getpid() in _main_pid:
        return
    # A forked child inherits the parent's profiler, enabled: start afresh.
    inherited = _profiles.pop("main", None)
    if inherited is not None:
        inherited.disable()
    _start("child")


@signals.worker_process_shutdown.connect(weak=False)
def _child_stopping(**_: Any) -> None:
    _dump("child")
