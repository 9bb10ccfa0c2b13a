"""``kafka-micro topic``: the topic and its dead-letter topic exist with enough partitions."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports these without declaring them; import them from the source.
from confluent_kafka.cimpl import NewPartitions, NewTopic

from kafka_micro.access import BrokerAccessError, await_brokers, denied
from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.settings import Settings

log = logging.getLogger(__name__)

_TIMEOUT_S = 30.0


def ensure_topics(
    settings: Settings, partitions: dict[str, int], replication_factor: int
) -> list[str]:
    """Create each topic or add partitions; never removes any. Returns what was done to each."""
    errors = ClientErrors("admin")
    admin = create_client(AdminClient, client_config(settings, "admin", errors))
    await_brokers(
        lambda timeout: admin.list_topics(settings.topic, timeout=timeout),
        admin.poll,
        errors.access,
        settings.connect_timeout_s,
    )
    return [
        _ensure_topic(admin, topic, count, replication_factor)
        for topic, count in partitions.items()
    ]


def _ensure_topic(admin: AdminClient, topic: str, partitions: int, replication_factor: int) -> str:
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)],
        operation_timeout=_TIMEOUT_S,
        request_timeout=_TIMEOUT_S,
    )[topic]
    try:
        future.result()
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            cause = denied(error.args[0])
            if cause is not None:
                raise BrokerAccessError(cause) from None
            raise
    else:
        return f"created topic {topic} with {partitions} partitions"
    metadata = admin.list_topics(topic, timeout=_TIMEOUT_S)
    current = len(metadata.topics[topic].partitions)
    if current >= partitions:
        return f"topic {topic} exists with {current} partitions (asked for {partitions})"
    admin.create_partitions(
        [NewPartitions(topic, partitions)],
        operation_timeout=_TIMEOUT_S,
        request_timeout=_TIMEOUT_S,
    )[topic].result()
    return f"topic {topic} grown from {current} to {partitions} partitions"
