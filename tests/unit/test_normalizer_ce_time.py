"""The normalizer's hot-path shortcuts change nothing: a `ce_time` passed on as it is equals
what `format_time` writes for the parsed moment; other shapes are parsed and reformatted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processors.engine.testing import input_record
from processors.normalizer import _received
from schemas.cloudevents import event_headers, format_time


@pytest.mark.parametrize("ms", [0, 1, 120, 999])
def test_ce_time_passed_on_is_what_format_time_writes(ms: int) -> None:
    moment = datetime(2026, 11, 22, 23, 59, 59, ms * 1000, tzinfo=UTC)
    for when in (moment, moment + timedelta(days=400), moment.replace(year=1)):
        text = format_time(when)
        received, passed_on = _received(input_record("t", b"{}", headers={"ce_time": text}))
        assert (received, passed_on) == (when, text)
        via_str = event_headers(ce_id="i", source="s", ce_type="t", time=text)
        via_datetime = event_headers(ce_id="i", source="s", ce_type="t", time=received)
        assert via_str == via_datetime


def test_other_ce_time_shapes_are_reformatted() -> None:
    for text in (
        "2026-11-22T08:00:00.120+00:00",
        "2026-11-22T16:00:00.120+08:00",
        "2026-11-22T08:00:00Z",
    ):
        received, passed_on = _received(input_record("t", b"{}", headers={"ce_time": text}))
        assert passed_on is None
        assert received.tzinfo is UTC
    received, passed_on = _received(
        input_record("t", b"{}", headers={"ce_time": "2026-13-22T08:00:00.120Z"})
    )
    assert passed_on is None
    assert received == datetime.fromtimestamp(1_700_000_000, tz=UTC)
