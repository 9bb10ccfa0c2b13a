"""What every measurement needs: the broker, a scratch directory, topics of its own."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# confluent_kafka.admin re-exports NewTopic without declaring it; import it from the source.
from confluent_kafka.cimpl import NewTopic

from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.settings import settings_from
from kafka_micro_devtools.broker_security import User
from kafka_micro_devtools.throwaway_tls import write_owner_only

log = logging.getLogger(__name__)

_ADMIN_TIMEOUT_S = 30.0
# A group description is asked for again and again while waiting; one that the broker cannot
# give yet (e.g. its coordinator still loading after a start) must not hold the wait for long.
_DESCRIBE_TIMEOUT_S = 2.0
NAME_PREFIX = "kafka-micro-bench-"
"""Every topic and group the bench creates is named so (``unique_name``)."""


class BenchError(RuntimeError):
    """A measurement could not be made; the message says which and why."""


@dataclass
class BenchContext:
    """The broker under test and where the run keeps its files.

    ``kafka_home`` is an unpacked Kafka install whose ``bin/`` has the perf-test tools;
    without it Kafka's own tools are not run and there are no ratios. ``client_properties``
    holds, per user, the librdkafka properties (``security.protocol``, ``sasl.*``, ``ssl.*``)
    its clients connect with: the admin client as ``admin``, our producers as ``producer``,
    our consumers as ``consumer``; empty (the default) for a PLAINTEXT broker.
    ``java_connection`` holds the same for Kafka's Java tools (one login for all of them).

    Our children serve ``/metrics`` as deployed (``metrics``: on by default), on free ports of
    127.0.0.1 so they never take a deployment's ports. With ``scrape_interval_s`` the bench
    scrapes each of them that often, as Prometheus would; ``statistics_interval_ms``, when set,
    replaces the app's default interval of librdkafka's statistics.
    """

    bootstrap: str
    work_dir: Path
    kafka_home: Path | None
    client_properties: Mapping[User, Mapping[str, str]] = field(default_factory=dict)
    java_connection: Mapping[str, str] = field(default_factory=dict)
    metrics: bool = True
    scrape_interval_s: float | None = None
    statistics_interval_ms: int | None = None
    started: float = field(default_factory=time.monotonic)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _admin: AdminClient | None = None
    _topics: list[str] = field(default_factory=list)
    _names: int = 0

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            settings = settings_from(
                {"bootstrap_servers": self.bootstrap, "librdkafka": self.librdkafka("admin")}
            )
            self._admin = create_client(
                AdminClient, client_config(settings, "admin", ClientErrors("admin"))
            )
        return self._admin

    def librdkafka(self, user: User) -> dict[str, str]:
        """The connection properties of ``user``'s clients (empty for a PLAINTEXT broker)."""
        return dict(self.client_properties.get(user, {}))

    def metrics_settings(self) -> dict[str, Any]:
        """Our children's ``metrics`` table."""
        table: dict[str, Any] = {"enabled": self.metrics, "bind_address": "127.0.0.1", "port": 0}
        if self.statistics_interval_ms is not None:
            table["statistics_interval_ms"] = self.statistics_interval_ms
        return table

    def progress(self, message: str, *args: object) -> None:
        """A progress line, prefixed with the seconds since the benchmark started."""
        log.info("[%6.1f s] " + message, time.monotonic() - self.started, *args)

    def unique_name(self, what: str) -> str:
        """A topic or group name no other run uses: ``kafka-micro-bench-RUN-N-WHAT``."""
        self._names += 1
        return f"{NAME_PREFIX}{self.run_id}-{self._names}-{what}"

    def log_path(self, name: str) -> Path:
        logs = self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        return logs / name

    def java_properties_file(self, name: str, properties: Mapping[str, str]) -> Path:
        """A Java client properties file in the logs: ``properties``, the bootstrap servers and
        ``java_connection`` (whose password makes it readable by its owner only)."""
        path = self.log_path(f"{name}.properties")
        lines = {"bootstrap.servers": self.bootstrap, **properties, **self.java_connection}
        write_owner_only(path, "".join(f"{k}={v}\n" for k, v in lines.items()).encode())
        return path

    def create_topic(self, what: str, partitions: int) -> str:
        """Create a fresh topic (replication: the broker's default) and wait until it is usable."""
        topic = self.unique_name(what)
        future = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=-1)],
            operation_timeout=_ADMIN_TIMEOUT_S,
            request_timeout=_ADMIN_TIMEOUT_S,
        )[topic]
        try:
            future.result()
        except KafkaException as error:
            raise BenchError(f"cannot create topic {topic} on {self.bootstrap}: {error}") from None
        self._topics.append(topic)
        deadline = time.monotonic() + _ADMIN_TIMEOUT_S
        while time.monotonic() < deadline:
            metadata = self.admin.list_topics(topic, timeout=_ADMIN_TIMEOUT_S).topics[topic]
            if (
                metadata.error is None
                and len(metadata.partitions) == partitions
                and all(p.leader >= 0 for p in metadata.partitions.values())
            ):
                return topic
            time.sleep(0.1)
        raise BenchError(f"topic {topic} has no leader for every partition after creation")

    def delete_topics(self) -> None:
        """Delete the topics this run created (only those), to give the broker its disk back."""
        if not self._topics:
            return
        futures = self.admin.delete_topics(self._topics, operation_timeout=_ADMIN_TIMEOUT_S)
        for topic, future in futures.items():
            try:
                future.result()
            except KafkaException as error:
                log.warning("could not delete benchmark topic %s: %s", topic, error)
        self._topics.clear()

    def close(self) -> None:
        """Let go of the admin client while the broker still runs.

        Destroyed at interpreter exit instead, after a bench-started broker has gone, it
        was seen to wait without end for requests that can no longer be answered.
        """
        self._admin = None

    def owned_per_member(self, group: str) -> list[int]:
        """How many partitions each member of the group owns (empty if not describable now)."""
        try:
            description = self.admin.describe_consumer_groups(
                [group], request_timeout=_DESCRIBE_TIMEOUT_S
            )[group].result()
        except KafkaException:
            return []
        return [
            len(member.assignment.topic_partitions) if member.assignment is not None else 0
            for member in description.members
        ]

    def wait_for_assignment(
        self, group: str, partitions: int, timeout: float, members: int = 1
    ) -> None:
        """Wait until ``members`` members of the group each own an equal share of the partitions."""
        deadline = time.monotonic() + timeout
        wanted = [partitions // members] * members
        owned: list[int] = []
        while time.monotonic() < deadline:
            owned = self.owned_per_member(group)
            if owned == wanted:
                return
            time.sleep(0.2)
        raise BenchError(
            f"group {group}: members own {owned or 'no'} partitions after {timeout:g} s; "
            f"waited for {wanted}"
        )
