"""The project's root exception and the operator-facing errors every process can raise."""

from __future__ import annotations

__all__ = ["ConfigError", "KafkaUnavailableError", "WecomStreamError"]


class WecomStreamError(Exception):
    """Root of every error wecom-stream raises on purpose; the CLI prints it as one line."""


class ConfigError(WecomStreamError, ValueError):
    """A setting is missing or malformed.

    Operator action: fix the named env var or flag (see the README's configuration table).
    """


class KafkaUnavailableError(WecomStreamError):
    """No Kafka broker answered at the configured bootstrap address within the deadline.

    Operator action: start the broker (`wecom-stream kafka start`) or fix
    `KAFKA_BOOTSTRAP_SERVERS`.
    """
