"""A real single-node KRaft broker for tests and local runs, started from the offline archive.

The broker is run through the archive's own ``bin/`` launchers (``kafka-storage``,
``kafka-server-start``, ``kafka-acls``), so everything that starts here also proves those
launchers work. Its client listener is PLAINTEXT, or with ``secured=True`` SASL_SSL with SCRAM
users and ACLs (``broker_security``), optionally beside a PLAINTEXT one (``plaintext_listener``).
"""

import os
import re
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.settings import settings_from
from kafka_micro_devtools.broker_security import HOST_NAME, SecuredListener, User
from kafka_micro_devtools.throwaway_tls import write_owner_only

CONFLUENT_VERSION = "8.0.3"
"""The Confluent Platform release whose layout archive/build reproduces: it names the tarball
(``ARCHIVE_NAME``, in the build directory) and the directory the tarball unpacks to."""
ARCHIVE_NAME = f"confluent-community-{CONFLUENT_VERSION}.tar.gz"
ARCHIVE_TOP_DIR = f"confluent-{CONFLUENT_VERSION}"
GROUP_TIMINGS = {
    "group.consumer.session.timeout.ms": "10000",
    "group.consumer.min.session.timeout.ms": "10000",
    "group.consumer.heartbeat.interval.ms": "2000",
    "group.consumer.min.heartbeat.interval.ms": "2000",
}
"""The consumer group timings roles/confluent_kafka deploys (its defaults), so that tests and the
bench see the group behaviour of a deployed cluster."""
_TOOL_TIMEOUT_S = 120.0
_LOG_TAIL_LINES = 40
_JVM_MEMORY_SIZE = re.compile(r"[1-9][0-9]*[kKmMgG]?")


class BrokerStartError(RuntimeError):
    """The broker could not be prepared or did not come up; the message carries its log tail."""


def unpack_archive(tarball: Path, dest: Path) -> Path:
    """Unpack the archive into ``dest`` and return its install dir (``dest/ARCHIVE_TOP_DIR``)."""
    if not tarball.is_file():
        raise FileNotFoundError(
            f"Kafka archive {tarball} does not exist; build it with archive/build"
        )
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        # The "tar" filter keeps the launchers' exec bits but refuses absolute or escaping paths.
        archive.extractall(dest, filter="tar")
    kafka_home = dest / ARCHIVE_TOP_DIR
    if not (kafka_home / "bin" / "kafka-server-start").is_file():
        raise ValueError(
            f"{tarball} is not a Kafka archive of the expected layout: "
            f"{ARCHIVE_TOP_DIR}/bin/kafka-server-start is missing"
        )
    return kafka_home


