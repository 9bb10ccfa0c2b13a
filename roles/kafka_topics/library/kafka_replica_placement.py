#!/usr/bin/python
"""Ansible module kafka_replica_placement: spread topics' replicas evenly over a set of brokers."""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kafka_cli import KafkaTools, connection_options, error_summary

DOCUMENTATION = r"""
---
module: kafka_replica_placement
short_description: Spread the replicas of Kafka topics evenly over a set of brokers
description:
  - Moves partition replicas with Kafka's own C(kafka-reassign-partitions) so that the listed
    topics (default every topic, internal ones included) have replicas only on O(brokers), each
    broker holding as many replicas and being the preferred leader of as many partitions of each
    topic as the others, give or take one (racks permitting, see the notes).
  - Moves as few replicas as it can; a topic already spread that way is left alone, so a second
    run changes nothing. Adding a broker moves onto it its share; a broker left out of
    O(brokers) is drained.
  - Copies are throttled to O(throttle) bytes per second; the module waits until every moved
    replica has caught up (which lifts the throttle), then elects the preferred leaders of the
    moved partitions.
  - A reassignment already in progress (another tool, or a run that was interrupted) is waited
    for and its throttle lifted before anything is planned.
  - Check mode plans and reports the moves without making them; diff mode shows each moved
    partition's replicas before and after.
version_added: "0.1.0"
author:
  - kafka-micro
options:
  brokers:
    description:
      - Node ids of the brokers that are to hold the replicas; each must be registered and
        unfenced.
    type: list
    elements: int
    required: true
  topics:
    description:
      - Topics to spread; empty means every topic of the cluster, internal ones included (what
        draining a broker needs).
    type: list
    elements: str
    default: []
  throttle:
    description:
      - Replication bytes per second allowed for the moves, per broker (C(--throttle)).
    type: int
    default: 52428800
  wait_timeout:
    description:
      - Seconds to wait for the moved replicas to catch up before the task fails (the
        reassignment then goes on in the cluster, and the next run waits for it).
    type: int
    default: 3600
  bootstrap_server:
    description:
      - Kafka bootstrap server list (C(host:port[,host:port...])) the tools connect to.
    type: str
    default: localhost:9092
  kafka_bin_dir:
    description:
      - Directory holding the Kafka tools, C(bin/) of the Kafka installation.
    type: path
    required: true
  command_config:
    description:
      - Client properties file passed to the tools as C(--command-config) (TLS, SASL).
    type: path
  timeout:
    description:
      - Seconds each tool invocation may take before it is stopped and the task fails.
    type: int
    default: 120
notes:
  - With C(broker.rack) set on every listed broker, each partition's replicas are first put in
    as many racks as it has replicas (or as there are racks), and the counts are then evened out
    as far as that allows. If any listed broker has no rack, racks are not taken into account.
  - Supports check mode and diff mode.
requirements:
  - A Kafka installation (Apache Kafka 3.x/4.x or Confluent Platform) on the target host.
"""

EXAMPLES = r"""
- name: Spread every topic over brokers 1 to 4 (broker 4 was just added)
  kafka_replica_placement:
    brokers: [1, 2, 3, 4]
    kafka_bin_dir: /opt/confluent/current/bin
  run_once: true

- name: Move every replica off broker 4 before it is retired
  kafka_replica_placement:
    brokers: [1, 2, 3]
    throttle: 104857600
    kafka_bin_dir: /opt/confluent/current/bin
"""

RETURN = r"""
moves:
  description: The partitions whose replica list changed (or would change, in check mode).
  returned: always
  type: list
  elements: dict
  sample:
    - {topic: test-topic, partition: 3, before: [1, 2, 3], after: [4, 2, 3]}
replicas_per_broker:
  description: How many replicas each listed broker holds afterwards, over the spread topics.
  returned: always
  type: dict
  sample: {"1": 18, "2": 18, "3": 18, "4": 18}
commands:
  description: The changing tool invocations run (or, in check mode, that would have run).
  returned: always
  type: list
  elements: list
diff:
  description: The moved partitions' replica lists before and after, when run with C(--diff).
  returned: when diff mode is on
  type: dict
"""

_POLL_INTERVAL_S = 2.0
# One line of `kafka-reassign-partitions --list`, "t-0: replicas: 1,2,4. adding: 4. removing: 1."
# (a part is left out when it lists no broker)
_ONGOING_LINE = re.compile(
    r"^(?P<topic>.+)-(?P<partition>\d+): replicas: (?P<replicas>[\d,]*)\."
    r"(?: adding: [\d,]*\.)?(?: removing: (?P<removing>[\d,]*)\.)?$"
)
# One broker of `kafka-broker-api-versions`: "host:9092 (id: 1 rack: null isFenced: false) -> ("
_BROKER_LINE = re.compile(
    r"^\S+ \(id: (?P<id>\d+) rack: (?P<rack>\S+)(?: isFenced: (?P<fenced>\w+))?\) ->"
)

