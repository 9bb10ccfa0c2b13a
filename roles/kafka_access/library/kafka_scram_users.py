#!/usr/bin/python
"""Ansible module kafka_scram_users: keep Kafka's SCRAM users and their passwords in shape."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.kafka_cli import KafkaTools, connection_options

DOCUMENTATION = r"""
---
module: kafka_scram_users
short_description: Create, update or delete Kafka SCRAM users
description:
  - Keeps the SCRAM credentials of the listed users in shape with Kafka's own C(kafka-configs).
  - Kafka never gives a password back, so the module keeps, per user, a salted PBKDF2 hash of the
    password it last set in O(state_dir) (files readable by their owner only) and sets the
    password again when the hash no longer matches, the user is missing in Kafka, or its
    mechanism or iteration count differs.
  - Passwords reach C(kafka-configs) through a java argument file only its user can read, never
    through a command line that C(ps) shows, and never appear in the module's result.
  - Users that Kafka has but the list does not name are deleted only with O(purge=true).
version_added: "0.1.0"
author:
  - kafka-micro
options:
  users:
    description:
      - The users to keep.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The user name (the principal is C(User:<name>)).
        type: str
        required: true
      password:
        description: Its password; never logged.
        type: str
        required: true
  mechanism:
    description:
      - SCRAM mechanism of every listed user.
    type: str
    choices: [SCRAM-SHA-256, SCRAM-SHA-512]
    default: SCRAM-SHA-512
  iterations:
    description:
      - SCRAM iteration count of every listed user (Kafka accepts 4096 to 16384).
    type: int
    default: 8192
  state_dir:
    description:
      - Directory on the target for the password hashes; created with mode 0700.
    type: path
    required: true
  purge:
    description:
      - Delete the SCRAM credentials of the users Kafka has and the list does not name.
    type: bool
    default: false
  login_user:
    description:
      - The user O(command_config) logs in as. Its own new password is set last, because every
        later call still logs in with the one in O(command_config).
    type: str
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
      - Client properties file passed to the tools as C(--command-config); it must authenticate
        a user allowed to alter SCRAM credentials (a super user).
    type: path
  timeout:
    description:
      - Seconds one Kafka tool invocation may take before the module fails.
    type: int
    default: 120
"""

EXAMPLES = r"""
- name: Ensure the pipeline's SCRAM users exist with their passwords
  kafka_scram_users:
    users:
      - name: kafka-micro-producer
        password: "{{ vault_producer_password }}"
    state_dir: /etc/kafka/scram-users
    bootstrap_server: kafka-1:9092
    kafka_bin_dir: /opt/confluent/current/bin
    command_config: /etc/kafka/admin-client.properties
  run_once: true
"""

RETURN = r"""
users:
  description: Names of the SCRAM users after the task (in check mode, the ones there would be).
  returned: always
  type: list
  elements: str
set:
  description: Users whose credentials were (or would be) set.
  returned: always
  type: list
  elements: str
deleted:
  description: Users whose credentials were (or would be) deleted.
  returned: always
  type: list
  elements: str
"""

# "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=8192"
_USER_LINE = re.compile(
    r"^SCRAM credential configs for user-principal '(?P<name>[^']+)' are (?P<creds>.*)$"
)
_CREDENTIAL = re.compile(r"(?P<mechanism>SCRAM-SHA-(?:256|512))=iterations=(?P<iterations>\d+)")
_USER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PASSWORD = re.compile(r"^[A-Za-z0-9._~+/@%!*#^&:-]{12,}$")
_HASH_ROUNDS = 200_000


@dataclass(frozen=True)
class Credential:
    mechanism: str
    iterations: int


def parse_users(output: str) -> dict[str, set[Credential]]:
    """SCRAM credentials per user, from `kafka-configs --describe --entity-type users`."""
    users: dict[str, set[Credential]] = {}
    for line in output.splitlines():
        found = _USER_LINE.match(line.strip())
        if found:
            users[found["name"]] = {
                Credential(match["mechanism"], int(match["iterations"]))
                for match in _CREDENTIAL.finditer(found["creds"])
            }
    return users


def password_hash(password: str, salt: bytes, credential: Credential) -> str:
    """What the state file keeps: salt and PBKDF2 of the password and the credential's shape."""
    material = f"{credential.mechanism}:{credential.iterations}:{password}".encode()
    digest = hashlib.pbkdf2_hmac("sha256", material, salt, _HASH_ROUNDS)
    return f"pbkdf2-sha256${_HASH_ROUNDS}${salt.hex()}${digest.hex()}"