def _free_ports(count: int) -> list[int]:
    """Distinct free ports on 127.0.0.1 (each socket is held until all are picked)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _first_errors(lines: list[str], limit: int) -> list[str]:
    """The first ERROR/FATAL log lines, each with the exception line that follows it."""
    found: list[str] = []
    for index, line in enumerate(lines):
        if "] ERROR " in line or "] FATAL " in line:
            found.append(line)
            if index + 1 < len(lines) and not lines[index + 1].startswith("["):
                found.append(lines[index + 1])
            if len(found) >= 2 * limit:
                break
    return found


class LocalBroker:
    """A combined broker+controller KRaft node on 127.0.0.1 with its data and logs in ``work_dir``.

    ``ports`` is (broker port, controller port); by default two free ports are picked on the first
    ``start()``. Either way they are kept, so the node can be stopped and started again on its data.
    With ``secured``, the client listener is SASL_SSL (``security`` holds its CA, keystore and
    users, in ``work_dir/tls``) and clients reach it as ``localhost``, the certificate's name.
    ``plaintext_listener`` (with ``secured`` only) adds a PLAINTEXT client listener on a third
    free port, ``plaintext_bootstrap``, whose clients are not restricted by the ACLs: the same
    broker reached both ways, to compare the two. ``java_options`` go to the server's JVM only
    (its ``KAFKA_OPTS``; a Java agent, for instance), never to the tools that format its storage.
    With ``joins``, the node is a broker only, in the cluster of that (running, PLAINTEXT) node:
    a second broker to move replicas to.
    """

    def __init__(
        self,
        kafka_home: Path,
        work_dir: Path,
        *,
        heap: str = "512m",
        node_id: int = 1,
        num_partitions: int = 1,
        ports: tuple[int, int] | None = None,
        extra_properties: Mapping[str, str] | None = None,
        secured: bool = False,
        plaintext_listener: bool = False,
        java_options: Sequence[str] = (),
        joins: "LocalBroker | None" = None,
    ) -> None:
        if not (kafka_home / "bin" / "kafka-server-start").is_file():
            raise ValueError(f"kafka_home {kafka_home} has no bin/kafka-server-start")
        if node_id < 0:
            raise ValueError(f"node_id must be >= 0, got {node_id}")
        if num_partitions < 1:
            raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
        if not _JVM_MEMORY_SIZE.fullmatch(heap):
            raise ValueError(f"heap must be a JVM memory size such as 512m or 2g, got {heap!r}")
        if ports is not None and (
            ports[0] == ports[1] or not all(0 < port < 65536 for port in ports)
        ):
            raise ValueError(f"ports must be two different TCP ports (1-65535), got {ports}")
        if plaintext_listener and not secured:
            raise ValueError("plaintext_listener adds a listener to a secured broker: set secured")
        if joins is not None and secured:
            raise ValueError(
                "a broker that joins another's cluster is PLAINTEXT: leave secured unset"
            )
        if any(len(option.split()) != 1 for option in java_options):
            raise ValueError(
                f"java_options must each be one word (the launcher splits KAFKA_OPTS on blanks), "
                f"got {list(java_options)!r}"
            )
        self.kafka_home = kafka_home
        self.work_dir = work_dir
        self.log_dir = work_dir / "logs"
        self.data_dir = work_dir / "data"
        self.properties_file = work_dir / "server.properties"
        self.console_log = self.log_dir / "kafkaServer.out"
        self.heap = heap
        self.node_id = node_id
        self.num_partitions = num_partitions
        self.extra_properties = dict(extra_properties or {})
        self.security = SecuredListener.create(work_dir / "tls") if secured else None
        self._ports = ports
        self._plaintext_listener = plaintext_listener
        self._plaintext_port: int | None = None
        self.java_options = list(java_options)
        self._joins = joins
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the client listener; known once ``start()`` has been called."""
        host = HOST_NAME if self.security is not None else "127.0.0.1"
        return f"{host}:{self._require_ports()[0]}"

    @property
    def plaintext_bootstrap(self) -> str:
        """``127.0.0.1:port`` of the ``plaintext_listener``; known once ``start()`` was called."""
        if not self._plaintext_listener:
            raise RuntimeError("the broker has no PLAINTEXT listener; create it with one")
        if self._plaintext_port is None:
            raise RuntimeError("the broker's ports are picked by start(); call it first")
        return f"127.0.0.1:{self._plaintext_port}"

    @property
    def listener_address(self) -> str:
        """``127.0.0.1:port``, where the client listener is bound."""
        return f"127.0.0.1:{self._require_ports()[0]}"

    @property
    def controller_address(self) -> str:
        return f"127.0.0.1:{self._require_ports()[1]}"

    @property
    def pid(self) -> int:
        """PID of the broker's JVM (the launchers ``exec`` it, so it is the started process)."""
        if self._process is None:
            raise RuntimeError("the broker has not been started")
        return self._process.pid

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 180.0) -> None:
        """Format storage if needed, start the server, wait until it answers metadata requests.

        The wait is a bound on a hung start, not a speed check: a TLS broker once took more than
        90 s to open its port on CI's two cores, shared with both molecule scenarios.
        """
        if self.is_running():
            raise RuntimeError(f"the broker in {self.work_dir} is already running")
        if self._ports is None:
            broker_port, controller_port = _free_ports(2)
            self._ports = (broker_port, controller_port)
        if self._plaintext_listener and self._plaintext_port is None:
            self._plaintext_port = next(port for port in _free_ports(3) if port not in self._ports)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._write_properties()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage()

        env = {
            **os.environ,
            "LOG_DIR": str(self.log_dir),
            "KAFKA_HEAP_OPTS": f"-Xmx{self.heap} -Xms{self.heap}",
        }
        if self.java_options:
            env["KAFKA_OPTS"] = " ".join(self.java_options)
        with self.console_log.open("ab") as console:
            self._process = subprocess.Popen(
                [str(self.kafka_home / "bin" / "kafka-server-start"), str(self.properties_file)],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_ready(timeout)
        except BrokerStartError:
            self.stop()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the broker and wait for its clean shutdown; SIGKILL it after ``timeout``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def log_summary(self, tail_lines: int = _LOG_TAIL_LINES) -> str:
        """First errors and last lines of the server's console output (INFO and up, JVM errors)."""
        try:
            lines = self.console_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"({self.console_log} does not exist)"
        errors = _first_errors(lines, limit=3)
        summary = f"last lines of {self.console_log}:\n" + "\n".join(lines[-tail_lines:])
        if errors:
            summary = "first errors:\n" + "\n".join(errors) + "\n" + summary
        return summary

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _require_ports(self) -> tuple[int, int]:
        if self._ports is None:
            raise RuntimeError("the broker's ports are picked by start(); call it first")
        return self._ports

    def client_properties(self, user: User) -> dict[str, str]:
        """The librdkafka properties of a client of the secured broker, as ``user``."""
        return self._require_security().client_properties(user)

    def grant_pipeline(self, topic: str, group: str, *, prefixed: bool = False) -> None:
        """ACLs of a secured broker: ``producer`` may write ``topic``, ``consumer`` may read it
        as a member of ``group``; with ``prefixed``, every topic and group so named at the start.
        """
        pattern = ["--resource-pattern-type", "prefixed" if prefixed else "literal"]
        self._acls("producer", ["Write", "Describe"], ["--topic", topic, *pattern])
        self._acls("consumer", ["Read", "Describe"], ["--topic", topic, "--group", group, *pattern])

    def grant_dead_letter_writes(self, dead_letter_topic: str) -> None:
        """``consumer`` may write its dead letters to ``dead_letter_topic`` (and only there), as
        the kafka_access role lets it in a deployment."""
        self._acls("consumer", ["Write", "Describe"], ["--topic", dead_letter_topic])

    def _acls(self, user: User, operations: list[str], resources: list[str]) -> None:
        security = self._require_security()
        operation_arguments = [argument for op in operations for argument in ("--operation", op)]
        self._run_tool(
            "kafka-acls",
            "--bootstrap-server",
            self.bootstrap,
            "--command-config",
            str(security.admin_tool_properties()),
            "--add",
            "--allow-principal",
            f"User:{user}",
            *operation_arguments,
            *resources,
        )

    def _require_security(self) -> SecuredListener:
        if self.security is None:
            raise RuntimeError("the broker is not secured; create it with secured=True")
        return self.security

    def _listener_properties(self) -> dict[str, str]:
        if self.security is not None:
            return self.security.broker_properties(
                self.listener_address,
                self.controller_address,
                self.plaintext_bootstrap if self._plaintext_listener else None,
            )
        listeners = f"PLAINTEXT://{self.bootstrap}"
        if self._joins is None:
            listeners += f",CONTROLLER://{self.controller_address}"
        return {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        }

    def _write_properties(self) -> None:
        quorum = self._joins or self
        properties = {
            "process.roles": "broker" if self._joins else "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.bootstrap.servers": quorum.controller_address,
            "controller.listener.names": "CONTROLLER",
            **self._listener_properties(),
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.num_partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            **GROUP_TIMINGS,
            **self.extra_properties,
        }
        # Owner-only: a secured broker's file holds its admin password.
        text = "".join(f"{k}={v}\n" for k, v in properties.items())
        write_owner_only(self.properties_file, text.encode())

    def _run_tool(self, *args: str) -> str:
        command = [str(self.kafka_home / "bin" / args[0]), *args[1:]]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as err:
            raise BrokerStartError(
                f"{' '.join(command)} did not finish in {err.timeout} s"
            ) from err
        if result.returncode != 0:
            raise BrokerStartError(
                f"{' '.join(command)} failed with exit code {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result.stdout

    def _format_storage(self) -> None:
        if self._joins is not None:
            cluster_id = self._joins.cluster_id()
            quorum = "--no-initial-controllers"
        else:
            cluster_id = self._run_tool("kafka-storage", "random-uuid").strip()
            quorum = "--standalone"
        if not cluster_id:
            raise BrokerStartError("kafka-storage random-uuid printed no cluster id")
        self._run_tool(
            "kafka-storage",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(self.properties_file),
            quorum,
            *(self.security.format_arguments() if self.security is not None else []),
        )

    def cluster_id(self) -> str:
        """The cluster id its storage was formatted with."""
        meta = (self.data_dir / "meta.properties").read_text()
        return next(
            line.split("=", 1)[1].strip()
            for line in meta.splitlines()
            if line.startswith("cluster.id=")
        )

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        # librdkafka logs each refused connection while the JVM boots: wait for the port first.
        while not self._port_open():
            self._check_alive()
            if time.monotonic() > deadline:
                raise self._start_error(f"did not open {self.bootstrap} within {timeout} s")
            time.sleep(0.2)
        security = self.security.client_properties("admin") if self.security is not None else {}
        settings = settings_from(
            {
                "bootstrap_servers": self.bootstrap,
                "librdkafka": {"reconnect.backoff.max.ms": 500, **security},
            }
        )
        admin = create_client(AdminClient, client_config(settings, "admin", ClientErrors("admin")))
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._start_error(f"did not answer a metadata request within {timeout} s")
            try:
                metadata = admin.list_topics(timeout=min(remaining, 2.0))
            except KafkaException:
                continue
            if self.node_id in metadata.brokers:
                return

    def _port_open(self) -> bool:
        host, port = self.listener_address.rsplit(":", 1)
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return True
        except OSError:
            return False

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise self._start_error(f"exited with code {self._process.returncode}")

    def _start_error(self, what: str) -> BrokerStartError:
        return BrokerStartError(
            f"Kafka broker (node {self.node_id}, {self.work_dir}) {what}. "
            f"Logs in {self.log_dir}; {self.log_summary()}"
        )
