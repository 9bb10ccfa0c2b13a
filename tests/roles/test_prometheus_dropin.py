"""The prometheus role's drop-in over Debian's prometheus.service: hardened_service's sandbox.

A real ansible-playbook run writes the role's template through hardened_service's ``unit`` entry
point, as the role does, into a temporary directory instead of /etc/systemd/system.
"""

import json
import re
import sys
from pathlib import Path

from playbookrun import REPO, run_playbook

TEMPLATE = REPO / "roles" / "prometheus" / "templates" / "hardening.conf.j2"


def render(tmp_path: Path, overrides: dict) -> list[str]:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": {"monitoring-1": local}}}))
    # hardened_service writes /etc/systemd/system/UNIT: the name climbs back out to tmp_path.
    unit = f"../../..{tmp_path}/kafka-micro-hardening.conf"
    (tmp_path / "play.yml").write_text(
        "- name: Write the drop-in as the prometheus role does\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Write it through hardened_service\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardened_service\n"
        "        tasks_from: unit\n"
        "      vars:\n"
        f"        hardened_service_unit: {unit}\n"
        f"        hardened_service_template: {TEMPLATE}\n"
        "        hardened_service_read_write_paths: [/var/lib/prometheus/metrics2]\n"
        "        hardened_service_jvm: false\n"
        "        hardened_service_overrides: {}\n"
        f"        prometheus_service_overrides: {json.dumps(overrides)}\n"
    )
    result = run_playbook(tmp_path / "hosts.json", tmp_path / "play.yml")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    text = (tmp_path / "kafka-micro-hardening.conf").read_text()
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_drop_in_sandboxes_prometheus_with_only_its_storage_writable(tmp_path: Path) -> None:
    lines = render(tmp_path, {})
    assert lines[0] == "[Service]"
    # One Key=Value per line: the included sandbox and what follows it are not run together.
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+=.*", line) for line in lines[1:]), lines
    for setting in (
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/prometheus/metrics2",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "ProtectHome=true",
        "CapabilityBoundingSet=",
        "MemoryDenyWriteExecute=true",
    ):
        assert setting in lines


def test_overrides_come_last_and_repeat_a_key_for_a_list(tmp_path: Path) -> None:
    lines = render(tmp_path, {"LimitNOFILE": 65536, "SystemCallFilter": ["", "@system-service"]})
    assert lines[-3:] == [
        "LimitNOFILE=65536",
        "SystemCallFilter=",
        "SystemCallFilter=@system-service",
    ]
