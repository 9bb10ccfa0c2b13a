"""The offline archive: its layout, its build, and its launchers running a real KRaft broker."""

import hashlib
import os
import random
import re
import socket
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from kafka_micro_devtools.localbroker import ARCHIVE_TOP_DIR, BrokerStartError, LocalBroker

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHERS = [
    "kafka-run-class",
    "kafka-server-start",
    "kafka-server-stop",
    "kafka-storage",
    "kafka-topics",
    "kafka-configs",
    "kafka-consumer-groups",
    "kafka-metadata-quorum",
    "kafka-producer-perf-test",
    "kafka-consumer-perf-test",
    "kafka-console-producer",
    "kafka-console-consumer",
    "kafka-get-offsets",
    "kafka-log-dirs",
    "kafka-features",
    "kafka-broker-api-versions",
]
JARS = [
    "kafka_2.13-4.0.2.jar",
    "kafka-clients-4.0.2.jar",
    "kafka-server-4.0.2.jar",
    "kafka-storage-4.0.2.jar",
    "kafka-metadata-4.0.2.jar",
    "kafka-raft-4.0.2.jar",
    "kafka-tools-4.0.2.jar",
    "log4j-core-2.24.3.jar",
    "log4j-slf4j-impl-2.24.3.jar",
    "jackson-dataformat-yaml-2.18.6.jar",
]
METRICS_AGENT_JAR = "share/java/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar"


