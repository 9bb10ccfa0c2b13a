"""The consumer group as Kafka's own kafka-consumer-groups reports it, read on a broker host.

Shared by the scenarios' tests (their verifier puts molecule/shared on PYTHONPATH).
"""

import time

import pytest

KAFKA_BIN = "/opt/confluent/current/bin"
ADMIN = "--command-config /etc/kafka/admin-client.properties"
TOPIC = "test-topic"
GROUP = "kafka-micro"
PARTITIONS = 24
INSTANCES = 6
# A bound for a loaded 2-core machine, not an expectation.
SETTLE_TIMEOUT_S = 180
# kafka-consumer-groups gives each call 5 s by default; on a loaded 2-core machine its JVM's first
# TLS and SCRAM handshake alone took 5.3 s, and the call failed with "Timed out waiting for a node
# assignment". A bound, not an expectation.
TOOL_TIMEOUT_MS = 60000


def bootstrap(broker):
    return f"{broker.backend.get_hostname()}:9092"


def consumer_groups(broker, *options):
    """The group's rows of kafka-consumer-groups --describe, split into columns."""
    command = (
        f"{KAFKA_BIN}/kafka-consumer-groups --bootstrap-server {bootstrap(broker)} {ADMIN} "
        f"--timeout {TOOL_TIMEOUT_MS} "
    )
    result = broker.run(command + f"--describe --group {GROUP} " + " ".join(options))
    assert result.rc == 0, result.stderr[-2000:]
    return [line.split() for line in result.stdout.splitlines() if line.startswith(f"{GROUP} ")]


def members(broker):
    """{group.instance.id: partition count}, from --describe --members."""
    return {row[2]: int(row[5]) for row in consumer_groups(broker, "--members")}


def assignments(broker):
    """{group.instance.id: the topic's partitions it owns}, from --members --verbose."""
    owned = {}
    for row in consumer_groups(broker, "--members", "--verbose"):
        # ASSIGNMENT is "-" or topic:p,p,... ; the last columns follow under KIP-848.
        topic_partitions = next((column for column in row if column.startswith(f"{TOPIC}:")), "")
        partitions = topic_partitions.removeprefix(f"{TOPIC}:")
        owned[row[2]] = {int(p) for p in partitions.split(",") if p}
    return owned


def offsets(broker):
    """{partition: (committed offset or None, log end offset)} of the topic."""
    found = {}
    for row in consumer_groups(broker):
        if row[1] == TOPIC:
            committed = None if row[3] == "-" else int(row[3])
            found[int(row[2])] = (committed, int(row[4]))
    return found


def wait_for_balanced_group(broker, app_hosts):
    """Members once every app host's instances each own an equal share of the partitions."""
    expected_ids = {f"{name}-{number}" for name in app_hosts for number in range(1, INSTANCES + 1)}
    share = PARTITIONS // len(expected_ids)
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        found = members(broker)
        if set(found) == expected_ids and set(found.values()) == {share}:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"group {GROUP} did not settle in {SETTLE_TIMEOUT_S} s: {found}")
        time.sleep(3)
