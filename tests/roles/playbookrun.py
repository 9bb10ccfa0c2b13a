"""Runs a playbook against the repository's roles, as the role tests do."""

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
