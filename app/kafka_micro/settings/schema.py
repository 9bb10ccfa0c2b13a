"""The settings schema: every setting, its default, its allowed values, its documentation.

The ``librdkafka`` tables pass raw librdkafka properties through: the top-level one to every
client, ``producer.librdkafka`` and ``consumer.librdkafka`` to that kind only, overriding what the
typed fields produce.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping
from functools import cached_property
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafka_micro.message import HEADER, MAX_PRODUCER_ID_BYTES
from kafka_micro.settings.addresses import check_listen_address
from kafka_micro.settings.status_page import StatusPageSettings

ENV_PREFIX = "KAFKA_MICRO_"
ENV_NESTED_DELIMITER = "__"

LibrdkafkaValue = str | int | float | bool
_LIBRDKAFKA_KEY = re.compile(r"^[a-z][a-z0-9]*(\.[a-z0-9]+)*$")
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
# The instance number N of a unit kafka-consumer@N, whose instance id is HOST-N.
_INSTANCE_NUMBER = re.compile(r"-([1-9][0-9]*)$")
_MAX_PORT = 65535
# librdkafka's default message.max.bytes; a consumer's is lowered to a smaller fetch.max.bytes.
_LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000
# Smaller fetches only add requests: a few 100-byte batches each.
_MIN_FETCH_MAX_BYTES = 65_536
DEAD_LETTER_SUFFIX = ".dlq"

ProfileName = Literal["first-kafka"]
"""Named profiles: each is ``kafka_micro/profiles/NAME.toml``."""


class ConfigError(Exception):
    """A setting is invalid; the message names the setting, its value and what is allowed."""


def _check_librdkafka_properties(properties: object) -> object:
    if not isinstance(properties, Mapping):
        return properties
    for key, value in properties.items():
        if not isinstance(key, str) or not _LIBRDKAFKA_KEY.match(key):
            raise ValueError(
                f"{key!r} is not a librdkafka property name "
                "(lower-case words separated by dots, e.g. 'queue.buffering.max.ms')"
            )
        if not isinstance(value, str | int | float | bool):
            # The value is not shown: it may be a password.
            raise ValueError(
                f"property {key!r}: a librdkafka value is a string, number or boolean, "
                f"not a {type(value).__name__}"
            )
    return properties


def _check_bootstrap_servers(value: str) -> str:
    for server in value.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
            raise ValueError(
                f"{server.strip()!r} is not HOST:PORT; expected a comma-separated list "
                "of HOST:PORT with PORT in 1..65535, e.g. 'kafka1:9092,kafka2:9092'"
            )
    return value


def _check_topic_name(value: str) -> str:
    if not _TOPIC_NAME.match(value) or value in {".", ".."}:
        raise ValueError("a topic name is 1 to 249 characters from a-z A-Z 0-9 . _ -")
    return value


def _check_dead_letter_topic(value: str) -> str:
    if value and (not _TOPIC_NAME.match(value) or value in {".", ".."}):
        raise ValueError(
            "a topic name is 1 to 249 characters from a-z A-Z 0-9 . _ -; "
            "or '' for no dead-letter topic (a message that cannot be processed then stops "
            "the consumer)"
        )
    return value


def _as_text(value: object) -> object:
    """TOML and JSON users write ``acks = 1``; the librdkafka value is the text ``"1"``."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _is_true(value: LibrdkafkaValue) -> bool:
    return value is True or str(value).lower() == "true"


def _check_producer_id(value: str) -> str:
    size = len(value.encode())
    if size > MAX_PRODUCER_ID_BYTES:
        raise ValueError(f"the id is {size} bytes in UTF-8; at most {MAX_PRODUCER_ID_BYTES}")
    return value


def _check_directory_path(value: str) -> str:
    if not value.strip():
        raise ValueError("an empty path; leave the setting unset to write no ledger")
    if "\0" in value:
        raise ValueError("a path cannot hold a NUL character")
    return value


LibrdkafkaProperties = Annotated[
    dict[str, LibrdkafkaValue], BeforeValidator(_check_librdkafka_properties)
]


