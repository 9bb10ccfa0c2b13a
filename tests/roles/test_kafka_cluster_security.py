"""kafka_cluster's security preflight and generated credentials, in real ansible-playbook runs.

Every role that renders SCRAM settings runs this preflight first; a bad value must stop the play
before anything is written, naming the variable and never printing a password.
"""

import json
import subprocess
import sys
from pathlib import Path

from playbookrun import REPO, VENV_BIN, run_playbook

GIVEN_PASSWORD = "Given-Password-123"


def run_preflight(tmp_path: Path, *extra_vars: dict) -> subprocess.CompletedProcess[str]:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"children": {"kafka": {"hosts": {"node-a": local}}}}}
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir(exist_ok=True)
    (inventory_dir / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(
        "- name: Check and show the cluster's security settings\n"
        "  hosts: kafka\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Run the security preflight\n"
        "      ansible.builtin.include_role:\n"
        "        name: kafka_cluster\n"
        "        tasks_from: security_preflight\n"
        "        public: true\n"
        "    - name: Write the users the roles would create\n"
        "      ansible.builtin.copy:\n"
        '        content: "{{ kafka_cluster_users | to_json }}"\n'
        f"        dest: {tmp_path / 'users.json'}\n"
        "        mode: '0600'\n"
        "      when: kafka_cluster_secured\n"
    )
    variables = [json.dumps(extra) for extra in extra_vars]
    return run_playbook(inventory_dir, tmp_path / "play.yml", *variables)


def test_passwords_left_empty_are_generated_once_beside_the_inventory_and_kept(tmp_path):
    credentials = tmp_path / "inventory" / "credentials"
    first = run_preflight(tmp_path, {"kafka_cluster_admin_password": GIVEN_PASSWORD})
    assert first.returncode == 0, first.stdout
    users = {user["role"]: user for user in json.loads((tmp_path / "users.json").read_text())}
    assert users["admin"]["password"] == GIVEN_PASSWORD
    assert not (credentials / "kafka-admin.txt").exists()
    generated = (credentials / "kafka-micro-producer.txt").read_text().strip()
    assert users["producer"]["password"] == generated
    assert len(generated) == 32
    assert credentials.stat().st_mode & 0o777 == 0o700
    assert (credentials / "kafka-micro-producer.txt").stat().st_mode & 0o777 == 0o600

    # The inventory directory now holds the credentials, and kafka_tls keeps its PKI there too:
    # with the project's ansible.cfg, neither is read as an inventory source.
    host_key = credentials.parent / "pki" / "hosts" / "node-a" / "host.key"
    host_key.parent.mkdir(parents=True)
    host_key.write_text("-----BEGIN PRIVATE KEY-----\nnot-a-host\n-----END PRIVATE KEY-----\n")
    listed = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(tmp_path / "inventory"), "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert generated not in listed.stdout + listed.stderr
    assert "not-a-host" not in listed.stdout
    assert "host.key" not in listed.stderr, listed.stderr

    second = run_preflight(tmp_path)
    assert second.returncode == 0, second.stdout
    again = {user["role"]: user for user in json.loads((tmp_path / "users.json").read_text())}
    assert again["producer"]["password"] == generated


def test_a_password_kafka_tools_cannot_take_is_refused_by_its_variable(tmp_path):
    bad = "has,comma=and]bracket"
    result = run_preflight(
        tmp_path,
        {"kafka_cluster_credentials_dir": str(tmp_path / "credentials")},
        {"kafka_cluster_consumer_password": bad, "kafka_cluster_broker_password": "short"},
    )
    assert result.returncode != 0
    assert "kafka_cluster_broker_password, kafka_cluster_consumer_password" in result.stdout
    assert "at least 12 characters" in result.stdout
    assert bad not in result.stdout
    assert not (tmp_path / "users.json").exists()


def test_without_generation_an_empty_password_is_refused_by_its_variable_and_none_is_made(
    tmp_path,
):
    credentials = tmp_path / "inventory" / "credentials"
    vault = {
        f"kafka_cluster_{role}_password": GIVEN_PASSWORD
        for role in ("broker", "admin", "producer", "monitor")
    }
    refused = run_preflight(tmp_path, {"kafka_cluster_generate_passwords": False, **vault})
    assert refused.returncode != 0
    assert "kafka_cluster_consumer_password: no password given" in refused.stdout, refused.stdout
    assert "Set each, e.g. from Ansible Vault, or set kafka_cluster_generate_passwords: true" in (
        refused.stdout
    )
    assert "kafka_cluster_producer_password" not in refused.stdout
    assert GIVEN_PASSWORD not in refused.stdout
    assert not credentials.exists()
    assert not (tmp_path / "users.json").exists()

    vault["kafka_cluster_consumer_password"] = GIVEN_PASSWORD
    given = run_preflight(tmp_path, {"kafka_cluster_generate_passwords": False, **vault})
    assert given.returncode == 0, given.stdout
    assert not credentials.exists()


def test_an_unknown_protocol_is_refused_with_the_allowed_ones(tmp_path):
    result = run_preflight(tmp_path, {"kafka_cluster_security_protocol": "SSL"})
    assert result.returncode != 0
    assert "kafka_cluster_security_protocol is 'SSL': use SASL_SSL" in result.stdout


def test_plaintext_must_be_asked_for_and_is_warned_about_loudly(tmp_path):
    result = run_preflight(tmp_path, {"kafka_cluster_security_protocol": "PLAINTEXT"})
    assert result.returncode == 0, result.stdout
    assert "WARNING: kafka_cluster_security_protocol is PLAINTEXT" in result.stdout
    assert not (tmp_path / "credentials").exists()
