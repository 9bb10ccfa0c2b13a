"""A topic read as it is now: every partition from its first offset to its end at the start.

The reader assigns the partitions itself (no group join, nothing committed), so it disturbs no
consumer group and needs only Read and Describe on the topic: what ``verify`` and the dead-letter
commands run as, the consumer's principal, is allowed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

# confluent_kafka.admin re-exports it without declaring it; import it from the source.
from confluent_kafka.admin._metadata import ClusterMetadata

from kafka_micro.access import BrokerAccessError, await_brokers, denied
from kafka_micro.clients import (
    ClientErrors,
    ClientKind,
    client_config,
    create_client,
    group_lookup_refused,
)
from kafka_micro.settings import ConfigError, Settings

log = logging.getLogger(__name__)

_BATCH: Final = 1000
_METADATA_TIMEOUT_S: Final = 15.0


@contextmanager
def open_snapshot(settings: Settings, kind: ClientKind, topic: str) -> Iterator[TopicSnapshot]:
    """A reader of ``kind`` for ``topic``, once the brokers have described it."""
    errors = ClientErrors(kind)
    consumer = create_client(Consumer, client_config(settings, kind, errors))
    try:
        metadata = await_brokers(
            lambda timeout: consumer.list_topics(topic, timeout=timeout),
            consumer.poll,
            errors.access,
            settings.connect_timeout_s,
        )
        yield TopicSnapshot(consumer, kind, topic, metadata)
    finally:
        consumer.close()


class TopicSnapshot:
    """Reads ``topic`` up to the end offsets its partitions had when ``batches`` began.

    ``truncated`` (partitions that no longer start at offset 0, as retention or deleted records
    removed their first messages) is known once ``batches`` has begun.
    """

    def __init__(
        self, consumer: Consumer, kind: ClientKind, topic: str, metadata: ClusterMetadata
    ) -> None:
        self._consumer = consumer
        self._kind = kind
        self._topic = topic
        self.partitions = self._partitions(metadata)
        self.truncated: list[int] = []

    def batches(self, idle_timeout_s: float) -> Iterator[list[Message]]:
        """Batches of messages, none of them an error event; raises if reading stalls."""
        ends = self._assign_to_current_end()
        last_progress = time.monotonic()
        while ends:
            batch = self._consumer.consume(_BATCH, 1.0)
            if batch:
                last_progress = time.monotonic()
                yield self._before_ends(batch, ends)
            elif time.monotonic() - last_progress > idle_timeout_s:
                raise KafkaException(
                    KafkaError(
                        KafkaError._TIMED_OUT,
                        f"no message for {idle_timeout_s:g} s with partitions "
                        f"{sorted(ends)} of topic {self._topic} not read to their end",
                    )
                )

    def _partitions(self, metadata: ClusterMetadata) -> list[int]:
        topic_metadata = metadata.topics.get(self._topic)
        # A principal that may not describe the topic is told it does not exist; say which.
        cause = denied(topic_metadata.error) if topic_metadata and topic_metadata.error else None
        if cause is not None:
            raise BrokerAccessError(cause)
        if topic_metadata is None or topic_metadata.error is not None:
            raise ConfigError(f"topic {self._topic!r} does not exist on the brokers")
        return sorted(topic_metadata.partitions)

    def _assign_to_current_end(self) -> dict[int, int]:
        """Assign each non-empty partition from its start; return their end offsets."""
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in self.partitions:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), timeout=_METADATA_TIMEOUT_S
            )
            if low > 0:
                self.truncated.append(partition)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(self._topic, partition, low))
        self._consumer.assign(starts)
        return ends

    def _before_ends(self, batch: list[Message], ends: dict[int, int]) -> list[Message]:
        """The messages before their partition's end; drops finished partitions from ends."""
        kept = []
        for message in batch:
            partition, offset = message.partition(), message.offset()
            error = message.error()
            if error is not None or partition is None or offset is None:
                if error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    raise BrokerAccessError(denied(error))
                if error is not None and group_lookup_refused(self._kind, error):
                    continue
                log.warning("read error on partition %s: %s", partition, error)
                continue
            end = ends.get(partition)
            if end is None or offset >= end:
                continue
            if offset == end - 1:
                del ends[partition]
            kept.append(message)
        return kept