class ProducerSettings(BaseModel):
    """Settings of ``kafka-micro produce``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1), AfterValidator(_check_producer_id)] | None = Field(
        default=None,
        description="Producer id written into every message; must be unique per producer run "
        "(sequence numbers restart at 0). Unset: HOSTNAME-PID-STARTED of the running process "
        "(STARTED: its UTC start second, as PIDs repeat after a reboot).",
    )
    rate: float = Field(
        default=0.0, ge=0, description="Target messages per second; 0 produces as fast as possible."
    )
    message_size: int = Field(
        default=512,
        ge=0,
        le=1_000_000,
        description=f"Bytes per message value, padded with zeros; never less than the header "
        f"({HEADER.size} bytes plus the producer id).",
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        default="snappy", description="librdkafka compression.type."
    )
    linger_ms: int = Field(
        default=5, ge=0, le=900_000, description="librdkafka linger.ms: wait to fill a batch."
    )
    batch_size: int = Field(
        default=1_000_000,
        ge=1,
        le=2_147_483_647,
        description="librdkafka batch.size: maximum bytes per message batch; linger_ms, "
        "not this, bounds the wait for a batch to fill.",
    )
    acks: Annotated[Literal["all", "-1", "0", "1"], BeforeValidator(_as_text)] = Field(
        default="all", description="librdkafka acks; 'all' waits for every in-sync replica."
    )
    enable_idempotence: bool = Field(
        default=True,
        description="librdkafka enable.idempotence: no duplicates or reordering on retries. "
        "Requires acks=all.",
    )
    poll_every: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Serve delivery reports (poll(0)) once every this many produce calls; "
        "also the chunk size of rate limiting and stop checks.",
    )
    flush_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="On stop, wait at most this long for queued messages to be delivered.",
    )
    acked_ledger_dir: Annotated[str, AfterValidator(_check_directory_path)] | None = Field(
        default=None,
        description="Directory of acknowledgement ledgers (created if missing): the producer "
        "writes there which of its messages the brokers acknowledged, per partition, at each "
        "librdkafka statistics report (metrics.statistics_interval_ms) and exactly after a "
        "clean stop, for `kafka-micro verify --acked`. Unset: no ledger.",
    )
    acked_ledger_keep: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Ledger files kept in acked_ledger_dir: on start the producer removes all "
        "but the newest ones (its own included).",
    )
    librdkafka: LibrdkafkaProperties = Field(
        default_factory=dict,
        description="Raw librdkafka producer properties; they override the fields above.",
    )

    @model_validator(mode="after")
    def _idempotence_needs_acks_all(self) -> Self:
        properties = self.librdkafka_properties()
        acks = str(properties["acks"])
        if _is_true(properties["enable.idempotence"]) and acks not in {"all", "-1"}:
            raise ValueError(
                f"acks={acks!r} conflicts with enable.idempotence=true: an idempotent producer "
                "requires acks='all'; set producer.enable_idempotence=false to use another acks"
            )
        return self

    @cached_property
    def resolved_id(self) -> str:
        """The configured id, or HOSTNAME-PID-STARTED of this process, the same at every read."""
        started = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        return self.id or f"{socket.gethostname()}-{os.getpid()}-{started}"

    def librdkafka_properties(self) -> dict[str, LibrdkafkaValue]:
        """The producer's librdkafka properties: typed fields, overridden by the raw table."""
        return {
            "compression.type": self.compression,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "acks": self.acks,
            "enable.idempotence": self.enable_idempotence,
            **self.librdkafka,
        }


