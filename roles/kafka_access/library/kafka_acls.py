#!/usr/bin/python
"""Ansible module kafka_acls: keep Kafka's ACLs in shape with Kafka's own kafka-acls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kafka_cli import KafkaTools, connection_options

DOCUMENTATION = r"""
---
module: kafka_acls
short_description: Add the listed Kafka ACLs and, when told, remove the others
description:
  - Keeps the cluster's ACL bindings in shape with Kafka's own C(kafka-acls), run on the target.
  - Every listed binding that Kafka lacks is added, and every listed binding with
    O(acls[].state=absent) that Kafka has is removed. Bindings that Kafka has and the list does
    not name are left alone unless O(purge=true), which removes them (every binding of the
    cluster, so the list must then be complete).
  - Reads the ACLs once, then changes only what differs; check mode reports what would change,
    diff mode shows the bindings before and after.
version_added: "0.1.0"
author:
  - kafka-micro
options:
  acls:
    description:
      - The ACL bindings to keep. Each names one principal, one resource and its operations.
    type: list
    elements: dict
    required: true
    suboptions:
      principal:
        description: The principal, for example C(User:kafka-micro-producer).
        type: str
        required: true
      resource_type:
        description: The kind of resource.
        type: str
        required: true
        choices: [topic, group, cluster, transactional_id, delegation_token, user]
      resource_name:
        description: The resource's name or prefix; C(kafka-cluster) for the cluster.
        type: str
        default: kafka-cluster
      pattern_type:
        description: Whether O(acls[].resource_name) is a whole name or a prefix.
        type: str
        choices: [literal, prefixed]
        default: literal
      operations:
        description:
          - Operations allowed or denied, in kafka-acls' spelling (C(Read), C(Write), C(Describe),
            C(IdempotentWrite), ...).
        type: list
        elements: str
        required: true
      permission:
        description: Allow or deny.
        type: str
        choices: [allow, deny]
        default: allow
      host:
        description: The client host the binding applies to; C(*) for any.
        type: str
        default: "*"
      state:
        description: Whether the binding must exist or must not.
        type: str
        choices: [present, absent]
        default: present
  purge:
    description:
      - Remove every binding of the cluster that O(acls) does not name.
    type: bool
    default: false
  bootstrap_server:
    description:
      - Kafka bootstrap server list (C(host:port[,host:port...])) the tools connect to.
    type: str
    default: localhost:9092
  bootstrap_controller:
    description:
      - Controller list (C(host:port[,host:port...])) to connect to instead of the brokers
        (C(kafka-acls --bootstrap-controller)), for ACLs a broker needs before it can start.
        Mutually exclusive with O(bootstrap_server).
    type: str
  kafka_bin_dir:
    description:
      - Directory holding the Kafka tools, C(bin/) of the Kafka installation.
    type: path
    required: true
  command_config:
    description:
      - Client properties file passed to the tools as C(--command-config); it must authenticate
        a user allowed to alter ACLs (a super user).
    type: path
  timeout:
    description:
      - Seconds one Kafka tool invocation may take before the module fails.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: Ensure the producer may write test-topic and nothing else
  kafka_acls:
    acls:
      - principal: User:kafka-micro-producer
        resource_type: topic
        resource_name: test-topic
        operations: [Write, Describe]
    bootstrap_server: kafka-1:9092
    kafka_bin_dir: /opt/confluent/current/bin
    command_config: /etc/kafka/admin-client.properties
  run_once: true
"""

RETURN = r"""
added:
  description: Bindings added (in check mode, that would be), one line each.
  returned: always
  type: list
  elements: str
removed:
  description: Bindings removed (in check mode, that would be), one line each.
  returned: always
  type: list
  elements: str
"""

# Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)`:
_RESOURCE_LINE = re.compile(
    r"ResourcePattern\(resourceType=(?P<type>\w+), name=(?P<name>.*), "
    r"patternType=(?P<pattern>\w+)\)`:"
)
# 	(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)
_BINDING_LINE = re.compile(
    r"^\s*\(principal=(?P<principal>.*), host=(?P<host>\S+), operation=(?P<operation>\w+), "
    r"permissionType=(?P<permission>\w+)\)\s*$"
)
_RESOURCE_OPTION = {
    "TOPIC": "--topic",
    "GROUP": "--group",
    "CLUSTER": "--cluster",
    "TRANSACTIONAL_ID": "--transactional-id",
    "DELEGATION_TOKEN": "--delegation-token",
    "USER": "--user-principal",
}
_OPERATIONS = {
    "ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS",
}  # fmt: skip
_CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True, order=True)
class Binding:
    """One ACL binding as Kafka lists it (enum names in upper case)."""

    resource_type: str
    resource_name: str
    pattern_type: str
    principal: str
    host: str
    permission: str
    operation: str

    def line(self) -> str:
        return (
            f"{self.permission} {self.principal} {self.operation} on {self.resource_type} "
            f"{self.resource_name} ({self.pattern_type}) from {self.host}"
        )


def operation_name(spelling: str) -> str:
    """kafka-acls' spelling (IdempotentWrite) or the enum's (IDEMPOTENT_WRITE) as the enum's."""
    if "_" in spelling or spelling.isupper():
        return spelling.upper()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", spelling).upper()


def tool_spelling(operation: str) -> str:
    """IDEMPOTENT_WRITE as kafka-acls' --operation takes it: IdempotentWrite."""
    return "".join(part.capitalize() for part in operation.split("_"))


