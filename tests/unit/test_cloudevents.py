"""`schemas.cloudevents.header_map`: its cache of repeating header values changes nothing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.cloudevents import header_map

names = st.sampled_from(["ce_specversion", "ce_source", "ce_type", "content-type", "tenant"])
values = st.one_of(st.none(), st.binary(max_size=12), st.text(max_size=8).map(str.encode))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.one_of(names, st.text(max_size=6)), values), max_size=10))
def test_header_map_is_the_plain_decode(headers: list[tuple[str, bytes | None]]) -> None:
    """Equal to decoding every value (last one wins, bad UTF-8 replaced, None as ""), on
    the first call and again from the cache."""
    expected = {k: (v or b"").decode("utf-8", "replace") for k, v in headers}
    assert header_map(headers) == expected
    assert header_map(headers) == expected
