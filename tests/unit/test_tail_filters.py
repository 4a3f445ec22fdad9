"""tail's filters (`--key`, `--tenant`, `--where`), `--since` parsing and its flags."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from wecom_stream.cli import build_parser
from wecom_stream.tail import RecordFilter, RecordView, parse_since, parse_where

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW_MS = 1_796_112_000_000


def view(value: Any, key: str | None = "k1", **headers: str) -> RecordView:
    return RecordView("t", 0, 0, NOW_MS, key, dict(headers), value, True)


MESSAGE = {"sender_role": "customer", "payload": {"type": 7, "flag": True}, "tags": ["a", "b"]}


@pytest.mark.parametrize(
    ("where", "matches"),
    [
        ("sender_role=customer", True),
        ("sender_role=bot", False),
        ("payload.type=7", True),
        ("payload.flag=true", True),
        ("tags.1=b", True),
        ("tags.5=b", False),
        ("payload.missing=7", False),
        ("ce_type=wecomstream.chat.message.v2", True),  # no such field: the header
        ("ce_type=other", False),
        ("payload=7", False),  # an object is compared as its JSON
        ('payload={"type":7,"flag":true}', True),
    ],
)
def test_where_compares_a_value_path_else_a_header(where: str, matches: bool) -> None:
    record = view(MESSAGE, ce_type="wecomstream.chat.message.v2")
    assert RecordFilter(where=(parse_where(where),)).matches(record) is matches


def test_where_on_a_string_field_matches_the_number_as_text() -> None:
    assert RecordFilter(where=(parse_where("type=7"),)).matches(view({"type": "7"}))


def test_where_value_may_contain_equals_and_be_empty() -> None:
    assert parse_where("a=b=c").expected == "b=c"
    assert RecordFilter(where=(parse_where("a="),)).matches(view({"a": ""}))


@pytest.mark.parametrize("bad", ["no-equals", "=value", " =x"])
def test_where_needs_field_equals_value(bad: str) -> None:
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_where(bad)


def test_filters_must_all_match() -> None:
    both = RecordFilter(key="k1", tenant="acme", where=(parse_where("sender_role=customer"),))
    assert both.matches(view(MESSAGE, tenant="acme"))
    assert not both.matches(view(MESSAGE, key="k2", tenant="acme"))
    assert not both.matches(view(MESSAGE, tenant="other"))
    assert not both.matches(view(MESSAGE))  # no tenant header
    assert not both.matches(view({"sender_role": "bot"}, tenant="acme"))
    assert RecordFilter().matches(view(None, key=None))


def test_where_on_a_text_value_only_sees_headers() -> None:
    record = RecordView("t", 0, 0, None, None, {"ce_id": "x"}, "plain text", False)
    assert RecordFilter(where=(parse_where("ce_id=x"),)).matches(record)
    assert not RecordFilter(where=(parse_where("text=plain"),)).matches(record)


@pytest.mark.parametrize(
    ("text", "ago_s"),
    [("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400)],
)
def test_since_duration_is_before_now(text: str, ago_s: int) -> None:
    assert parse_since(text, NOW) == NOW_MS - ago_s * 1000


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2026-12-01T08:00:00Z", NOW_MS),
        ("2026-12-01T16:00:00+08:00", NOW_MS),
        ("2026-12-01T08:00:00.250Z", NOW_MS + 250),
    ],
)
def test_since_time_is_absolute(text: str, ms: int) -> None:
    assert parse_since(text, NOW) == ms


@pytest.mark.parametrize("bad", ["", "10", "10x", "m10", "2026-12-01T08:00:00", "yesterday"])
def test_since_refuses_a_duration_without_unit_or_a_time_without_zone(bad: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_since(bad, NOW)


def test_tail_flags_parse() -> None:
    args = build_parser().parse_args(
        ["tail", "chat.message.v2", "--where", "a=1", "--where", "ce_type=x", "--since", "10m"]
    )
    assert [w.name for w in args.where] == ["a", "ce_type"]
    assert isinstance(args.since, int)
    assert (args.follow, args.json, args.key, args.tenant) == (False, False, None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--since", "soon"],
        ["--where", "novalue"],
        ["--since", "10m", "--from-end"],
    ],
)
def test_bad_tail_flags_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["tail", "chat.message.v2", *argv])
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_json_line_of_a_view_is_stable() -> None:
    assert orjson.loads(view({"a": 1}).json_line())["value"] == {"a": 1}
