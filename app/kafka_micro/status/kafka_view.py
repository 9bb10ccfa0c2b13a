"""What the status page shows from Kafka's Admin API: the cluster, the topic, the group.

One AdminClient per page view, made by ``clients.py`` like every other client, so the page
reads what the brokers say now and keeps nothing between views. Every call waits at most
``request_timeout_s``; a section that fails is left out and its failure is reported instead.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports it without declaring it; import it from the source.
from confluent_kafka.admin._listoffsets import OffsetSpec

from kafka_micro.access import denied
from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.settings import ConfigError, Settings

log = logging.getLogger(__name__)

Result = TypeVar("Result")
# A future's own wait beyond the request timeout librdkafka enforces.
_GRACE_S: Final = 1.0


@dataclass(frozen=True)
class BrokerView:
    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass(frozen=True)
class ClusterView:
    cluster_id: str | None
    controller_id: int | None
    brokers: list[BrokerView]


@dataclass(frozen=True)
class PartitionView:
    partition: int
    leader: int | None
    replicas: list[int]
    isr: list[int]
    end_offset: int | None = None
    committed: int | None = None

    @property
    def under_replicated(self) -> bool:
        return len(self.isr) < len(self.replicas)

    @property
    def lag(self) -> int | None:
        """Messages after the group's committed offset; None without both offsets."""
        if self.end_offset is None or self.committed is None:
            return None
        return max(self.end_offset - self.committed, 0)


@dataclass(frozen=True)
class MemberView:
    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    partitions: list[int]


@dataclass(frozen=True)
class GroupView:
    group_id: str
    state: str
    protocol: str
    coordinator_id: int | None
    members: list[MemberView]


@dataclass
class KafkaView:
    """One page view's reading of Kafka; a section is None when it could not be read."""

    topic: str
    group_id: str
    cluster: ClusterView | None = None
    partitions: list[PartitionView] | None = None
    group: GroupView | None = None
    offsets_read: bool = False
    problems: list[str] = field(default_factory=list)

    def total_lag(self) -> int | None:
        if self.partitions is None or not self.offsets_read:
            return None
        return sum(p.lag or 0 for p in self.partitions)

    def uncommitted(self) -> list[int]:
        """Partitions the group has no committed offset for."""
        if self.partitions is None or not self.offsets_read:
            return []
        return [p.partition for p in self.partitions if p.committed is None]


def read_kafka(settings: Settings, timeout_s: float) -> KafkaView:
    """Read the cluster, the topic's partitions and offsets, and the group, within bounds."""
    view = KafkaView(settings.topic, settings.consumer.group_id)
    errors = ClientErrors("admin")
    try:
        admin = create_client(AdminClient, client_config(settings, "admin", errors))
    except ConfigError as error:
        view.problems.append(f"Kafka: {error}")
        return view
    reader = _Reader(admin, errors, view, timeout_s)
    reader.read()
    return view


