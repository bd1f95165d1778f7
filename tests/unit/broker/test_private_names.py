"""The contract with kombu, Celery and billiard: each private name the platform relies on is listed and there.

The registry is ``storefront_jobs/broker/internals.py``; the check,
``storefront_jobs/broker/contract.py``. Before widening a pin, this file runs
against the candidate version (docs/architecture.md, "Upgrading kombu").
"""

from __future__ import annotations

import ast
from collections import defaultdict

import celery
import kombu
import pytest
from kombu.transport import redis as kombu_redis

from storefront_jobs.broker import contract
from storefront_jobs.broker.internals import REGISTRY, Internal
from tests.unit.broker import source_scan

#: Where code outside storefront_jobs/broker/ still names a private name of kombu, Celery or billiard
#: itself, instead of calling storefront_jobs.broker.accessors. Only ever shrinks.
NOT_YET_BEHIND_ACCESSORS: set[tuple[str, str]] = set()
#: The libraries whose private names live only in storefront_jobs/broker/ (STYLE.md, 7c).
ADAPTED = ("kombu", "celery", "billiard")


def entry(qualified_name: str) -> Internal:
    return next(e for e in REGISTRY if e.qualified_name == qualified_name)


# --- the names are there, as the platform uses them -----------------------------------------------


def test_every_listed_name_is_there_on_the_installed_versions() -> None:
    found = contract.problems()
    assert not found, "\n".join(found)


def test_a_name_an_upgrade_removes_fails_with_the_name_the_version_and_what_relies_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a kombu without the poll hook the reliable fetch overrides
    monkeypatch.delattr(kombu_redis.Channel, "_brpop_start")
    # Then the contract names it, with the installed version and the module that breaks
    assert contract.problems() == [
        f"kombu {kombu.__version__}: kombu.transport.redis.Channel._brpop_start is missing "
        "(storefront_jobs/broker/fetch.py relies on it: "
        "overridden: sends the fetch script or a doorbell wait)"
    ]


def test_a_changed_signature_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu_redis.Channel, "_q_for_pri", lambda self, queue: queue)
    assert contract.problem(entry("kombu.transport.redis.Channel._q_for_pri")) == (
        f"kombu {kombu.__version__}: kombu.transport.redis.Channel._q_for_pri has the parameters "
        "(self, queue), not (self, queue, pri) (storefront_jobs/broker/transport.py, "
        "storefront_jobs/broker/fetch.py relies on it: the list of a lane for a message priority)"
    )


def test_a_keyword_kombu_stops_reading_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def put(self: object, queue: str, message: object, **kwargs: object) -> None:
        """A _put that pushes whatever it is given."""

    monkeypatch.setattr(kombu_redis.Channel, "_put", put)
    problem = contract.problem(entry("kombu.transport.redis.Channel._put(_publish_batch=)"))
    assert problem is not None
    assert problem.startswith(
        f"kombu {kombu.__version__}: kombu.transport.redis.Channel._put(_publish_batch=) is missing: "
        "_put no longer reads it (storefront_jobs/broker/transport.py, storefront_jobs/broker/accessors.py"
    )


def test_a_changed_wire_value_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kombu_redis.Channel, "sep", ":")
    problem = contract.problem(entry("kombu.transport.redis.Channel.sep"))
    assert problem is not None
    assert (
        "kombu.transport.redis.Channel.sep is ':', not '\\x06\\x16' as storefront-jobs writes it" in problem
    )


def test_an_instance_attribute_is_found_in_the_source_and_a_gone_one_is_missing() -> None:
    assert contract.problem(entry("kombu.transport.redis.Channel._queue_cycle")) is None
    gone = Internal("celery.worker.request:Request", "_gone", "attribute", ("x.py",), "a test")
    assert contract.problem(gone) == (
        f"celery {celery.__version__}: celery.worker.request.Request._gone is missing "
        "(x.py relies on it: a test)"
    )


def test_a_module_an_upgrade_removes_fails() -> None:
    gone = Internal("kombu.transport.redis_gone:Channel", "_put", "method", ("x.py",), "a test", "(self)")
    assert contract.problem(gone) == (
        f"kombu {kombu.__version__}: kombu.transport.redis_gone.Channel._put is missing: "
        "kombu.transport.redis_gone:Channel is gone (x.py relies on it: a test)"
    )


def test_each_transport_option_storefront_jobs_sets_is_one_kombu_reads() -> None:
    from storefront_jobs.application import transport_options
    from storefront_jobs.broker.replicas import QUORUM_OPTION
    from storefront_jobs.broker.tenants import FAIRNESS_OPTION
    from storefront_jobs.broker.transport import CAPACITY_OPTION
    from storefront_jobs.settings import load_settings

    # Our own options, read by our transport from the connection's transport options.
    ours = {CAPACITY_OPTION, FAIRNESS_OPTION, QUORUM_OPTION}
    options = set(transport_options(load_settings())) - ours
    unread = options - set(kombu_redis.Channel.from_transport_options)
    assert not unread, f"kombu {kombu.__version__} no longer reads the transport options {sorted(unread)}"
    # Behind Sentinel, kombu's Sentinel channel reads the group's options too.
    sentinel = load_settings(broker_url="sentinel://127.0.0.1:26379/0", broker_master_name="mymaster")
    options = set(transport_options(sentinel)) - ours
    assert {"master_name", "sentinel_kwargs"} <= options
    unread = options - set(kombu_redis.SentinelChannel.from_transport_options)
    assert not unread, f"kombu {kombu.__version__} no longer reads the transport options {sorted(unread)}"


