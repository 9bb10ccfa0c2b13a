#!/usr/bin/python
"""Ansible module kafka_topic: keep one Kafka topic in shape with Kafka's own CLI tools."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kafka_cli import KafkaTools, connection_options

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Create, grow, configure or delete one Kafka topic
description:
  - Keeps one Kafka topic in the requested shape by driving Kafka's own command line tools
    (C(kafka-topics) and C(kafka-configs)) from the Kafka installation on the target host.
  - Needs no Python library on the target; it runs where Kafka is installed, with the same
    tools an operator would use by hand.
  - A missing topic is created with the requested partitions, replication factor and configs.
  - An existing topic gets more partitions when more are requested, and its dynamic topic
    configs are set where they differ from the requested ones.
  - Requests Kafka cannot fulfil in place fail before anything is changed; fewer partitions than
    the topic has (Kafka cannot shrink a topic) and a different replication factor (that needs a
    partition reassignment, which this module does not do).
version_added: "0.1.0"
author:
  - kafka-micro
options:
  name:
    description:
      - Name of the topic. Only ASCII letters, digits, C(.), C(_) and C(-), at most 249 characters.
    type: str
    required: true
  state:
    description:
      - C(present) creates the topic or brings it into shape; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  partitions:
    description:
      - Number of partitions. Required when O(state=present). Can grow, never shrink.
    type: int
  replication_factor:
    description:
      - Number of replicas of each partition. Required when O(state=present).
      - Used when the topic is created; on an existing topic it must match the current one.
    type: int
  config:
    description:
      - Topic configs to set, for example C(min.insync.replicas) or C(retention.ms).
      - Values are compared as strings with what Kafka stores; booleans become C(true)/C(false)
        and a list is joined with commas (for example C(cleanup.policy=[compact, delete])).
      - Dynamic configs not named here are left alone unless O(config_purge=true).
    type: dict
    default: {}
  config_purge:
    description:
      - Delete dynamic topic configs that are not named in O(config), so that the topic falls
        back to the broker default for them.
    type: bool
    default: false
  bootstrap_server:
    description:
      - Kafka bootstrap server list (C(host:port[,host:port...])) the tools connect to.
    type: str
    default: localhost:9092
  kafka_bin_dir:
    description:
      - Directory holding the Kafka tools, C(bin/) of the Kafka installation.
      - Confluent names (C(kafka-topics)) are used when present, else Apache names
        (C(kafka-topics.sh)).
    type: path
    required: true
  command_config:
    description:
      - Client properties file passed to the tools as C(--command-config), for example to set
        TLS or SASL settings.
    type: path
  timeout:
    description:
      - Seconds each tool invocation may take before it is stopped and the task fails.
    type: int
    default: 120
notes:
  - Runs the tools through coreutils C(timeout), with arguments passed as a list (no shell).
  - Each tool invocation starts a JVM, so a run takes a few seconds per topic.
  - Supports check mode and diff mode.
requirements:
  - A Kafka installation (Apache Kafka 3.x/4.x or Confluent Platform) on the target host.
  - Java on the target host, as the Kafka tools need it.
"""

EXAMPLES = r"""
- name: Ensure the topic test-topic has 24 partitions and three replicas
  kafka_topic:
    name: test-topic
    partitions: 24
    replication_factor: 3
    config:
      min.insync.replicas: 2
      retention.ms: 604800000
    bootstrap_server: localhost:9092
    kafka_bin_dir: /opt/confluent/current/bin
  run_once: true

- name: Ensure the topic old-topic is deleted
  kafka_topic:
    name: old-topic
    state: absent
    kafka_bin_dir: /opt/confluent/current/bin
"""

RETURN = r"""
topic:
  description:
    - State of the topic after the task (in check mode, the state it would have).
    - C(config) holds the dynamic topic configs only, not broker defaults.
  returned: always
  type: dict
  sample:
    name: test-topic
    state: present
    partitions: 24
    replication_factor: 3
    config:
      min.insync.replicas: "2"
      retention.ms: "604800000"
commands:
  description: The changing tool invocations run (or, in check mode, that would have run).
  returned: always
  type: list
  elements: list
  sample:
    - ["/opt/confluent/current/bin/kafka-topics", "--bootstrap-server", "localhost:9092",
       "--alter", "--topic", "test-topic", "--partitions", "24"]
diff:
  description: Topic before and after, when run with C(--diff).
  returned: when diff mode is on
  type: dict
"""

