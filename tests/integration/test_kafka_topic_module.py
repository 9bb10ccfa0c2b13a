"""The kafka_topic module and the kafka_topics role against a real broker.

Every call goes through Ansible (`ansible` ad hoc for the module, `ansible-playbook` for the role),
and every outcome is checked again with Kafka's own tools, not with the module's word.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from modulerunner import (
    ROLES,
    VENV_BIN,
    ModuleRun,
    ansible_env,
    assert_documentation_matches_argument_spec,
    run_module,
)

pytestmark = pytest.mark.integration

LIBRARY = ROLES / "kafka_topics" / "library"


def unique_topic(label: str) -> str:
    return f"kt-{label}-{uuid.uuid4().hex[:8]}"


class Kafka:
    """The module under test, and Kafka's own tools to check what it did."""

    def __init__(self, kafka_home: Path, bootstrap: str, tmp_path: Path) -> None:
        self.bin_dir = Path(kafka_home) / "bin"
        self.bootstrap = bootstrap
        self.tmp_path = tmp_path

    def module(self, check: bool = False, diff: bool = False, **params: Any) -> ModuleRun:
        args = {"kafka_bin_dir": str(self.bin_dir), "bootstrap_server": self.bootstrap, **params}
        return run_module(LIBRARY, "kafka_topic", args, self.tmp_path, check=check, diff=diff)

    def tool(self, name: str, *args: str) -> str:
        completed = subprocess.run(
            [str(self.bin_dir / name), "--bootstrap-server", self.bootstrap, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return completed.stdout

    def create(self, topic: str, partitions: int, *configs: str) -> None:
        config_args = [arg for config in configs for arg in ("--config", config)]
        self.tool(
            "kafka-topics",
            "--create",
            "--topic",
            topic,
            "--partitions",
            str(partitions),
            "--replication-factor",
            "1",
            *config_args,
        )

    def shape(self, topic: str) -> tuple[int, int] | None:
        """(partitions, replication factor) as kafka-topics reports them; None if absent."""
        # --topic is a regular expression to kafka-topics: escape the dots to match one topic.
        summary = self.tool(
            "kafka-topics", "--describe", "--topic", topic.replace(".", r"\."), "--if-exists"
        )
        found = re.search(
            rf"^Topic: {re.escape(topic)}\t.*PartitionCount: (\d+)\tReplicationFactor: (\d+)",
            summary,
            flags=re.MULTILINE,
        )
        return (int(found[1]), int(found[2])) if found else None

    def configs(self, topic: str) -> dict[str, str]:
        output = self.tool(
            "kafka-configs", "--describe", "--entity-type", "topics", "--entity-name", topic
        )
        return dict(re.findall(r"^\s+([^=\s]+)=(.*?) sensitive=", output, flags=re.MULTILINE))

    def set_configs(self, topic: str, add_config: str) -> None:
        self.tool(
            "kafka-configs",
            "--alter",
            "--entity-type",
            "topics",
            "--entity-name",
            topic,
            "--add-config",
            add_config,
        )

    def wait_until_absent(self, topic: str, seconds: float = 30) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.shape(topic) is None:
                return True
            time.sleep(0.5)
        return False


@pytest.fixture
def kafka(kafka_home: Path, broker: Any, tmp_path: Path) -> Kafka:
    return Kafka(kafka_home, broker.bootstrap, tmp_path)


def test_missing_topic_is_created_and_a_rerun_changes_nothing(kafka: Kafka) -> None:
    topic = unique_topic("create")
    config = {"retention.ms": 3600000, "cleanup.policy": ["compact", "delete"]}

    first = kafka.module(name=topic, partitions=3, replication_factor=1, config=config)
    assert not first.failed, first.output
    assert first.changed
    assert kafka.shape(topic) == (3, 1)
    assert kafka.configs(topic) == {"retention.ms": "3600000", "cleanup.policy": "compact,delete"}
    assert first.result["topic"] == {
        "name": topic,
        "state": "present",
        "partitions": 3,
        "replication_factor": 1,
        "config": {"cleanup.policy": "compact,delete", "retention.ms": "3600000"},
    }

    second = kafka.module(name=topic, partitions=3, replication_factor=1, config=config)
    assert not second.failed, second.output
    assert not second.changed, second.result
    assert second.result["commands"] == []


def test_more_partitions_are_added(kafka: Kafka) -> None:
    topic = unique_topic("grow")
    kafka.create(topic, 2)

    grown = kafka.module(name=topic, partitions=5, replication_factor=1)

    assert not grown.failed, grown.output
    assert grown.changed
    assert kafka.shape(topic) == (5, 1)
    assert not kafka.module(name=topic, partitions=5, replication_factor=1).changed


def test_fewer_partitions_fail_with_a_clear_message(kafka: Kafka) -> None:
    topic = unique_topic("shrink")
    kafka.create(topic, 6)

    shrink = kafka.module(name=topic, partitions=4, replication_factor=1)

    assert shrink.failed
    message = shrink.result["msg"]
    assert f"Topic '{topic}' has 6 partitions and 4 were requested" in message
    assert "Kafka cannot reduce the partitions of a topic" in message
    assert kafka.shape(topic) == (6, 1)


def test_another_replication_factor_fails_and_changes_nothing(kafka: Kafka) -> None:
    topic = unique_topic("rf")
    kafka.create(topic, 2, "retention.ms=1000")

    # Growing partitions and a config change are asked for too: none of it may happen.
    change = kafka.module(
        name=topic, partitions=4, replication_factor=2, config={"retention.ms": "2000"}
    )

    assert change.failed
    message = change.result["msg"]
    assert f"Topic '{topic}' has replication factor 1 and 2 was requested" in message
    assert "kafka-reassign-partitions" in message
    assert kafka.shape(topic) == (2, 1)
    assert kafka.configs(topic) == {"retention.ms": "1000"}


def test_config_drift_is_corrected_and_unmanaged_configs_are_kept_unless_purged(
    kafka: Kafka,
) -> None:
    topic = unique_topic("drift")
    wanted = {"retention.ms": "86400000", "min.insync.replicas": 1}
    assert kafka.module(name=topic, partitions=1, replication_factor=1, config=wanted).changed
    kafka.set_configs(topic, "retention.ms=5000,segment.ms=600000")

    corrected = kafka.module(name=topic, partitions=1, replication_factor=1, config=wanted)

    assert not corrected.failed, corrected.output
    assert corrected.changed
    assert kafka.configs(topic) == {
        "retention.ms": "86400000",
        "min.insync.replicas": "1",
        "segment.ms": "600000",
    }
    (alter,) = corrected.result["commands"]
    assert "retention.ms=86400000" in alter
    assert not any("min.insync.replicas" in argument for argument in alter)

    stable = kafka.module(name=topic, partitions=1, replication_factor=1, config=wanted)
    assert not stable.changed, stable.result

    purged = kafka.module(
        name=topic, partitions=1, replication_factor=1, config=wanted, config_purge=True
    )
    assert purged.changed
    assert kafka.configs(topic) == {"retention.ms": "86400000", "min.insync.replicas": "1"}
    assert not kafka.module(
        name=topic, partitions=1, replication_factor=1, config=wanted, config_purge=True
    ).changed


def test_check_mode_reports_changes_and_makes_none(kafka: Kafka) -> None:
    topic = unique_topic("check")

    would_create = kafka.module(check=True, name=topic, partitions=2, replication_factor=1)
    assert would_create.changed
    assert kafka.shape(topic) is None

    kafka.create(topic, 2, "retention.ms=1000")
    would_alter = kafka.module(
        check=True,
        name=topic,
        partitions=4,
        replication_factor=1,
        config={"retention.ms": "2000"},
        config_purge=True,
    )
    assert would_alter.changed
    assert would_alter.result["topic"]["partitions"] == 4
    assert kafka.shape(topic) == (2, 1)
    assert kafka.configs(topic) == {"retention.ms": "1000"}

    would_delete = kafka.module(check=True, name=topic, state="absent")
    assert would_delete.changed
    assert kafka.shape(topic) == (2, 1)


def test_diff_mode_shows_the_topic_before_and_after(kafka: Kafka) -> None:
    topic = unique_topic("diff")
    kafka.create(topic, 2, "retention.ms=1000")

    run = kafka.module(
        diff=True, name=topic, partitions=3, replication_factor=1, config={"retention.ms": 2000}
    )

    assert run.changed
    assert "--- before" in run.output
    assert "+++ after" in run.output
    assert '-    "partitions": 2,' in run.output
    assert '+    "partitions": 3,' in run.output
    assert '-        "retention.ms": "1000"' in run.output
    assert '+        "retention.ms": "2000"' in run.output


def test_absent_deletes_the_topic_and_only_that_topic(kafka: Kafka) -> None:
    # kafka-topics reads --topic as a regular expression: 'a.b' would match 'axb' too.
    suffix = uuid.uuid4().hex[:8]
    topic, lookalike = f"kt.absent.{suffix}", f"ktxabsentx{suffix}"
    kafka.create(topic, 1)
    kafka.create(lookalike, 1)

    deleted = kafka.module(name=topic, state="absent")

    assert not deleted.failed, deleted.output
    assert deleted.changed
    assert kafka.wait_until_absent(topic), f"{topic} still exists"
    assert kafka.shape(lookalike) == (1, 1)
    assert not kafka.module(name=topic, state="absent").changed


def test_an_unreachable_cluster_fails_within_the_timeout(kafka: Kafka) -> None:
    kafka.bootstrap = "127.0.0.1:1"

    run = kafka.module(name=unique_topic("down"), partitions=1, replication_factor=1, timeout=5)

    assert run.failed
    assert "did not finish within 5 seconds" in run.result["msg"]


def test_invalid_requests_fail_before_kafka_is_asked(kafka: Kafka) -> None:
    bad_name = kafka.module(name="no spaces", partitions=1, replication_factor=1)
    assert bad_name.failed
    assert "Topic name 'no spaces' is not valid" in bad_name.result["msg"]

    zero = kafka.module(name=unique_topic("zero"), partitions=0, replication_factor=1)
    assert zero.failed
    assert "partitions for topic" in zero.result["msg"]
    assert "it must be 1 or more" in zero.result["msg"]


def test_module_documentation_matches_its_argument_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_documentation_matches_argument_spec(LIBRARY, "kafka_topic", tmp_path, monkeypatch)


def run_role(kafka: Kafka, *extra_vars: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    inventory = kafka.tmp_path / "inventory.ini"
    inventory.write_text(
        f"[kafka]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    playbook = kafka.tmp_path / "topics.yml"
    playbook.write_text(
        "- name: Manage the topics\n"
        "  hosts: kafka\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: kafka_topics\n"
    )
    base = {
        "kafka_topics_kafka_home": str(kafka.bin_dir.parent),
        "kafka_topics_bootstrap_server": kafka.bootstrap,
        "kafka_topics_command_config": "",
    }
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    for variables in (base, *extra_vars):
        command += ["-e", json.dumps(variables)]
    return subprocess.run(
        command,
        cwd=kafka.tmp_path,
        env=ansible_env(kafka.tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def recap_changed(output: str) -> int:
    match = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", output)
    assert match, output
    return int(match[1])


def test_role_defaults_make_the_topic_and_its_dead_letter_topic_and_a_rerun_changes_nothing(
    kafka: Kafka,
) -> None:
    # The role's defaults, under a name of its own so other tests' topics stay untouched.
    topic = unique_topic("role")
    names = {"kafka_cluster_topic": topic}

    first = run_role(kafka, names)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap_changed(first.stdout) == 1
    assert kafka.shape(topic) == (24, 1)
    assert kafka.configs(topic) == {"min.insync.replicas": "1", "retention.ms": "604800000"}
    assert kafka.shape(f"{topic}.dlq") == (3, 1)
    assert kafka.configs(f"{topic}.dlq") == {
        "min.insync.replicas": "1",
        "retention.ms": "2592000000",
    }

    second = run_role(kafka, names)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap_changed(second.stdout) == 0


def test_role_rejects_a_non_positive_partition_count_before_touching_kafka(
    kafka: Kafka,
) -> None:
    topic = unique_topic("role-bad")
    bad = {"kafka_topics_list": [{"name": topic, "partitions": 0, "replication_factor": 1}]}

    run = run_role(kafka, bad)

    assert run.returncode != 0
    assert f"Topic '{topic}' in kafka_topics_list has partitions '0'" in run.stdout + run.stderr
    assert kafka.shape(topic) is None
