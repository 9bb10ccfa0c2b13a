"""The dead-letter topic as the roles see it: one name, from kafka_cluster, for every role.

A real ansible-playbook run reads, with the roles' own defaults and variables, the topics
kafka_topics keeps in shape (running its input checks) and the ACLs kafka_access grants, and
renders kafka_app's configuration file, which the app itself then reads.
"""

import json
import subprocess
import sys
from pathlib import Path

from playbookrun import REPO, render_templates_play, run_playbook
from playbookrun import app_settings as read_app_settings

ROLES = REPO / "roles"
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
# The ACLs are read without a secured run: PLAINTEXT spares generating passwords.
PLAINTEXT = "kafka_cluster_security_protocol=PLAINTEXT"


def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.json"
    path.write_text(
        json.dumps(
            {
                "kafka": {"hosts": {"kafka-1": LOCAL}},
                "kafka_app": {"hosts": {"app-1": LOCAL}},
            }
        )
    )
    return path


def run_view(tmp_path: Path, *extra_vars: str) -> subprocess.CompletedProcess[str]:
    """Write kafka_topics' managed topics (after its checks) and kafka_access' pipeline ACLs."""
    access = ROLES / "kafka_access"
    (tmp_path / "view.yml").write_text(
        "- name: Read what the roles make of the dead-letter topic\n"
        "  hosts: app-1\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: kafka_cluster\n"
        "  tasks:\n"
        "    - name: Check the topic inputs as kafka_topics does\n"
        "      ansible.builtin.include_role:\n"
        "        name: kafka_topics\n"
        "        tasks_from: validate\n"
        "        public: true\n"
        "    - name: Read kafka_access' defaults and variables\n"
        "      ansible.builtin.include_vars:\n"
        "        file: '{{ item }}'\n"
        "      loop:\n"
        f"        - {access / 'defaults' / 'main.yml'}\n"
        f"        - {access / 'vars' / 'main.yml'}\n"
        "    - name: Write what they make of it\n"
        "      ansible.builtin.copy:\n"
        "        content: >-\n"
        "          {{ {'topics': _kafka_topics_managed,\n"
        "              'acls': _kafka_access_pipeline_acls} | to_json }}\n"
        f"        dest: {tmp_path / 'view.json'}\n"
        "        mode: '0644'\n"
    )
    return run_playbook(inventory(tmp_path), tmp_path / "view.yml", PLAINTEXT, *extra_vars)


def roles_view(tmp_path: Path, *extra_vars: str) -> dict:
    result = run_view(tmp_path, *extra_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return json.loads((tmp_path / "view.json").read_text())


def app_settings(tmp_path: Path, *extra_vars: str) -> dict:
    """The consumer settings of kafka_app's rendered file, as the app reads them."""
    config = tmp_path / "kafka-micro.toml"
    (tmp_path / "render.yml").write_text(
        render_templates_play("kafka_app", "app-1", {"kafka-micro.toml.j2": config})
    )
    result = run_playbook(inventory(tmp_path), tmp_path / "render.yml", PLAINTEXT, *extra_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return read_app_settings(config)


def consumer_acls(view: dict) -> dict[str, list[str]]:
    return {
        acl["resource_name"]: acl["operations"]
        for acl in view["acls"]
        if acl["principal"] == "User:kafka-micro-consumer" and acl["resource_type"] == "topic"
    }


def test_the_topic_plus_dlq_is_created_granted_and_written_by_default(tmp_path):
    view = roles_view(tmp_path)
    names = [topic["name"] for topic in view["topics"]]
    assert names == ["test-topic", "test-topic.dlq"]
    dead_letters = view["topics"][1]
    assert dead_letters["partitions"] == 3
    assert dead_letters["config"]["retention.ms"] == 2592000000
    assert consumer_acls(view) == {
        "test-topic": ["Read", "Describe"],
        "test-topic.dlq": ["Read", "Write", "Describe"],
    }
    consumer = app_settings(tmp_path)["consumer"]
    assert consumer["dead_letter_topic"] == "test-topic.dlq"
    assert (consumer["max_value_bytes"], consumer["dead_letter_timeout_s"]) == (1000000, 60.0)


def test_one_topic_name_in_kafka_cluster_renames_both_everywhere(tmp_path):
    view = roles_view(tmp_path, "kafka_cluster_topic=orders")
    assert [topic["name"] for topic in view["topics"]] == ["orders", "orders.dlq"]
    assert set(consumer_acls(view)) == {"orders", "orders.dlq"}
    settings = app_settings(tmp_path, "kafka_cluster_topic=orders")
    assert (settings["topic"], settings["consumer"]["dead_letter_topic"]) == (
        "orders",
        "orders.dlq",
    )


def test_no_dead_letter_topic_when_it_is_empty(tmp_path):
    view = roles_view(tmp_path, "kafka_cluster_dead_letter_topic=''")
    assert [topic["name"] for topic in view["topics"]] == ["test-topic"]
    assert set(consumer_acls(view)) == {"test-topic"}
    settings = app_settings(tmp_path, "kafka_cluster_dead_letter_topic=''")
    assert settings["consumer"]["dead_letter_topic"] == ""


def test_a_list_entry_for_the_dead_letter_topic_wins(tmp_path):
    listed = {
        "kafka_topics_list": [
            {"name": "test-topic", "partitions": 24, "replication_factor": 1},
            {"name": "test-topic.dlq", "partitions": 12, "replication_factor": 1},
        ]
    }
    view = roles_view(tmp_path, json.dumps(listed))
    assert [(topic["name"], topic["partitions"]) for topic in view["topics"]] == [
        ("test-topic", 24),
        ("test-topic.dlq", 12),
    ]


def test_bad_dead_letter_partitions_are_refused_by_name(tmp_path):
    result = run_view(tmp_path, "kafka_topics_dead_letter_partitions=0")
    assert result.returncode != 0
    assert "kafka_topics_dead_letter_partitions is '0'" in result.stdout
