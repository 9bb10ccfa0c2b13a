"""The fault suite's harness: the deployed pipeline, faults injected from the container host.

Every host of the inventory is a container named after it (molecule's instances, or the lab's),
reached with ``docker exec`` through testinfra's docker backend. The pipeline is what site.yml
deployed: its producer and six consumers per app host, their acknowledgement ledgers and
records, the brokers' systemd units.
"""

import json
import re
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import testinfra
import testinfra.utils.ansible_runner
from groupstate import INSTANCES, PARTITIONS

BROKER_UNIT = "confluent-kafka.service"
PRODUCER_UNIT = "kafka-producer.service"
# The most consumer instances per app host a scenario scales to.
MAX_INSTANCES = 8
DATA_DIR = "/var/lib/kafka/data"
KAFKA_INSTALL_ROOT = "/opt/confluent"
STATE_DIR = "/var/lib/kafka-micro"
LEDGER_DIR = f"{STATE_DIR}/acked"
RECORD_DIR = f"{STATE_DIR}/record"
APP = "/opt/kafka-micro/venv/bin/kafka-micro --config /etc/kafka-micro/kafka-micro.toml"
APP_PYTHON = "/opt/kafka-micro/venv/bin/python"
PROBE = "/root/pipeline_probe.py"
SAMPLES = "/root/committed-offsets.jsonl"
# Bounds for a loaded 2-core machine, not expectations: the suite reports the times it saw.
RECOVERY_TIMEOUT_S = 300
POLL_S = 1.0
_PRODUCING_AS = re.compile(r"producing to \S+ on \S+ as '([^']+)'")
# systemd's catalogue ids of a unit's "Stopping" and "Started" messages.
_STOPPING = "de5b426a63be47a7b6ac3eb64a10a0d1"
_STARTED = "39f53479d3a045ac8e11786248231fbf"


def consumer_units(instances: int, first: int = 1) -> list[str]:
    return [f"kafka-consumer@{number}.service" for number in range(first, instances + 1)]


CONSUMER_UNITS = consumer_units(INSTANCES)


@dataclass
class Scenario:
    """One fault as the suite ran it, and what the pipeline did meanwhile."""

    name: str
    fault: str
    started: float = field(default_factory=time.time)
    producers: list[str] = field(default_factory=list)
    recovery_s: float = 0.0
    lag_zero_s: float = 0.0
    # A change an operator makes (no process killed, no broker lost): consumers stop cleanly.
    graceful: bool = False


