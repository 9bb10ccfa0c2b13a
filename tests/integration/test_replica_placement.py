"""The kafka_replica_placement module: its plan, and its moves on a real two-broker cluster.

The cluster is a combined broker + controller node and a broker-only node that joins it, as an
operator's added broker would; every outcome is read back with Kafka's own kafka-topics, and the
messages written before the moves are read back after them.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from modulerunner import (
    ROLES,
    ModuleRun,
    assert_documentation_matches_argument_spec,
    load_module,
    run_module,
)

from kafka_micro_devtools.localbroker import LocalBroker

LIBRARY = ROLES / "kafka_topics" / "library"
NAME = "kafka_replica_placement"


@pytest.fixture
def placement(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_module(LIBRARY, NAME, monkeypatch)


def replica_counts(assignment: dict[int, list[int]]) -> Counter[int]:
    return Counter(broker for replicas in assignment.values() for broker in replicas)


def leader_counts(assignment: dict[int, list[int]]) -> Counter[int]:
    return Counter(replicas[0] for replicas in assignment.values())


def test_an_added_broker_gets_its_share_and_nothing_more_moves(placement: ModuleType) -> None:
    # 24 partitions on three brokers, as Kafka creates them: every broker has every partition.
    three = {p: [1 + (p + i) % 3 for i in range(3)] for p in range(24)}

    four = placement.spread_topic({p: list(r) for p, r in three.items()}, [1, 2, 3, 4])

    assert replica_counts(four) == {1: 18, 2: 18, 3: 18, 4: 18}
    assert leader_counts(four) == {1: 6, 2: 6, 3: 6, 4: 6}
    assert all(len(set(replicas)) == 3 for replicas in four.values())
    # Only broker 4's 18 replicas are copied; the rest is at most a change of order.
    copied = sum(len(set(four[p]) - set(three[p])) for p in three)
    assert copied == 18
    assert placement.spread_topic({p: list(r) for p, r in four.items()}, [1, 2, 3, 4]) == four


def test_a_drained_broker_loses_every_replica_and_the_others_share_them(
    placement: ModuleType,
) -> None:
    four = placement.spread_topic(
        {p: [1 + (p + i) % 3 for i in range(3)] for p in range(24)}, [1, 2, 3, 4]
    )

    three = placement.spread_topic({p: list(r) for p, r in four.items()}, [1, 2, 3])

    assert replica_counts(three) == {1: 24, 2: 24, 3: 24}
    assert leader_counts(three) == {1: 8, 2: 8, 3: 8}
    untouched = [p for p, replicas in four.items() if 4 not in replicas]
    assert all(set(three[p]) == set(four[p]) for p in untouched)


def racks_of(assignment: dict[int, list[int]], rack: dict[int, str]) -> set[int]:
    """How many distinct racks the partitions' replicas span (one number per partition)."""
    return {len({rack[b] for b in replicas}) for replicas in assignment.values()}


def test_replicas_are_put_in_distinct_racks_and_then_evened_out(placement: ModuleType) -> None:
    # Six brokers in three racks; every partition on brokers 1, 2 and 3, two of which share a rack.
    rack = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    crowded = {p: [1 + (p + i) % 3 for i in range(3)] for p in range(12)}

    spread = placement.spread_topic({p: list(r) for p, r in crowded.items()}, [*rack], rack)

    assert racks_of(spread, rack) == {3}
    assert replica_counts(spread) == {b: 6 for b in rack}
    assert leader_counts(spread) == {b: 2 for b in rack}
    assert placement.spread_topic({p: list(r) for p, r in spread.items()}, [*rack], rack) == spread


def test_uneven_racks_keep_replicas_apart_before_evening_the_counts(
    placement: ModuleType,
) -> None:
    # Rack a has one broker, rack b three: with two replicas per partition, broker 1 must hold a
    # replica of every partition, so the counts cannot be within one.
    rack = {1: "a", 2: "b", 3: "b", 4: "b"}
    together = {p: [2 + p % 3, 2 + (p + 1) % 3] for p in range(12)}

    spread = placement.spread_topic({p: list(r) for p, r in together.items()}, [*rack], rack)

    assert racks_of(spread, rack) == {2}
    assert replica_counts(spread) == {1: 12, 2: 4, 3: 4, 4: 4}
    assert placement.spread_topic({p: list(r) for p, r in spread.items()}, [*rack], rack) == spread
    # Racks ignored, the same topic is evened out instead, some partitions within rack b.
    plain = placement.spread_topic({p: list(r) for p, r in together.items()}, [*rack])
    assert replica_counts(plain) == {1: 6, 2: 6, 3: 6, 4: 6}
    assert racks_of(plain, rack) == {1, 2}


def test_racks_are_ignored_unless_every_broker_has_one(placement: ModuleType) -> None:
    three = {p: [1 + (p + i) % 3 for i in range(2)] for p in range(24)}

    def spread(racks: dict[int, str | None] | None) -> dict[int, list[int]]:
        return placement.spread_topic({p: list(r) for p, r in three.items()}, [1, 2, 3, 4], racks)

    assert spread({1: "a", 2: "a", 3: "a", 4: None}) == spread(None)


def test_a_replication_factor_above_the_broker_count_is_refused(placement: ModuleType) -> None:
    with pytest.raises(
        ValueError,
        match="Topic 'orders' cannot be spread: it has 3 replicas per partition and only 2 brokers",
    ):
        placement.spread({("orders", 0): [1, 2, 3]}, [1, 2])