# --- the list is complete: the package's source against the registry -------------------------------

TREES = source_scan.sources()
USES = source_scan.uses(TREES)


def unlisted_uses(registry: tuple[Internal, ...]) -> list[str]:
    """Private names the package uses, defines nowhere, and the registry does not list."""
    known = source_scan.defined(TREES) | {e.name for e in registry}
    return [f"{u.path} .{u.name}" for u in USES if u.name not in known]


def unlisted_overrides(registry: tuple[Internal, ...]) -> list[str]:
    """Private names a class shares with a library base class, not listed under that base."""
    unlisted = []
    for path, cls, names in source_scan.classes(TREES):
        bases = [b for b in cls.__mro__[1:-1] if not b.__module__.startswith("storefront_jobs")]
        for name in sorted(names):
            owners = {
                f"{b.__module__}:{b.__qualname__}"
                for b in bases
                if name in vars(b) or contract.assigned_by(b, name)
            }
            if owners and not owners & {e.owner for e in registry if e.name == name}:
                unlisted.append(f"{path}: {cls.__name__}.{name} is {sorted(owners)[0]}'s")
    return unlisted


def without(name: str) -> tuple[Internal, ...]:
    return tuple(e for e in REGISTRY if e.name != name)


def test_the_scan_sees_every_form_of_a_use() -> None:
    tree = ast.parse(
        "def f(o, **kw):\n    o._a = o._b\n    getattr(o, '_c')\n    g(_d=1)\n    return '_e' in kw\n"
    )
    assert {u.name for u in source_scan.uses({"x.py": tree})} == {"_a", "_b", "_c", "_d", "_e"}


def test_every_private_name_the_package_uses_but_does_not_define_is_listed() -> None:
    unlisted = unlisted_uses(REGISTRY)
    assert not unlisted, "private names of another library, not in broker/internals.py: " + ", ".join(
        unlisted
    )
    # A name the registry forgot is found (kombu's, called by the reliable fetch):
    assert unlisted_uses(without("_flush_brpop_reauth")) == [
        "storefront_jobs/broker/fetch.py ._flush_brpop_reauth"
    ]


def test_every_private_name_a_class_shares_with_a_library_base_is_listed() -> None:
    # An override of kombu's _put, or a `self._in_poll = ...` that kombu's poller reads, is a
    # private name of the library even though the package defines it.
    unlisted = unlisted_overrides(REGISTRY)
    assert not unlisted, "list these in broker/internals.py: " + ", ".join(unlisted)
    assert unlisted_overrides(without("_in_poll")) == [
        "storefront_jobs/broker/fetch.py: FetchingChannel._in_poll is kombu.transport.redis:Channel's"
    ]


def test_the_registry_names_every_module_that_uses_each_private_name() -> None:
    users: dict[str, set[str]] = defaultdict(set)
    for use in USES:
        users[use.name].add(use.path)
    for path, _, names in source_scan.classes(TREES):
        for name in names:
            users[name].add(path)
    listed: dict[str, set[str]] = defaultdict(set)
    for e in REGISTRY:
        if source_scan.is_private(e.name):
            listed[e.name] |= set(e.used_in)
    for path, name in NOT_YET_BEHIND_ACCESSORS:
        if source_scan.is_private(name):
            listed[name].add(path)
    wrong = {name: sorted(users[name]) for name in listed if users[name] != listed[name]}
    assert not wrong, f"used_in in broker/internals.py should be: {wrong}"


def _outside_broker_uses() -> set[tuple[str, str]]:
    """(module, name): the private names and internals of kombu, Celery or billiard named outside broker/."""
    adapted = {e.name for e in REGISTRY if e.distribution in ADAPTED}
    found = {
        (u.path, u.name)
        for u in USES
        if u.name in adapted and not u.path.startswith("storefront_jobs/broker/")
    }
    for path, tree in TREES.items():
        if path.startswith("storefront_jobs/broker/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "request_stack":
                found.add((path, "request_stack"))
            if isinstance(node, ast.ImportFrom) and (
                node.module == "celery.worker.state"
                or (node.module == "celery.worker" and any(a.name == "state" for a in node.names))
            ):
                found.add((path, "celery.worker.state"))
    return found


def test_outside_broker_the_private_names_of_kombu_celery_and_billiard_go_through_accessors() -> None:
    found = _outside_broker_uses()
    assert not found - NOT_YET_BEHIND_ACCESSORS, (
        f"call storefront_jobs.broker.accessors instead: {sorted(found - NOT_YET_BEHIND_ACCESSORS)}"
    )
    assert not NOT_YET_BEHIND_ACCESSORS - found, (
        "switched to the accessors: remove from NOT_YET_BEHIND_ACCESSORS "
        f"{sorted(NOT_YET_BEHIND_ACCESSORS - found)}"
    )
