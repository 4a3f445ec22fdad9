"""Generates `schemas/json/`: one JSON Schema per outbound model and an AsyncAPI 3.0 document
describing every registry topic. `python -m schemas.export` rewrites them; `--check` exits 1
when the committed files drifted from the models (a unit test runs it)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel

from schemas.registry import REGISTRY

__all__ = ["JSON_DIR", "OUTBOUND_MODELS", "main", "render"]

JSON_DIR = Path(__file__).parent / "json"

OUTBOUND_MODELS: dict[str, str] = {
    # topic -> "module:Class" of its value model (each processor issue adds its own)
    "chat.message.v2": "schemas.chat:ChatMessage",
    "raw.yuju.chat-record.v1": "schemas.chat_record:ChatRecordEntry",
    "feedback.event.v2": "schemas.feedback:FeedbackEvent",
    "feedback.stats.v2": "schemas.feedback:FeedbackStats",
    "room.membership.v2": "schemas.room:RoomMembership",
    "room.member-change.v2": "schemas.room:MemberChange",
}


def _load(ref: str) -> type[BaseModel]:
    module, _, name = ref.partition(":")
    model: type[BaseModel] = getattr(importlib.import_module(module), name)
    return model


def _dumps(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def _asyncapi(models: dict[str, type[BaseModel]]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    for spec in REGISTRY:
        model = models.get(spec.name)
        payload: dict[str, Any] = (
            {"$ref": f"./{model.__name__}.schema.json"}
            if model is not None
            else {"type": "object", "description": spec.value}
        )
        channels[spec.name] = {
            "address": spec.name,
            "description": f"written by {spec.writer}; key: {spec.key}; "
            f"cleanup: {spec.cleanup_policy}; partitions: {spec.partitions}",
            "messages": {
                "record": {
                    "contentType": "application/json",
                    "payload": payload,
                    "bindings": {"kafka": {"key": {"type": "string", "description": spec.key}}},
                    "headers": {
                        "type": "object",
                        "description": "CloudEvents Kafka binding (binary mode) + tenant",
                        "properties": {
                            h: {"type": "string"}
                            for h in (
                                "ce_specversion",
                                "ce_id",
                                "ce_source",
                                "ce_type",
                                "ce_time",
                                "content-type",
                                "tenant",
                            )
                        },
                    },
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "wecom-stream topics", "version": "2"},
        "channels": channels,
    }


def render() -> dict[str, str]:
    """File name -> content of everything under `schemas/json/`."""
    models = {topic: _load(ref) for topic, ref in OUTBOUND_MODELS.items()}
    files = {
        f"{model.__name__}.schema.json": _dumps(model.model_json_schema(mode="serialization"))
        for model in models.values()
    }
    files["asyncapi.json"] = _dumps(_asyncapi(models))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export")
    parser.add_argument("--check", action="store_true", help="fail if the files drifted")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = sorted(
            name
            for name, text in files.items()
            if not (JSON_DIR / name).is_file() or (JSON_DIR / name).read_text() != text
        )
        extra = sorted(p.name for p in JSON_DIR.glob("*.json") if p.name not in files)
        if stale or extra:
            print(f"schemas/json drifted: {stale + extra}; run `python -m schemas.export`")
            return 1
        return 0
    JSON_DIR.mkdir(exist_ok=True)
    for name, text in files.items():
        (JSON_DIR / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
