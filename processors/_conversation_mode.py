"""The normalizer's conversation mode: whether a conversation is in the hands of a person
(`human`) or of the bot (`ai`), as the chat-record API files its messages (人工对话 / AI对话).
Private to `processors.normalizer`.

The store `mode` holds `tenant|conversation` → the stream time (ms) it was last refreshed,
for conversations in human mode only; no entry means `ai`. A message from the company's
side decides the mode (an agent or a coworker: human; the bot: ai, and the entry goes). The
entry expires `WECOM_STREAM_NORMALIZER_MODE_RETENTION_MS` after its last refresh, and every
message of the conversation, from either side, refreshes it once `refresh_ms` has passed
since the last refresh: the mode lives while the conversation is active (an agent talking
for 25 hours keeps it), and a conversation silent for the whole retention starts over in
`ai`. Refreshing at most every `refresh_ms` (a 24th of the retention) spares a changelog
write per message. An entry older than the retention counts as gone even before the
engine's expiry (which runs at each commit) has removed it.
"""

from __future__ import annotations

from typing import NamedTuple

from processors.engine import Store
from schemas.chat import Channel, Direction

__all__ = ["ModeRetention", "current_entry", "mode_of", "remember_mode"]


class ModeRetention(NamedTuple):
    """How long an entry lives without a refresh, and how often a message refreshes it."""

    retention_ms: int
    refresh_ms: int

    @classmethod
    def of(cls, retention_ms: int) -> ModeRetention:
        """A refresh every 24th of the retention: a conversation keeps its mode at least
        23/24 of the retention after its last message."""
        return cls(retention_ms, max(1, retention_ms // 24))


def current_entry(modes: Store, key: str, now_ms: int, retention: ModeRetention) -> int | None:
    """The conversation's entry (its last refresh), None when absent or older than the
    retention."""
    entry: int | None = modes.get(key)
    if entry is not None and now_ms - entry >= retention.retention_ms:
        return None
    return entry


def mode_of(entry: int | None) -> Channel | None:
    """The mode a current entry stands for (None: no entry, the conversation is `ai`)."""
    return None if entry is None else "human"


def remember_mode(
    modes: Store,
    key: str,
    entry: int | None,
    message: tuple[Direction, Channel],
    now_ms: int,
    retention: ModeRetention,
) -> None:
    """Update the conversation's entry (`current_entry`) after one of its messages."""
    direction, channel = message
    refresh_ms = retention.refresh_ms
    if direction == "outbound" and channel == "ai":
        if entry is not None:  # (an outdated one is the engine's expiry's to remove)
            modes.delete(key)
        return
    if entry is None:
        if direction == "outbound":  # an agent or a coworker takes the conversation
            modes.set(key, now_ms)
    elif now_ms - entry >= refresh_ms:  # still in human hands: refresh
        modes.set(key, now_ms)