class ConsumerSettings(BaseModel):
    """Settings of ``kafka-micro consume``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: str = Field(
        default="kafka-micro", min_length=1, description="Consumer group (group.id)."
    )
    instance_id: str | None = Field(
        default=None,
        min_length=1,
        description="Static membership id (group.instance.id), unique within the group; "
        "a restart within the session timeout then keeps the partitions. Unset: dynamic member.",
    )
    group_protocol: Literal["consumer", "classic"] = Field(
        default="consumer",
        description="'consumer' is the KIP-848 protocol (Kafka 4.0+, broker-side assignment); "
        "'classic' uses the client-side cooperative assignor. See docs/consumer-protocol.md.",
    )
    assignment_strategy: Literal["cooperative-sticky", "range", "roundrobin"] = Field(
        default="cooperative-sticky",
        description="partition.assignment.strategy; used only with group_protocol='classic'.",
    )
    batch_size: int = Field(
        default=100, ge=1, le=100_000, description="Most messages returned by one consume call."
    )
    batch_timeout_s: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Longest wait of one consume call; also bounds how late a stop is noticed.",
    )
    batch_wait_ms: int = Field(
        default=2,
        ge=0,
        le=60_000,
        description="Once a batch has its first message, the longest it waits for more (as the "
        "producer's linger_ms): the latency a partly filled batch may add.",
    )
    fetch_min_bytes: int = Field(
        default=1,
        ge=1,
        le=100_000_000,
        description="librdkafka fetch.min.bytes: a fetch waits for this much data, "
        "or fetch_wait_max_ms, whichever comes first; 1 returns as soon as there is any.",
    )
    fetch_wait_max_ms: int = Field(
        default=500,
        ge=0,
        le=300_000,
        description="librdkafka fetch.wait.max.ms: the longest a fetch waits for fetch_min_bytes.",
    )
    fetch_max_bytes: int = Field(
        default=131_072,
        ge=_MIN_FETCH_MAX_BYTES,
        le=2_147_483_135,
        description="librdkafka fetch.max.bytes: most bytes one fetch response may bring (a "
        "record batch larger than this still comes, alone); with queued_max_messages_kbytes "
        "it bounds the consumer's memory.",
    )
    queued_max_messages_kbytes: int = Field(
        default=1024,
        ge=1,
        le=2_097_151,
        description="librdkafka queued.max.messages.kbytes: fetching pauses while this many "
        "KiB of fetched messages wait to be consumed.",
    )
    fetch_queue_backoff_ms: int = Field(
        default=10,
        ge=0,
        le=300_000,
        description="librdkafka fetch.queue.backoff.ms: how long fetching pauses once that "
        "queue is full; librdkafka's 1000 leaves a drained queue idle for most of a second.",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a group with no committed offset starts; 'earliest' loses nothing.",
    )
    auto_commit_interval_ms: int = Field(
        default=5000,
        ge=100,
        le=3_600_000,
        description="Commit stored (processed) offsets this often; at most this much "
        "is re-read after a crash.",
    )
    dead_letter_topic: Annotated[str, AfterValidator(_check_dead_letter_topic)] | None = Field(
        default=None,
        description="Topic a message that cannot be processed is written to, with headers "
        f"saying why and where it came from, before the consumer moves past it. Unset: the "
        f"topic's name plus '{DEAD_LETTER_SUFFIX}'. '' writes none: such a message then stops "
        "the consumer (exit 1, its offset not stored), as skipping it would lose it.",
    )
    max_value_bytes: int = Field(
        default=1_000_000,
        ge=HEADER.size,
        le=1_000_000_000,
        description="Longest message value processed; a longer one is a dead letter "
        "(reason too-large). At least the header; at least producer.message_size.",
    )
    dead_letter_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=300,
        description="Longest wait for the brokers to acknowledge a batch's dead letters; past "
        "it the consumer stops (exit 1) without storing the batch's offsets. At most 300, "
        "the group's max.poll.interval.ms.",
    )
    librdkafka: LibrdkafkaProperties = Field(
        default_factory=dict,
        description="Raw librdkafka consumer properties; they override the fields above.",
    )

    @model_validator(mode="after")
    def _offsets_stored_after_processing(self) -> Self:
        value = self.librdkafka.get("enable.auto.offset.store")
        if value is not None and _is_true(value):
            raise ValueError(
                f"enable.auto.offset.store={value!r} would mark messages done before they are "
                "processed (losing them on a crash); only false is allowed"
            )
        return self

    def instance_number(self) -> int | None:
        """N of an instance id ``HOST-N`` (unit ``kafka-consumer@N``); None for any other id."""
        match = _INSTANCE_NUMBER.search(self.instance_id or "")
        return int(match.group(1)) if match else None

    def librdkafka_properties(self) -> dict[str, LibrdkafkaValue]:
        """The consumer's librdkafka properties: typed fields, overridden by the raw table."""
        properties: dict[str, LibrdkafkaValue] = {
            "group.id": self.group_id,
            "group.protocol": self.group_protocol,
            "fetch.min.bytes": self.fetch_min_bytes,
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            "fetch.max.bytes": self.fetch_max_bytes,
            # librdkafka refuses a fetch.max.bytes below message.max.bytes (default 1000000),
            # which bounds only what this client sends: a consumer's requests are small.
            "message.max.bytes": min(self.fetch_max_bytes, _LIBRDKAFKA_MESSAGE_MAX_BYTES),
            "queued.max.messages.kbytes": self.queued_max_messages_kbytes,
            "fetch.queue.backoff.ms": self.fetch_queue_backoff_ms,
            "auto.offset.reset": self.auto_offset_reset,
            "enable.auto.offset.store": False,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": self.auto_commit_interval_ms,
        }
        if self.group_protocol == "classic":
            properties["partition.assignment.strategy"] = self.assignment_strategy
        if self.instance_id is not None:
            properties["group.instance.id"] = self.instance_id
        properties.update(self.librdkafka)
        return properties


