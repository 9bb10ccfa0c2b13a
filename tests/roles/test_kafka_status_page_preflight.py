"""kafka_status_page's preflight: the page's login password, with and without generation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from playbookrun import run_playbook

GIVEN = "a-given-password-1"
CLUSTER_PASSWORDS = {
    f"kafka_cluster_{role}_password": GIVEN
    for role in ("broker", "admin", "producer", "consumer", "monitor")
}


def run_preflight(tmp_path: Path, variables: dict) -> subprocess.CompletedProcess[str]:
    """The role's preflight alone on this machine, as a completed ansible-playbook run."""
    inventory = {
        "all": {
            "children": {
                "monitoring": {
                    "hosts": {
                        "monitor-a": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        }
    }
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(
        "- name: Run the status page's preflight\n"
        "  hosts: monitoring\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Check the variables before changing anything\n"
        "      ansible.builtin.include_role:\n"
        "        name: kafka_status_page\n"
        "        tasks_from: preflight\n"
    )
    facts = {"ansible_facts": {"os_family": "Debian", "service_mgr": "systemd"}}
    return run_playbook(
        tmp_path / "hosts.json",
        tmp_path / "play.yml",
        json.dumps({**CLUSTER_PASSWORDS, **variables}),
        json.dumps(facts),
    )


@pytest.mark.parametrize(
    ("variables", "refusal"),
    [
        (
            {"kafka_cluster_generate_passwords": False},
            "it is empty and kafka_cluster_generate_passwords is false: set it",
        ),
        ({"kafka_status_page_password": "short"}, "leave it empty to have one generated"),
    ],
)
def test_a_missing_or_short_login_password_is_refused_by_its_variable(tmp_path, variables, refusal):
    result = run_preflight(tmp_path, variables)
    assert result.returncode != 0
    assert "kafka_status_page_password must be at least 12 characters" in result.stdout
    assert refusal in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize(
    "variables",
    [
        {"kafka_cluster_generate_passwords": False, "kafka_status_page_password": GIVEN},
        {"kafka_cluster_generate_passwords": True},
    ],
)
def test_a_given_password_or_generation_passes(tmp_path, variables):
    result = run_preflight(tmp_path, variables)
    assert "kafka_status_page_password must" not in result.stdout, result.stdout[-3000:]
    assert result.returncode == 0, result.stdout[-3000:]
