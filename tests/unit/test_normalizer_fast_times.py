"""The normalizer fast path's time helpers against the slow functions they stand for:
`iso_utc` writes what pydantic writes, the epoch shortcut equals `parse_epoch`, and
`is_canonical_ce_time` accepts exactly `format_time`'s shape that `parse_time` reads (the
rest of the fast path: tests/unit/test_normalizer_fast.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processors._normalizer_fast import _epoch_text, is_canonical_ce_time, iso_of_ce_time, iso_utc
from schemas.cloudevents import format_time, parse_time
from schemas.yuju import parse_epoch


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.datetimes(timezones=st.just(UTC)),
        st.datetimes(timezones=st.just(UTC)).map(lambda m: m.replace(microsecond=0)),
    )
)
def test_iso_utc_is_pydantic_format(moment: datetime) -> None:
    from pydantic import TypeAdapter

    assert iso_utc(moment).encode() == TypeAdapter(datetime).dump_json(moment)[1:-1]
    ce_time = format_time(moment)
    assert iso_of_ce_time(ce_time) == iso_utc(parse_time(ce_time))


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.integers(0, 5_000_000_000_000),
        st.integers(0, 5_000_000_000_000).map(str),
        st.sampled_from(
            ["", "٣", "0100000000000", "+1763798400000", "1e12", 1.5e12, None, "9" * 5000]
        ),
    )
)
def test_epoch_shortcut_is_parse_epoch(value: Any) -> None:
    moment = parse_epoch(value)
    assert _epoch_text(value) == (None if moment is None else iso_utc(moment))


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(format_time),
        st.from_regex(
            r"\A[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9]\.[0-9]{3}Z\Z"
        ),
        st.text(max_size=30),
        st.sampled_from(
            [
                "2026-02-30T08:00:00.000Z",
                "2026-11-22T24:00:00.000Z",
                "2026-11-22T08:00:60.000Z",
                "2026-11-22T08:00:00.000+00:00",
                "2026-11-22T08:00:00Z",
                "2026-11-22 08:00:00.000Z",
                "2026-11-22T08:00:00.0000Z",
                "２026-11-22T08:00:00.000Z",
            ]
        ),
    )
)
def test_canonical_ce_time_is_format_and_parse(ce_time: str) -> None:
    """`is_canonical_ce_time` is the handler's old test: `format_time`'s shape (the regex)
    and `parse_time` accepts it; the cache answers the same the second time."""
    shape = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
    shaped = re.fullmatch(shape, ce_time)
    try:
        parse_time(ce_time)
    except ValueError:
        parses = False
    else:
        parses = True
    expected = bool(shaped) and parses
    assert is_canonical_ce_time(ce_time) is expected
    assert is_canonical_ce_time(ce_time) is expected