def test_the_tools_outputs_are_read(placement: ModuleType) -> None:
    listing = (
        "Current partition reassignments:\n"
        "t.x-0: replicas: 1,2. adding: 1. removing: 2.\n"
        "t.x-11: replicas: 1,2. adding: 1.\n"
    )
    assert placement.parse_ongoing(listing) == {("t.x", 0): [1], ("t.x", 11): [1, 2]}
    versions = (
        "b:9092 (id: 2 rack: null isFenced: false) -> (\n"
        "\tProduce(0): 3 to 12 [usable: 12],\n"
        "c:9092 (id: 3 rack: r1 isFenced: true) -> (\n"
    )
    assert placement.parse_live_brokers(versions) == {2: None}
    racked = versions.replace("rack: null", "rack: eu-1a").replace(
        "isFenced: true", "isFenced: false"
    )
    assert placement.parse_live_brokers(racked) == {2: "eu-1a", 3: "r1"}


class Cluster:
    """Two brokers, the module under test, and Kafka's tools to check what it did."""

    def __init__(self, first: LocalBroker, second: LocalBroker, tmp_path: Path) -> None:
        self.brokers = (first, second)
        self.bootstrap = f"{first.bootstrap},{second.bootstrap}"
        self.bin_dir = first.kafka_home / "bin"
        self.tmp_path = tmp_path

    def module(self, check: bool = False, diff: bool = False, **params: Any) -> ModuleRun:
        args = {"kafka_bin_dir": str(self.bin_dir), "bootstrap_server": self.bootstrap, **params}
        return run_module(LIBRARY, NAME, args, self.tmp_path, check=check, diff=diff)

    def tool(self, name: str, *args: str) -> str:
        return subprocess.run(
            [str(self.bin_dir / name), "--bootstrap-server", self.bootstrap, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

    def replicas(self, topic: str) -> dict[int, list[int]]:
        described = self.tool("kafka-topics", "--describe", "--topic", topic)
        found: dict[int, list[int]] = {}
        for line in described.splitlines():
            fields = dict(part.split(": ", 1) for part in line.strip().split("\t") if ": " in part)
            if "Partition" in fields:
                found[int(fields["Partition"])] = [int(b) for b in fields["Replicas"].split(",")]
        return found

    def produce(self, topic: str, count: int) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        for number in range(count):
            producer.produce(topic, str(number).encode(), partition=number % 6)
        assert producer.flush(30) == 0

    def read_all(self, topic: str) -> set[bytes]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"read-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            }
        )
        consumer.subscribe([topic])
        values: set[bytes] = set()
        at_end: set[int] = set()
        # A deadline on the whole read, not on each poll: joining a new group on a loaded machine
        # can take longer than any one poll.
        deadline = time.monotonic() + 120
        while len(at_end) < 6:
            message = consumer.poll(1)
            assert time.monotonic() < deadline, (
                f"the end of every partition not reached within 120 s; read {len(values)}, "
                f"at the end of partitions {sorted(at_end)}"
            )
            if message is None:
                continue
            if message.error():
                at_end.add(message.partition())
            else:
                values.add(message.value())
        consumer.close()
        return values


@pytest.fixture(scope="module")
def two_brokers(
    kafka_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalBroker, LocalBroker]]:
    work = tmp_path_factory.mktemp("placement")
    with (
        LocalBroker(kafka_home, work / "first", heap="256m") as first,
        LocalBroker(kafka_home, work / "second", heap="256m", node_id=2, joins=first) as second,
    ):
        yield first, second


@pytest.fixture
def cluster(two_brokers: tuple[LocalBroker, LocalBroker], tmp_path: Path) -> Cluster:
    return Cluster(*two_brokers, tmp_path)


def test_replicas_move_onto_an_added_broker_and_off_a_drained_one_and_no_message_is_lost(
    cluster: Cluster,
) -> None:
    topic = f"placed-{uuid.uuid4().hex[:8]}"
    cluster.tool(
        "kafka-topics", "--create", "--topic", topic, "--replica-assignment", "1,1,1,1,1,1"
    )
    cluster.produce(topic, 3000)

    spread = cluster.module(brokers=[1, 2], topics=[topic], diff=True)
    assert not spread.failed, spread.output
    assert spread.changed
    assert len(spread.result["moves"]) == 3
    assert spread.result["replicas_per_broker"] == {"1": 3, "2": 3}
    assert sorted(Counter(r[0] for r in cluster.replicas(topic).values()).values()) == [3, 3]
    assert f"+{topic}-" in spread.output
    again = cluster.module(brokers=[1, 2], topics=[topic])
    assert not again.failed, again.output
    assert not again.changed

    planned = cluster.module(brokers=[2], topics=[topic], check=True)
    assert planned.changed
    assert len(planned.result["moves"]) == 3
    assert Counter(r[0] for r in cluster.replicas(topic).values()) == {1: 3, 2: 3}

    drained = cluster.module(brokers=[2], topics=[topic])
    assert not drained.failed, drained.output
    assert cluster.replicas(topic) == {p: [2] for p in range(6)}
    assert cluster.read_all(topic) == {str(n).encode() for n in range(3000)}


def test_a_broker_that_is_not_running_is_named_and_nothing_moves(cluster: Cluster) -> None:
    topic = f"placed-{uuid.uuid4().hex[:8]}"
    cluster.tool("kafka-topics", "--create", "--topic", topic, "--replica-assignment", "1,1")

    run = cluster.module(brokers=[1, 2, 7], topics=[topic])

    assert run.failed
    assert (
        "Not running: broker 7 of brokers [1, 2, 7] (live and unfenced: 1, 2)" in run.result["msg"]
    )
    assert cluster.replicas(topic) == {0: [1], 1: [1]}


def test_module_documentation_matches_its_argument_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_documentation_matches_argument_spec(LIBRARY, NAME, tmp_path, monkeypatch)
