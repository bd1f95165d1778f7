"""Reserved processes: the option, the check against the pool, and the rule that closes lower lanes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from storefront_jobs.broker.fetch import reservation_from_options, reservation_option
from storefront_jobs.cli import worker as worker_cli
from storefront_jobs.jobs.priorities import Priority
from storefront_jobs.settings import load_settings
from storefront_jobs.worker.reservation import Reservation, lanes_open, parse_reservation

ALL = ["p0.critical", "p1.high", "p2.default", "p3.low", "p4.bulk"]
URGENT = Reservation((Priority.CRITICAL, Priority.HIGH), 1)


def test_the_option_names_lanes_and_a_number_of_processes() -> None:
    assert parse_reservation("critical, HIGH=2") == Reservation((Priority.CRITICAL, Priority.HIGH), 2)
    assert URGENT.describe() == "CRITICAL,HIGH=1"
    assert parse_reservation("CRITICAL=1", lend=True).describe() == "CRITICAL=1 +lend"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("CRITICAL", "is not LANES=PROCESSES"),
        ("CRITICAL=one", "is not a number of processes"),
        ("CRITICAL=0", "reserve at least 1 process"),
        ("URGENT=1", "unknown priority 'URGENT'"),
    ],
)
def test_a_bad_option_says_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reservation(text)


def test_lower_lanes_close_once_they_hold_every_unreserved_process() -> None:
    # A pool of 4 processes keeping 1: BULK and LOW may hold 3 of them
    def open_with(busy: list[str]) -> list[str]:
        return lanes_open(ALL, URGENT, concurrency=4, busy_lanes=busy)

    assert open_with(["p4.bulk", "p4.bulk"]) == ALL
    assert open_with(["p4.bulk", "p3.low", "p4.bulk"]) == ["p0.critical", "p1.high"]
    # Urgent jobs do not count against the lower lanes' share
    assert open_with(["p0.critical", "p0.critical", "p4.bulk", "p4.bulk"]) == ALL


def test_without_a_reservation_or_when_lending_every_lane_stays_open() -> None:
    busy = ["p4.bulk"] * 4
    assert lanes_open(ALL, None, concurrency=4, busy_lanes=busy) == ALL
    lending = Reservation(URGENT.priorities, 1, lend=True)
    assert lanes_open(ALL, lending, concurrency=4, busy_lanes=busy) == ALL


def test_closed_lanes_keep_the_order_and_pausing_of_the_consumed_ones() -> None:
    # CRITICAL paused (not consumed): only HIGH stays open
    consumed = ["p1.high", "p4.bulk"]
    assert lanes_open(consumed, URGENT, concurrency=2, busy_lanes=["p4.bulk"]) == ["p1.high"]


@pytest.mark.parametrize(
    ("lanes", "concurrency", "message"),
    [
        ([Priority.HIGH, Priority.BULK], 2, "CRITICAL are not consumed by this pool"),
        ([Priority.CRITICAL, Priority.HIGH], 2, "every lane of the pool is reserved"),
        (list(Priority), 1, "leave none of the pool's 1"),
    ],
)
def test_a_reservation_must_fit_its_pool(lanes: list[Priority], concurrency: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        URGENT.check_pool(lanes, concurrency)


def test_the_reservation_reaches_the_fetch_as_a_transport_option() -> None:
    option = {"storefront_reservation": reservation_option(URGENT, 4)}
    assert reservation_from_options(option) == (URGENT, 4)
    assert reservation_from_options({}) is None


def test_the_setting_is_parsed_and_lending_applies_to_it() -> None:
    settings = load_settings(worker_reserve="CRITICAL=2", worker_lend_reserved=True)
    assert settings.worker_reserve == Reservation((Priority.CRITICAL,), 2, lend=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--priorities", "BULK", "--reserve", "BULK=1", "-c", "2"], "every lane of the pool is reserved"),
        (["--priorities", "all", "--reserve", "CRITICAL=2", "-c", "2"], "leave none of the pool's 2"),
        (["--priorities", "all", "--reserve", "CRITICAL"], "is not LANES=PROCESSES"),
    ],
)
def test_the_worker_refuses_a_reservation_that_cannot_work(args: list[str], message: str) -> None:
    result = CliRunner().invoke(worker_cli.worker, args)
    assert result.exit_code == 2
    assert "--reserve" in result.output
    assert message in result.output
