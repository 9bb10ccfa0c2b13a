"""The Kafka node deployed by roles/confluent_kafka, checked on the running container."""

import json
import os
import re
import subprocess
import time
import uuid

import pytest
import testinfra.utils.ansible_runner
from hardening import assert_kafka_server_confined, assert_kafka_unit_declares_hardening
from kafkanode import assert_runs_the_releases_java, listening_tcp_ports
from siteplay import run_site

testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("kafka")

UNIT = "confluent-kafka.service"
BIN = "/opt/confluent/current/bin"
CONFIG = "/etc/kafka/server.properties"
OVERRIDE = f"/etc/systemd/system/{UNIT}.d/override.conf"
DATA_DIR = "/var/lib/kafka/data"
META_DIR = "/var/lib/kafka/meta"
LOG_DIR = "/var/log/kafka"
USER = "cp-kafka"
ADMIN = "--command-config /etc/kafka/admin-client.properties"
# A started broker may take a while on a loaded machine; these are bounds, not expectations.
READY_TIMEOUT_S = 180


def bootstrap(host):
    return f"{host.backend.get_hostname()}:9092"


def properties(text):
    pairs = (
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    return {key.strip(): value.strip() for key, value in pairs}


def main_pid(host):
    return int(host.check_output(f"systemctl show --property=MainPID --value {UNIT}"))


def wait_for_broker(host):
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        result = host.run(f"{BIN}/kafka-topics --bootstrap-server {bootstrap(host)} {ADMIN} --list")
        if result.rc == 0:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"broker did not answer within {READY_TIMEOUT_S} s: {result.stderr[-2000:]}"
            )
        time.sleep(3)


def test_service_is_enabled_and_running(host):
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running


def test_server_runs_the_java_of_the_hosts_debian_release(host):
    assert_runs_the_releases_java(host, main_pid(host))


def test_unit_and_config_are_marked_as_managed(host):
    for path in (f"/etc/systemd/system/{UNIT}", CONFIG):
        assert host.file(path).content_string.startswith("#\n# Ansible managed"), path


def test_server_runs_as_system_user_without_shell(host):
    user = host.user(USER)
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    assert host.process.get(pid=main_pid(host)).user == USER


def test_config_is_kraft_combined_node(host):
    config = properties(host.file(CONFIG).content_string)
    assert config["process.roles"] == "broker,controller"
    assert config["node.id"] == "1"
    assert config["controller.quorum.bootstrap.servers"] == f"{host.backend.get_hostname()}:9093"
    assert config["auto.create.topics.enable"] == "false"
    assert config["log.dirs"] == DATA_DIR
    assert config["metadata.log.dir"] == META_DIR
    assert not [key for key in config if "zookeeper" in key]


def test_no_zookeeper_anywhere(host):
    processes = host.check_output("ps -eo args")
    assert "zookeeper" not in processes.lower()
    assert "kafka.Kafka" in processes
    assert host.run(f"ls {BIN} | grep -i zookeeper").rc == 1


def test_storage_is_formatted_once_for_one_cluster(host):
    found = {
        path: properties(host.file(f"{path}/meta.properties").content_string)
        for path in (DATA_DIR, META_DIR)
    }
    cluster_ids = {meta["cluster.id"] for meta in found.values()}
    assert len(cluster_ids) == 1
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_ids.pop())
    assert {meta["node.id"] for meta in found.values()} == {"1"}
    for path in (DATA_DIR, META_DIR, LOG_DIR):
        directory = host.file(path)
        assert directory.user == USER
        assert directory.mode == 0o750


def test_quorum_is_dynamic_and_led_by_this_node(host):
    status = host.check_output(
        f"{BIN}/kafka-metadata-quorum --bootstrap-server {bootstrap(host)} {ADMIN} "
        "describe --status"
    )
    meta = properties(host.file(f"{META_DIR}/meta.properties").content_string)
    assert re.search(rf"ClusterId:\s+{re.escape(meta['cluster.id'])}\b", status)
    assert re.search(r"LeaderId:\s+1\b", status)
    assert meta["directory.id"] in status
    features = host.check_output(
        f"{BIN}/kafka-features --bootstrap-server {bootstrap(host)} {ADMIN} describe"
    )
    assert re.search(r"Feature: kraft\.version\s.*FinalizedVersionLevel: 1\b", features), features


