"""The prometheus_node_exporter role's command line, run by Debian's exporter.

A real ansible-playbook run renders /etc/default/prometheus-node-exporter from the role into a
temporary directory; the arguments it holds then start Debian's prometheus-node-exporter on a
free loopback port, which must accept them, serve the filesystem, memory and CPU series the
alerts use, and leave out the collectors the role turns off.
"""

import json
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playbookrun import render_templates_play, run_playbook


def render(tmp_path: Path, *extra_vars: str) -> list[str]:
    """The exporter's arguments, as Debian's unit splits $ARGS."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": {"lab-app-1": local}}}))
    (tmp_path / "render.yml").write_text(
        render_templates_play(
            "prometheus_node_exporter",
            "all",
            {"prometheus-node-exporter.default.j2": tmp_path / "default"},
        )
    )
    result = run_playbook(tmp_path / "hosts.json", tmp_path / "render.yml", *extra_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    (line,) = [
        line for line in (tmp_path / "default").read_text().splitlines() if line.startswith("ARGS=")
    ]
    # systemd's EnvironmentFile= takes the quoted value as it is; ExecStart splits it on spaces.
    return line.removeprefix('ARGS="').removesuffix('"').split()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_default_command_line(tmp_path: Path) -> None:
    args = render(tmp_path)
    assert args[0] == "--web.listen-address=0.0.0.0:9100"
    assert "--no-collector.hwmon" in args
    assert "--no-collector.rapl" in args
    (fs_types,) = [
        arg for arg in args if arg.startswith("--collector.filesystem.fs-types-exclude=")
    ]
    assert "overlay" not in fs_types
    assert "|proc|" in fs_types
    (mount_points,) = [arg for arg in args if "mount-points-exclude=" in arg]
    assert "|etc|" in mount_points


def test_an_ipv6_listen_address_is_bracketed(tmp_path: Path) -> None:
    args = render(
        tmp_path,
        "prometheus_node_exporter_listen_address=::1",
        "prometheus_node_exporter_port=9200",
    )
    assert args[0] == "--web.listen-address=[::1]:9200"


def test_debians_exporter_runs_on_the_command_line(tmp_path: Path) -> None:
    exporter = shutil.which("prometheus-node-exporter")
    assert exporter, (
        "prometheus-node-exporter is missing: "
        "apt-get install --no-install-recommends prometheus-node-exporter"
    )
    port = free_port()
    args = render(
        tmp_path,
        "prometheus_node_exporter_listen_address=127.0.0.1",
        f"prometheus_node_exporter_port={port}",
    )
    process = subprocess.Popen(
        [exporter, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{shlex.join(args)}: {process.stderr.read()}"  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                    metrics = page.read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    for series in (
        "node_filesystem_avail_bytes",
        "node_memory_MemAvailable_bytes",
        "node_cpu_seconds_total",
    ):
        assert f"\n{series}{{" in metrics or f"\n{series} " in metrics, series
    for collector in ("hwmon", "rapl", "thermal_zone", "nvme"):
        assert f'node_scrape_collector_success{{collector="{collector}"}}' not in metrics
    assert 'node_scrape_collector_success{collector="filesystem"} 1' in metrics


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '{"prometheus_node_exporter_extra_args": ["--collector.systemd --x"]}',
            "--collector.systemd --x",
        ),
        ('{"prometheus_node_exporter_disabled_collectors": ["Hwmon"]}', "no collector: Hwmon"),
    ],
)
def test_the_role_refuses_what_the_unit_cannot_carry(
    tmp_path: Path, extra: str, message: str
) -> None:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": {"lab-app-1": local}}}))
    (tmp_path / "play.yml").write_text(
        "- name: Run the node exporter role in check mode, its checks first\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  check_mode: true\n"
        "  roles:\n"
        "    - role: prometheus_node_exporter\n"
    )
    # The check is the role's first task: it fails before anything on this machine is touched.
    result = run_playbook(tmp_path / "hosts.json", tmp_path / "play.yml", extra)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
