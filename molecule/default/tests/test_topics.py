"""The topics made by roles/kafka_topics, read back with Kafka's own tools on the broker host."""

import os
import re
import time

import pytest
import testinfra.utils.ansible_runner

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("kafka")

BIN = "/opt/confluent/current/bin"
ADMIN = "--command-config /etc/kafka/admin-client.properties"
TOPIC = "test-topic"
# A broker on a loaded machine may take a while to answer; a bound, not an expectation.
READY_TIMEOUT_S = 180


def bootstrap(host):
    return f"{host.backend.get_hostname()}:9092"


def describe(host):
    """The summary line of test-topic from kafka-topics --describe, once the broker answers."""
    command = f"{BIN}/kafka-topics --bootstrap-server {bootstrap(host)} {ADMIN} "
    command += f"--describe --topic {TOPIC}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        result = host.run(command)
        if result.rc == 0:
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"kafka-topics --describe failed for {READY_TIMEOUT_S} s: "
                f"{result.stdout}{result.stderr}"
            )
        time.sleep(3)
    summary = [line for line in result.stdout.splitlines() if line.startswith(f"Topic: {TOPIC}\t")]
    assert len(summary) == 1, result.stdout
    return summary[0]


def test_test_topic_has_24_partitions(host):
    partitions = re.search(r"\tPartitionCount: (\d+)\t", describe(host))
    assert partitions, "no PartitionCount in the description"
    assert int(partitions[1]) == 24


def test_test_topic_is_replicated_to_every_broker_up_to_three(host):
    brokers = len(testinfra_hosts)
    replication = re.search(r"\tReplicationFactor: (\d+)\t", describe(host))
    assert replication, "no ReplicationFactor in the description"
    assert int(replication[1]) == min(3, brokers)


def test_test_topic_keeps_its_min_insync_replicas_and_retention(host):
    output = host.check_output(
        f"{BIN}/kafka-configs --bootstrap-server {bootstrap(host)} {ADMIN} "
        f"--describe --entity-type topics --entity-name {TOPIC}"
    )
    configs = dict(re.findall(r"^\s+([^=\s]+)=(\S*) sensitive=", output, flags=re.MULTILINE))
    replication_factor = min(3, len(testinfra_hosts))
    assert configs.get("min.insync.replicas") == str(max(1, replication_factor - 1)), output
    assert configs.get("retention.ms") == "604800000", output
