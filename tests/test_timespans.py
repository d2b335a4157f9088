"""The one reader of durations and start times behind every since/window/older_than."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest

from llmops_nb.errors import LLMOpsError
from llmops_nb.timespans import (
    MAX_NS,
    InvalidDuration,
    parse_duration,
    parse_since,
    parse_until,
    since_ns,
    to_ns,
)

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def test_every_duration_spelling_reads_the_same() -> None:
    assert parse_duration("90s") == dt.timedelta(seconds=90)
    assert parse_duration("15m") == parse_duration("15min") == parse_duration(" 15 MIN ")
    assert parse_duration("1.5h") == dt.timedelta(minutes=90)
    assert parse_duration("7D") == dt.timedelta(days=7)
    assert parse_duration("2w") == dt.timedelta(days=14)
    assert parse_duration(dt.timedelta(hours=3)) == dt.timedelta(hours=3)


def test_a_bad_duration_names_its_argument_in_one_line() -> None:
    class AgeError(LLMOpsError, ValueError):
        pass

    with pytest.raises(AgeError, match=r"^older_than='3y' is not a duration: use a number"):
        parse_duration("3y", name="older_than", error=AgeError)
    for bad in ("0m", dt.timedelta(0), dt.timedelta(hours=-1)):
        with pytest.raises(InvalidDuration, match="must be longer than zero"):
            parse_duration(bad, name="every")
    with pytest.raises(InvalidDuration, match=r"^window='99999999999d' is too long a duration"):
        parse_duration("99999999999d", name="window")
    with pytest.raises(InvalidDuration, match="too long a duration: it reaches before year 1"):
        parse_since("800000w", NOW)  # about 15,000 years back
    with pytest.raises(InvalidDuration, match=r"^every=None is not a duration"):
        parse_duration(None, name="every")  # type: ignore[arg-type]


def test_a_since_is_a_duration_back_or_a_date() -> None:
    assert parse_since("7d", NOW) == NOW - dt.timedelta(days=7)
    assert parse_since(dt.timedelta(minutes=5), NOW) == NOW - dt.timedelta(minutes=5)
    assert parse_since("2026-11-20", NOW) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_since(dt.date(2026, 11, 20), NOW) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_since("2026-11-20T09:30+01:00", NOW) == dt.datetime(
        2026, 11, 20, 8, 30, tzinfo=dt.UTC
    )
    for bad in ("last tuesday", "-3d", "", None, 5):
        with pytest.raises(InvalidDuration) as caught:
            parse_since(bad, NOW, name="until")  # type: ignore[arg-type]
        message = str(caught.value)
        assert message.startswith(f"until={bad!r} is neither a duration")
        assert "nor an ISO date" in message and "\n" not in message


@pytest.fixture
def kolkata() -> Iterator[None]:
    """This process in a zone 5:30 ahead of UTC (what a naive local time is read in)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Asia/Kolkata")
        time.tzset()
        yield
    time.tzset()


def test_a_naive_time_is_utc_or_local_as_the_caller_says(kolkata: None) -> None:
    naive = dt.datetime(2026, 12, 1, 9, 30)
    assert parse_since(naive, NOW) == dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
    assert parse_since(naive, NOW, naive="local") == dt.datetime(2026, 12, 1, 4, 0, tzinfo=dt.UTC)
    assert parse_since("2026-12-01", NOW, naive="local") == dt.datetime(
        2026, 11, 30, 18, 30, tzinfo=dt.UTC
    )


def test_since_ns_is_the_span_clock() -> None:
    assert since_ns(1_700_000_000_123_456_789) == 1_700_000_000_123_456_789  # already ns
    assert since_ns("2026-12-01T12:00:00.000001Z") == to_ns(NOW) + 1000
    assert to_ns(NOW) == 1_796_126_400 * 10**9
    assert since_ns("2999-01-01") == MAX_NS  # past the 64-bit clock: capped, not an overflow
    before = time.time_ns()
    ago = since_ns("5m")
    assert before - 300 * 10**9 - 10**9 < ago <= time.time_ns() - 300 * 10**9
    with pytest.raises(InvalidDuration, match="since=True is neither"):
        since_ns(True)  # type: ignore[arg-type]


def test_an_until_is_now_unless_given() -> None:
    before = dt.datetime.now(dt.UTC)
    assert before <= parse_until(None) <= dt.datetime.now(dt.UTC)
    assert parse_until("2026-11-20T10:00") == dt.datetime(2026, 11, 20, 10, tzinfo=dt.UTC)
    hour_ago = parse_until("1h")
    assert (
        before - dt.timedelta(hours=1, seconds=1)
        < hour_ago
        <= before - dt.timedelta(hours=1) + dt.timedelta(seconds=1)
    )
    with pytest.raises(InvalidDuration, match="^until='later' is neither a duration"):
        parse_until("later")
