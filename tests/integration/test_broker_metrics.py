"""The brokers' Prometheus metrics: the archive's JMX exporter agent with the role's rules file.

One broker from the offline archive runs with the agent for the whole module, as the unit of
roles/confluent_kafka runs it; the tests produce and consume through it and read /metrics.
"""

import os
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from kafka_micro_devtools.localbroker import LocalBroker

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE = REPO_ROOT / "roles" / "confluent_kafka"
RULES_FILE = ROLE / "files" / "jmx-exporter.yml"
ROLE_README = ROLE / "README.md"
AGENT_DIR = Path("share/java/jmx-exporter")

TOPIC = "metrics-test"
PARTITIONS = 3
# The largest batch the topic takes: above the producer's batches (BATCH_BYTES), below the
# oversized message, which the broker rejects.
TOPIC_MAX_MESSAGE_BYTES = 65536
BATCH_BYTES = 16384
MESSAGE = b"m" * 100
PRODUCED = 500

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def documented_metric_names() -> set[str]:
    """Every metric named in the first column of the README's "What is exported" table."""
    section = ROLE_README.read_text().split("### What is exported", 1)[1].split("\n### ", 1)[0]
    first_cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {
        name
        for cell in first_cells
        for name in re.findall(r"`((?:kafka|jvm|process|jmx)_[a-z0-9_]+)`", cell)
    }


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, (
        f"{name}{labels} is not exported; exported: {sorted(series_names(samples))}"
    )
    return samples[key]


def series_names(samples: Samples) -> set[str]:
    return {name for name, _labels in samples}


def produce(bootstrap: str, count: int, message: bytes = MESSAGE) -> list[KafkaError | None]:
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": BATCH_BYTES})
    for sequence in range(count):
        producer.produce(
            TOPIC,
            message,
            partition=sequence % PARTITIONS,
            on_delivery=lambda error, _message: errors.append(error),
        )
    assert producer.flush(30) == 0, "messages still undelivered after 30 s"
    return errors


def consume_everything(bootstrap: str, expected: int) -> int:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "metrics-test", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(TOPIC, partition, 0) for partition in range(PARTITIONS)])
    received = 0
    try:
        while received < expected:
            batch: list[Message] = consumer.consume(expected - received, timeout=10)
            assert batch, f"read {received} of {expected} messages, then nothing for 10 s"
            received += sum(1 for message in batch if message.error() is None)
    finally:
        consumer.close()
    return received