class MetricsSettings(BaseModel):
    """The Prometheus endpoint (``/metrics``) of ``produce`` and ``consume``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="Serve /metrics over HTTP and have librdkafka report its statistics "
        "(which a producer with producer.acked_ledger_dir has reported either way).",
    )
    bind_address: Annotated[str, AfterValidator(check_listen_address)] = Field(
        default="0.0.0.0",
        description="IP address /metrics listens on: '0.0.0.0' every IPv4 address, '::' every "
        "address, or one address of this host.",
    )
    port: int = Field(
        default=9410,
        ge=0,
        le=_MAX_PORT,
        description="The producer listens on this port, the consumer with instance id HOST-N "
        "(unit kafka-consumer@N) on port + N; a consumer with another id, or port 0, on a free "
        "port the system picks, which the log names.",
    )
    statistics_interval_ms: int = Field(
        # 1 s: the acknowledgement ledger lags by up to this interval, and a report costs the
        # producer about a millisecond (docs/acknowledged-messages.md).
        default=1000,
        ge=100,
        le=3_600_000,
        description="librdkafka statistics.interval.ms: how often the queue depth, broker "
        "round-trip times and consumer lag in /metrics are refreshed and the producer's "
        "acknowledgement ledger is written (producer.acked_ledger_dir), which therefore lags "
        "by up to this long.",
    )

    def consumer_port(self, instance_number: int | None) -> int:
        """Where consumer N listens: port + N; 0 (a free port) without N or with port 0."""
        if instance_number is None or self.port == 0:
            return 0
        return self.port + instance_number


class Settings(BaseSettings):
    """Everything kafka-micro reads; see ``kafka-micro config`` for the effective values."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    profile: ProfileName | None = Field(
        default=None,
        description="Named set of tuning values, applied below the config file's own: "
        "'first-kafka' is the original docker-compose system's tuning. Unset: kafka-micro's "
        "measured defaults (docs/performance.md).",
    )
    bootstrap_servers: Annotated[str, AfterValidator(_check_bootstrap_servers)] = Field(
        default="localhost:9092", description="Comma-separated HOST:PORT list of Kafka brokers."
    )
    topic: Annotated[str, AfterValidator(_check_topic_name)] = Field(
        default="test-topic", description="Topic to produce to, consume from and verify."
    )
    report_interval_s: float = Field(
        default=10.0,
        gt=0,
        le=86_400,
        description="Seconds between throughput log lines.",
    )
    connect_timeout_s: float = Field(
        # As long as the kafka_app role's units wait for READY=1 (TimeoutStartSec): the command
        # says why it could not start instead of being killed without a word.
        default=120.0,
        gt=0,
        le=86_400,
        description="A command that has not yet worked with the brokers (produce: no message "
        "delivered; consume: not in the group; verify, topic: no metadata) fails after this "
        "long (exit 3), naming the last error. Refused credentials, rejected TLS "
        "certificates and denied access fail at once; once working, broker restarts are "
        "waited out.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe log level written."
    )
    producer: ProducerSettings = Field(
        default_factory=ProducerSettings, description="Producer settings."
    )
    consumer: ConsumerSettings = Field(
        default_factory=ConsumerSettings, description="Consumer settings."
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description="Prometheus /metrics settings."
    )
    status_page: StatusPageSettings = Field(
        default_factory=StatusPageSettings,
        description="Settings of `kafka-micro status-page` (the read-only status page).",
    )
    librdkafka: LibrdkafkaProperties = Field(
        default_factory=dict,
        description="Raw librdkafka properties given to every client (producer, consumer, "
        "verify reader, admin): connection and security settings such as security.protocol, "
        "sasl.*, ssl.*. producer.librdkafka and consumer.librdkafka override them per kind.",
    )

    @model_validator(mode="after")
    def _dead_letters_fit(self) -> Self:
        dead_letter_topic = self.dead_letter_topic()
        if dead_letter_topic == self.topic:
            raise ValueError(
                f"consumer.dead_letter_topic is the topic itself ({self.topic!r}): dead letters "
                "would be read again for ever; name another topic, or '' for none"
            )
        if dead_letter_topic is not None and not _TOPIC_NAME.match(dead_letter_topic):
            raise ValueError(
                f"the default dead-letter topic {dead_letter_topic!r} (topic plus "
                f"{DEAD_LETTER_SUFFIX!r}) is longer than Kafka's 249 characters; set "
                "consumer.dead_letter_topic"
            )
        if self.producer.message_size > self.consumer.max_value_bytes:
            raise ValueError(
                f"producer.message_size={self.producer.message_size} exceeds "
                f"consumer.max_value_bytes={self.consumer.max_value_bytes}: the consumers would "
                "dead-letter every message; raise consumer.max_value_bytes"
            )
        return self

    def dead_letter_topic(self) -> str | None:
        """Where the consumer writes what it cannot process; None when there is no such topic."""
        configured = self.consumer.dead_letter_topic
        if configured is None:
            return self.topic + DEAD_LETTER_SUFFIX
        return configured or None