class Pipeline:
    """The deployed hosts, by inventory group, and what can be done to them."""

    def __init__(self, inventory: str, network: str) -> None:
        runner = testinfra.utils.ansible_runner.AnsibleRunner(inventory)
        self.network = network
        self.brokers = runner.get_hosts("kafka")
        self.apps = runner.get_hosts("kafka_app")
        self.node_ids = {
            int(runner.get_variables(name)["confluent_kafka_node_id"]): name
            for name in self.brokers
        }
        self._hosts = {name: testinfra.get_host(f"docker://{name}") for name in self.hosts}
        # Consumer instances per app host as deployed now; a scaling scenario changes it.
        self.instances = INSTANCES

    @property
    def hosts(self) -> list[str]:
        return [*self.brokers, *self.apps]

    def host(self, name: str):
        return self._hosts[name]

    def run(self, name: str, command: str) -> str:
        result = self.host(name).run(command)
        assert result.rc == 0, f"{name}: {command}: {result.stderr[-2000:]}"
        return result.stdout

    # --- State -------------------------------------------------------------------------

    def unit_states(self) -> dict[str, str]:
        """'host unit' -> systemctl is-active, for every broker and app unit."""
        states = {}
        app_units = [PRODUCER_UNIT, *consumer_units(self.instances)]
        for name in self.hosts:
            units = [BROKER_UNIT] if name in self.brokers else app_units
            # is-active exits non-zero when a unit is not active: read its answers anyway.
            answers = self.host(name).run(f"systemctl is-active {' '.join(units)}").stdout.split()
            answers += ["unknown"] * (len(units) - len(answers))
            states.update(
                {f"{name} {unit}": state for unit, state in zip(units, answers, strict=True)}
            )
        return states

    def restarts(self, name: str, units: list[str]) -> dict[str, int]:
        """systemd's NRestarts of each unit: how often it restarted a unit that failed."""
        output = self.run(name, f"systemctl show --property=NRestarts --value {' '.join(units)}")
        return dict(zip(units, (int(value) for value in output.split()), strict=True))

    def probe(self) -> dict:
        """pipeline_probe.py's view from the first app host that answers: partitions with
        leader, replicas and ISR, the group's members and their partitions, lag per partition."""
        failures = []
        for name in self.apps:
            result = self.host(name).run(f"{APP_PYTHON} {PROBE} state")
            if result.rc == 0:
                return json.loads(result.stdout)
            failures.append(f"{name}: {result.stderr.strip()[-300:]}")
        return {"error": failures}

    def replicas_per_broker(self) -> tuple[Counter, Counter]:
        """(replicas, preferred leaders) of the topic per node id."""
        partitions = self.probe()["partitions"].values()
        replicas = Counter(node for p in partitions for node in p["replicas"])
        return replicas, Counter(p["replicas"][0] for p in partitions)

    def cluster_acls(self) -> str:
        """The cluster resource's ACLs as kafka-acls lists them, read as the admin."""
        return self.run(
            self.brokers[0],
            f"{KAFKA_INSTALL_ROOT}/current/bin/kafka-acls --list --cluster "
            f"--bootstrap-server {self.brokers[0]}:9092 "
            "--command-config /etc/kafka/admin-client.properties",
        )

    def voters(self) -> list[int]:
        """The node ids of the metadata quorum's voters, asked of the first node's controller
        listener with its own certificate."""
        status = self.run(
            self.brokers[0],
            f"{KAFKA_INSTALL_ROOT}/current/bin/kafka-metadata-quorum "
            f"--bootstrap-controller {self.brokers[0]}:9093 "
            "--command-config /etc/kafka/controller-client.properties describe --status",
        )
        voters = re.search(r"(?m)^CurrentVoters:\s*(.*)$", status)
        assert voters, status
        return sorted(voter["id"] for voter in json.loads(voters.group(1)))

    def leaders(self) -> dict[int, int]:
        """{partition: leader node id} of the topic."""
        partitions = self.probe()["partitions"]
        return {int(p): described["leader"] for p, described in partitions.items()}

    def busiest_leader(self) -> str:
        """The broker host that leads the most partitions of the topic."""
        counts: dict[int, int] = {}
        for leader in self.leaders().values():
            counts[leader] = counts.get(leader, 0) + 1
        return self.node_ids[max(counts, key=counts.__getitem__)]

    def unhealthy(self) -> str:
        """What keeps the pipeline from being as deployed, or "" when nothing does."""
        states = self.unit_states()
        inactive = {unit: state for unit, state in states.items() if state != "active"}
        if inactive:
            return f"units not active: {inactive}"
        surplus = self.surplus_consumers()
        if surplus:
            return f"consumers beyond kafka_app_consumer_instances still running: {surplus}"
        found = self.probe()
        if "error" in found:
            return f"the cluster does not answer: {found['error']}"
        partitions = found["partitions"].values()
        leaderless = sum(1 for p in partitions if p["leader"] < 0)
        under_replicated = sum(1 for p in partitions if len(p["isr"]) < len(p["replicas"]))
        if len(partitions) != PARTITIONS or leaderless or under_replicated:
            return f"{under_replicated} under-replicated, {leaderless} leaderless partitions"
        expected = {
            f"{app}-{number}" for app in self.apps for number in range(1, self.instances + 1)
        }
        owned = sorted(p for partitions in found["members"].values() for p in partitions)
        if set(found["members"]) != expected or owned != list(range(PARTITIONS)):
            return f"the group is not whole: {found['members']}"
        return ""

    def surplus_consumers(self) -> list[str]:
        """Consumer units beyond ``instances`` (up to MAX_INSTANCES) that are not inactive."""
        surplus = consumer_units(MAX_INSTANCES, first=self.instances + 1)
        if not surplus:
            return []
        found = []
        for name in self.apps:
            answers = self.host(name).run(f"systemctl is-active {' '.join(surplus)}").stdout
            found += [
                f"{name} {unit}"
                for unit, state in zip(surplus, answers.split(), strict=True)
                if state != "inactive"
            ]
        return found

    def enabled(self, name: str, units: list[str]) -> dict[str, str]:
        """systemctl is-enabled of each unit."""
        answers = self.host(name).run(f"systemctl is-enabled {' '.join(units)}").stdout.split()
        return dict(zip(units, answers, strict=True))

    def unit_transitions(self, name: str, since: float) -> list[tuple[float, str, str]]:
        """(time, unit, "stopping" | "started") of the consumers since ``since`` (epoch), from
        systemd's own messages: a notify unit is "started" once it sent READY=1."""
        journal = self.run(
            name,
            f"journalctl --no-pager --output json --since @{int(since)} "
            f"MESSAGE_ID={_STOPPING} MESSAGE_ID={_STARTED}",
        )
        transitions = []
        for line in journal.splitlines():
            entry = json.loads(line)
            unit = entry.get("UNIT", "")
            if unit.startswith("kafka-consumer@"):
                kind = "stopping" if entry["MESSAGE_ID"] == _STOPPING else "started"
                transitions.append((int(entry["__REALTIME_TIMESTAMP"]) / 1e6, unit, kind))
        return sorted(transitions)

    def wait_recovered(self, since: float) -> float:
        """Seconds from ``since`` (monotonic) until every unit is active, no partition is
        under-replicated or leaderless, and the group is whole again."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            why = self.unhealthy()
            if not why:
                return time.monotonic() - since
            time.sleep(POLL_S)
        pytest.fail(f"not recovered within {RECOVERY_TIMEOUT_S} s: {why}")

    def wait_restarted(self, name: str, unit: str, restarts: int) -> float:
        """Seconds until systemd restarted ``unit`` after a failure more than ``restarts`` times."""
        started = time.monotonic()
        deadline = started + RECOVERY_TIMEOUT_S
        while self.restarts(name, [unit])[unit] <= restarts:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} {unit} did not fail within {RECOVERY_TIMEOUT_S} s")
            time.sleep(POLL_S)
        return time.monotonic() - started

    def at_least_once_window(self) -> int:
        """Messages the app hosts' producers send between two automatic commits of a consumer:
        what a consumer that stops cleanly may at most process again."""
        total = 0.0
        for name in self.apps:
            settings = json.loads(self.run(name, f"{APP} config --json"))
            rate = settings["producer"]["rate"]
            # As fast as possible has no bound to hold the consumers to.
            assert rate > 0, f"{name}: the suite needs a producer rate (kafka_app_producer_rate)"
            total += rate * settings["consumer"]["auto_commit_interval_ms"]
        return int(total / 1000)

    def wait_lag_zero(self) -> float:
        """Seconds until the group has committed every partition's log end offset."""
        started = time.monotonic()
        deadline = started + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            lag = self.probe().get("lag", {})
            if len(lag) == PARTITIONS and not any(lag.values()):
                return time.monotonic() - started
            time.sleep(POLL_S)
        pytest.fail(f"lag not back to 0 within {RECOVERY_TIMEOUT_S} s: {lag}")

    # --- The producers -----------------------------------------------------------------

    def restart_producers(self) -> None:
        """A new producer process, so a new producer id, on every app host."""
        for name in self.apps:
            self.run(name, f"systemctl restart {PRODUCER_UNIT}")

    def stop_producers(self) -> None:
        for name in self.apps:
            self.run(name, f"systemctl stop {PRODUCER_UNIT}")

    def start_producers(self) -> None:
        for name in self.apps:
            self.run(name, f"systemctl start {PRODUCER_UNIT}")

    def producer_ids(self, since: float) -> list[str]:
        """Ids of the producer processes started since ``since`` (epoch), from their journal."""
        ids = []
        for name in self.apps:
            journal = self.run(
                name, f"journalctl --unit {PRODUCER_UNIT} --since @{int(since)} --output cat"
            )
            ids += _PRODUCING_AS.findall(journal)
        return ids

    # --- Faults ------------------------------------------------------------------------

    def stop_broker(self, name: str) -> None:
        self.run(name, f"systemctl stop {BROKER_UNIT}")

    def start_broker(self, name: str) -> None:
        self.run(name, f"systemctl start {BROKER_UNIT}")

    def kill(self, name: str, units: list[str]) -> None:
        """SIGKILL the units' processes; systemd restarts them as after any crash."""
        self.run(name, f"systemctl kill --signal=SIGKILL {' '.join(units)}")

    def broker_pid(self, name: str) -> str:
        return self.run(name, f"systemctl show --property=MainPID --value {BROKER_UNIT}").strip()

    def kafka_release(self, name: str) -> str:
        """The Confluent release the node's ``current`` install links to (confluent-VERSION)."""
        target = self.run(name, f"readlink {KAFKA_INSTALL_ROOT}/current").strip()
        return target.rstrip("/").rsplit("/", 1)[-1].removeprefix("confluent-")

    def signal_broker(self, name: str, signal: str) -> None:
        self.run(name, f"kill -{signal} {self.broker_pid(name)}")

    def disconnect(self, name: str) -> None:
        docker("network", "disconnect", self.network, name)

    def connect(self, name: str) -> None:
        docker("network", "connect", self.network, name)

    def make_data_dir_unwritable(self, name: str) -> str:
        """The broker's data directory refuses new files, as a failing disk remounted read-only
        would (files already open stay writable); returns its mode, to restore it with."""
        mode = self.run(name, f"stat -c %a {DATA_DIR}").strip()
        self.run(name, f"chmod a-w {DATA_DIR}")
        return mode

    def restore_data_dir(self, name: str, mode: str) -> None:
        self.run(name, f"chmod {mode} {DATA_DIR}")

    def start_host_like(self, name: str, model: str) -> None:
        """A new host on the network, booted from ``model``'s image as molecule boots them."""
        image = docker("inspect", "--format", "{{.Config.Image}}", model).strip()
        docker(
            "run",
            "--detach",
            "--name",
            name,
            "--hostname",
            name,
            "--network",
            self.network,
            "--cap-add",
            "SYS_ADMIN",
            "--cgroupns",
            "host",
            "--volume",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/run/lock",
            "--stop-signal",
            "SIGRTMIN+3",
            image,
            "/lib/systemd/systemd",
        )
        self._hosts[name] = testinfra.get_host(f"docker://{name}")
        # "degraded" (a unit that cannot run in a container) counts as booted: ignore the exit code.
        self.host(name).run("systemctl is-system-running --wait")

    def remove_host(self, name: str) -> None:
        docker("rm", "--force", "--volumes", name)
        self._hosts.pop(name, None)

    def restart_container(self, name: str) -> None:
        """The whole host rebooted: systemd stops every unit in order, then boots them all."""
        docker("restart", "--time", "120", name)

    # --- Accounting --------------------------------------------------------------------

    def install_probe(self, script: str) -> None:
        """Puts pipeline_probe.py on every app host."""
        for name in self.apps:
            docker("cp", script, f"{name}:{PROBE}")

    def start_offset_sampler(self) -> None:
        """Samples the committed offsets from the first app host until stopped. Run again when
        it dies: librdkafka 2.16.0's admin client aborted once after a request timed out (an
        assertion in rd_kafka_enq_once_del_source_return) while that host was cut off."""
        name = self.apps[0]
        self.run(name, f"rm -f {SAMPLES} {SAMPLES}.log")
        docker(
            "exec",
            "-d",
            name,
            "sh",
            "-c",
            f"while :; do {APP_PYTHON} {PROBE} sample {SAMPLES} 2>>{SAMPLES}.log; sleep 1; done",
        )

    def committed_offset_samples(self) -> list[dict]:
        lines = self.run(self.apps[0], f"cat {SAMPLES}").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stop_offset_sampler(self) -> None:
        self.host(self.apps[0]).run(f"pkill -f '{PROBE} sample'")

    def verify(self) -> dict:
        """``kafka-micro verify --acked`` over every app host's ledgers, run on the first."""
        collected = "/root/fault-suite-ledgers"
        first = self.apps[0]
        self.run(first, f"rm -rf {collected} && mkdir -p {collected}")
        for name in self.apps:
            archive = self.run(name, f"tar -C {LEDGER_DIR} -cf - . | base64 -w0")
            self.run(first, f"echo {archive} | base64 -d | tar -C {collected} -xf -")
        result = self.host(first).run(f"{APP} verify --acked {collected} --json")
        assert result.rc in (0, 1), result.stderr[-3000:]
        return json.loads(result.stdout)

    def processed(self, script: str, producers: list[str]) -> dict[str, tuple[int, int]]:
        """{producer: (distinct sequence numbers processed, records processed)} over the
        consumers of all app hosts, from their records (``script`` is record_summary.py); the
        difference is what was processed more than once."""
        ranges: dict[str, list] = {producer: [] for producer in producers}
        records = dict.fromkeys(producers, 0)
        for name in self.apps:
            docker("cp", script, f"{name}:/root/record_summary.py")
            command = f"python3 /root/record_summary.py {RECORD_DIR} {' '.join(producers)}"
            for producer, found in json.loads(self.run(name, command)).items():
                ranges[producer].extend(found["ranges"])
                records[producer] += found["records"]
        return {producer: (covered(ranges[producer]), records[producer]) for producer in producers}


def covered(ranges: list[list[int]]) -> int:
    """How many distinct values the (possibly overlapping) inclusive ranges hold."""
    total = 0
    reach = -1
    for first, last in sorted(ranges):
        if last > reach:
            total += last - max(first, reach + 1) + 1
            reach = last
    return total


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=300
    ).stdout
