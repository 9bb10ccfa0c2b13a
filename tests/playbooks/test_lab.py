"""playbooks/lab.yml: containers that behave like VMs, one per inventory host, and their removal.

Real ansible-playbook runs against the Docker daemon, on a network of the test's own so that a
lab running on the same machine is left alone: a Debian 12 and a Debian 13 host come up with
systemd running; a second run changes nothing; a host dropped from the inventory loses its
container and data; lab_state=absent removes the containers and the network.
"""

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
LABEL = "io.kafka-micro.lab"


@pytest.fixture
def network() -> Iterator[str]:
    name = f"kafka-micro-labtest-{uuid.uuid4().hex[:6]}"
    yield name
    # Whatever the test left behind, removed even when it failed midway.
    labelled = docker("ps", "-aq", "--filter", f"label={LABEL}={name}").split()
    if labelled:
        docker("rm", "-f", *labelled)
    subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def run_lab(
    tmp_path: Path, network: str, hosts: dict, state: str = "present"
) -> subprocess.CompletedProcess[str]:
    inventory = {"all": {"hosts": hosts, "vars": {"ansible_connection": "community.docker.docker"}}}
    (tmp_path / "hosts.json").write_text(json.dumps(inventory))
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(tmp_path / "hosts.json"),
            str(REPO / "playbooks" / "lab.yml"),
            "-e",
            f"lab_network={network}",
            "-e",
            f"lab_state={state}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=REPO,
    )


def lab(tmp_path: Path, network: str, hosts: dict, state: str = "present") -> str:
    """Run lab.yml to success for an inventory of these hosts; the ansible output."""
    result = run_lab(tmp_path, network, hosts, state)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


def containers(network: str) -> list[str]:
    return sorted(
        docker("ps", "-a", "--format", "{{.Names}}", "--filter", f"label={LABEL}={network}").split()
    )


def recap_changed(output: str, host: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith(f"{host} "))
    return int(line.split("changed=")[1].split()[0])


def test_lab_hosts_come_up_as_vms_of_their_release_and_go_away_with_their_data(
    tmp_path: Path, network: str
) -> None:
    suffix = network.rsplit("-", 1)[1]
    bookworm, trixie = f"labtest-{suffix}-12", f"labtest-{suffix}-13"
    hosts = {bookworm: {}, trixie: {"lab_debian_release": 13}}

    lab(tmp_path, network, hosts)
    assert containers(network) == sorted(hosts)
    for name, release in ((bookworm, "12"), (trixie, "13")):
        os_release = docker("exec", name, "cat", "/etc/os-release")
        assert f'VERSION_ID="{release}"' in os_release, name
        assert docker("exec", name, "systemctl", "is-system-running").strip() == "running"
        networks = json.loads(
            docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", name)
        )
        assert network in networks, name
    docker("exec", trixie, "sh", "-c", "echo kept > /var/lib/lab-data")

    assert recap_changed(lab(tmp_path, network, hosts), "localhost") == 0

    # The host left out of the inventory loses its container, and its data with it.
    lab(tmp_path, network, {bookworm: {}})
    assert containers(network) == [bookworm]
    lab(tmp_path, network, hosts)
    assert docker("exec", trixie, "sh", "-c", "cat /var/lib/lab-data || true").strip() == ""

    lab(tmp_path, network, hosts, state="absent")
    assert containers(network) == []
    listed = docker("network", "ls", "--format", "{{.Name}}", "--filter", f"name=^{network}$")
    assert listed.strip() == ""


def test_an_unknown_state_or_release_is_refused_by_name(tmp_path: Path, network: str) -> None:
    result = run_lab(tmp_path, network, {"labtest-bad": {"lab_debian_release": 11}}, state="gone")
    assert result.returncode != 0
    assert "lab_state is 'gone'" in result.stdout
    assert "['11']" in result.stdout
    assert containers(network) == []