@pytest.fixture(scope="module")
def metrics_broker(kafka_home, tmp_path_factory) -> Iterator[tuple[LocalBroker, str]]:
    """A broker with the agent on 127.0.0.1, as the role's unit starts it; and its /metrics URL."""
    agent_jars = list((kafka_home / AGENT_DIR).glob("jmx_prometheus_javaagent-*.jar"))
    assert len(agent_jars) == 1, f"expected one agent jar in {AGENT_DIR}, found {agent_jars}"
    port = free_port()
    agent = f"-javaagent:{agent_jars[0]}=127.0.0.1:{port}:{RULES_FILE}"
    with LocalBroker(
        kafka_home, tmp_path_factory.mktemp("metrics-broker"), java_options=[agent]
    ) as broker:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = NewTopic(
            TOPIC, PARTITIONS, 1, config={"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)}
        )
        admin.create_topics([topic])[TOPIC].result(30)
        yield broker, f"http://127.0.0.1:{port}/metrics"


@pytest.fixture(scope="module")
def traffic(metrics_broker) -> tuple[Samples, Samples]:
    """Scrapes before and after PRODUCED messages were written and read back, with one rejected."""
    broker, url = metrics_broker
    # The topic's series exist once it has had traffic: one message before the first scrape.
    assert produce(broker.bootstrap, 1) == [None]
    before = scrape(url)
    assert produce(broker.bootstrap, PRODUCED) == [None] * PRODUCED
    too_large = produce(broker.bootstrap, 1, b"x" * (2 * TOPIC_MAX_MESSAGE_BYTES))
    assert [error.code() if error else None for error in too_large] == [
        KafkaError.MSG_SIZE_TOO_LARGE
    ]
    assert consume_everything(broker.bootstrap, PRODUCED + 1) == PRODUCED + 1
    return before, scrape(url)


def test_rules_file_is_yaml_with_named_rules_and_no_catch_all():
    rules = yaml.safe_load(RULES_FILE.read_text())

    assert rules["lowercaseOutputName"] is True
    include = rules["includeObjectNames"]
    assert include, "without includeObjectNames every scrape reads every MBean"
    for object_name in include:
        domain, properties = object_name.split(":", 1)
        assert "*" not in domain and properties != "*", f"{object_name} selects a whole domain"
    unlisted_beans = [
        "java.lang<type=Memory><HeapMemoryUsage>used: 1",
        "kafka.server<type=socket-server-metrics, listener=PLAINTEXT><>connection-count: 3",
        "some.domain<type=Anything, name=Whatever><>Value: 1",
    ]
    for rule in rules["rules"]:
        assert {"pattern", "name", "type", "help"} <= rule.keys(), rule
        assert re.fullmatch(r"[a-z][a-z0-9_]*(\$1)?", rule["name"]), rule["name"]
        assert rule["type"] in {"GAUGE", "COUNTER"}, rule
        assert rule["pattern"].startswith(
            ("kafka.server<", "kafka.network<", "kafka.log<", "kafka.controller<")
        ), rule["pattern"]
        # The agent matches a rule's pattern anywhere in the bean's line, as this does.
        pattern = re.compile(rf"^.*(?:{rule['pattern']}).*$")
        matched = [bean for bean in unlisted_beans if pattern.match(bean)]
        assert not matched, f"{rule['pattern']} catches MBeans it does not name: {matched}"


def test_documented_metrics_are_exported(traffic):
    _before, after = traffic
    documented = documented_metric_names()
    assert "kafka_controller_active_controller_count" in documented, "README table not parsed"

    missing = documented - series_names(after)

    assert not missing, f"documented in {ROLE_README.name} but not exported: {sorted(missing)}"


def test_messages_and_bytes_in_per_topic_move_by_what_was_produced(traffic):
    before, after = traffic

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("kafka_server_topic_messages_in_total", topic=TOPIC) >= PRODUCED
    assert moved("kafka_server_broker_messages_in_total") >= PRODUCED
    assert moved("kafka_server_topic_bytes_in_total", topic=TOPIC) >= PRODUCED * len(MESSAGE)
    assert moved("kafka_server_broker_bytes_in_total") >= PRODUCED * len(MESSAGE)
    # Written data is read back in full (compression is off), over the consumer fetch path.
    assert value(after, "kafka_server_topic_bytes_out_total", topic=TOPIC) >= PRODUCED * len(
        MESSAGE
    )
    assert value(after, "kafka_server_topic_bytes_rejected_total", topic=TOPIC) > 0
    assert moved("kafka_network_requests_total", request="Produce") >= 1
    assert value(after, "kafka_network_requests_total", request="FetchConsumer") >= 1
    end_offsets = sum(
        value(after, "kafka_log_end_offset", topic=TOPIC, partition=str(partition))
        for partition in range(PARTITIONS)
    )
    assert end_offsets == PRODUCED + 1
    assert value(after, "kafka_log_size_bytes", topic=TOPIC, partition="0") > 0


def test_health_and_quorum_metrics_describe_a_healthy_single_node(metrics_broker, traffic):
    broker, _url = metrics_broker
    _before, after = traffic

    assert value(after, "kafka_server_replica_manager_under_replicated_partitions") == 0
    assert value(after, "kafka_server_replica_manager_under_min_isr_partitions") == 0
    assert value(after, "kafka_controller_offline_partitions_count") == 0
    assert value(after, "kafka_controller_active_controller_count") == 1
    assert value(after, "kafka_server_broker_state") == 3
    assert value(after, "kafka_raft_current_state", state="leader") == 1
    assert value(after, "kafka_raft_current_leader") == broker.node_id
    assert value(after, "kafka_server_metadata_current_controller_id") == broker.node_id
    high_watermark = value(after, "kafka_raft_high_watermark")
    assert 0 < high_watermark <= value(after, "kafka_raft_log_end_offset")
    assert value(after, "kafka_controller_last_applied_record_offset") > 0
    quantiles = {"0.50", "0.75", "0.95", "0.98", "0.99", "0.999"}
    for request in ["Produce", "FetchConsumer", "FetchFollower"]:
        for quantile in quantiles:
            latency = value(
                after,
                "kafka_network_request_total_time_seconds",
                request=request,
                quantile=quantile,
            )
            assert latency >= 0
    assert value(after, "jvm_memory_used_bytes", area="heap") > 0
    assert any(name == "jvm_gc_collection_seconds_count" for name, _labels in after)


def test_scrape_stays_small(traffic):
    _before, after = traffic
    # A catch-all rule makes thousands of series from this one broker.
    assert len(after) < 600, f"{len(after)} series in one scrape"


def test_agent_listens_on_the_given_address_only(metrics_broker):
    _broker, url = metrics_broker
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    listening = [
        fields[1]
        for table in ("/proc/net/tcp", "/proc/net/tcp6")
        for fields in (line.split() for line in Path(table).read_text().splitlines()[1:])
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port
    ]

    # 127.0.0.1 as /proc/net/tcp writes it, or as the JVM's IPv6 socket does (::ffff:127.0.0.1).
    loopback = {f"0100007F:{port:04X}", f"0000000000000000FFFF00000100007F:{port:04X}"}
    assert len(listening) == 1 and listening[0] in loopback, listening


def test_a_tool_runs_with_an_empty_kafka_opts_but_dies_with_the_servers_agent(
    metrics_broker, kafka_home
):
    """Why the role runs Kafka's tools with KAFKA_OPTS emptied: the agent's port is the server's."""
    broker, url = metrics_broker
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    agent_jar = next((kafka_home / AGENT_DIR).glob("jmx_prometheus_javaagent-*.jar"))
    servers_agent = f"-javaagent:{agent_jar}=127.0.0.1:{port}:{RULES_FILE}"

    def list_topics(kafka_opts: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(kafka_home / "bin" / "kafka-topics"),
                "--bootstrap-server",
                broker.bootstrap,
                "--list",
            ],
            env={**os.environ, "KAFKA_OPTS": kafka_opts},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    with_agent = list_topics(servers_agent)
    assert with_agent.returncode != 0
    assert "Failed to start Prometheus JMX Exporter" in with_agent.stderr

    without = list_topics("")
    assert without.returncode == 0, without.stderr
    assert TOPIC in without.stdout.split()