Placement = dict[tuple[str, int], list[int]]


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    before: list[int]
    after: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "before": self.before,
            "after": self.after,
        }


def parse_partitions(output: str) -> Placement:
    """Every partition's replica list from `kafka-topics --describe`.

    A partition line is tab-separated `Key: value` fields, for example
    `<TAB>Topic: t<TAB>Partition: 0<TAB>Leader: 1<TAB>Replicas: 1,2<TAB>Isr: 1,2...`.
    """
    placement: Placement = {}
    for line in output.splitlines():
        if not line.startswith(("\t", " ")) or "Partition:" not in line:
            continue
        fields = dict(
            (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
            for part in line.strip().split("\t")
            if ":" in part
        )
        try:
            key = (fields["Topic"], int(fields["Partition"]))
            placement[key] = [int(b) for b in fields["Replicas"].split(",") if b]
        except (KeyError, ValueError) as error:
            raise ValueError(f"unexpected kafka-topics partition line {line!r}") from error
    return placement


def parse_ongoing(output: str) -> Placement:
    """The target replicas of the reassignments in progress (`kafka-reassign-partitions --list`)."""
    ongoing: Placement = {}
    for line in output.splitlines():
        match = _ONGOING_LINE.match(line.strip())
        if match is None:
            continue
        removing = {int(b) for b in (match["removing"] or "").split(",") if b}
        replicas = [int(b) for b in match["replicas"].split(",") if b]
        target = [b for b in replicas if b not in removing]
        ongoing[(match["topic"], int(match["partition"]))] = target
    return ongoing


def parse_live_brokers(output: str) -> dict[int, str | None]:
    """The brokers that answered `kafka-broker-api-versions` and are not fenced, with their rack
    (None without one)."""
    live: dict[int, str | None] = {}
    for line in output.splitlines():
        match = _BROKER_LINE.match(line)
        if match is not None and match["fenced"] != "true":
            live[int(match["id"])] = None if match["rack"] == "null" else match["rack"]
    return live


def _replica_counts(placement: dict[int, list[int]], brokers: Iterable[int]) -> Counter[int]:
    counts = Counter({broker: 0 for broker in brokers})
    counts.update(broker for replicas in placement.values() for broker in replicas)
    return counts


def _rack_of(brokers: list[int], racks: dict[int, str | None]) -> dict[int, str]:
    """Each broker's rack; without a rack on every broker, each broker is a rack of its own,
    which makes "replicas in distinct racks" the same as "on distinct brokers"."""
    known = {broker: racks.get(broker) for broker in brokers}
    if all(rack is not None for rack in known.values()):
        return {broker: str(rack) for broker, rack in known.items()}
    return {broker: f"broker {broker}" for broker in brokers}


def _move(
    placement: dict[int, list[int]], counts: Counter[int], rack_of: dict[int, str]
) -> tuple[int, int, int] | None:
    """A replica to move (partition, from, to) from a broker holding at least two more than
    another, keeping the partition's replicas in distinct racks; the most to the least loaded
    broker first. None when there is no such move."""
    donors = sorted(counts, key=lambda b: (-counts[b], b))
    receivers = sorted(counts, key=lambda b: (counts[b], b))
    for donor in donors:
        for receiver in receivers:
            if counts[donor] - counts[receiver] <= 1:
                break
            for partition, replicas in placement.items():
                if donor not in replicas or receiver in replicas:
                    continue
                others = {rack_of[b] for b in replicas if b != donor}
                if rack_of[receiver] == rack_of[donor] or rack_of[receiver] not in others:
                    return partition, donor, receiver
    return None


def spread_topic(
    current: dict[int, list[int]],
    brokers: list[int],
    racks: dict[int, str | None] | None = None,
) -> dict[int, list[int]]:
    """One topic's replica lists (partition -> replicas, preferred leader first) spread over
    ``brokers``: every replica on a listed broker, each partition's replicas in as many racks as
    it can have, replica and preferred-leader counts per broker within one of each other as far
    as the racks allow, as few replicas moved as that takes.

    Deterministic, and a placement that already meets those rules comes back unchanged, which
    makes the module idempotent.
    """
    allowed = sorted(set(brokers))
    factor = max(len(replicas) for replicas in current.values())
    if factor > len(allowed):
        raise ValueError(
            f"it has {factor} replicas per partition and only {len(allowed)} brokers "
            f"({', '.join(map(str, allowed))}) are to hold them"
        )
    rack_of = _rack_of(allowed, racks or {})
    rack_count = len(set(rack_of.values()))
    placement = {
        p: [b for b in replicas if b in allowed] for p, replicas in sorted(current.items())
    }
    counts = _replica_counts(placement, allowed)

    # Replace the replicas of brokers left out: the least loaded broker not yet in the partition,
    # in a rack the partition lacks if there is one.
    for partition, replicas in placement.items():
        while len(replicas) < len(current[partition]):
            used = {rack_of[b] for b in replicas}
            broker = min(
                set(allowed) - set(replicas), key=lambda b: (rack_of[b] in used, counts[b], b)
            )
            replicas.append(broker)
            counts[broker] += 1

    # A partition with two replicas in one rack while a rack holds none of its replicas: the
    # later of the two goes to the least loaded broker of a missing rack.
    for replicas in placement.values():
        while len({rack_of[b] for b in replicas}) < min(len(replicas), rack_count):
            used = {rack_of[b] for b in replicas}
            position = max(
                i
                for i, b in enumerate(replicas)
                if rack_of[b] in {rack_of[r] for r in replicas[:i]}
            )
            broker = min(
                (b for b in allowed if rack_of[b] not in used), key=lambda b: (counts[b], b)
            )
            counts[replicas[position]] -= 1
            replicas[position] = broker
            counts[broker] += 1

    # Move one replica at a time from a more to a less loaded broker; each move lowers the sum of
    # squared counts, so this ends.
    while (move := _move(placement, counts, rack_of)) is not None:
        partition, donor, receiver = move
        replicas = placement[partition]
        replicas[replicas.index(donor)] = receiver
        counts[donor] -= 1
        counts[receiver] += 1

    # Balance preferred leaders by reordering replicas, which moves no data.
    while True:
        leaders = Counter({broker: 0 for broker in allowed})
        leaders.update(replicas[0] for replicas in placement.values())
        most = max(allowed, key=lambda b: (leaders[b], -b))
        least = min(allowed, key=lambda b: (leaders[b], b))
        if leaders[most] - leaders[least] <= 1:
            break
        swappable = [p for p, r in placement.items() if r[0] == most and least in r]
        if not swappable:
            break
        replicas = placement[swappable[0]]
        position = replicas.index(least)
        replicas[0], replicas[position] = least, most
    return placement


def spread(
    current: Placement, brokers: list[int], racks: dict[int, str | None] | None = None
) -> list[Move]:
    """The moves that spread every topic of ``current`` over ``brokers`` (and their racks)."""
    moves = []
    for topic in sorted({topic for topic, _ in current}):
        partitions = {p: list(r) for (t, p), r in current.items() if t == topic}
        try:
            wanted = spread_topic(partitions, brokers, racks)
        except ValueError as error:
            raise ValueError(f"Topic '{topic}' cannot be spread: {error}.") from error
        moves += [
            Move(topic, p, partitions[p], wanted[p])
            for p in sorted(partitions)
            if wanted[p] != partitions[p]
        ]
    return moves


def reassignment_json(placement: Placement) -> str:
    return json.dumps(
        {
            "version": 1,
            "partitions": [
                {"topic": topic, "partition": partition, "replicas": replicas}
                for (topic, partition), replicas in sorted(placement.items())
            ],
        }
    )


class Reassigner:
    """Reads the cluster's placement and moves replicas with Kafka's tools."""

    def __init__(self, module: AnsibleModule, tools: KafkaTools, work_dir: Path) -> None:
        self._module = module
        self._tools = tools
        self._work_dir = work_dir

    def placement(self, topics: list[str]) -> Placement:
        # --topic takes a regular expression; one alternation reads all of them in one JVM.
        pattern = ["--topic", "|".join(re.escape(t) for t in topics)] if topics else []
        output = self._tools.run(self._tools.command("kafka-topics", "--describe", *pattern))
        try:
            placement = parse_partitions(output)
        except ValueError as error:
            self._module.fail_json(msg=f"Could not read the topics' replicas: {error}")
        missing = sorted(set(topics) - {topic for topic, _ in placement})
        if missing:
            self._module.fail_json(
                msg=f"Topics {', '.join(missing)} do not exist; list only existing topics."
            )
        return placement

    def live_brokers(self) -> dict[int, str | None]:
        return parse_live_brokers(self._tools.run(self._tools.command("kafka-broker-api-versions")))

    def ongoing(self) -> Placement:
        """The target replicas of the reassignments in progress."""
        return parse_ongoing(
            self._tools.run(self._tools.command("kafka-reassign-partitions", "--list"))
        )

    def execute(self, moves: list[Move], throttle: int, deadline: float) -> list[list[str]]:
        placement = {(m.topic, m.partition): m.after for m in moves}
        plan = self._write("reassignment.json", reassignment_json(placement))
        commands = [
            self._tools.command(
                "kafka-reassign-partitions",
                "--execute",
                "--reassignment-json-file",
                str(plan),
                "--throttle",
                str(throttle),
            )
        ]
        if not self._module.check_mode:
            self._tools.run(commands[0])
            commands.append(self.wait(placement, deadline))
            commands.append(self.elect_preferred_leaders(moves))
        return commands

    def wait(self, placement: Placement, deadline: float) -> list[str]:
        """Poll --verify until every listed partition has its target replicas; its last run
        removes the throttles."""
        plan = self._write("verify.json", reassignment_json(placement))
        verify = self._tools.command(
            "kafka-reassign-partitions", "--verify", "--reassignment-json-file", str(plan)
        )
        while True:
            output = self._tools.run(verify)
            if "is still in progress" not in output:
                return verify
            if time.monotonic() > deadline:
                pending = [line for line in output.splitlines() if "still in progress" in line]
                self._module.fail_json(
                    msg=f"{len(pending)} partition moves were still in progress after "
                    "wait_timeout; they go on in the cluster (throttled) and the next run waits "
                    "for them. Raise wait_timeout or throttle.",
                    pending=pending,
                )
            time.sleep(_POLL_INTERVAL_S)

    def elect_preferred_leaders(self, moves: list[Move]) -> list[str]:
        partitions = [{"topic": m.topic, "partition": m.partition} for m in moves]
        election = self._write("election.json", json.dumps({"partitions": partitions}))
        command = self._tools.command(
            "kafka-leader-election",
            "--election-type",
            "PREFERRED",
            "--path-to-json-file",
            str(election),
        )
        timeout = str(self._module.params["timeout"])
        rc, stdout, stderr = self._module.run_command(
            ["timeout", "--kill-after=10", timeout, *command], environ_update={"JMX_PORT": ""}
        )
        if rc != 0:
            # auto.leader.rebalance moves leadership within minutes anyway; the data is in place.
            self._module.warn(
                f"Preferred leader election after the moves failed: {error_summary(stdout, stderr)}"
            )
        return command

    def _write(self, name: str, text: str) -> Path:
        path = self._work_dir / name
        path.write_text(text)
        return path


def argument_spec() -> dict[str, dict[str, Any]]:
    return {
        "brokers": {"type": "list", "elements": "int", "required": True},
        "topics": {"type": "list", "elements": "str", "default": []},
        "throttle": {"type": "int", "default": 52428800},
        "wait_timeout": {"type": "int", "default": 3600},
        **connection_options(),
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    brokers = sorted(set(params["brokers"]))
    if not brokers or any(broker < 0 for broker in brokers):
        module.fail_json(
            msg=f"brokers is {params['brokers']}; list the node ids (0 or more) of at least "
            "one broker."
        )
    for option in ("throttle", "wait_timeout", "timeout"):
        if params[option] < 1:
            module.fail_json(msg=f"{option} is {params[option]}; it must be 1 or more.")
    deadline = time.monotonic() + params["wait_timeout"]

    tools = KafkaTools(
        module,
        "kafka-topics",
        "kafka-reassign-partitions",
        "kafka-broker-api-versions",
        "kafka-leader-election",
    )
    with tempfile.TemporaryDirectory(prefix="kafka-placement-") as work_dir:
        reassigner = Reassigner(module, tools, Path(work_dir))
        live = reassigner.live_brokers()
        absent = [broker for broker in brokers if broker not in live]
        if absent:
            module.fail_json(
                msg=f"Not running: broker {', '.join(map(str, absent))} of brokers {brokers} "
                f"(live and unfenced: {', '.join(map(str, sorted(live))) or 'none'}). Start it "
                "or leave it out. Nothing was moved."
            )
        # During a reassignment kafka-topics lists old and new replicas together: plan from its
        # targets (check mode) or wait for it to end, which also lifts its throttles.
        ongoing = reassigner.ongoing()
        commands = []
        if ongoing and not module.check_mode:
            commands.append(reassigner.wait(ongoing, deadline))
        current = reassigner.placement(params["topics"])
        if module.check_mode:
            current.update({key: target for key, target in ongoing.items() if key in current})
        try:
            moves = spread(current, brokers, live)
        except ValueError as error:
            module.fail_json(msg=f"{error} Nothing was moved.")
        if moves:
            commands += reassigner.execute(moves, params["throttle"], deadline)
    after = dict(current)
    after.update({(m.topic, m.partition): m.after for m in moves})
    counts = _replica_counts(dict(enumerate(after.values())), brokers)
    result: dict[str, Any] = {
        "changed": bool(moves or ongoing),
        "moves": [m.as_dict() for m in moves],
        "replicas_per_broker": {str(b): counts[b] for b in sorted(counts)},
        "commands": commands,
    }
    if module._diff:
        result["diff"] = {
            "before": "".join(f"{m.topic}-{m.partition}: {m.before}\n" for m in moves),
            "after": "".join(f"{m.topic}-{m.partition}: {m.after}\n" for m in moves),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
