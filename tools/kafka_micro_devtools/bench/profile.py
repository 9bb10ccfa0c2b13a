"""What is benchmarked: our producer and consumer settings, and the same settings for Kafka's tools.

A profile holds the app's own settings models, so every value is validated exactly as the
app validates it. The Java tools get the equivalent Java client properties, so both sides
run with the same message size, acks, idempotence, compression, linger, batch and fetch settings.
"""

from __future__ import annotations

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
