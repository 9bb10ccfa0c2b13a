"""Bad variables for roles/confluent_kafka are refused with a clear message; nothing changes.

Each case runs playbooks/site.yml against the molecule instance. Check mode is used where the
refusal comes before any write; the foreign-cluster case runs for real to prove nothing is touched.
"""

import json
import os

import pytest
import testinfra.utils.ansible_runner
from siteplay import INVENTORY, run_site

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("kafka")

WATCHED = [
    "/etc/kafka/server.properties",
    "/etc/systemd/system/confluent-kafka.service",
    "/var/lib/kafka/meta/meta.properties",
    "/var/lib/kafka/data/meta.properties",
]


def refusal(*args, inventory=INVENTORY):
    """Exit code and whitespace-normalised output of a confluent_kafka_install run."""
    result = run_site("--tags", "confluent_kafka_install", *args, inventory=inventory)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def snapshot(host):
    return {
        "files": host.check_output("sha256sum " + " ".join(WATCHED)),
        "pid": host.check_output(
            "systemctl show --property=MainPID --value confluent-kafka.service"
        ),
    }


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        (
            {"confluent_kafka_process_roles": ["broker", "zookeeper"]},
            "confluent_kafka_process_roles must be one or more of: broker, controller. "
            "Got no match for: zookeeper",
        ),
        (
            {"confluent_kafka_node_id": "one"},
            "argument 'confluent_kafka_node_id' is of type str and we were unable to convert",
        ),
        (
            {"confluent_kafka_heap_opts": "2G"},
            "confluent_kafka_heap_opts '2G' is not a list of JVM heap flags",
        ),
        ({"confluent_kafka_controller_port": 9092}, "must be two different ports"),
        (
            {"confluent_kafka_server_properties_extra": {"zookeeper.connect": "zk:2181"}},
            "sets zookeeper.connect, which the role derives",
        ),
        (
            {"confluent_kafka_cluster_id": "not-an-id"},
            "confluent_kafka_cluster_id 'not-an-id' is not a Kafka cluster id",
        ),
        (
            {"confluent_kafka_archive_src": "/nonexistent/confluent.tar.gz"},
            "Not found on the controller: /nonexistent/confluent.tar.gz",
        ),
        (
            {"confluent_kafka_group_consumer_heartbeat_interval_ms": 10000},
            "confluent_kafka_group_consumer_heartbeat_interval_ms (10000) must be at least 1 and "
            "below confluent_kafka_group_consumer_session_timeout_ms (10000)",
        ),
        (
            {
                "kafka_tls_ca_cert_src": "/nonexistent/operator-ca.crt",
                "kafka_tls_ca_key_src": "/nonexistent/operator-ca.key",
            },
            "kafka_tls_ca_cert_src (/nonexistent/operator-ca.crt): "
            "Error while reading certificate file from disk",
        ),
    ],
    ids=[
        "unknown-process-role",
        "node-id-not-int",
        "bad-heap",
        "same-ports",
        "reserved-extra-key",
        "malformed-cluster-id",
        "missing-archive",
        "heartbeat-not-below-session",
        "missing-operator-ca",
    ],
)
def test_bad_variable_is_refused(host, extra_vars, expected):
    before = snapshot(host)
    rc, output = refusal("--check", "-e", json.dumps(extra_vars))
    assert rc != 0
    assert expected in output, output[-3000:]
    assert snapshot(host) == before


def inventory_of_aliases(host, tmp_path, aliases):
    """An inventory naming the molecule container several times, with the given host variables."""
    group_vars = tmp_path / "group_vars"
    group_vars.mkdir()
    os.symlink(os.path.join(INVENTORY, "group_vars", "kafka"), group_vars / "kafka")
    connection = {
        "ansible_connection": "community.docker.docker",
        "ansible_host": host.backend.get_hostname(),
    }
    hosts = {alias: {**connection, **variables} for alias, variables in aliases.items()}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"kafka": {"hosts": hosts}}))
    return str(inventory)


def test_duplicate_node_id_is_refused(host, tmp_path):
    inventory = inventory_of_aliases(
        host,
        tmp_path,
        {"kafka-a": {"confluent_kafka_node_id": 1}, "kafka-b": {"confluent_kafka_node_id": 1}},
    )
    before = snapshot(host)
    rc, output = refusal("--check", inventory=inventory)
    assert rc != 0
    assert "confluent_kafka_node_id 1 of kafka-a" in output, output[-3000:]
    assert "it is also used by kafka-b" in output
    assert snapshot(host) == before


def test_missing_node_id_is_refused(host, tmp_path):
    inventory = inventory_of_aliases(host, tmp_path, {"kafka-a": {}})
    before = snapshot(host)
    rc, output = refusal("--check", inventory=inventory)
    assert rc != 0
    assert "missing required arguments: confluent_kafka_node_id" in output, output[-3000:]
    assert snapshot(host) == before


def test_data_of_another_cluster_is_refused_and_left_alone(host):
    meta = host.file("/var/lib/kafka/meta/meta.properties").content_string
    on_disk = next(
        line.split("=", 1)[1] for line in meta.splitlines() if line.startswith("cluster.id=")
    )
    other = "AAAAAAAAAAAAAAAAAAAAAA"
    before = snapshot(host)
    # No --check: the refusal itself must keep every file and the running server as they were.
    rc, output = refusal(
        "-e",
        json.dumps({"confluent_kafka_cluster_id": other, "confluent_kafka_heap_opts": "-Xmx600m"}),
    )
    assert rc != 0
    assert (
        f"/var/lib/kafka/meta/meta.properties on {host.backend.get_hostname()} "
        f"belongs to cluster {on_disk}" in output
    )
    assert f"not to cluster {other}" in output
    assert snapshot(host) == before
