"""confluent_kafka's version change, in real ansible-playbook runs on this machine.

The role's checks (preflight.yml) and its switch of installs (switch.yml) run against install
roots in a temporary directory, whose ``confluent-<version>`` directories stand for unpacked
archives: a downgrade is refused before anything changes unless it is allowed, and a change of
version moves ``current``, keeps the install it leaves as ``previous`` and removes older ones.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playbookrun import run_playbook

PLAY = (
    "- name: Run the confluent_kafka checks, then its switch of installs\n"
    "  hosts: kafka\n"
    "  gather_facts: true\n"
    "  check_mode: {check}\n"
    "  tasks:\n"
    "    - name: Check the variables and the hosts\n"
    "      ansible.builtin.include_role:\n"
    "        name: confluent_kafka\n"
    "        tasks_from: preflight\n"
    "    - name: Switch the installs\n"
    "      ansible.builtin.include_role:\n"
    "        name: confluent_kafka\n"
    "        tasks_from: switch\n"
)


def install_root(tmp_path: Path, host: str, versions: list[str], current: str | None) -> Path:
    """An install root holding ``confluent-<version>`` for each version, ``current`` -> one."""
    root = tmp_path / host / "opt"
    for version in versions:
        (root / f"confluent-{version}" / "bin").mkdir(parents=True, exist_ok=True)
    if current:
        (root / "current").symlink_to(root / f"confluent-{current}")
    return root


def run_role(
    tmp_path: Path, hosts: dict[str, dict], *extra_vars: dict, check: bool = False
) -> subprocess.CompletedProcess[str]:
    local = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        # The switch reads what restart_guard.yml records; these runs owe no restart.
        "hardened_service_left_pending": {"confluent-kafka.service": False},
        # Checked before any install: a checksum lets the role verify a download.
        "confluent_kafka_archive_checksum": "sha256:" + "0" * 64,
    }
    inventory = {
        "kafka": {
            "hosts": {
                name: local
                | {
                    "confluent_kafka_node_id": node_id,
                    "confluent_kafka_log_dirs": [str(tmp_path / name / "data")],
                    "confluent_kafka_metadata_log_dir": str(tmp_path / name / "meta"),
                }
                | variables
                for node_id, (name, variables) in enumerate(hosts.items(), start=1)
            }
        }
    }
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir(exist_ok=True)
    (inventory_dir / "hosts.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAY.format(check=str(check).lower()))
    return run_playbook(
        inventory_dir, tmp_path / "play.yml", *(json.dumps(extra) for extra in extra_vars)
    )


def one_host(root: Path, version: str) -> dict[str, dict]:
    return {
        "kafka-1": {"confluent_kafka_install_root": str(root), "confluent_kafka_version": version}
    }


def output(result: subprocess.CompletedProcess[str]) -> str:
    """The run's output with its lines joined, as a message folded by YAML wraps anywhere."""
    return " ".join((result.stdout + result.stderr).split())


