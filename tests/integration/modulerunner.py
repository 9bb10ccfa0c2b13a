"""Runs one of the roles' Ansible modules ad hoc on localhost, as Ansible itself would."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
# The code every module shares (Kafka's tools, their errors, secrets kept off command lines).
MODULE_UTILS = ROLES / "kafka_cluster" / "module_utils"
VENV_BIN = Path(sys.executable).parent
# Ad hoc output: "localhost | CHANGED => {json}", after any diff text.
_RESULT_LINE = re.compile(r"^localhost \| (?P<status>[A-Z]+!?) => ", re.MULTILINE)


@dataclass
class ModuleRun:
    status: str
    result: dict[str, Any]
    output: str

    @property
    def failed(self) -> bool:
        return self.status.startswith("FAILED")

    @property
    def changed(self) -> bool:
        return bool(self.result.get("changed"))


def ansible_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_MODULE_UTILS": str(MODULE_UTILS),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "true",
        "ANSIBLE_FORCE_COLOR": "false",
    }


def run_module(
    library: Path,
    name: str,
    args: dict[str, Any],
    tmp_path: Path,
    *,
    check: bool = False,
    diff: bool = False,
    verbose: bool = False,
) -> ModuleRun:
    """``ansible localhost -m NAME -a ARGS`` with the module from ``library``."""
    command = [str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-M", str(library)]
    command += ["-m", name, "-a", json.dumps(args)]
    command += ["--check"] if check else []
    command += ["--diff"] if diff else []
    command += ["-vvv"] if verbose else []
    completed = subprocess.run(
        command,
        cwd=tmp_path,
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    match = _RESULT_LINE.search(completed.stdout)
    assert match, f"no module result in the output of {command}:\n{output}"
    result, _ = json.JSONDecoder().raw_decode(completed.stdout[match.end() :])
    return ModuleRun(status=match["status"], result=result, output=output)


def assert_documentation_matches_argument_spec(
    library: Path, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ansible-doc shows of the module's options is what the module accepts."""
    listed = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "--json", "-M", str(library), name],
        env=ansible_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    documented = json.loads(listed.stdout)[name]["doc"]["options"]
    _compare_options(documented, load_module(library, name, monkeypatch).argument_spec())


def load_module(library: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The module's file imported as a Python module, its module_utils importable."""
    spec = importlib.util.spec_from_file_location(name, library / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    shared = importlib.util.spec_from_file_location(
        "ansible.module_utils.kafka_cli", MODULE_UTILS / "kafka_cli.py"
    )
    assert shared and shared.loader
    kafka_cli = importlib.util.module_from_spec(shared)
    monkeypatch.setitem(sys.modules, "ansible.module_utils.kafka_cli", kafka_cli)
    shared.loader.exec_module(kafka_cli)
    # dataclasses look their module up in sys.modules while the file is executed.
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def _compare_options(documented: dict[str, Any], accepted: dict[str, Any]) -> None:
    assert documented.keys() == accepted.keys()
    for option, rules in accepted.items():
        described = documented[option]
        assert described["type"] == rules["type"], option
        assert described.get("required", False) == rules.get("required", False), option
        assert described.get("default") == rules.get("default"), option
        assert described.get("choices") == rules.get("choices"), option
        if "options" in rules:
            _compare_options(described["suboptions"], rules["options"])
