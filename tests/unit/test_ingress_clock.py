"""The ingress's cached timestamp text equals what `schemas.cloudevents.format_time` writes
(the contract of the `ce_time` header), across second, day and year boundaries."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ingress._clock import ce_time, log_time
from schemas.cloudevents import format_time, parse_time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=4_102_444_800_000))  # up to 2100-01-01
def test_ce_time_equals_format_time(epoch_ms: int) -> None:
    text = ce_time(epoch_ms)
    assert text == format_time(EPOCH + timedelta(milliseconds=epoch_ms))
    assert parse_time(text) == EPOCH + timedelta(milliseconds=epoch_ms)


def test_log_time_is_now_in_utc_microseconds() -> None:
    before = datetime.now(UTC)
    text = log_time()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert before - timedelta(seconds=1) <= parse_time(text) <= after + timedelta(seconds=1)
