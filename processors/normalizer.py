"""The normalizer: `raw.yuju.message.v1` → `chat.message.v2`, one strict `ChatMessage` per
distinct `messageId` of a tenant, keyed `tenant|conversation id`. Pure functions plus the
handler the engine runs (`declare`, registered in pyproject.toml; `PROCESSOR` at the defaults).

Tenants: the record's `tenant` header (`schemas.tenancy.tenant_of`; `default` when absent,
the DLQ when it is no valid tenant name) scopes every store key and the output's key and
`ce_id` (`tenant|messageId`), so one tenant's messages never suppress, nor share a
conversation mode with, another's.

It also reads `raw.yuju.chat-record.v1` (history written by `wecom-stream backfill
chat-records`): one `ChatMessage` (`origin` chat_record) per distinct entry id, mapped by
`processors._chat_record_mapping`; the store `history` remembers those ids for
`WECOM_STREAM_NORMALIZER_HISTORY_DEDUP_RETENTION_MS` (default 90 days), so a re-run of the
same backfill adds nothing. Both inputs are keyed by conversation, so order within a chat is
kept.

Both body formats are accepted (group-level `data` wrapper; flat enterprise v2 with
`messageType, imContactId, imRoomId, imBotId, botUserId`), keys with stray whitespace, and
timestamps in s / ms as numbers or strings (`schemas.yuju`). Every `type` is mapped to a
`kind` (table `KINDS`); unknown values (0, 17, 10002, anything new) become `unknown` with
`type_code` and the raw `payload` kept: never rejected or dropped.

Two paths, one result: the common callback shape (plain JSON types in the used fields) is
read with orjson and the output built as a dict and written with `orjson.dumps`
(`processors._normalizer_fast`, `chat_fields`); anything unusual (numbers as strings,
junk in a field, snake_case keys, not JSON) goes through the tolerant `YujuMessage` and
`normalize` to a validated `ChatMessage`. `tests/unit/test_normalizer_fast.py` proves with
generated bodies (every PLATFORM.md quirk) that the fast output is byte-identical to the
model path's and validates as a `ChatMessage`.

Bounds: an id (`messageId`, `chatId`, `botId`, `contactId`, `roomId`; a chat record's
`chat_id`, `customer_id`) longer than `processors._bounds.MAX_ID_CHARS` sends the record to
the DLQ (`StateBoundError`): ids key the stores and appear in the output, so they are
neither cut nor hashed; every store value is a constant or a short channel name.

Deduplication: the store `seen` remembers each `messageId` for
`WECOM_STREAM_NORMALIZER_DEDUP_RETENTION_MS` of stream time (default 24 h; platform retries
come within minutes). A retry is dropped; a record that is not a message callback at all
(bad JSON, no `messageId`) goes to the DLQ.

Sender role and channel (`direction`: `outbound` when the company's side wrote it, `isSelf`
or `coworker`; else `inbound`):

| isSelf | sendBy / source / coworker | sender_role | channel |
|---|---|---|---|
| true | `sendBy` set, or source 0 (phone) / 1 (console manual send) | agent | human |
| true | any other or no source (automated, listed below) | bot | ai |
| false / absent | the contact is a coworker (`coworker: true`) | agent | human |
| false / absent | anyone else | customer | the conversation's mode |

Automated sources (PLATFORM.md): 2 broadcast, 3 auto-reply, 4 room creation, 5 reply by
another bot, 6 API, 7 SOP, 8 API broadcast, 9 tag SOP, 11/12 multi-room relay/replay,
13 auto-end session, 14 scheduled, 15 AI reply; an unknown future value counts as automated.

The conversation's mode is the channel of the company side's latest message (store `mode`,
`processors._conversation_mode`: refreshed by every message of the conversation, forgotten
after `WECOM_STREAM_NORMALIZER_MODE_RETENTION_MS` of silence): a customer writing after an
agent took over is in the human conversation, as the chat-record API (AI对话 / 人工对话)
files it; before any agent message, `ai`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from processors._bounds import check_id
from processors._chat_mapping import (
    KINDS,
    attachment_of,
    chat_fields,
    chat_json,
    kind_of,
    mentions_of,
    normalize,
    sender_of,
    text_of,
)
from processors._chat_record_mapping import chat_record_message
from processors._conversation_mode import (
    ModeRetention,
    current_entry,
    mode_of,
    remember_mode,
)
from processors._normalizer_fast import (
    FastMessage,
    is_canonical_ce_time,
    iso_of_ce_time,
    iso_utc,
    parse_fast,
)
from processors.engine.api import (
    Context,
    Handler,
    InputRecord,
    OutputRecord,
    Processor,
    StoreSpec,
)
from runtime.settings import ProcessorSettings
from schemas.chat import ChatMessage
from schemas.chat_record import ChatRecordEntry, entry_id
from schemas.cloudevents import event_headers, parse_time
from schemas.registry import CHAT_MESSAGE, RAW_YUJU_CHAT_RECORD, RAW_YUJU_MESSAGE, by_name
from schemas.tenancy import scoped_key, tenant_of
from schemas.yuju import YujuMessage

__all__ = [
    "CE_SOURCE",
    "KINDS",
    "PROCESSOR",
    "attachment_of",
    "chat_fields",
    "chat_json",
    "check_message_ids",
    "declare",
    "handle_message",
    "kind_of",
    "make_handler",
    "mentions_of",
    "normalize",
    "sender_of",
    "text_of",
]

CE_SOURCE = "wecom-stream/normalizer"
_CE_TYPE = by_name(CHAT_MESSAGE).ce_type
SEEN_STORE = "seen"
MODE_STORE = "mode"
HISTORY_STORE = "history"


def _received(record: InputRecord) -> tuple[datetime, str | None]:
    """`received_at_of`, and the `ce_time` header when it is what `format_time` would write
    for that moment (the ingress wrote it so), which spares formatting it again."""
    ce_time = record.headers.get("ce_time")
    if ce_time:
        try:
            moment = parse_time(ce_time)
        except ValueError:
            pass
        else:
            return moment, ce_time if is_canonical_ce_time(ce_time) else None
    return datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC), None


def _received_fast(record: InputRecord) -> tuple[str, str | datetime]:
    """`_received` for the fast path: (`received_at` as ISO text, the `ce_time` to write).
    A canonical `ce_time` is checked by its parts instead of parsed and formatted again."""
    ce_time = record.headers.get("ce_time")
    if ce_time and is_canonical_ce_time(ce_time):
        return iso_of_ce_time(ce_time), ce_time
    received_at = received_at_of(record)  # not canonical: the header is written anew
    return iso_utc(received_at), received_at


def received_at_of(record: InputRecord) -> datetime:
    """`ce_time` set by the ingress when it received the callback; else the record time."""
    return _received(record)[0]


def handle_message(
    record: InputRecord, ctx: Context, retention: ModeRetention
) -> Iterable[OutputRecord]:
    """Engine adapter: parse, drop retries, normalize, remember the conversation's mode
    (`processors._conversation_mode`, kept as `retention` says after its last refresh).

    The common callback shape takes the fast path (`processors._normalizer_fast`: orjson,
    the output dict built directly); anything unusual the tolerant model and `normalize`."""
    if record.value is None:
        raise ValueError("record has no value (a tombstone is not a message callback)")
    if record.topic == RAW_YUJU_CHAT_RECORD:
        return _handle_chat_record(record, ctx)
    tenant = tenant_of(record.headers)
    fast = parse_fast(record.value)
    if fast is not None:
        done = _handle_fast(record, ctx, fast, tenant, retention)
        if done is not None:
            return done
    return _handle_model(record, ctx, tenant, retention)


def _handle_model(
    record: InputRecord, ctx: Context, tenant: str, retention: ModeRetention
) -> Iterable[OutputRecord]:
    """The handler on the model path (`YujuMessage`, a validated `ChatMessage`)."""
    assert record.value is not None  # handle() checked
    msg = YujuMessage.model_validate_json(record.value)
    check_message_ids(msg)
    seen = ctx.store(SEEN_STORE)
    seen_key = scoped_key(tenant, msg.message_id)
    if seen_key in seen:
        return ()
    seen.set(seen_key, 1)
    modes = ctx.store(MODE_STORE)
    mode_key = scoped_key(tenant, msg.conversation_id)
    entry = current_entry(modes, mode_key, record.timestamp_ms, retention)
    received_at, ce_time = _received(record)
    out = normalize(msg, received_at=received_at, tenant=tenant, conversation_mode=mode_of(entry))
    message = (out.direction, out.channel)
    remember_mode(modes, mode_key, entry, message, record.timestamp_ms, retention)
    return (_output(out, ce_time),)


def check_message_ids(msg: YujuMessage | FastMessage) -> None:
    """`StateBoundError` (to the DLQ) when an id of the message is longer than
    `MAX_ID_CHARS`: `messageId` keys the `seen` store, the conversation the `mode` store,
    and all of them are in the output."""
    check_id("messageId", msg.message_id)
    check_id("chatId", msg.chat_id)
    check_id("botId", msg.bot_id)
    check_id("contactId", msg.contact_id)
    check_id("roomId", msg.room_id)


def _output(out: ChatMessage, ce_time: str | None) -> OutputRecord:
    """A validated `ChatMessage` as its record (key `tenant|conversation`), with its
    headers (`ce_id` `tenant|message_id`); `ce_time` passed on when the input's is
    canonical, else written from `received_at`."""
    headers = event_headers(
        ce_id=scoped_key(out.tenant, out.message_id),
        source=CE_SOURCE,
        ce_type=_CE_TYPE,
        time=ce_time or out.received_at,
        tenant=out.tenant,
    )
    return OutputRecord(CHAT_MESSAGE, scoped_key(out.tenant, out.conversation_id), out, headers)


def _handle_fast(
    record: InputRecord, ctx: Context, msg: FastMessage, tenant: str, retention: ModeRetention
) -> Iterable[OutputRecord] | None:
    """`handle` on the fast path: the same steps, the output serialized from a dict. None
    (nothing written to the stores) when orjson cannot write the output: the model path
    takes the record."""
    check_message_ids(msg)
    seen = ctx.store(SEEN_STORE)
    seen_key = scoped_key(tenant, msg.message_id)
    if seen_key in seen:
        return ()
    modes = ctx.store(MODE_STORE)
    conversation = msg.conversation_id
    mode_key = scoped_key(tenant, conversation)
    entry = current_entry(modes, mode_key, record.timestamp_ms, retention)
    received_iso, ce_time = _received_fast(record)
    out = chat_fields(
        msg, received_iso=received_iso, tenant=tenant, conversation_mode=mode_of(entry)
    )
    value = chat_json(out)
    if value is None:
        return None
    seen.set(seen_key, 1)
    message = (out["direction"], out["channel"])
    remember_mode(modes, mode_key, entry, message, record.timestamp_ms, retention)
    headers = event_headers(
        ce_id=seen_key,
        source=CE_SOURCE,
        ce_type=_CE_TYPE,
        time=ce_time,
        tenant=tenant,
    )
    return (OutputRecord(CHAT_MESSAGE, scoped_key(tenant, conversation), value, headers),)


def _handle_chat_record(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
    """One backfilled chat-record entry: dropped when its id was seen, else its message."""
    assert record.value is not None  # handle() checked
    tenant = tenant_of(record.headers)
    entry = ChatRecordEntry.model_validate_json(record.value)
    check_id("chat_id", entry.chat_id)
    check_id("customer_id", entry.customer_id)
    history = ctx.store(HISTORY_STORE)
    history_key = scoped_key(tenant, entry_id(entry))
    if history_key in history:  # a re-run of the same backfill: nothing is built
        return ()
    history.set(history_key, 1)
    received_at, ce_time = _received(record)
    return (_output(chat_record_message(entry, received_at=received_at, tenant=tenant), ce_time),)


def make_handler(mode_retention_ms: int) -> Handler:
    """The engine handler, with the conversation mode kept `mode_retention_ms` after its
    last refresh."""
    retention = ModeRetention.of(mode_retention_ms)

    def handle(record: InputRecord, ctx: Context) -> Iterable[OutputRecord]:
        return handle_message(record, ctx, retention)

    return handle


def declare(settings: ProcessorSettings) -> Processor:
    """The declaration with `WECOM_STREAM_NORMALIZER_DEDUP_RETENTION_MS`,
    `_HISTORY_DEDUP_RETENTION_MS` and `_MODE_RETENTION_MS` applied (the registered factory,
    pyproject.toml)."""
    mode_ms = settings.normalizer_mode_retention_ms
    return Processor(
        name="normalizer",
        inputs=(RAW_YUJU_MESSAGE, RAW_YUJU_CHAT_RECORD),
        outputs=(CHAT_MESSAGE,),
        handle=make_handler(mode_ms),
        stores=(
            StoreSpec(SEEN_STORE, settings.normalizer_dedup_retention_ms),
            StoreSpec(MODE_STORE, mode_ms),
            StoreSpec(HISTORY_STORE, settings.normalizer_history_dedup_retention_ms),
        ),
        state_version=2,  # store keys scoped by tenant (docs/upgrading.md)
    )


PROCESSOR = declare(ProcessorSettings.defaults())
"""The declaration at the defaults (dedup 24 h, history 90 days, mode 24 h); the runner
calls `declare` with the configured settings."""
