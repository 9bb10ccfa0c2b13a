"""The kafka_scram_users and kafka_acls modules against a real SASL_SSL broker with an authorizer.

Every call goes through Ansible (``ansible`` ad hoc), as the admin super user; every outcome is
checked with Kafka itself: a user's password is proven by logging in with it, ACLs by listing them.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from modulerunner import ROLES, ModuleRun, assert_documentation_matches_argument_spec, run_module

from kafka_micro_devtools.localbroker import LocalBroker

pytestmark = pytest.mark.integration

LIBRARY = ROLES / "kafka_access" / "library"
PASSWORD = "first-Password-1"
OTHER_PASSWORD = "second-Password-2"


@pytest.fixture(scope="module")
def secured_broker(kafka_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A SASL_SSL broker of this module's own: its ACLs are purged here."""
    with LocalBroker(kafka_home, tmp_path_factory.mktemp("access-broker"), secured=True) as broker:
        yield broker


class Access:
    """The modules under test, run as the broker's admin, and Kafka's word on what they did."""

    def __init__(self, kafka_home: Path, broker: Any, tmp_path: Path) -> None:
        self.bin_dir = kafka_home / "bin"
        self.broker = broker
        self.tmp_path = tmp_path
        self.state_dir = tmp_path / "scram-users"

    def module(
        self, name: str, check: bool = False, diff: bool = False, **params: Any
    ) -> ModuleRun:
        args = {
            "kafka_bin_dir": str(self.bin_dir),
            "bootstrap_server": self.broker.bootstrap,
            "command_config": str(self.broker.security.admin_tool_properties()),
            **params,
        }
        return run_module(LIBRARY, name, args, self.tmp_path, check=check, diff=diff)

    def users(self, *users: tuple[str, str], **params: Any) -> ModuleRun:
        listed = [{"name": name, "password": password} for name, password in users]
        return self.module(
            "kafka_scram_users", users=listed, state_dir=str(self.state_dir), **params
        )

    def logs_in(self, user: str, password: str) -> bool:
        """Whether Kafka accepts ``user`` with ``password`` (an admin request needs no ACL)."""
        properties = self.tmp_path / f"{user}.properties"
        properties.write_text(
            "security.protocol=SASL_SSL\n"
            "sasl.mechanism=SCRAM-SHA-512\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{user}" password="{password}";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.broker.security.ca_file}\n"
            "request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n"
        )
        completed = subprocess.run(
            [str(self.bin_dir / "kafka-broker-api-versions"), "--bootstrap-server",
             self.broker.bootstrap, "--command-config", str(properties)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        return completed.returncode == 0

    def acl_lines(self) -> str:
        completed = subprocess.run(
            [str(self.bin_dir / "kafka-acls"), "--bootstrap-server", self.broker.bootstrap,
             "--command-config", str(self.broker.security.admin_tool_properties()), "--list"],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return completed.stdout


@pytest.fixture
def access(kafka_home: Path, secured_broker: Any, tmp_path: Path) -> Access:
    return Access(kafka_home, secured_broker, tmp_path)


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def test_a_new_user_can_log_in_and_a_rerun_changes_nothing(access: Access) -> None:
    user = unique("user")
    assert not access.logs_in(user, PASSWORD)

    created = access.users((user, PASSWORD))
    assert not created.failed, created.output
    assert created.changed and created.result["set"] == [user]
    assert access.logs_in(user, PASSWORD)
    recorded = access.state_dir / user
    assert recorded.stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in recorded.read_text()

    again = access.users((user, PASSWORD))
    assert not again.failed, again.output
    assert not again.changed and again.result["set"] == []


def test_a_changed_password_is_set_again_and_the_old_one_stops_working(access: Access) -> None:
    user = unique("rotated")
    assert not access.users((user, PASSWORD)).failed

    planned = access.users((user, OTHER_PASSWORD), check=True)
    assert planned.changed and planned.result["set"] == [user]
    assert access.logs_in(user, PASSWORD), "check mode changed the password"

    changed = access.users((user, OTHER_PASSWORD))
    assert changed.changed
    assert access.logs_in(user, OTHER_PASSWORD)
    assert not access.logs_in(user, PASSWORD)


def test_a_user_missing_in_kafka_is_created_again_despite_its_recorded_hash(
    access: Access,
) -> None:
    user = unique("lost")
    assert not access.users((user, PASSWORD)).failed
    subprocess.run(
        [str(access.bin_dir / "kafka-configs"), "--bootstrap-server", access.broker.bootstrap,
         "--command-config", str(access.broker.security.admin_tool_properties()), "--alter",
         "--delete-config", "SCRAM-SHA-512", "--entity-type", "users", "--entity-name", user],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert not access.logs_in(user, PASSWORD)

    repaired = access.users((user, PASSWORD))
    assert repaired.changed
    assert access.logs_in(user, PASSWORD)


def test_passwords_appear_in_no_output_and_no_command_line(access: Access) -> None:
    user = unique("secret")
    run = run_module(
        LIBRARY,
        "kafka_scram_users",
        {
            "users": [{"name": user, "password": PASSWORD}],
            "state_dir": str(access.state_dir),
            "kafka_bin_dir": str(access.bin_dir),
            "bootstrap_server": access.broker.bootstrap,
            "command_config": str(access.broker.security.admin_tool_properties()),
        },
        access.tmp_path,
        verbose=True,
    )
    assert run.changed, run.output
    assert PASSWORD not in run.output
    assert "invocation" in run.output, "-vvv shows the module's arguments: the check must see them"


def test_purge_deletes_only_undeclared_users_and_only_when_told(access: Access) -> None:
    kept, dropped = unique("kept"), unique("dropped")
    assert not access.users((kept, PASSWORD), (dropped, PASSWORD)).failed

    without_purge = access.users((kept, PASSWORD))
    assert not without_purge.changed
    assert access.logs_in(dropped, PASSWORD)

    # The broker's own users stay declared with their passwords, or the admin would lock itself out.
    own = [(user, password) for user, password in access.broker.security.passwords.items()]
    purged = access.users((kept, PASSWORD), *own, purge=True)
    assert dropped in purged.result["deleted"]
    assert not access.logs_in(dropped, PASSWORD)
    assert access.logs_in(kept, PASSWORD)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-1", "at least 12"),
        ("has,a,comma-123", "at least 12"),
        ('quo"te-password', "at least 12"),
    ],
)
def test_a_password_kafka_tools_cannot_take_is_refused_before_any_change(
    access: Access, password: str, reason: str
) -> None:
    user = unique("bad")
    refused = access.users((user, password))
    assert refused.failed
    assert f"users[0] ({user})" in refused.result["msg"]
    assert reason in refused.result["msg"]
    assert password not in refused.output
    assert not (access.state_dir / user).exists()


def shown_diff(run: ModuleRun) -> tuple[set[str], set[str]]:
    """The bindings a diff-mode run shows leaving and joining the cluster's (Ansible's unified
    diff of the module's before and after)."""
    lines = run.output.splitlines()
    removed = {line[1:] for line in lines if line.startswith("-") and not line.startswith("---")}
    added = {line[1:] for line in lines if line.startswith("+") and not line.startswith("+++")}
    return removed, added


def test_acls_are_added_once_and_purge_removes_the_undeclared(access: Access) -> None:
    topic, group = unique("acl-topic"), unique("acl-group")
    producer = [{"principal": "User:producer", "resource_type": "topic",
                 "resource_name": topic, "operations": ["Write", "Describe"]}]  # fmt: skip
    consumer = [{"principal": "User:consumer", "resource_type": "group",
                 "resource_name": group, "operations": ["Read"]}]  # fmt: skip
    group_binding = f"ALLOW User:consumer READ on GROUP {group} (LITERAL) from *"

    planned = access.module("kafka_acls", check=True, diff=True, acls=producer + consumer)
    assert planned.changed and len(planned.result["added"]) == 3
    assert shown_diff(planned) == (
        set(),
        {
            f"ALLOW User:producer DESCRIBE on TOPIC {topic} (LITERAL) from *",
            f"ALLOW User:producer WRITE on TOPIC {topic} (LITERAL) from *",
            group_binding,
        },
    ), planned.output
    assert topic not in access.acl_lines()

    added = access.module("kafka_acls", acls=producer + consumer)
    assert added.changed, added.output
    listing = access.acl_lines()
    assert f"name={topic}, patternType=LITERAL" in listing
    assert "principal=User:producer, host=*, operation=WRITE, permissionType=ALLOW" in listing
    assert f"name={group}, patternType=LITERAL" in listing

    again = access.module("kafka_acls", acls=producer + consumer)
    assert not again.changed, again.result

    # Fewer declared bindings without purge: the undeclared one is kept, and nothing is planned.
    kept = access.module("kafka_acls", diff=True, acls=producer)
    assert not kept.changed, kept.result
    assert kept.result["removed"] == []
    assert shown_diff(kept) == (set(), set()), kept.output
    assert f"name={group}, patternType=LITERAL" in access.acl_lines()

    planned_purge = access.module("kafka_acls", check=True, diff=True, acls=producer, purge=True)
    assert planned_purge.changed
    assert shown_diff(planned_purge) == ({group_binding}, set()), planned_purge.output
    assert f"name={group}, patternType=LITERAL" in access.acl_lines()

    purged = access.module("kafka_acls", acls=producer, purge=True)
    assert purged.changed
    assert purged.result["removed"] == [group_binding]
    listing = access.acl_lines()
    assert group not in listing
    assert f"name={topic}" in listing


def test_a_node_binding_is_set_through_the_controllers_and_withdrawn_with_state_absent(
    access: Access,
) -> None:
    """What confluent_kafka does for a broker-only node: before it starts, through the controller
    listener (this broker's is PLAINTEXT, its anonymous user a super user); when it retires, the
    binding goes, and an absent one asked absent again changes nothing."""
    node = unique("CN=kafka")
    binding = {"principal": f"User:{node}", "resource_type": "cluster",
               "operations": ["ClusterAction"]}  # fmt: skip
    listed = f"principal=User:{node}, host=*, operation=CLUSTER_ACTION, permissionType=ALLOW"

    def through_controllers(state: str) -> ModuleRun:
        args = {
            "kafka_bin_dir": str(access.bin_dir),
            "bootstrap_controller": access.broker.controller_address,
            "acls": [{**binding, "state": state}],
        }
        return run_module(LIBRARY, "kafka_acls", args, access.tmp_path)

    added = through_controllers("present")
    assert added.changed, added.output
    assert added.result["added"] == [
        f"ALLOW User:{node} CLUSTER_ACTION on CLUSTER kafka-cluster (LITERAL) from *"
    ]
    assert "--bootstrap-controller" in added.result["commands"][0]
    assert listed in access.acl_lines()
    assert not through_controllers("present").changed

    withdrawn = through_controllers("absent")
    assert withdrawn.changed, withdrawn.output
    assert withdrawn.result["removed"] == added.result["added"]
    assert listed not in access.acl_lines()
    assert not through_controllers("absent").changed


def test_a_binding_asked_both_present_and_absent_is_refused(access: Access) -> None:
    binding = {"principal": "User:producer", "resource_type": "topic",
               "resource_name": unique("acl-topic"), "operations": ["Write"]}  # fmt: skip
    refused = access.module("kafka_acls", acls=[binding, {**binding, "state": "absent"}])
    assert refused.failed
    assert "both present and absent" in refused.result["msg"], refused.result
    assert binding["resource_name"] not in access.acl_lines()


def test_an_unknown_operation_is_refused_with_the_allowed_ones(access: Access) -> None:
    refused = access.module(
        "kafka_acls",
        acls=[{"principal": "User:producer", "resource_type": "topic",
               "resource_name": "t", "operations": ["Scribble"]}],
    )  # fmt: skip
    assert refused.failed
    assert "operation 'Scribble' is not a Kafka ACL operation" in refused.result["msg"]
    assert "IdempotentWrite" in refused.result["msg"]


@pytest.mark.parametrize("name", ["kafka_scram_users", "kafka_acls"])
def test_module_documentation_matches_its_argument_spec(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_documentation_matches_argument_spec(LIBRARY, name, tmp_path, monkeypatch)
