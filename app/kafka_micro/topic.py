"""``kafka-micro topic``: make sure the topic exists with at least N partitions."""

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


def ensure_topic(settings: Settings, partitions: int, replication_factor: int) -> str:
    """Create the topic or add partitions; never removes any. Returns what was done."""
    errors = ClientErrors("admin")
    admin = create_client(AdminClient, client_config(settings, "admin", errors))
    topic = settings.topic
    await_brokers(
        lambda timeout: admin.list_topics(topic, timeout=timeout),
        admin.poll,
        errors.access,
        settings.connect_timeout_s,
    )
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
