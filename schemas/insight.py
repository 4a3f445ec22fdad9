"""Tolerant model of the 句子 Insight thumbs-up / thumbs-down feedback callback.

The body has no timestamp (event time is our receive time); `feedback`, `messageId`,
`receiverId`, `contactId`, `roomId` may be absent; unknown statuses are kept as sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from schemas._base import Inbound, Lenient, valid_items
from schemas._lenient import strip_keys

__all__ = [
    "FEEDBACK_STATUSES",
    "FeedbackStatus",
    "InsightFeedback",
    "OutputAction",
    "TriggerEvent",
]

FeedbackStatus = Literal["none", "thumb-up", "thumb-down"]
FEEDBACK_STATUSES: tuple[FeedbackStatus, ...] = ("none", "thumb-up", "thumb-down")


class TriggerEvent(Inbound):
    trigger_type: Lenient[str] = None
    session_id: Lenient[str] = None
    receive_text_message: Lenient[dict[str, Any]] = None
    receive_image_message: Lenient[dict[str, Any]] = None
    receive_audio_message: Lenient[dict[str, Any]] = None
    receive_video_message: Lenient[dict[str, Any]] = None
    receive_other_message: Lenient[dict[str, Any]] = None
    history: Lenient[list[Any]] = None


class OutputAction(Inbound):
    type: Lenient[str] = None
    status: Lenient[str] = None
    payload: Any = None
    node_id: Lenient[str] = None


class InsightFeedback(Inbound):
    """`POST /v1/bot-message/feedback`."""

    bot_id: str = Field(description="the Insight bot (the key)")
    session_id: Lenient[str] = None
    exec_id: str = Field(description="the bot execution (reply) the vote is about")
    trigger_event: Lenient[TriggerEvent] = None
    output_actions: Annotated[list[OutputAction], BeforeValidator(valid_items(OutputAction))] = (
        Field(default_factory=list)
    )
    """Each action that is not an object is dropped, the others kept (one junk element does
    not empty the list of flow nodes)."""
    feedback_status: str = Field(
        description="`none`, `thumb-up` or `thumb-down`; other values are kept as sent"
    )
    feedback: Lenient[str] = Field(default=None, description="the comment (with thumb-down)")
    message_id: Lenient[str] = Field(default=None, description="the reply's message id")
    receiver_id: Lenient[str] = None
    contact_id: Lenient[str] = Field(default=None, description="the voter (private chat)")
    room_id: Lenient[str] = Field(default=None, description="the room (group chat)")

    @model_validator(mode="before")
    @classmethod
    def _strip(cls, body: Any) -> Any:
        return strip_keys(body)