# Kafka's own rule for topic names (org.apache.kafka.common.internals.Topic).
_TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
_CONFIG_KEY = re.compile(r"^[a-zA-Z0-9._-]+$")
# One dynamic config line of `kafka-configs --describe`, for example
#   retention.ms=60000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=60000}
_CONFIG_LINE = re.compile(
    r"^\s+(?P<key>[^=\s]+)=(?P<value>.*) sensitive=(?P<sensitive>true|false) synonyms=\{.*\}\s*$"
)


@dataclass(frozen=True)
class TopicState:
    """What this module manages of a topic."""

    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)

    def as_dict(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "state": "present",
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "config": dict(sorted(self.config.items())),
        }


def topic_pattern(name: str) -> str:
    """kafka-topics reads --topic as a regular expression; a dot must match only a dot."""
    return name.replace(".", r"\.")


def parse_topic_description(name: str, output: str) -> tuple[int, int] | None:
    """Partition count and replication factor from `kafka-topics --describe`, None if missing.

    The summary line of a topic is tab-separated `Key: value` fields, for example
    `Topic: t<TAB>TopicId: x<TAB>PartitionCount: 3<TAB>ReplicationFactor: 1<TAB>Configs: ...`;
    partition lines follow, indented.
    """
    for line in output.splitlines():
        if not line.startswith("Topic:"):
            continue
        fields = dict(
            (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
            for part in line.split("\t")
            if ":" in part
        )
        if fields.get("Topic") != name:
            continue
        try:
            return int(fields["PartitionCount"]), int(fields["ReplicationFactor"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"unexpected kafka-topics summary line {line!r}") from error
    return None


def parse_dynamic_configs(output: str) -> dict[str, str]:
    """Dynamic topic configs from `kafka-configs --describe --entity-type topics`."""
    configs: dict[str, str] = {}
    for line in output.splitlines():
        if not line.startswith(" ") or not line.strip():
            continue
        match = _CONFIG_LINE.match(line)
        if match is None:
            raise ValueError(f"unexpected kafka-configs line {line!r}")
        configs[match["key"]] = match["value"]
    return configs


def config_value(key: str, value: object) -> str:
    """The string Kafka stores for a requested config value."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(item, str | int) for item in value):
        text = ",".join(str(item) for item in value)
    else:
        raise ValueError(
            f"config '{key}' has a value of type {type(value).__name__}; give a string, "
            "number, boolean or list of strings"
        )
    # kafka-configs splits --add-config on '=' and ',' outside [...] and drops every bracket,
    # so a bracket can never reach Kafka intact.
    if "[" in text or "]" in text:
        raise ValueError(
            f"config '{key}' value {text!r} contains a bracket, which kafka-configs drops"
        )
    return text


def add_config_argument(changes: dict[str, str]) -> str:
    """The --add-config value; values holding ',' or '=' are bracketed as kafka-configs wants."""
    return ",".join(
        f"{key}=[{value}]" if "," in value or "=" in value else f"{key}={value}"
        for key, value in sorted(changes.items())
    )


def requested_config(module: AnsibleModule) -> dict[str, str]:
    requested: dict[str, str] = {}
    for key, value in module.params["config"].items():
        if not _CONFIG_KEY.match(key):
            module.fail_json(
                msg=f"Topic '{module.params['name']}': config key {key!r} is not a Kafka config "
                "name (letters, digits, '.', '_' and '-' only)."
            )
        try:
            requested[key] = config_value(key, value)
        except ValueError as error:
            module.fail_json(msg=f"Topic '{module.params['name']}': {error}.")
    return requested


def read_topic(module: AnsibleModule, tools: KafkaTools, name: str) -> TopicState | None:
    description = tools.run(
        tools.command("kafka-topics", "--describe", "--topic", topic_pattern(name), "--if-exists")
    )
    try:
        shape = parse_topic_description(name, description)
    except ValueError as error:
        module.fail_json(msg=f"Could not read topic '{name}': {error}", stdout=description)
    if shape is None:
        return None
    configs_output = tools.run(
        tools.command(
            "kafka-configs", "--describe", "--entity-type", "topics", "--entity-name", name
        )
    )
    try:
        config = parse_dynamic_configs(configs_output)
    except ValueError as error:
        module.fail_json(msg=f"Could not read configs of topic '{name}': {error}")
    return TopicState(partitions=shape[0], replication_factor=shape[1], config=config)


def impossible_changes(name: str, current: TopicState, wanted: TopicState) -> list[str]:
    problems = []
    if wanted.partitions < current.partitions:
        problems.append(
            f"Topic '{name}' has {current.partitions} partitions and {wanted.partitions} were "
            "requested: Kafka cannot reduce the partitions of a topic. Request "
            f"{current.partitions} or more, or delete and re-create the topic (losing its data)."
        )
    if wanted.replication_factor != current.replication_factor:
        problems.append(
            f"Topic '{name}' has replication factor {current.replication_factor} and "
            f"{wanted.replication_factor} was requested: this module does not move replicas. "
            f"Set replication_factor to {current.replication_factor}, or change it with "
            "kafka-reassign-partitions (--generate a plan, --execute it, --verify) and then set "
            "replication_factor to the new value."
        )
    return problems


def plan_present(
    module: AnsibleModule, tools: KafkaTools, current: TopicState | None
) -> tuple[TopicState, list[list[str]]]:
    """The state the topic will have and the tool invocations that get it there."""
    name = module.params["name"]
    wanted_config = requested_config(module)
    wanted = TopicState(
        partitions=module.params["partitions"],
        replication_factor=module.params["replication_factor"],
        config=wanted_config,
    )
    if current is None:
        create = tools.command(
            "kafka-topics",
            "--create",
            "--topic",
            name,
            "--partitions",
            str(wanted.partitions),
            "--replication-factor",
            str(wanted.replication_factor),
        )
        for key, value in sorted(wanted_config.items()):
            create += ["--config", f"{key}={value}"]
        return wanted, [create]

    problems = impossible_changes(name, current, wanted)
    if problems:
        module.fail_json(msg=" ".join(problems), topic=current.as_dict(name))

    commands = []
    if wanted.partitions > current.partitions:
        commands.append(
            tools.command(
                "kafka-topics",
                "--alter",
                "--topic",
                topic_pattern(name),
                "--partitions",
                str(wanted.partitions),
            )
        )
    to_set = {k: v for k, v in wanted_config.items() if current.config.get(k) != v}
    to_delete = (
        sorted(set(current.config) - set(wanted_config)) if module.params["config_purge"] else []
    )
    if to_set or to_delete:
        alter = tools.command(
            "kafka-configs", "--alter", "--entity-type", "topics", "--entity-name", name
        )
        if to_set:
            alter += ["--add-config", add_config_argument(to_set)]
        if to_delete:
            alter += ["--delete-config", ",".join(to_delete)]
        commands.append(alter)
    after_config = {k: v for k, v in current.config.items() if k not in to_delete}
    after_config.update(wanted_config)
    after = TopicState(
        partitions=max(wanted.partitions, current.partitions),
        replication_factor=current.replication_factor,
        config=after_config,
    )
    return after, commands


def argument_spec() -> dict[str, dict[str, Any]]:
    return {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "partitions": {"type": "int"},
        "replication_factor": {"type": "int"},
        "config": {"type": "dict", "default": {}},
        "config_purge": {"type": "bool", "default": False},
        **connection_options(),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[("state", "present", ("partitions", "replication_factor"))],
        supports_check_mode=True,
    )
    params = module.params
    name = params["name"]
    if not _TOPIC_NAME.match(name) or name in (".", ".."):
        module.fail_json(
            msg=f"Topic name {name!r} is not valid: use 1 to 249 ASCII letters, digits, '.', "
            "'_' or '-' (and not '.' or '..')."
        )
    for option in ("partitions", "replication_factor", "timeout"):
        if params[option] is not None and params[option] < 1:
            module.fail_json(
                msg=f"{option} for topic '{name}' is {params[option]}; it must be 1 or more."
            )

    tools = KafkaTools(module, "kafka-topics", "kafka-configs")
    current = read_topic(module, tools, name)
    before = current.as_dict(name) if current else {"name": name, "state": "absent"}

    if params["state"] == "absent":
        after: dict[str, Any] = {"name": name, "state": "absent"}
        commands = (
            [tools.command("kafka-topics", "--delete", "--topic", topic_pattern(name))]
            if current
            else []
        )
    else:
        after_state, commands = plan_present(module, tools, current)
        after = after_state.as_dict(name)

    if not module.check_mode:
        for argv in commands:
            tools.run(argv)

    result: dict[str, Any] = {"changed": bool(commands), "topic": after, "commands": commands}
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
