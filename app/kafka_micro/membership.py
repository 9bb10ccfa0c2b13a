"""This member's place in its consumer group: the partitions it owns, and when it is ready."""

from __future__ import annotations

import logging
import time
from typing import Final

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports it without declaring it; import it from the source.
from confluent_kafka.admin._group import MemberDescription

from kafka_micro.access import ConnectDeadline
from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import ConsumerSettings, Settings
from kafka_micro.systemd import SystemdNotifier

log = logging.getLogger(__name__)

# Until ready, how often the broker is asked whether this member has joined with no partitions,
# or whether the instance id this member was refused is free again.
_JOIN_CHECK_INTERVAL_S: Final = 1.0
# How long a new member waits for an assignment before it asks the broker at all. A group the
# roles deploy has a partition for every member, so this is a fallback; and librdkafka 2.16's
# admin client can abort the process when a DescribeConsumerGroups request fails (issue #4605
# there: a use-after-free on the coordinator request's error path, seen under load).
_JOIN_CHECK_GRACE_S: Final = 10.0
_DESCRIBE_TIMEOUT_S: Final = 2.0


def _admin_client(settings: Settings) -> AdminClient:
    return create_client(AdminClient, client_config(settings, "admin", ClientErrors("admin")))


def _group_members(admin: AdminClient, group: str) -> list[MemberDescription] | None:
    """The group's members as the broker lists them now; None when it cannot be described."""
    try:
        description = admin.describe_consumer_groups([group], request_timeout=_DESCRIBE_TIMEOUT_S)[
            group
        ].result()
    except KafkaException as error:
        log.debug("group %s not describable yet: %s", group, error)
        return None
    return list(description.members)


def commit_stored(consumer: Consumer, why: str) -> None:
    """Synchronously commit the stored offsets; nothing stored is not an error."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        kafka_error = error.args[0]
        if isinstance(kafka_error, KafkaError) and kafka_error.code() == KafkaError._NO_OFFSET:
            return
        log.warning("commit on %s failed: %s", why, error)


class InstanceIdHeldError(Exception):
    """The group refused this static member's instance id: a predecessor holds it still."""

    def __init__(self, options: ConsumerSettings) -> None:
        super().__init__(
            f"instance id {options.instance_id!r} is still held in group {options.group_id!r} "
            "by a member that ended without leaving (killed, or its host crashed), until the "
            "broker's session timeout for it ends"
        )


def await_instance_id_release(settings: Settings, stop: StopRequest) -> None:
    """After an InstanceIdHeldError: wait, until ``stop``, while the group lists the instance id.

    Asking the group, rather than joining again, keeps librdkafka from logging a fatal error a
    second. (The refusal alone tells a dead predecessor from one that left as a static member
    does, keeping its id for a successor: the group lists both alike.)
    """
    options = settings.consumer
    admin = _admin_client(settings)
    started = time.monotonic()
    logged = False
    while not stop.is_set():
        # Unanswered is not free: joining again would only be refused again.
        members = _group_members(admin, options.group_id)
        if members is not None:
            holder = next((m for m in members if m.group_instance_id == options.instance_id), None)
            if holder is None:
                log.info(
                    "instance id %r free after %.1f s more: joining",
                    options.instance_id,
                    time.monotonic() - started,
                )
                return
            if not logged:
                logged = True
                log.info(
                    "waiting for the group to drop member %s (client %s on %s)",
                    holder.member_id,
                    holder.client_id,
                    holder.host,
                )
        stop.event.wait(_JOIN_CHECK_INTERVAL_S)


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
    than partitions), so until the first assignment the broker is asked, once a second, for the
    group's members (from ``_JOIN_CHECK_GRACE_S`` on): listed there with no partitions, this
    member is a ready stand-by.
    """

    def __init__(
        self, settings: Settings, notifier: SystemdNotifier, deadline: ConnectDeadline
    ) -> None:
        self._settings = settings
        self._notifier = notifier
        self._deadline = deadline
        self._admin: AdminClient | None = None
        self._next_check = time.monotonic() + _JOIN_CHECK_GRACE_S
        self.ready = False

    def assigned(self, owned: int) -> None:
        if not self.ready:
            self._become_ready(f"owns {owned} partitions")

    def check(self, now: float, consumer: Consumer) -> None:
        """Call until ready; asks the broker at most once per interval."""
        if now < self._next_check:
            return
        self._next_check = now + _JOIN_CHECK_INTERVAL_S
        if self._joined_without_partitions(consumer.memberid()):
            self._become_ready("in the group with no partitions (more members than partitions)")

    def _joined_without_partitions(self, member_id: str | None) -> bool:
        if self._admin is None:
            self._admin = _admin_client(self._settings)
        return any(
            member.member_id == member_id
            and (member.assignment is None or not member.assignment.topic_partitions)
            for member in _group_members(self._admin, self._settings.consumer.group_id) or ()
        )

    def _become_ready(self, why: str) -> None:
        self.ready = True
        self._deadline.reached()
        self._admin = None
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