class _Reader:
    def __init__(
        self, admin: AdminClient, errors: ClientErrors, view: KafkaView, timeout_s: float
    ) -> None:
        self._admin = admin
        self._errors = errors
        self._view = view
        self._timeout_s = timeout_s
        self._options: dict[str, Any] = {"request_timeout": timeout_s}

    def read(self) -> None:
        admin, view = self._admin, self._view
        # The independent requests first, all at once: the view waits for the slowest only.
        cluster = admin.describe_cluster(**self._options)
        topic = admin.describe_topics(TopicCollection([view.topic]), **self._options)[view.topic]
        group = admin.describe_consumer_groups([view.group_id], **self._options)[view.group_id]
        committed = admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(view.group_id)], **self._options
        )[view.group_id]

        described = self._result("the cluster", cluster)
        if described is not None:
            view.cluster = ClusterView(
                cluster_id=described.cluster_id,
                controller_id=described.controller.id if described.controller else None,
                brokers=sorted(
                    (BrokerView(n.id, n.host, n.port, n.rack) for n in described.nodes),
                    key=lambda broker: broker.node_id,
                ),
            )
        partitions = self._partitions(topic)
        end_offsets = self._end_offsets(partitions) if partitions else {}
        group_offsets = self._committed(committed)
        if partitions is not None:
            view.offsets_read = bool(end_offsets) and group_offsets is not None
            view.partitions = [
                replace(
                    p,
                    end_offset=end_offsets.get(p.partition),
                    committed=(group_offsets or {}).get(p.partition),
                )
                for p in partitions
            ]
        view.group = self._group(group)
        if view.cluster is None and partitions is None and view.group is None:
            # Nothing answered: one cause, said once.
            view.problems[1:] = []
            view.problems[0] += " (nor the topic, the group or its offsets)"

    def _result(self, what: str, future: Future[Result]) -> Result | None:
        """The future's result, or None with the reason added to the view's problems."""
        try:
            return future.result(timeout=self._timeout_s + _GRACE_S)
        except KafkaException as error:
            self._view.problems.append(f"Kafka: could not read {what}: {self._explain(error)}")
        except TimeoutError:
            self._view.problems.append(
                f"Kafka: could not read {what}: no answer within {self._timeout_s:g} s"
                f"{self._last_error()}"
            )
        return None

    def _explain(self, error: KafkaException) -> str:
        kafka_error = error.args[0] if error.args else None
        if not isinstance(kafka_error, KafkaError):
            return str(error)
        cause = denied(kafka_error)
        if cause is not None:
            return cause
        text = kafka_error.str()
        if kafka_error.code() == KafkaError._TIMED_OUT:
            return text + self._last_error()
        return text

    def _last_error(self) -> str:
        """Why the brokers did not answer, as far as librdkafka's error callback said."""
        self._admin.poll(0.1)
        access = self._errors.access
        reason = access.failure or access.last_error
        return f" (last error: {reason})" if reason else ""

    def _partitions(self, future: Future[Any]) -> list[PartitionView] | None:
        description = self._result(f"topic {self._view.topic!r}", future)
        if description is None:
            return None
        return sorted(
            (
                PartitionView(
                    partition=info.id,
                    leader=info.leader.id if info.leader is not None else None,
                    replicas=[node.id for node in info.replicas],
                    isr=[node.id for node in info.isr],
                )
                for info in description.partitions
            ),
            key=lambda partition: partition.partition,
        )

    def _end_offsets(self, partitions: list[PartitionView]) -> dict[int, int]:
        topic = self._view.topic
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = self._admin.list_offsets(
            {TopicPartition(topic, p.partition): latest for p in partitions}, **self._options
        )
        offsets: dict[int, int] = {}
        failed: list[str] = []
        for topic_partition, future in futures.items():
            try:
                offsets[topic_partition.partition] = future.result(
                    timeout=self._timeout_s + _GRACE_S
                ).offset
            except KafkaException as error:
                failed.append(f"{topic_partition.partition}: {self._explain(error)}")
            except TimeoutError:
                failed.append(f"{topic_partition.partition}: no answer")
        if failed:
            shown = "; ".join(failed[:3]) + ("; ..." if len(failed) > 3 else "")
            self._view.problems.append(
                f"Kafka: could not read the end offsets of {len(failed)} partitions ({shown})"
            )
        return offsets

    def _committed(self, future: Future[Any]) -> dict[int, int] | None:
        result = self._result(f"the offsets of group {self._view.group_id!r}", future)
        if result is None:
            return None
        offsets: dict[int, int] = {}
        for topic_partition in result.topic_partitions or []:
            if topic_partition.topic != self._view.topic or topic_partition.error is not None:
                continue
            if topic_partition.offset >= 0:
                offsets[topic_partition.partition] = topic_partition.offset
        return offsets

    def _group(self, future: Future[Any]) -> GroupView | None:
        description = self._result(f"group {self._view.group_id!r}", future)
        if description is None:
            return None
        members = []
        for member in description.members:
            assigned = member.assignment.topic_partitions if member.assignment else []
            members.append(
                MemberView(
                    member_id=member.member_id,
                    client_id=member.client_id,
                    host=member.host,
                    instance_id=member.group_instance_id,
                    partitions=sorted(
                        tp.partition for tp in assigned or [] if tp.topic == self._view.topic
                    ),
                )
            )
        members.sort(key=lambda m: (m.instance_id or m.client_id, m.member_id))
        state, protocol = description.state, description.type
        return GroupView(
            group_id=description.group_id,
            state=getattr(state, "name", str(state)),
            protocol=getattr(protocol, "name", str(protocol)),
            coordinator_id=description.coordinator.id if description.coordinator else None,
            members=members,
        )