def changed(result: subprocess.CompletedProcess[str], host: str) -> int:
    (count,) = re.findall(rf"^{host}\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.MULTILINE)
    return int(count)


def links(root: Path) -> dict[str, str]:
    return {link.name: link.readlink().name for link in root.iterdir() if link.is_symlink()}


def test_a_downgrade_is_refused_naming_both_versions_and_the_variable(tmp_path):
    root = install_root(tmp_path, "kafka-1", ["8.0.0", "8.0.3"], current="8.0.3")

    result = run_role(tmp_path, one_host(root, "8.0.0"))

    assert result.returncode != 0
    text = output(result)
    assert "kafka-1 has Confluent Platform 8.0.3 installed" in text, text[-3000:]
    assert "newer than confluent_kafka_version 8.0.0: refusing to downgrade" in text
    assert "-e confluent_kafka_allow_downgrade=true" in text
    assert links(root) == {"current": "confluent-8.0.3"}


def test_a_refused_downgrade_stops_every_host(tmp_path):
    older = install_root(tmp_path, "kafka-1", ["8.0.0", "8.0.3"], current="8.0.3")
    newer = install_root(tmp_path, "kafka-2", ["8.0.0"], current="8.0.0")
    hosts = {
        "kafka-1": {"confluent_kafka_install_root": str(older)},
        "kafka-2": {"confluent_kafka_install_root": str(newer)},
    }

    result = run_role(tmp_path, hosts, {"confluent_kafka_version": "8.0.0"})

    assert result.returncode != 0
    assert "refusing to downgrade" in output(result)
    assert "Switch the installs" not in result.stdout
    assert links(older) == {"current": "confluent-8.0.3"}
    assert links(newer) == {"current": "confluent-8.0.0"}


@pytest.mark.parametrize(
    "allow",
    [
        pytest.param({"confluent_kafka_allow_downgrade": True}, id="bool"),
        pytest.param({"confluent_kafka_allow_downgrade": "true"}, id="string-from-key=value"),
    ],
)
def test_an_allowed_downgrade_warns_and_keeps_the_newer_install(tmp_path, allow):
    root = install_root(tmp_path, "kafka-1", ["8.0.0", "8.0.3"], current="8.0.3")

    result = run_role(tmp_path, one_host(root, "8.0.0"), allow)

    assert result.returncode == 0, output(result)[-3000:]
    assert "WARNING: downgrading Confluent Platform on kafka-1 from 8.0.3 to 8.0.0" in output(
        result
    )
    assert links(root) == {"current": "confluent-8.0.0", "previous": "confluent-8.0.3"}


@pytest.mark.parametrize(
    ("installed", "wanted"),
    [
        ("8.0.3", "8.0.3"),
        ("8.0.0", "8.0.3"),
        ("8.0.9", "8.0.10"),
        ("8.0.10", "8.1.0"),
        (None, "8.0.3"),
    ],
)
def test_the_same_version_an_upgrade_or_a_new_host_passes_without_warning(
    tmp_path, installed, wanted
):
    root = install_root(
        tmp_path, "kafka-1", [wanted, *([installed] if installed else [])], installed
    )

    result = run_role(tmp_path, one_host(root, wanted))

    assert result.returncode == 0, output(result)[-3000:]
    assert "WARNING: downgrading" not in result.stdout
    assert links(root)["current"] == f"confluent-{wanted}"


@pytest.mark.parametrize(("installed", "wanted"), [("8.0.10", "8.0.9"), ("8.1.0", "8.0.10")])
def test_versions_compare_by_number_not_by_text(tmp_path, installed, wanted):
    root = install_root(tmp_path, "kafka-1", [installed, wanted], current=installed)

    result = run_role(tmp_path, one_host(root, wanted))

    assert result.returncode != 0
    assert f"Confluent Platform {installed} installed" in output(result)


def test_a_version_change_keeps_one_install_back_and_removes_older_ones(tmp_path):
    root = install_root(tmp_path, "kafka-1", ["7.9.0", "8.0.0", "8.0.3"], current="8.0.0")
    (root / "previous").symlink_to(root / "confluent-7.9.0")
    (root / "tools").mkdir()

    checked = run_role(tmp_path, one_host(root, "8.0.3"), check=True)
    assert checked.returncode == 0, output(checked)[-3000:]
    assert changed(checked, "kafka-1") > 0
    assert links(root) == {"current": "confluent-8.0.0", "previous": "confluent-7.9.0"}
    assert (root / "confluent-7.9.0").is_dir()

    upgraded = run_role(tmp_path, one_host(root, "8.0.3"))
    assert upgraded.returncode == 0, output(upgraded)[-3000:]
    assert links(root) == {"current": "confluent-8.0.3", "previous": "confluent-8.0.0"}
    assert sorted(path.name for path in root.iterdir() if not path.is_symlink()) == [
        "confluent-8.0.0",
        "confluent-8.0.3",
        "tools",
    ]

    again = run_role(tmp_path, one_host(root, "8.0.3"))
    assert again.returncode == 0, output(again)[-3000:]
    assert changed(again, "kafka-1") == 0


def test_an_interrupted_run_keeps_the_install_the_server_may_still_run(tmp_path):
    root = install_root(tmp_path, "kafka-1", ["8.0.0", "8.0.2", "8.0.3"], current="8.0.2")
    (root / "previous").symlink_to(root / "confluent-8.0.0")
    pending = {"hardened_service_left_pending": {"confluent-kafka.service": True}}

    result = run_role(tmp_path, one_host(root, "8.0.3"), pending)

    assert result.returncode == 0, output(result)[-3000:]
    assert links(root) == {"current": "confluent-8.0.3", "previous": "confluent-8.0.2"}
    assert (root / "confluent-8.0.0").is_dir()
