"""structlog setup shared by every process: JSON lines (via orjson) off a TTY, console on one.

aiokafka logs at ERROR some conditions it retries while a fresh broker loads its offsets and
transaction logs or elects new topics' leaders (coordinator not available / not coordinator /
load in progress, leader not available / not leader): `AiokafkaRetriedCondition` rewrites those
to WARNING, the floor kept for aiokafka, with a text saying they are retried, so they still show
if they last. Every other aiokafka error stays ERROR, "Heartbeat session expired" too: no
heartbeat succeeded for a whole session, so the member is losing its partitions, which at
start-up is a symptom (e.g. a blocked event loop), not a broker warming up.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import structlog

from runtime.settings import LogFormat

__all__ = ["AiokafkaRetriedCondition", "bind_context", "configure_logging", "get_logger"]

_RETRIED: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        # Codes 15 (GroupCoordinatorNotAvailableError = CoordinatorNotAvailableError), 16
        # (NotCoordinatorForGroupError = NotCoordinatorError) and 14 (GroupLoadInProgressError
        # = CoordinatorLoadInProgressError), by the names aiokafka prints, aliases included.
        re.compile(
            r"CoordinatorNotAvailable|NotCoordinator|CoordinatorLoadInProgress|GroupLoadInProgress"
        ),
        "retried: Kafka coordinator not ready yet (normal just after a broker starts)",
    ),
    (
        # Codes 6 and 5: a partition without an elected (or with a moved) leader.
        re.compile(r"NotLeaderForPartition|LeaderNotAvailable"),
        "retried: partition leader not ready yet (normal just after a broker starts or a "
        "topic is created)",
    ),
    (
        # aiokafka.conn: one broker of the bootstrap list or of the cluster does not accept
        # connections; the client reconnects and uses the others meanwhile.
        re.compile(r"^Unable connect to "),
        "retried: a broker does not accept connections (normal while it restarts; the "
        "others serve meanwhile)",
    ),
)
"""(error names, the text put before the original message) of conditions aiokafka retries."""

_ROUTINE_DIED = re.compile(r"^Unexpected (?:error|exception)")
"""aiokafka's `log.exception` sites ("Unexpected error in coordinator routine", ...): a
background routine died and nothing retries it, whatever the exception."""


class AiokafkaRetriedCondition(logging.Filter):
    """Rewrite aiokafka ERROR records naming a condition it retries (`_RETRIED`) to WARNING.

    Installed on the handler rather than on the `aiokafka` logger: a logger's filters only see
    records logged on that very logger, not the ones propagated from `aiokafka.consumer.*`,
    `aiokafka.producer.*` or `aiokafka.conn`. A rewritten record below the emitting logger's
    effective level (e.g. `WECOM_STREAM_LOG_LEVEL=ERROR`) is dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not (
            record.name == "aiokafka" or record.name.startswith("aiokafka.")
        ):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: let the formatter report them
            return True
        if _ROUTINE_DIED.match(message):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        named = f"{message} {type(exc).__name__} {exc}" if exc is not None else message
        text = next((text for names, text in _RETRIED if names.search(named)), None)
        if text is None:
            return True
        record.msg = f"{text}: {message}"
        record.args = ()
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
        return logging.getLogger(record.name).isEnabledFor(logging.WARNING)


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(level: str = "INFO", fmt: LogFormat = "auto") -> None:
    """Route structlog and stdlib logging (aiokafka, aiohttp) to stderr in one format."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if use_json
        else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(AiokafkaRetriedCondition())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every coordinator retry at INFO while a broker starts (and, for some, at
    # ERROR: see AiokafkaRetriedCondition); keep WARNING.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The schema registry client's HTTP library logs every request (and its URL) at INFO.
    for http_client in ("httpx", "httpx2"):
        logging.getLogger(http_client).setLevel(max(logging.WARNING, root.level))


def bind_context(**fields: Any) -> None:
    """Bind `fields` (e.g. processor, instance, worker) into every later log line of the
    current task and the tasks it starts (structlog contextvars), instead of passing them to
    each call."""
    structlog.contextvars.bind_contextvars(**fields)


def get_logger(name: str) -> Any:
    """A structlog logger bound to `name` (use module `__name__`)."""
    return structlog.get_logger(name)