def parse_acls(output: str) -> set[Binding]:
    """Every binding in `kafka-acls --list` output."""
    bindings: set[Binding] = set()
    resource: re.Match[str] | None = None
    for line in output.splitlines():
        found_resource = _RESOURCE_LINE.search(line)
        if found_resource:
            resource = found_resource
            continue
        found = _BINDING_LINE.match(line)
        if found and resource is not None:
            bindings.add(
                Binding(
                    resource["type"], resource["name"], resource["pattern"], found["principal"],
                    found["host"], found["permission"], found["operation"],
                )
            )  # fmt: skip
    return bindings


@dataclass(frozen=True)
class Request:
    """The bindings the module's caller wants to exist and those it wants gone."""

    present: set[Binding]
    absent: set[Binding]


def requested_bindings(module: AnsibleModule) -> Request:
    request = Request(present=set(), absent=set())
    for index, acl in enumerate(module.params["acls"]):
        resource_type = acl["resource_type"].upper()
        name = _CLUSTER_NAME if resource_type == "CLUSTER" else acl["resource_name"]
        if not re.match(r"^(User|Group):\S+$", acl["principal"]):
            module.fail_json(
                msg=f"acls[{index}].principal is {acl['principal']!r}: write it as User:<name>."
            )
        if not acl["operations"]:
            module.fail_json(msg=f"acls[{index}] ({acl['principal']}) lists no operation.")
        for spelling in acl["operations"]:
            operation = operation_name(spelling)
            if operation not in _OPERATIONS:
                allowed = ", ".join(sorted(tool_spelling(item) for item in _OPERATIONS))
                module.fail_json(
                    msg=f"acls[{index}] ({acl['principal']}): operation {spelling!r} is not a "
                    f"Kafka ACL operation; use one of {allowed}."
                )
            bindings = request.present if acl["state"] == "present" else request.absent
            bindings.add(
                Binding(
                    resource_type, name, acl["pattern_type"].upper(), acl["principal"],
                    acl["host"], acl["permission"].upper(), operation,
                )
            )  # fmt: skip
    contradictions = request.present & request.absent
    if contradictions:
        module.fail_json(
            msg="acls asks for these bindings both present and absent: "
            + "; ".join(binding.line() for binding in sorted(contradictions))
        )
    return request


def change_commands(tools: KafkaTools, action: str, bindings: set[Binding]) -> list[list[str]]:
    """One kafka-acls call per principal, host, permission and resource, with all its operations."""

    def group_key(binding: Binding) -> tuple[str, ...]:
        return (
            binding.resource_type, binding.resource_name, binding.pattern_type,
            binding.principal, binding.host, binding.permission,
        )  # fmt: skip

    commands = []
    for key, members in groupby(sorted(bindings), key=group_key):
        resource_type, name, pattern, principal, host, permission = key
        who = "allow" if permission == "ALLOW" else "deny"
        argv = [action, f"--{who}-principal", principal, f"--{who}-host", host]
        for binding in members:
            argv += ["--operation", tool_spelling(binding.operation)]
        option = _RESOURCE_OPTION[resource_type]
        argv += [option] if resource_type == "CLUSTER" else [option, name]
        argv += ["--resource-pattern-type", pattern.lower()]
        if action == "--remove":
            argv.append("--force")
        commands.append(tools.command("kafka-acls", *argv))
    return commands


def argument_spec() -> dict[str, dict[str, Any]]:
    return {
        "acls": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "principal": {"type": "str", "required": True},
                "resource_type": {
                    "type": "str",
                    "required": True,
                    "choices": [
                        "topic",
                        "group",
                        "cluster",
                        "transactional_id",
                        "delegation_token",
                        "user",
                    ],
                },
                "resource_name": {"type": "str", "default": _CLUSTER_NAME},
                "pattern_type": {
                    "type": "str",
                    "choices": ["literal", "prefixed"],
                    "default": "literal",
                },
                "operations": {"type": "list", "elements": "str", "required": True},
                "permission": {"type": "str", "choices": ["allow", "deny"], "default": "allow"},
                "host": {"type": "str", "default": "*"},
                "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            },
        },
        "purge": {"type": "bool", "default": False},
        "bootstrap_controller": {"type": "str"},
        **connection_options(),
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("bootstrap_server", "bootstrap_controller")],
        supports_check_mode=True,
    )
    request = requested_bindings(module)
    tools = KafkaTools(module, "kafka-acls")
    current = parse_acls(tools.run(tools.command("kafka-acls", "--list")))

    to_add = request.present - current
    to_remove = current & request.absent
    if module.params["purge"]:
        to_remove |= current - request.present
    commands = change_commands(tools, "--add", to_add) + change_commands(
        tools, "--remove", to_remove
    )
    if not module.check_mode:
        for argv in commands:
            tools.run(argv)

    after = (current | to_add) - to_remove
    result: dict[str, Any] = {
        "changed": bool(commands),
        "added": [binding.line() for binding in sorted(to_add)],
        "removed": [binding.line() for binding in sorted(to_remove)],
        "commands": commands,
    }
    if module._diff:
        result["diff"] = {
            "before": "".join(f"{binding.line()}\n" for binding in sorted(current)),
            "after": "".join(f"{binding.line()}\n" for binding in sorted(after)),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
