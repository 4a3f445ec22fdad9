"""Process configuration: one frozen pydantic-settings model per process kind, read from env vars.

Every field here is listed in the README's configuration table. Env names are
`WECOM_STREAM_<FIELD>` except `KAFKA_BOOTSTRAP_SERVERS`, which follows the common convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.feedback import DEFAULT_TIMEZONE
from schemas.tenancy import check_tenant_name

__all__ = [
    "AuthMode",
    "BackfillSettings",
    "CommonSettings",
    "IngressSettings",
    "KafkaSecurity",
    "LogFormat",
    "ProcessingGuarantee",
    "ProcessorSettings",
    "SchemaRegistrySettings",
    "StoreKind",
    "default_cache_dir",
]

ProcessingGuarantee = Literal["exactly-once", "at-least-once"]
AuthMode = Literal["required", "open"]
StoreKind = Literal["disk", "memory"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def default_cache_dir() -> Path:
    """Where downloaded broker jars and the local broker's data live unless configured."""
    return Path(platformdirs.user_cache_dir("wecom-stream"))


class CommonSettings(BaseSettings):
    """Settings every wecom-stream process reads."""

    model_config = SettingsConfigDict(
        env_prefix="WECOM_STREAM_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    kafka_bootstrap_servers: str | None = Field(  # type: ignore[pydantic-alias]  # env name
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Kafka bootstrap servers. Unset: `run` starts the local broker.",
    )
    topic_prefix: str = Field(
        default="",
        description="Prepended to every topic and consumer group name, to share a cluster.",
    )
    log_level: LogLevel = "INFO"
    log_format: LogFormat = Field(
        default="auto", description="`auto`: JSON unless stderr is a terminal."
    )
    kafka_home: Path | None = Field(
        default=None,
        description="An unpacked Apache Kafka distribution, or the folder the broker jars are "
        "resolved into. Default: `<user cache>/wecom-stream/kafka-<version>`.",
    )
    kafka_data_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "kafka-data",
        description="Data dir (logs, pid file, config) of the local broker.",
    )
    kafka_port: int = Field(default=9092, ge=0, le=65535, description="Local broker port.")
    kafka_connect_timeout_s: float = Field(
        default=30.0, gt=0, description="How long a command waits for Kafka to answer."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of topics we create (3 in production)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def topic(self, name: str) -> str:
        """The physical topic (or group) name for a logical registry name."""
        return f"{self.topic_prefix}{name}"


class KafkaSecurity(BaseSettings):
    """How every process authenticates to Kafka and encrypts its connections (all clients:
    producers, consumers, admin). Env names are `WECOM_STREAM_KAFKA_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_prefix="WECOM_STREAM_KAFKA_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="With a `SASL_*` protocol."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed the brokers' certificates (`SSL`, "
        "`SASL_SSL`); unset: the system's CAs.",
    )
    ssl_cert_file: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_key_file: Path | None = Field(default=None, description="Its private key (mTLS).")

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"{self.security_protocol} needs WECOM_STREAM_KAFKA_SASL_USERNAME and "
                "WECOM_STREAM_KAFKA_SASL_PASSWORD"
            )
        if bool(self.ssl_cert_file) != bool(self.ssl_key_file):
            raise ValueError(
                "set both WECOM_STREAM_KAFKA_SSL_CERT_FILE and WECOM_STREAM_KAFKA_SSL_KEY_FILE "
                "(client certificate and key), or neither"
            )
        return self


class BackfillSettings(CommonSettings):
    """Settings of `wecom-stream backfill chat-records` (flags override the rate)."""

    yuju_api_url: str = Field(
        default="https://chat.jijyun.cn",
        description="Base URL of the 语聚 open API (the chat-record API's documented host).",
    )
    yuju_api_key: SecretStr | None = Field(
        default=None,
        description="The chat-record API's apiKey (a credential: sent in the query string, "
        "never logged or printed).",
    )
    backfill_rps: float = Field(
        default=2.0,
        ge=0,
        description="Requests per second to the chat-record API, never exceeded (retries "
        "included); 0 = unlimited. `--rps` overrides.",
    )
    backfill_concurrency: int = Field(
        default=4, gt=0, description="Customers queried at the same time (at most)."
    )
    backfill_timeout_s: float = Field(
        default=30.0, gt=0, description="Deadline of one chat-record request (then retried)."
    )
    backfill_attempts: int = Field(
        default=6,
        gt=0,
        description="Attempts per customer on timeouts, 429 and 5xx (jittered exponential "
        "backoff, `Retry-After` honoured) before the customer counts as failed.",
    )


class SchemaRegistrySettings(CommonSettings):
    """Settings of `wecom-stream schemas publish`: the Confluent-compatible schema registry
    our topics' value schemas are published to (docs/consumers.md)."""

    schema_registry_url: str | None = Field(
        default=None,
        description="Base URL of a Confluent-compatible schema registry API, e.g. "
        "`http://registry:8081` (Confluent) or `http://registry:8080/apis/ccompat/v7` "
        "(Apicurio). Required by `schemas publish`.",
    )
    schema_registry_username: str | None = Field(
        default=None, description="HTTP basic-auth user (with the password), if required."
    )
    schema_registry_password: SecretStr | None = Field(
        default=None, description="Its password (never logged or printed)."
    )
    schema_registry_ca_file: Path | None = Field(
        default=None,
        description="CA bundle that signed an `https` registry's certificate; unset: the "
        "system's CAs.",
    )

    @model_validator(mode="after")
    def _pair(self) -> SchemaRegistrySettings:
        if bool(self.schema_registry_username) != bool(self.schema_registry_password):
            raise ValueError(
                "set both WECOM_STREAM_SCHEMA_REGISTRY_USERNAME and "
                "WECOM_STREAM_SCHEMA_REGISTRY_PASSWORD, or neither"
            )
        return self


class IngressSettings(CommonSettings):
    """Settings of `wecom-stream ingress`."""

    http_host: str = "0.0.0.0"  # noqa: S104 - an ingress listens on all interfaces by design
    http_port: int = Field(default=8080, ge=0, le=65535)
    auth: AuthMode = Field(
        default="required",
        description="`required`: a platform whose credential is not configured has its "
        "callbacks refused (401), and the ingress refuses to start with none configured. "
        "`open` (local development only): such a platform's callbacks are accepted without "
        "a check (a loud warning at start).",
    )
    tenants: SecretStr = Field(
        default=SecretStr(""),
        description="`acme=TOKEN1,beta=TOKEN2`: 语聚 callbacks' `token` → tenant. Empty: 语聚 "
        "callbacks are refused (or unchecked with `auth=open`).",
    )
    insight_key: SecretStr | None = Field(
        default=None,
        description="Secret for Insight callbacks: `?key=` or path prefix. Unset: Insight "
        "callbacks are refused (or unchecked with `auth=open`).",
    )
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    body_read_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A request whose body has not fully arrived this long after its headers "
        "is answered 408 and its connection closed (slow or stalled clients).",
    )
    spool_dir: Path = Field(default_factory=lambda: default_cache_dir() / "spool")
    spool_max_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    produce_timeout_s: float = Field(
        default=2.0, gt=0, lt=5, description="Produce deadline before a callback is spooled."
    )
    insight_tenant: str | None = Field(
        default=None,
        description="`tenant` header stamped on Insight records (their body names no tenant).",
    )

    @field_validator("tenants")
    @classmethod
    def _tenant_pairs(cls, value: SecretStr) -> SecretStr:
        _parse_tenants(value.get_secret_value())  # a malformed list fails at load, once
        return value

    @model_validator(mode="after")
    def _some_credential(self) -> IngressSettings:
        if self.auth == "required" and not self.tenant_tokens() and not self.insight_key:
            raise ValueError(
                "no credential is configured: set WECOM_STREAM_TENANTS (语聚) and/or "
                "WECOM_STREAM_INSIGHT_KEY (Insight), or WECOM_STREAM_AUTH=open to accept "
                "callbacks without a check (local development only)"
            )
        return self

    def tenant_tokens(self) -> dict[str, str]:
        """{tenant: token} of `tenants` (validated when the settings were read)."""
        return _parse_tenants(self.tenants.get_secret_value())


