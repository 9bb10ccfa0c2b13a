"""The production shape end to end: three KRaft nodes, two app hosts, one consumer group.

Read with Kafka's own tools on the first broker host, as an operator would.
"""

import os
import re
import time

import pytest
import testinfra
import testinfra.utils.ansible_runner
from groupstate import (
    ADMIN,
    INSTANCES,
    KAFKA_BIN,
    PARTITIONS,
    SETTLE_TIMEOUT_S,
    TOPIC,
    assignments,
    bootstrap,
    offsets,
    wait_for_balanced_group,
)
from kafkanode import assert_runs_the_releases_java, listening_tcp_ports

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
KAFKA_HOSTS = RUNNER.get_hosts("kafka")
APP_HOSTS = RUNNER.get_hosts("kafka_app")
MONITORING_HOSTS = RUNNER.get_hosts("monitoring")
# Longer than the consumers' auto commit interval (5 s), so committed offsets must move.
SAMPLE_GAP_S = 8


@pytest.fixture(scope="module")
def broker():
    return testinfra.get_host(f"ansible://{KAFKA_HOSTS[0]}", ansible_inventory=INVENTORY)


def kafka_tool(broker, tool, arguments):
    result = broker.run(
        f"{KAFKA_BIN}/{tool} --bootstrap-server {bootstrap(broker)} {ADMIN} {arguments}"
    )
    assert result.rc == 0, result.stderr[-2000:]
    return result.stdout


def test_the_inventory_has_the_production_shape():
    assert len(KAFKA_HOSTS) == 3
    assert len(APP_HOSTS) == 2
    assert len(MONITORING_HOSTS) == 1
    assert not set(KAFKA_HOSTS) & set(APP_HOSTS)
    assert not set(MONITORING_HOSTS) & (set(KAFKA_HOSTS) | set(APP_HOSTS))


@pytest.mark.parametrize("name", KAFKA_HOSTS)
def test_every_node_runs_the_java_of_its_release_and_opens_only_kafka_and_metrics_ports(name):
    node = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
    pid = int(node.check_output("systemctl show --property=MainPID --value confluent-kafka"))
    assert_runs_the_releases_java(node, pid)
    assert listening_tcp_ports(node) == {9092, 9093, 9404, 9100}


@pytest.mark.parametrize("name", APP_HOSTS)
def test_app_hosts_listen_only_on_their_metrics_ports(name):
    """The node exporter, the producer's metrics and consumer N's on 9410 + N."""
    app_host = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
    assert listening_tcp_ports(app_host) == {9100, *range(9410, 9417)}


@pytest.mark.parametrize("name", APP_HOSTS)
def test_every_app_host_runs_its_producer_and_six_consumers(name):
    app_host = testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)
    units = ["kafka-producer.service"] + [
        f"kafka-consumer@{number}.service" for number in range(1, INSTANCES + 1)
    ]
    states = app_host.check_output(f"systemctl is-active {' '.join(units)}").split()
    assert states == ["active"] * len(units)


def test_twelve_members_from_both_app_hosts_own_two_partitions_each(broker):
    found = wait_for_balanced_group(broker, APP_HOSTS)
    assert len(found) == 12
    assert set(found.values()) == {2}
    owned = assignments(broker)
    every_partition = sorted(p for partitions in owned.values() for p in partitions)
    assert every_partition == list(range(PARTITIONS))


def test_topic_is_replicated_three_times_with_two_in_sync_required(broker):
    description = kafka_tool(broker, "kafka-topics", f"--describe --topic {TOPIC}")
    summary = description.splitlines()[0]
    assert re.search(rf"PartitionCount:\s+{PARTITIONS}\b", summary), summary
    assert re.search(r"ReplicationFactor:\s+3\b", summary), summary
    assert "min.insync.replicas=2" in summary, summary
    partition_lines = [line for line in description.splitlines() if "Partition: " in line]
    assert len(partition_lines) == PARTITIONS
    for line in partition_lines:
        replicas = re.search(r"Replicas: (\S+)", line).group(1).split(",")
        assert sorted(replicas) == ["1", "2", "3"], line


def test_no_partition_is_under_replicated_or_offline(broker):
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        under = kafka_tool(broker, "kafka-topics", "--describe --under-replicated-partitions")
        offline = kafka_tool(broker, "kafka-topics", "--describe --unavailable-partitions")
        if not under.strip() and not offline.strip():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"under-replicated:\n{under}\noffline:\n{offline}")
        time.sleep(3)


def test_committed_offsets_rise_on_both_app_hosts(broker):
    wait_for_balanced_group(broker, APP_HOSTS)
    owned = assignments(broker)

    def committed_by_host():
        committed = offsets(broker)
        return {
            host: sum(
                committed[partition][0] or 0
                for member, partitions in owned.items()
                if member.startswith(f"{host}-")
                for partition in partitions
            )
            for host in APP_HOSTS
        }

    first = committed_by_host()
    time.sleep(SAMPLE_GAP_S)
    second = committed_by_host()
    for host in APP_HOSTS:
        assert second[host] > first[host], (host, first, second)


# Run on one node against another node's controller port, with the cluster CA; an argument
# makes the client present the node's own certificate.
TLS_PROBE = """
import socket, ssl, sys
host = sys.argv[1]
context = ssl.create_default_context(cafile="/etc/kafka/tls/ca.crt")
if len(sys.argv) > 2:
    context.load_cert_chain("/etc/kafka/tls/keystore.pem")
with socket.create_connection((host, 9093), timeout=10) as raw:
    with context.wrap_socket(raw, server_hostname=host) as tls:
        tls.sendall(bytes(4))
        try:
            tls.recv(1)
        except ssl.SSLError as error:
            sys.exit(f"refused: {error}")
print("accepted")
"""


def test_the_controller_port_accepts_only_a_certificate_of_the_cluster_ca(broker):
    peer = KAFKA_HOSTS[1]
    with_certificate = broker.run(f"python3 -c '{TLS_PROBE}' {peer} --with-certificate")
    assert with_certificate.rc == 0, with_certificate.stderr
    without = broker.run(f"python3 -c '{TLS_PROBE}' {peer}")
    assert without.rc != 0
    assert "certificate required" in without.stderr, without.stderr
