"""The kafka_cluster role: the cluster's nodes and endpoints as every other role sees them.

A real ansible-playbook run on localhost reads the role's variables for an inventory of Kafka
nodes that set some of their own variables and leave others to the cluster-wide defaults.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PUBLISHED = [
    "kafka_cluster_nodes",
    "kafka_cluster_bootstrap_servers",
    "kafka_cluster_controller_endpoints",
    "kafka_cluster_first_broker_bin",
    "kafka_cluster_first_controller",
    "kafka_cluster_replication_factor",
    "kafka_cluster_min_insync_replicas",
]


def cluster_view(tmp_path: Path, inventory: dict, *extra_vars: str) -> dict:
    """The published variables, read on the first app host (which runs no Kafka)."""
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "view.yml").write_text(
        "- name: Read the cluster as an app host sees it\n"
        "  hosts: kafka_app\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: kafka_cluster\n"
        "  tasks:\n"
        "    - name: Write the published variables\n"
        "      ansible.builtin.copy:\n"
        f'        content: "{{{{ {{{", ".join(f"{name!r}: {name}" for name in PUBLISHED)}}} '
        '| to_json }}"\n'
        f"        dest: {tmp_path / 'view.json'}\n"
        "        mode: '0644'\n"
    )
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.json")]
    for extra in extra_vars:
        command += ["-e", extra]
    result = subprocess.run(
        [*command, str(tmp_path / "view.yml")],
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((tmp_path / "view.json").read_text())


def local(**variables):
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable} | variables


def replication(view):
    return view["kafka_cluster_replication_factor"], view["kafka_cluster_min_insync_replicas"]


@pytest.fixture
def three_nodes_and_a_controller():
    return {
        "kafka": {
            "hosts": {
                "kafka-1": local(),
                "kafka-2": local(
                    confluent_kafka_advertised_host="k2.example", confluent_kafka_client_port=19092
                ),
                "kafka-3": local(confluent_kafka_install_root="/srv/confluent"),
                "controller-1": local(
                    confluent_kafka_process_roles=["controller"],
                    confluent_kafka_controller_port=19093,
                ),
            }
        },
        "kafka_app": {"hosts": {"app-1": local()}},
    }


def test_nodes_take_their_own_variables_else_the_cluster_defaults(
    tmp_path, three_nodes_and_a_controller
):
    view = cluster_view(tmp_path, three_nodes_and_a_controller)
    assert view["kafka_cluster_bootstrap_servers"] == [
        "kafka-1:9092",
        "k2.example:19092",
        "kafka-3:9092",
    ]
    assert view["kafka_cluster_controller_endpoints"] == [
        "kafka-1:9093",
        "k2.example:9093",
        "kafka-3:9093",
        "controller-1:19093",
    ]
    assert view["kafka_cluster_first_broker_bin"] == "/opt/confluent/current/bin"
    nodes = {node["name"]: node for node in view["kafka_cluster_nodes"]}
    assert nodes["kafka-3"]["install_root"] == "/srv/confluent"
    assert nodes["controller-1"]["process_roles"] == ["controller"]


def test_a_controller_joining_a_live_quorum_is_marked_and_runs_no_controller_task(tmp_path):
    """The controller tasks (ACLs before a node starts) run where a quorum already runs, even
    when the joining controller comes first in the inventory."""
    inventory = {
        "kafka": {
            "hosts": {
                "kafka-4": local(confluent_kafka_join_existing_quorum=True),
                "kafka-1": local(),
            }
        },
        "kafka_app": {"hosts": {"app-1": local()}},
    }
    view = cluster_view(tmp_path, inventory)
    joining = {node["name"]: node["joins_quorum"] for node in view["kafka_cluster_nodes"]}
    assert joining == {"kafka-4": True, "kafka-1": False}
    assert view["kafka_cluster_first_controller"]["name"] == "kafka-1"


def test_replication_follows_the_broker_count_up_to_three(tmp_path, three_nodes_and_a_controller):
    view = cluster_view(tmp_path, three_nodes_and_a_controller)
    assert replication(view) == (3, 2)
    single = {
        "kafka": {"hosts": {"kafka-1": local()}},
        "kafka_app": {"hosts": {"app-1": local()}},
    }
    view = cluster_view(tmp_path, single)
    assert replication(view) == (1, 1)


def test_cluster_wide_defaults_apply_to_every_node_that_sets_none(
    tmp_path, three_nodes_and_a_controller
):
    view = cluster_view(
        tmp_path,
        three_nodes_and_a_controller,
        json.dumps({"kafka_cluster_client_port": 29092, "kafka_cluster_group": "kafka"}),
    )
    assert view["kafka_cluster_bootstrap_servers"] == [
        "kafka-1:29092",
        "k2.example:19092",
        "kafka-3:29092",
    ]