def _parse_tenants(text: str) -> dict[str, str]:
    """{tenant: token}; ValueError naming what is wrong (a tenant name may be named, a token
    never: it is a credential)."""
    pairs: dict[str, str] = {}
    owners: dict[str, str] = {}
    items = [item for item in text.split(",") if item.strip()]
    for number, item in enumerate(items, start=1):
        name, sep, token = item.partition("=")
        name, token = name.strip(), token.strip()
        if not sep or not name or not token:
            raise ValueError(  # never the value: it holds tokens
                "must be comma-separated tenant=token pairs, e.g. 'acme=TOKEN1,beta=TOKEN2'"
            )
        try:
            check_tenant_name(name)
        except ValueError as exc:  # not quoted: it may be a token pasted in the wrong place
            raise ValueError(f"the tenant name of pair {number}: {exc}") from None
        if name in pairs:
            raise ValueError(f"tenant {name!r} is listed twice")
        if token in owners:
            raise ValueError(
                f"tenants {owners[token]!r} and {name!r} have the same token: each tenant "
                "needs its own, or its callbacks would be stamped with the other's name"
            )
        pairs[name] = token
        owners[token] = name
    return pairs


class ProcessorSettings(CommonSettings):
    """Settings of `wecom-stream process NAME`."""

    processing_guarantee: ProcessingGuarantee = Field(
        default="exactly-once",
        description="`exactly-once` (transactions) or `at-least-once` (comparison mode).",
    )
    metrics_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - scraped by Prometheus from outside the pod
        description="Interface of /healthz and /metrics.",
    )
    metrics_port: int = Field(
        default=9100,
        ge=0,
        le=65535,
        description="Port of /healthz and /metrics (0 = any free port); instance i of "
        "`--instances N` uses port + i.",
    )
    max_batch_records: int = Field(default=2000, gt=0, description="`getmany` batch limit.")
    store_kind: StoreKind = Field(
        default="disk",
        description="`disk`: RocksDB per task and store under `state_dir`, kept across "
        "restarts (a restart replays only the changelog beyond its checkpoint); `memory`: "
        "dicts, restored from the whole changelog at every start.",
    )
    state_dir: Path = Field(
        default_factory=lambda: default_cache_dir() / "state",
        description="Where disk stores live (`<group>/instance-<i>/<partition>/<store>`); "
        "a persistent volume per pod in Kubernetes.",
    )
    commit_interval_ms: int = Field(
        default=100, ge=0, description="Commit (transaction) at most this often per member."
    )
    session_timeout_ms: int = Field(
        default=10_000,
        ge=1000,
        description="Consumer-group session timeout: how long a crashed member holds its "
        "partitions before the group reassigns them.",
    )
    max_clock_skew_ms: int = Field(
        default=60 * 60 * 1000,
        gt=0,
        description="A record timestamped more than this ahead of the processor's wall clock "
        "(a producer with a wrong clock) is processed but does not advance stream time, so "
        "it neither expires state early nor stamps later writes with its future time.",
    )
    normalizer_dedup_retention_ms: int = Field(
        default=24 * 60 * 60 * 1000,
        gt=0,
        description="How long (stream time) the normalizer remembers a messageId to drop "
        "platform retries.",
    )
    normalizer_mode_retention_ms: int = Field(
        default=24 * 60 * 60 * 1000,
        gt=0,
        description="How long (stream time) a conversation in human hands (an agent or a "
        "coworker wrote last from the company's side) keeps that mode without any message; "
        "every message refreshes it.",
    )
    normalizer_history_dedup_retention_ms: int = Field(
        default=90 * 24 * 60 * 60 * 1000,
        gt=0,
        description="How long (stream time) the normalizer remembers a backfilled chat "
        "record's id: re-running a backfill within it adds nothing to chat.message.v2.",
    )
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="IANA time zone whose midnights and hours bound the feedback "
        "processor's day and hour windows (`window_start`/`window_end` carry its offset).",
    )
    feedback_retention_ms: int = Field(
        default=30 * 24 * 60 * 60 * 1000,
        gt=0,
        description="How long after a reply's first rating its hour/day windows stay open "
        "(a later change of mind moves only the all-time rows), and how long an hour/day row "
        "is kept after its last change (stream time). Replies and all-time rows are kept.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Asia/Shanghai or UTC"
            ) from None
        return value

    membership_departed_retention_ms: int = Field(
        default=7 * 24 * 60 * 60 * 1000,
        gt=0,
        description="How long (a room's event time) the membership processor remembers a "
        "departed member, to resolve late events about them.",
    )

    @classmethod
    def defaults(cls) -> ProcessorSettings:
        """Every field at its default, the environment not read: what a processor module's
        `PROCESSOR` (its declaration at the defaults, for tests and benchmarks) is built
        from at import time."""
        return cls.model_construct()
