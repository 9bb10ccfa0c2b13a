"""The linters and the type checker, run as tests so one command checks everything."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

CHECKS = {
    "ruff-lint": ["ruff", "check", "app", "tools", "tests", "roles", "molecule"],
    "ruff-format": ["ruff", "format", "--check", "app", "tools", "tests", "roles", "molecule"],
    "mypy": ["mypy"],
    "ansible-lint": ["ansible-lint", "--profile", "production", "roles", "playbooks"],
}


@pytest.mark.parametrize("command", CHECKS.values(), ids=CHECKS.keys())
def test_check_passes(command: list[str]) -> None:
    executable = shutil.which(command[0], path=str(VENV_BIN)) or shutil.which(command[0])
    assert executable, f"{command[0]} is not installed; install requirements-dev.lock"
    result = subprocess.run(
        [executable, *command[1:]], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
