"""A supervisor of child processes: start them, wait until they answer, stop them all, leave nothing.

``storefront-jobs dev`` runs its embedded Redis and its worker pools under
one :class:`Supervisor`; beat, Flower and the admin API are more children
of the same kind. The lifecycle of a child:

1. **Start**: ``Popen`` with stdout and stderr to ``<log_dir>/<name>.log``,
   in a process group of its own. A terminal's Ctrl-C goes to the whole
   foreground group; keeping children out of it means only the supervisor
   hears it, and it stops them in order (a worker must finish and ack its
   jobs while Redis is still up). On Linux the child also gets the
   supervisor's death as a signal (``PR_SET_PDEATHSIG``), so even a
   ``kill -9`` of the supervisor leaves no orphans.
2. **Ready**: the child's probe is polled until it answers; a child that
   exits first, or never answers, fails start-up with its last log line.
3. **Stop**: children stop by layer, highest first (layer 0 is what the
   others need while they shut down, e.g. Redis). A layer's children all get
   their stop signal (SIGTERM: Celery's warm shutdown) at once, then up to
   ``stop_timeout_s`` to exit; whatever is left, and every process left in
   their groups (e.g. a prefork pool child), gets SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType

from storefront_jobs.errors import StorefrontJobsError

_PR_SET_PDEATHSIG = 1
_POLL_S = 0.05


@dataclasses.dataclass(frozen=True)
class ChildSpec:
    """What to run, and how to tell that it is ready and how to stop it."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    #: Stopped after every child of a higher layer has exited.
    layer: int = 1
    #: Returns True once the child serves; polled until then. None: ready when started.
    ready: Callable[[], bool] | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 15.0
    #: Signal the child gets if the supervisor dies without stopping it.
    death_signal: int = signal.SIGTERM


@dataclasses.dataclass(frozen=True)
class StopResult:
    name: str
    pid: int
    returncode: int
    killed: bool

    def describe(self) -> str:
        if self.killed:
            how = "killed (did not stop in time)"
        elif self.returncode < 0:
            # Stopped by its stop signal: some servers (uvicorn) shut down cleanly, then re-raise the
            # signal so that their exit status says why they exited.
            how = f"exited on {signal.Signals(-self.returncode).name}"
        else:
            how = f"exited with code {self.returncode}"
        return f"{self.name} (pid {self.pid}) {how}"


class Child:
    """A started child process."""

    def __init__(self, spec: ChildSpec, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.spec = spec
        self.proc = proc
        self.log_path = log_path
        self.stopping = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""

    def describe_exit(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            # Killed from outside (OOM killer, kill -9): its last log line is just whatever it did last.
            killer = signal.Signals(-code).name
            return f"{self.name} (pid {self.pid}) was killed by {killer} (log: {self.log_path})"
        line = self.last_log_line()
        return (
            f"{self.name} (pid {self.pid}) exited with code {code}"
            + (f": {line}" if line else "")
            + f" (log: {self.log_path})"
        )


def _death_signal_setter(sig: int) -> Callable[[], None] | None:
    """A preexec function that asks Linux to send ``sig`` to the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, in the parent: the child between fork and exec should do as little as possible.
    prctl = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).prctl
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), sig)

    return set_death_signal


class Supervisor:
    """Starts children and guarantees they are all gone when it stops (or its ``with`` block ends).

    Start children from a thread that lives as long as they do (the main
    thread): Linux delivers the death signal when the *thread* that started
    a child ends.
    """

    def __init__(self, log_dir: Path, *, force: threading.Event | None = None) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.stopped: list[StopResult] = []
        #: Set it (e.g. on a second Ctrl-C) to skip the remaining graceful waits.
        self.force = force or threading.Event()

    def start(self, spec: ChildSpec) -> Child:
        if any(child.name == spec.name for child in self.children):
            raise ValueError(f"a child named {spec.name!r} was already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{spec.name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(spec.argv),
                env=dict(spec.env) if spec.env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
                preexec_fn=_death_signal_setter(spec.death_signal),  # noqa: PLW1509 - see _death_signal_setter
            )
        child = Child(spec, proc, log_path)
        self.children.append(child)
        return child

    def wait_ready(
        self, children: Sequence[Child], timeout_s: float, cancel: threading.Event | None = None
    ) -> bool:
        """Poll each child's probe until all answer; False if ``cancel`` was set first.

        Raises :class:`StorefrontJobsError` naming the child that exited or
        did not answer within ``timeout_s``.
        """
        pending = [child for child in children if child.spec.ready is not None]
        deadline = time.monotonic() + timeout_s
        while pending:
            if cancel is not None and cancel.is_set():
                return False
            for child in list(pending):
                if not child.running():
                    raise StorefrontJobsError(child.describe_exit() + " before it was ready")
                probe = child.spec.ready
                if probe is None or probe():
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                names = ", ".join(child.name for child in pending)
                raise StorefrontJobsError(f"{names} not ready after {timeout_s:g} s; logs in {self.log_dir}")
            if pending:
                time.sleep(_POLL_S)
        return True

    def crashed(self) -> list[Child]:
        """Children that exited without being asked to."""
        return [child for child in self.children if not child.stopping and not child.running()]

    def pids(self) -> list[int]:
        return [child.pid for child in self.children]

    def stop_all(self, min_layer: int = 0) -> list[StopResult]:
        """Stop every child of ``layer >= min_layer``, highest layer first; returns what happened."""
        results: list[StopResult] = []
        layers = sorted({c.spec.layer for c in self.children if c.spec.layer >= min_layer}, reverse=True)
        for layer in layers:
            results += self._stop_group([c for c in self.children if c.spec.layer == layer])
        self.stopped += results
        return results

    def _stop_group(self, group: Sequence[Child]) -> list[StopResult]:
        group = [child for child in group if not child.stopping]
        for child in group:
            child.stopping = True
            if child.running():
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(child.spec.stop_signal)
        deadline = time.monotonic() + max((c.spec.stop_timeout_s for c in group), default=0.0)
        while any(c.running() for c in group) and time.monotonic() < deadline and not self.force.is_set():
            time.sleep(_POLL_S)
        results = []
        for child in group:
            killed = child.running()
            _kill_group(child.pid)
            results.append(StopResult(child.name, child.pid, child.proc.wait(), killed))
        return results

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def _kill_group(pgid: int) -> None:
    """SIGKILL every process still in a child's group, the child included.

    A child is the leader of its own group (``process_group=0``), so the
    group id is its pid; sweeping it catches a grandchild that outlived its
    parent, such as a prefork pool process.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP set :attr:`stop`; a second one also sets :attr:`force`.

    Installs handlers for the ``with`` block and restores the previous ones
    after it. Only the main thread may install signal handlers.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.force = threading.Event()
        self.received: list[str] = []
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum).name)
        if self.stop.is_set():
            self.force.set()
        self.stop.set()

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]  # whatever signal.signal returned before