def test_broker_answers_metadata_requests(host):
    versions = host.check_output(
        f"{BIN}/kafka-broker-api-versions --bootstrap-server {bootstrap(host)} {ADMIN}"
    )
    assert "Metadata(3)" in versions
    wait_for_broker(host)


def test_nothing_but_kafka_and_the_metrics_endpoints_listen(host):
    """Kafka's client, controller and metrics ports, the node exporter, the producer's and the six
    consumers' metrics: no JMX or RMI port, nothing else."""
    wait_for_broker(host)
    assert listening_tcp_ports(host) == {9092, 9093, 9404, 9100, *range(9410, 9417)}


def test_unit_declares_hardening(host):
    assert_kafka_unit_declares_hardening(host)


def test_hardening_is_in_effect_for_the_running_server(host):
    assert_kafka_server_confined(host)


def test_config_change_restarts_the_node_and_it_comes_back(host):
    """A changed server.properties restarts the node through the handler, which waits for it."""
    before = main_pid(host)
    extra = json.dumps(
        {
            "confluent_kafka_server_properties_extra": {"log.cleaner.threads": 2},
            "confluent_kafka_service_overrides": {"LimitNOFILE": 200000},
        }
    )
    changed = run_site("--tags", "confluent_kafka_configure,confluent_kafka_run", "-e", extra)
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "Restart Kafka on" in changed.stdout
    after = main_pid(host)
    assert after not in (0, before)
    assert properties(host.file(CONFIG).content_string)["log.cleaner.threads"] == "2"
    assert host.file(OVERRIDE).contains("^LimitNOFILE=200000$")
    assert host.check_output(f"systemctl show {UNIT} --property=LimitNOFILE --value") == "200000"
    restored = run_site("--tags", "confluent_kafka_configure,confluent_kafka_run")
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert "log.cleaner.threads" not in host.file(CONFIG).content_string
    assert not host.file(OVERRIDE).exists
    assert host.check_output(f"systemctl show {UNIT} --property=LimitNOFILE --value") == "128000"
    wait_for_broker(host)


def test_restart_left_pending_by_an_interrupted_run_is_done(host):
    """A run that died after changing files but before its handlers left a marker in /run."""
    marker = f"/run/{UNIT}.restart-pending"
    before = main_pid(host)
    host.check_output(f"touch {marker}")
    result = run_site("--tags", "confluent_kafka_configure,confluent_kafka_run")
    assert result.returncode == 0, result.stdout[-3000:]
    assert main_pid(host) not in (0, before)
    assert not host.file(marker).exists
    again = run_site("--tags", "confluent_kafka_configure,confluent_kafka_run")
    assert again.returncode == 0, again.stdout[-3000:]
    assert re.search(r"changed=0\s", again.stdout), again.stdout[-3000:]


def test_data_survives_a_restart_of_the_whole_machine(host):
    topic = f"molecule-persistence-{uuid.uuid4().hex[:8]}"
    payload = f"kept-{uuid.uuid4().hex}"
    meta_before = host.file(f"{META_DIR}/meta.properties").content_string
    host.check_output(
        f"{BIN}/kafka-topics --bootstrap-server {bootstrap(host)} {ADMIN} --create --topic {topic} "
        "--partitions 1 --replication-factor 1"
    )
    host.check_output(
        f"echo {payload} | {BIN}/kafka-console-producer --bootstrap-server {bootstrap(host)} "
        f"--topic {topic} --producer.config /etc/kafka/admin-client.properties "
        "--producer-property acks=all"
    )
    subprocess.run(["docker", "restart", host.backend.get_hostname()], check=True, timeout=300)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while host.run("systemctl is-system-running --wait").stdout.strip() not in (
        "running",
        "degraded",
    ):
        assert time.monotonic() < deadline, "systemd did not come back after the restart"
        time.sleep(2)
    assert host.service(UNIT).is_running
    wait_for_broker(host)
    assert host.file(f"{META_DIR}/meta.properties").content_string == meta_before
    consumed = host.check_output(
        f"{BIN}/kafka-console-consumer --bootstrap-server {bootstrap(host)} --topic {topic} "
        "--consumer.config /etc/kafka/admin-client.properties "
        "--from-beginning --max-messages 1 --timeout-ms 60000"
    )
    assert consumed.strip() == payload
    host.run(
        f"{BIN}/kafka-topics --bootstrap-server {bootstrap(host)} {ADMIN} --delete --topic {topic}"
    )