def hash_matches(recorded: str, password: str, credential: Credential) -> bool:
    parts = recorded.strip().split("$")
    if len(parts) != 4 or parts[1] != str(_HASH_ROUNDS):
        return False
    try:
        salt = bytes.fromhex(parts[2])
    except ValueError:
        return False
    return hmac.compare_digest(password_hash(password, salt, credential), recorded.strip())


def write_owner_only(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


def checked_users(module: AnsibleModule) -> dict[str, str]:
    users: dict[str, str] = {}
    for index, user in enumerate(module.params["users"]):
        name, password = user["name"], user["password"]
        if not _USER_NAME.match(name):
            module.fail_json(
                msg=f"users[{index}].name is {name!r}: use 1 to 64 letters, digits, '.', '_' "
                "or '-'."
            )
        if not _PASSWORD.match(password):
            module.fail_json(
                msg=f"users[{index}] ({name}): the password must be at least 12 characters of "
                "letters, digits and ._~+/@%!*#^&:- (Kafka's tools split SCRAM settings on ',', "
                "'=', quotes and brackets)."
            )
        if name in users:
            module.fail_json(msg=f"users lists {name} twice; list each user once.")
        users[name] = password
    return users


def argument_spec() -> dict[str, dict[str, Any]]:
    return {
        "users": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
            },
        },
        "mechanism": {
            "type": "str",
            "choices": ["SCRAM-SHA-256", "SCRAM-SHA-512"],
            "default": "SCRAM-SHA-512",
        },
        "iterations": {"type": "int", "default": 8192},
        "state_dir": {"type": "path", "required": True},
        "purge": {"type": "bool", "default": False},
        "login_user": {"type": "str"},
        **connection_options(),
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if not 4096 <= params["iterations"] <= 16384:
        module.fail_json(msg=f"iterations is {params['iterations']}; Kafka accepts 4096 to 16384.")
    wanted = checked_users(module)
    credential = Credential(params["mechanism"], params["iterations"])
    state_dir = Path(params["state_dir"])

    tools = KafkaTools(module, "kafka-configs")
    current = parse_users(
        tools.run(tools.command("kafka-configs", "--describe", "--entity-type", "users"))
    )

    to_set = []
    for name, password in sorted(wanted.items()):
        recorded = state_dir / name
        in_shape = (
            current.get(name) == {credential}
            and recorded.is_file()
            and hash_matches(recorded.read_text(), password, credential)
        )
        if not in_shape:
            to_set.append(name)
    to_set.sort(key=lambda name: name == params["login_user"])
    to_delete = sorted(set(current) - set(wanted)) if params["purge"] else []

    if not module.check_mode and (to_set or to_delete):
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in to_set:
            setting = (
                f"{credential.mechanism}=[iterations={credential.iterations},"
                f"password={wanted[name]}]"
            )
            tools.run_with_secret(
                "kafka-configs",
                "--alter",
                "--add-config",
                setting,
                "--entity-type",
                "users",
                "--entity-name",
                name,
            )
            write_owner_only(
                state_dir / name, password_hash(wanted[name], secrets.token_bytes(16), credential)
            )
        for name in to_delete:
            mechanisms = ",".join(sorted(item.mechanism for item in current[name]))
            tools.run(
                tools.command(
                    "kafka-configs",
                    "--alter",
                    "--delete-config",
                    mechanisms,
                    "--entity-type",
                    "users",
                    "--entity-name",
                    name,
                )
            )
            (state_dir / name).unlink(missing_ok=True)

    after = sorted((set(current) - set(to_delete)) | set(wanted))
    result: dict[str, Any] = {
        "changed": bool(to_set or to_delete),
        "users": after,
        "set": to_set,
        "deleted": to_delete,
    }
    if module._diff:
        result["diff"] = {
            "before": "".join(f"{name}\n" for name in sorted(current)),
            "after": "".join(
                f"{name}{' (password set)' if name in to_set else ''}\n" for name in after
            ),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