def run_tool(kafka_home: Path, *args: str, env: dict[str, str] | None = None, timeout=120.0):
    return subprocess.run(
        [str(kafka_home / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def jvm_args(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unused_node_id() -> int:
    # Other brokers may run on this machine; kafka-server-stop must only ever match ours.
    return random.randint(100_000, 999_999)


def test_tarball_has_the_confluent_layout(kafka_archive):
    with tarfile.open(kafka_archive, "r:gz") as archive:
        members = {member.name: member for member in archive.getmembers()}

    assert {name.split("/")[0] for name in members} == {ARCHIVE_TOP_DIR}
    for launcher in LAUNCHERS:
        member = members.get(f"{ARCHIVE_TOP_DIR}/bin/{launcher}")
        assert member is not None, f"bin/{launcher} is missing"
        assert member.isfile()
        assert member.mode == 0o755, f"bin/{launcher} has mode {member.mode:o}"
    for config in ["server.properties", "log4j2.yaml", "tools-log4j2.yaml"]:
        assert f"{ARCHIVE_TOP_DIR}/etc/kafka/{config}" in members
    for jar in JARS:
        assert f"{ARCHIVE_TOP_DIR}/share/java/kafka/{jar}" in members
    # The metrics agent sits outside the launchers' classpath (share/java/kafka/*): only the JVM
    # that names it in -javaagent loads it.
    assert f"{ARCHIVE_TOP_DIR}/{METRICS_AGENT_JAR}" in members
    assert not [name for name in members if "/share/java/kafka/jmx_prometheus" in name]
    # No build-machine traces: one owner, one timestamp.
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {(0, 0, "root", "root")}
    assert len({m.mtime for m in members.values()}) == 1


def test_checksum_file_matches_tarball(kafka_archive):
    checksum_file = Path(f"{kafka_archive}.sha256")
    if not checksum_file.exists() and os.environ.get("KAFKA_ARCHIVE_TARBALL"):
        pytest.skip("KAFKA_ARCHIVE_TARBALL names a tarball without a .sha256 file")
    expected, name = checksum_file.read_text().split()
    assert name == kafka_archive.name
    assert hashlib.sha256(kafka_archive.read_bytes()).hexdigest() == expected


def test_build_is_reproducible_and_cached(kafka_archive, tmp_path):
    if os.environ.get("KAFKA_ARCHIVE_TARBALL"):
        pytest.skip("the archive under test was not built from this checkout")
    build = [str(REPO_ROOT / "archive" / "build"), str(tmp_path)]

    fresh = subprocess.run(build, capture_output=True, text=True, timeout=600, check=False)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.strip() == hashlib.sha256(kafka_archive.read_bytes()).hexdigest()

    again = subprocess.run(build, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stderr
    assert again.stdout == fresh.stdout


def test_previous_release_is_another_kafka_in_the_same_layout(tmp_path):
    """The archive a rolling upgrade starts from (molecule's upgrade test installs it)."""
    build_dir = Path(os.environ.get("ARCHIVE_BUILD_DIR", REPO_ROOT / "build"))
    build = [str(REPO_ROOT / "archive" / "build"), "--release", "previous", str(build_dir)]
    built = subprocess.run(build, capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr
    tarball = build_dir / "confluent-community-8.0.0.tar.gz"
    assert built.stdout.strip() == hashlib.sha256(tarball.read_bytes()).hexdigest()

    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path, filter="tar")
    (home,) = tmp_path.iterdir()
    assert home.name == "confluent-8.0.0"
    jars = {jar.name for jar in (home / "share/java/kafka").iterdir()}
    assert {"kafka_2.13-4.0.0.jar", "jackson-dataformat-yaml-2.16.2.jar"} <= jars
    assert not [jar for jar in jars if "4.0.2" in jar]
    assert sorted(path.name for path in (home / "bin").iterdir()) == sorted(
        path.name for path in (REPO_ROOT / "archive" / "bin").iterdir()
    )
    assert (home / METRICS_AGENT_JAR).is_file()
    version = run_tool(home, "kafka-topics", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().startswith("4.0.0")


def test_build_refuses_an_unknown_release(tmp_path):
    refused = subprocess.run(
        [str(REPO_ROOT / "archive" / "build"), "--release", "8.0.1", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--release current|previous" in refused.stderr
    assert not list(tmp_path.iterdir())


def test_launcher_finds_its_install_through_a_symlink(kafka_home, tmp_path):
    link = tmp_path / "kafka-topics"
    link.symlink_to(kafka_home / "bin" / "kafka-topics")

    result = subprocess.run(
        [str(link), "--version"], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("4.0.2")


def test_tools_honour_log4j_opts_and_java_home(broker, kafka_home, tmp_path):
    info_to_stdout = tmp_path / "info-log4j2.yaml"
    info_to_stdout.write_text(
        "Configuration:\n"
        "  Appenders:\n"
        "    Console: {name: OUT, target: SYSTEM_OUT, PatternLayout: {pattern: 'CUSTOM %p %m%n'}}\n"
        "  Loggers:\n"
        "    Root: {level: INFO, AppenderRef: {ref: OUT}}\n"
    )
    env = {**os.environ, "KAFKA_LOG4J_OPTS": f"-Dlog4j2.configurationFile={info_to_stdout}"}
    listed = run_tool(
        kafka_home, "kafka-topics", "--bootstrap-server", broker.bootstrap, "--list", env=env
    )
    assert listed.returncode == 0, listed.stderr
    assert "CUSTOM INFO AdminClientConfig values" in listed.stdout

    no_java = tmp_path / "no-jdk"
    no_java.mkdir()
    env = {**os.environ, "JAVA_HOME": str(no_java)}
    broken = run_tool(kafka_home, "kafka-topics", "--version", env=env)
    assert broken.returncode == 1
    assert f"JAVA_HOME={no_java} has no executable bin/java" in broken.stderr


def test_launchers_reject_bad_arguments(kafka_home):
    no_config = run_tool(kafka_home, "kafka-server-start")
    assert no_config.returncode == 1
    assert "USAGE" in no_config.stderr

    bad_role = run_tool(kafka_home, "kafka-server-stop", "--process-role", "zookeeper")
    assert bad_role.returncode == 1
    assert "'zookeeper'" in bad_role.stderr

    bad_node = run_tool(kafka_home, "kafka-server-stop", "--node-id=one")
    assert bad_node.returncode == 1
    assert "'one'" in bad_node.stderr


def test_broker_answers_metadata_requests(broker):
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)

    assert list(metadata.brokers) == [broker.node_id]
    assert metadata.cluster_id


def test_topics_tool_creates_and_describes_24_partitions(broker, kafka_home):
    topic = f"archive-test-{random.randint(0, 10**9)}"
    created = run_tool(
        kafka_home,
        "kafka-topics",
        "--bootstrap-server",
        broker.bootstrap,
        "--create",
        "--topic",
        topic,
        "--partitions",
        "24",
        "--replication-factor",
        "1",
    )
    assert created.returncode == 0, created.stderr

    described = run_tool(
        kafka_home,
        "kafka-topics",
        "--bootstrap-server",
        broker.bootstrap,
        "--describe",
        "--topic",
        topic,
    )

    assert described.returncode == 0, described.stderr
    assert "PartitionCount: 24" in described.stdout
    partitions = re.findall(rf"Partition: (\d+)\s+Leader: {broker.node_id}\b", described.stdout)
    assert sorted(map(int, partitions)) == list(range(24))
    # Tools log only warnings, and only to stderr: stdout stays parseable.
    assert " INFO " not in described.stdout + described.stderr


def test_metadata_quorum_shows_the_node_as_leader(broker, kafka_home):
    result = run_tool(
        kafka_home,
        "kafka-metadata-quorum",
        "--bootstrap-server",
        broker.bootstrap,
        "describe",
        "--status",
    )

    assert result.returncode == 0, result.stderr
    assert re.search(rf"^LeaderId:\s+{broker.node_id}$", result.stdout, re.MULTILINE), result.stdout
    assert f'"id": {broker.node_id},' in result.stdout


def test_server_logs_go_to_log_dir(broker, kafka_home):
    server_log = broker.log_dir / "server.log"
    assert "Kafka Server started" in server_log.read_text()
    assert "QuorumController" in (broker.log_dir / "controller.log").read_text()
    # The launcher's default (<install>/logs) was not used.
    assert not (kafka_home / "logs" / "server.log").exists()


def test_jvm_gets_the_operator_options(broker):
    args = jvm_args(broker.pid)

    assert Path(args[0]).name == "java"
    assert "kafka.Kafka" in args
    assert "-Xmx512m" in args
    assert "-Xms512m" in args
    assert "-Xmx1G" not in args, "the launcher's default heap overrode KAFKA_HEAP_OPTS"
    assert f"-Dkafka.logs.dir={broker.log_dir}" in args
    assert f"-Dlog4j2.configurationFile={broker.kafka_home}/etc/kafka/log4j2.yaml" in args
    # A server's collector and compilers, unlike a short-lived tool's.
    assert "-XX:+UseG1GC" in args
    assert "-XX:TieredStopAtLevel=1" not in args


@pytest.mark.parametrize(
    ("tool", "collector"),
    [("kafka-topics", "-XX:+UseSerialGC"), ("kafka-producer-perf-test", "-XX:+UseG1GC")],
)
def test_a_short_lived_tool_starts_on_the_light_jvm_options_and_a_perf_test_on_the_servers(
    kafka_home, tool, collector
):
    # The JVM prints its options first; what the tool makes of --version does not matter here.
    printing_flags = {**os.environ, "KAFKA_OPTS": "-XX:+PrintCommandLineFlags"}
    shown = run_tool(kafka_home, tool, "--version", env=printing_flags)
    flags = shown.stdout.splitlines()[0].split()
    assert collector in flags, flags
    assert ("-XX:TieredStopAtLevel=1" in flags) == (collector == "-XX:+UseSerialGC"), flags


def test_server_stop_stops_only_the_selected_node(broker, kafka_home, tmp_path):
    node_id = unused_node_id()
    with LocalBroker(kafka_home, tmp_path, node_id=node_id, heap="320m") as doomed:
        assert "-Xmx320m" in jvm_args(doomed.pid)

        nobody = run_tool(kafka_home, "kafka-server-stop", "--node-id", str(node_id + 1))
        assert nobody.returncode == 1
        assert "No kafka server to stop" in nobody.stderr
        assert doomed.is_running()

        stopped = run_tool(
            kafka_home, "kafka-server-stop", "--process-role", "broker", "--node-id", str(node_id)
        )
        assert stopped.returncode == 0, stopped.stderr

        deadline = time.monotonic() + 60
        while doomed.is_running() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not doomed.is_running(), "the broker outlived kafka-server-stop by 60 s"
        assert broker.is_running()
        assert (
            f"[BrokerServer id={node_id}] shut down completed"
            in (doomed.log_dir / "server.log").read_text()
        )


def test_broker_with_invalid_config_reports_the_tool_output(kafka_home, tmp_path):
    broken = LocalBroker(
        kafka_home, tmp_path, node_id=unused_node_id(), extra_properties={"num.io.threads": "0"}
    )

    with pytest.raises(BrokerStartError, match=r"num\.io\.threads"):
        broken.start(timeout=60)
    assert not broken.is_running()


def test_broker_that_dies_at_startup_reports_its_log(broker, kafka_home, tmp_path):
    taken_port = int(broker.bootstrap.rsplit(":", 1)[1])
    clashing = LocalBroker(
        kafka_home, tmp_path, node_id=unused_node_id(), ports=(taken_port, free_port())
    )

    with pytest.raises(BrokerStartError, match="exited with code") as error:
        clashing.start(timeout=60)
    # The tail of the server's own output says why.
    assert "Address already in use" in str(error.value)
    assert not clashing.is_running()
    assert broker.is_running()
