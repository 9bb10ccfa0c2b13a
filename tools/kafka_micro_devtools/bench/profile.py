"""What is benchmarked: our producer and consumer settings, and the same settings for Kafka's tools.

A profile holds the app's own settings models, so every value is validated exactly as the
app validates it. The Java tools get the equivalent Java client properties, so both sides
run with the same message size, acks, idempotence, compression, linger, batch and fetch settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kafka_micro.settings import ConsumerSettings, LibrdkafkaValue, ProducerSettings

# librdkafka names whose Java client counterpart has another name (same meaning).
_JAVA_NAME = {"fetch.wait.max.ms": "fetch.max.wait.ms"}
# Java names of the classic protocol's assignors.
_JAVA_ASSIGNOR = {
    "cooperative-sticky": "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
    "range": "org.apache.kafka.clients.consumer.RangeAssignor",
    "roundrobin": "org.apache.kafka.clients.consumer.RoundRobinAssignor",
}
# Producer properties that the typed settings set and that mean the same in both clients.
_SHARED_PRODUCER_PROPERTIES = (
    "compression.type",
    "linger.ms",
    "batch.size",
    "acks",
    "enable.idempotence",
)
_SHARED_CONSUMER_PROPERTIES = (
    "group.protocol",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "auto.offset.reset",
)
# The JAAS login module of each SASL mechanism a librdkafka client can log in with by password.
_JAVA_LOGIN_MODULE = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
# librdkafka connection properties with a Java counterpart (same value).
_JAVA_CONNECTION_NAME = {
    "security.protocol": "security.protocol",
    "sasl.mechanisms": "sasl.mechanism",
    "sasl.mechanism": "sasl.mechanism",
    "ssl.endpoint.identification.algorithm": "ssl.endpoint.identification.algorithm",
}
_SASL_CREDENTIALS = ("sasl.username", "sasl.password")
# Our consumer's memory bound, not given to the Java tool: it has no prefetch queue, and its own
# fetch.max.bytes (50 MB) leaves it at its best (it drained alike with 1 MB: docs/performance.md).
# message.max.bytes only follows fetch.max.bytes down (librdkafka requires it).
_NOT_SHARED_CONSUMER_PROPERTIES = (
    "fetch.max.bytes",
    "message.max.bytes",
    "queued.max.messages.kbytes",
    "fetch.queue.backoff.ms",
)


class BenchProfile(BaseModel):
    """The producer and consumer settings one benchmark run uses."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    producer: ProducerSettings
    consumer: ConsumerSettings

    def with_changes(
        self,
        name: str,
        producer: dict[str, Any] | None = None,
        consumer: dict[str, Any] | None = None,
    ) -> BenchProfile:
        """A copy with some settings changed, validated like a config file would be.

        ``librdkafka`` tables are merged with the current ones rather than replaced.
        """
        return BenchProfile(
            name=name,
            producer=ProducerSettings.model_validate(
                _merged(self.producer.model_dump(), producer or {})
            ),
            consumer=ConsumerSettings.model_validate(
                _merged(self.consumer.model_dump(), consumer or {})
            ),
        )


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**current, **changes}
    if "librdkafka" in changes:
        merged["librdkafka"] = {**current["librdkafka"], **changes["librdkafka"]}
    return merged


def java_producer_properties(
    producer: ProducerSettings,
) -> tuple[dict[str, str], list[str]]:
    """Java producer properties equal to ours, and the librdkafka properties with no equivalent.

    Only the typed settings are translated; a raw ``librdkafka`` property has no general
    Java counterpart, so it is listed as not applied to the Java tool.
    """
    ours = producer.librdkafka_properties()
    java = {name: _java_value(ours[name]) for name in _SHARED_PRODUCER_PROPERTIES}
    unmapped = sorted(set(producer.librdkafka) - set(_SHARED_PRODUCER_PROPERTIES))
    return java, unmapped


def java_consumer_properties(
    consumer: ConsumerSettings,
) -> tuple[dict[str, str], list[str]]:
    """Java consumer properties equal to ours, and the librdkafka properties with no equivalent.

    Our batch (one ``consume(batch_size)`` call) corresponds to one Java ``poll()``
    returning at most ``max.poll.records``.
    """
    ours = consumer.librdkafka_properties()
    java = {
        _JAVA_NAME.get(name, name): _java_value(ours[name])
        for name in _SHARED_CONSUMER_PROPERTIES
        if name in ours
    }
    java["max.poll.records"] = str(consumer.batch_size)
    strategy = ours.get("partition.assignment.strategy")
    if strategy is not None:
        java["partition.assignment.strategy"] = _JAVA_ASSIGNOR.get(str(strategy), str(strategy))
    unmapped = sorted(
        {*consumer.librdkafka, *_NOT_SHARED_CONSUMER_PROPERTIES}
        - set(_SHARED_CONSUMER_PROPERTIES)
        - {"partition.assignment.strategy"}
    )
    return java, unmapped


def _java_value(value: LibrdkafkaValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def java_connection_properties(librdkafka: Mapping[str, LibrdkafkaValue]) -> dict[str, str]:
    """The Java client properties that connect like these librdkafka ones (a config file's
    top-level ``librdkafka`` table: ``security.protocol``, ``sasl.*``, ``ssl.ca.location``).

    Raises ``ValueError`` naming a property that has no translation here.
    """
    untranslated = sorted(
        set(librdkafka) - set(_JAVA_CONNECTION_NAME) - set(_SASL_CREDENTIALS) - {"ssl.ca.location"}
    )
    if untranslated:
        raise ValueError(
            f"librdkafka properties {untranslated} have no Java translation in the bench; it "
            f"translates {sorted([*_JAVA_CONNECTION_NAME, *_SASL_CREDENTIALS, 'ssl.ca.location'])}"
        )
    java = {
        _JAVA_CONNECTION_NAME[name]: _java_value(value)
        for name, value in librdkafka.items()
        if name in _JAVA_CONNECTION_NAME
    }
    if "ssl.ca.location" in librdkafka:
        java["ssl.truststore.type"] = "PEM"
        java["ssl.truststore.location"] = str(librdkafka["ssl.ca.location"])
    if any(name in librdkafka for name in _SASL_CREDENTIALS):
        mechanism = java.get("sasl.mechanism", "GSSAPI")
        if mechanism not in _JAVA_LOGIN_MODULE:
            raise ValueError(
                f"sasl.mechanism {mechanism!r}: the bench logs Java clients in by password with "
                f"{sorted(_JAVA_LOGIN_MODULE)} only"
            )
        username, password = (str(librdkafka.get(name, "")) for name in _SASL_CREDENTIALS)
        java["sasl.jaas.config"] = (
            f'{_JAVA_LOGIN_MODULE[mechanism]} required username="{username}" password="{password}";'
        )
    return java
