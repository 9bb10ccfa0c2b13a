"""This member's place in its consumer group: the partitions it owns, and when it is ready.

No admin client here: librdkafka 2.16's can abort the whole process when a coordinator request
such as DescribeConsumerGroups fails (its issue 4605, a use-after-free on that request's error
path), which a loaded machine made happen to consumers still starting. What this member needs to
know about its group it reads from its own consumer.
"""

from __future__ import annotations

import logging
import struct
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from kafka_micro.access import ConnectDeadline
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import ConsumerSettings
from kafka_micro.systemd import SystemdNotifier

log = logging.getLogger(__name__)

# A member in the group gets its partitions within a few heartbeats (2 s apart as the roles
# deploy the brokers); in the group this long with none, it is a stand-by (see Readiness).
_STAND_BY_AFTER_S: Final = 10.0
# How often a member not yet ready checks whether the broker has taken it into the group.
_JOIN_CHECK_INTERVAL_S: Final = 1.0
# After the group refused this member's instance id, how long until it asks again.
_HELD_ID_RETRY_S: Final = 2.0
# librdkafka's serialized consumer group metadata: this magic, then the generation (under
# KIP-848 the member epoch) as a native int32, then the ids. -1 until a broker took the member in.
_GROUP_METADATA_MAGIC: Final = b"CGMDv2:"
_GENERATION: Final = struct.Struct("=i")


def commit_stored(consumer: Consumer, why: str) -> None:
    """Synchronously commit the stored offsets; nothing stored is not an error."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        kafka_error = error.args[0]
        if isinstance(kafka_error, KafkaError) and kafka_error.code() == KafkaError._NO_OFFSET:
            return
        log.warning("commit on %s failed: %s", why, error)


def in_group(consumer: Consumer) -> bool:
    """Whether a broker has taken this member into its group (its generation is set)."""
    metadata = consumer.consumer_group_metadata()
    if not metadata.startswith(_GROUP_METADATA_MAGIC):
        raise RuntimeError(
            "librdkafka's consumer group metadata no longer starts with "
            f"{_GROUP_METADATA_MAGIC!r}: this kafka-micro does not know this librdkafka"
        )
    generation: int = _GENERATION.unpack_from(metadata, len(_GROUP_METADATA_MAGIC))[0]
    return generation > 0


class InstanceIdHeldError(Exception):
    """The group refused this static member's instance id: a predecessor holds it still."""

    def __init__(self, options: ConsumerSettings) -> None:
        super().__init__(
            f"instance id {options.instance_id!r} is still held in group {options.group_id!r} "
            "by a member that ended without leaving (killed, its host crashed, or this member's "
            "own earlier session, fenced), until the broker's session timeout for it ends"
        )


def await_instance_id_retry(stop: StopRequest) -> None:
    """After an InstanceIdHeldError: wait a heartbeat's time before joining again.

    Joining is the only way to learn that the id is free: the group lists a dead predecessor
    and one that left as a static member does (keeping its id for a successor) alike.
    """
    log.info("joining again in %.0f s", _HELD_ID_RETRY_S)
    # The refusal may also have reached the error callback, which sets ``stop``: only a signal
    # cuts the wait short.
    stop.sleep_unless_signalled(_HELD_ID_RETRY_S)


def instance_id_held(error: KafkaException) -> bool:
    """Whether ``error`` is the broker's UNRELEASED_INSTANCE_ID refusal."""
    kafka_error = error.args[0] if error.args else None
    if not isinstance(kafka_error, KafkaError):
        return False
    held = KafkaError.UNRELEASED_INSTANCE_ID
    # librdkafka reports it as a fatal error, whose own code is _FATAL and whose text names it.
    return kafka_error.code() == held or (
        kafka_error.code() == KafkaError._FATAL and KafkaError(held).str() in kafka_error.str()
    )


class Readiness:
    """Sends READY=1 to systemd once this member is in the group, which ends its connect deadline.

    That is its first assignment, as a rule. But under KIP-848 (``group_protocol='consumer'``)
    librdkafka calls no assignment callback for a member whose assignment is empty (more members
    than partitions): a member that the broker took into the group ``_STAND_BY_AFTER_S`` ago and
    that still has no partition is a ready stand-by.
    """

    def __init__(self, notifier: SystemdNotifier, deadline: ConnectDeadline) -> None:
        self._notifier = notifier
        self._deadline = deadline
        self._joined_at: float | None = None
        self._next_check = 0.0
        self.ready = False

    def assigned(self, owned: int) -> None:
        if not self.ready:
            self._become_ready(f"owns {owned} partitions")

    def check(self, now: float, consumer: Consumer) -> None:
        """Call until ready; looks at most once per interval."""
        if now < self._next_check:
            return
        self._next_check = now + _JOIN_CHECK_INTERVAL_S
        if self._joined_at is None:
            if in_group(consumer):
                self._joined_at = now
        elif now - self._joined_at >= _STAND_BY_AFTER_S:
            self._become_ready("in the group with no partitions (more members than partitions)")

    def _become_ready(self, why: str) -> None:
        self.ready = True
        self._deadline.reached()
        log.info("ready: %s", why)
        self._notifier.ready()


class Membership:
    """Rebalance callbacks: tracks and logs the partitions this member owns, counts the events."""

    def __init__(self, readiness: Readiness) -> None:
        self.owned: set[int] = set()
        self.rebalances = dict.fromkeys(("assigned", "revoked", "lost"), 0)
        self._readiness = readiness

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned.update(partition.partition for partition in partitions)
        self._changed("assigned", partitions)
        self._readiness.assigned(len(self.owned))

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        commit_stored(consumer, "revoke")
        self.owned.difference_update(partition.partition for partition in partitions)
        self._changed("revoked", partitions)

    @property
    def handovers(self) -> int:
        """Partition sets this member has given up so far, revoked or lost."""
        return self.rebalances["revoked"] + self.rebalances["lost"]

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost partitions may already belong to another member: committing would be wrong.
        self.owned.difference_update(partition.partition for partition in partitions)
        self._changed("lost", partitions)

    def _changed(self, event: str, partitions: list[TopicPartition]) -> None:
        if partitions:
            # Under KIP-848 librdkafka also calls on_assign with no partitions: nothing changed.
            self.rebalances[event] += 1
        log.info(
            "partitions %s: %s; now owns %d partitions: %s",
            event,
            sorted(partition.partition for partition in partitions),
            len(self.owned),
            sorted(self.owned),
        )
