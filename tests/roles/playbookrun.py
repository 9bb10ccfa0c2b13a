"""Runs a playbook against the repository's roles, as the role tests do."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def run_playbook(
    inventory: Path, playbook: Path, *extra_vars: str
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook -i INVENTORY [-e VARS]... PLAYBOOK``, uncoloured, output captured."""
    command = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory)]
    for extra in extra_vars:
        command += ["-e", extra]
    return subprocess.run(
        [*command, str(playbook)],
        env={**os.environ, "ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def render_templates_play(role: str, hosts: str, templates: dict[str, Path]) -> str:
    """A play rendering ``role``'s templates (name: destination) with its defaults and vars,
    as a run of the role would, without running its tasks."""
    role_dir = REPO / "roles" / role
    items = "".join(f"          {name}: {dest}\n" for name, dest in templates.items())
    return (
        f"- name: Render the {role} role's files\n"
        f"  hosts: {hosts}\n"
        "  gather_facts: false\n"
        "  roles:\n"
        "    - role: kafka_cluster\n"
        "  tasks:\n"
        "    - name: Read the role's defaults and variables\n"
        "      ansible.builtin.include_vars:\n"
        "        file: '{{ item }}'\n"
        "      loop:\n"
        f"        - {role_dir / 'defaults' / 'main.yml'}\n"
        f"        - {role_dir / 'vars' / 'main.yml'}\n"
        "    - name: Render the templates\n"
        "      ansible.builtin.template:\n"
        f"        src: {role_dir / 'templates'}/{{{{ item.key }}}}\n"
        "        dest: '{{ item.value }}'\n"
        "        mode: '0644'\n"
        "      loop: '{{ files | dict2items }}'\n"
        "      vars:\n"
        "        files:\n"
        f"{items}"
    )


def app_settings(config: Path) -> dict:
    """The settings the app reads from ``config`` (``kafka-micro config --json``)."""
    shown = subprocess.run(
        [sys.executable, "-m", "kafka_micro", "--config", str(config), "config", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)
