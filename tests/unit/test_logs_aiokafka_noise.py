"""runtime/logs.py: aiokafka's ERROR records for the conditions it retries while a fresh broker
starts (coordinator, partition leader not ready) come out as WARNING with a text saying so;
every other error stays as it was."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import structlog
from aiokafka import errors as kafka_errors

from runtime.logs import configure_logging

UNREACHABLE = (
    "retried: a broker does not accept connections (normal while it restarts; the others "
    "serve meanwhile)"
)
COORDINATOR = "retried: Kafka coordinator not ready yet (normal just after a broker starts)"
LEADER = (
    "retried: partition leader not ready yet (normal just after a broker starts or a topic is "
    "created)"
)


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[str], None]]:
    """`configure(level)` installs the project's JSON logging on (captured) stderr; the stdlib
    and structlog configuration is restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in ("aiokafka", "aiohttp.access")}
    saved_structlog = structlog.get_config()

    def configure(level: str = "INFO") -> None:
        configure_logging(level, "json")  # its handler binds sys.stderr: capsys's here

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.configure(**saved_structlog)


def lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line]


# The exact calls aiokafka 0.14 makes (logger, format, arguments), and the text put before.
RETRIED = [
    (
        "aiokafka.consumer.group_coordinator",
        "Group Coordinator Request failed: %s",
        kafka_errors.GroupCoordinatorNotAvailableError(),
        COORDINATOR,
    ),
    (
        "aiokafka.consumer.group_coordinator",
        "Group Coordinator Request failed: %s",
        kafka_errors.CoordinatorLoadInProgressError(),
        COORDINATOR,
    ),
    (
        "aiokafka.consumer.group_coordinator",
        "Heartbeat send request failed: %s. Will retry.",
        kafka_errors.NotCoordinatorForGroupError(),
        COORDINATOR,
    ),
    (
        "aiokafka.consumer.group_coordinator",
        "Error sending %s to node %s [%s] -- marking coordinator dead",
        ("OffsetCommitRequest_v2", 1, kafka_errors.CoordinatorNotAvailableError()),
        COORDINATOR,
    ),
    (
        "aiokafka.producer.sender",
        "FindCoordinator Request failed: %s",
        kafka_errors.KafkaError("CoordinatorNotAvailableError"),
        COORDINATOR,
    ),
    (
        # Seen on a fresh broker: the processors' just-created changelog topics.
        "aiokafka.consumer.fetcher",
        "Failed fetch offsets from %s: %s",
        (1, kafka_errors.NotLeaderForPartitionError("TopicPartition(topic='c', partition=2)")),
        LEADER,
    ),
    (
        "aiokafka.consumer.fetcher",
        "Failed fetch messages from %s: %s",
        (1, kafka_errors.LeaderNotAvailableError()),
        LEADER,
    ),
    # One broker of a cluster restarting: the client reconnects and uses the others.
    (
        "aiokafka.client",
        "Unable connect to node with id %s: %s",
        (1, "[Errno 111] refused"),
        UNREACHABLE,
    ),
    (
        "aiokafka.client",
        'Unable connect to "%s:%s": %s',
        ("127.0.0.1", 9092, "[Errno 111] Connect call failed"),
        UNREACHABLE,
    ),
]


@pytest.mark.parametrize(("logger", "fmt", "args", "text"), RETRIED)
def test_retried_conditions_become_warnings_that_say_so(
    configured: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    logger: str,
    fmt: str,
    args: Any,
    text: str,
) -> None:
    configured("INFO")
    args = args if isinstance(args, tuple) else (args,)
    logging.getLogger(logger).error(fmt, *args)
    [line] = lines(capsys)
    assert line["level"] == "warning"
    assert line["event"] == f"{text}: {fmt % args}"
    assert line["logger"] == logger


def test_an_exception_naming_the_condition_is_enough(
    configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    configured("INFO")
    try:
        raise kafka_errors.GroupCoordinatorNotAvailableError()
    except kafka_errors.KafkaError:
        logging.getLogger("aiokafka.conn").exception("request failed")
    [line] = lines(capsys)
    assert (line["level"], line["event"]) == ("warning", f"{COORDINATOR}: request failed")
    assert "GroupCoordinatorNotAvailableError" in line["exception"]


SESSION_EXPIRED = "Heartbeat session expired - marking coordinator dead"
UNTOUCHED = [
    # No heartbeat succeeded for a whole session: the member is losing its partitions.
    ("aiokafka.consumer.group_coordinator", SESSION_EXPIRED, None),
    (
        "aiokafka.consumer.group_coordinator",
        "OffsetCommit failed for group g due to group error ([Error 25] UnknownMemberIdError: "
        "g), will rejoin",
        None,
    ),
    # A background routine died: nothing retries it, whatever the exception.
    (
        "aiokafka.consumer.group_coordinator",
        "Unexpected error in coordinator routine",
        kafka_errors.GroupCoordinatorNotAvailableError(),
    ),
    # Only aiokafka's records are rewritten.
    ("processors.engine._member", "commit failed: GroupCoordinatorNotAvailableError", None),
]


@pytest.mark.parametrize(("logger", "message", "exc"), UNTOUCHED)
def test_other_errors_stay_errors_and_untouched(
    configured: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    logger: str,
    message: str,
    exc: BaseException | None,
) -> None:
    configured("INFO")
    logging.getLogger(logger).error(message, exc_info=exc)
    [line] = lines(capsys)
    assert (line["level"], line["event"], line["logger"]) == ("error", message, logger)


def test_aiokafka_warnings_naming_a_coordinator_are_left_as_they_are(
    configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    configured("INFO")
    message = (
        "Heartbeat failed for group g: coordinator (node 1) is either not started or not valid"
    )
    logging.getLogger("aiokafka.consumer.group_coordinator").warning(message)
    [line] = lines(capsys)
    assert (line["level"], line["event"]) == ("warning", message)


def test_a_rewritten_record_below_the_configured_level_is_dropped(
    configured: Callable[[str], None], capsys: pytest.CaptureFixture[str]
) -> None:
    configured("ERROR")
    log = logging.getLogger("aiokafka.consumer.group_coordinator")
    log.error(
        "Group Coordinator Request failed: %s", kafka_errors.GroupCoordinatorNotAvailableError()
    )
    log.error(SESSION_EXPIRED)
    assert [(line["level"], line["event"]) for line in lines(capsys)] == [
        ("error", SESSION_EXPIRED)
    ]
