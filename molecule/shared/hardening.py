"""Hardening as systemd declares it for our units and as the kernel applies it to their processes.

Shared by both scenarios: each checks the units its hosts run. The checks need the container's
SYS_ADMIN capability, without which systemd silently leaves the mount namespaces out.
"""

import re

from groupstate import INSTANCES

KAFKA_UNIT = "confluent-kafka.service"
KAFKA_DIRECTORIES = ("/var/lib/kafka/data", "/var/lib/kafka/meta", "/var/log/kafka")
APP_USER = "kafka-micro"
APP_UNITS = [
    "kafka-producer.service",
    *(f"kafka-consumer@{n}.service" for n in range(1, INSTANCES + 1)),
]

# What hardened_service gives every unit.
COMMON_HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
}

KAFKA_HARDENING = {
    **COMMON_HARDENING,
    "UMask": "0027",
    "LimitNOFILE": "128000",
    "TimeoutStopUSec": "3min",
    "Restart": "on-failure",
}

# MemoryDenyWriteExecute is the app's alone: the JVM's JIT compiler writes the code it runs.
APP_HARDENING = {
    **COMMON_HARDENING,
    "User": APP_USER,
    "AmbientCapabilities": "",
    "ProtectProc": "invisible",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "MemoryDenyWriteExecute": "yes",
    "UMask": "0077",
    "KillSignal": "15",
}


def unit_properties(host, unit, properties):
    shown = host.check_output(f"systemctl show {unit} --property={','.join(properties)}")
    return dict(line.split("=", 1) for line in shown.splitlines())


def main_pid(host, unit):
    return int(host.check_output(f"systemctl show --property=MainPID --value {unit}"))


def assert_kafka_unit_declares_hardening(host):
    assert unit_properties(host, KAFKA_UNIT, KAFKA_HARDENING) == KAFKA_HARDENING
    exposure = host.check_output(f"systemd-analyze security {KAFKA_UNIT} --no-pager | tail -n 1")
    assert float(re.search(r"level for \S+: ([0-9.]+)", exposure).group(1)) <= 2.0, exposure


def assert_app_units_declare_hardening(host):
    for unit in APP_UNITS:
        assert unit_properties(host, unit, APP_HARDENING) == APP_HARDENING, unit


def assert_confined(host, pid, name):
    """No privileges, capabilities or unfiltered system calls; system files read-only, /home and
    /tmp not the machine's. Returns the process's mounts."""
    status = host.file(f"/proc/{pid}/status").content_string
    for field, value in (("NoNewPrivs", "1"), ("CapEff", "0+"), ("CapBnd", "0+"), ("Seccomp", "2")):
        assert re.search(rf"^{field}:\s+{value}$", status, re.M), (name, field)
    mounts = process_mounts(host, pid)
    for path in ("/usr/lib/probe", "/etc/probe", "/var/lib"):
        assert "ro" in effective_mount(mounts, path)["options"], (name, path)
    home = effective_mount(mounts, "/home/probe")
    assert home["point"] == "/home" and "ro" in home["options"], (name, home)
    # PrivateTmp: the process's /tmp is a directory of its own, not the machine's /tmp.
    assert "systemd-private-" in effective_mount(mounts, "/tmp")["root"], name
    return mounts


def assert_kafka_server_confined(host):
    # PID 1 sees a writable /usr: the read-only view below comes from the unit.
    assert "rw" in effective_mount(process_mounts(host, 1), "/usr/lib/probe")["options"]
    mounts = assert_confined(host, main_pid(host, KAFKA_UNIT), KAFKA_UNIT)
    assert "ro" in effective_mount(mounts, "/opt/confluent/current")["options"]
    for path in (*KAFKA_DIRECTORIES, "/tmp"):
        assert "rw" in effective_mount(mounts, path)["options"], path
    for path in ("/home", "/root"):
        mount = effective_mount(mounts, path)
        assert mount["point"] == path and "inaccessible" in mount["root"], mount


def assert_app_processes_confined(host):
    for unit in APP_UNITS:
        assert_confined(host, main_pid(host, unit), unit)


def process_mounts(host, pid):
    """The kernel's view of a process's mounts (nsenter would need CAP_SYS_PTRACE, which docker
    withholds)."""
    mounts = []
    for line in host.file(f"/proc/{pid}/mountinfo").content_string.splitlines():
        fields = line.split()
        mounts.append({"root": fields[3], "point": fields[4], "options": fields[5].split(",")})
    return mounts


def effective_mount(mounts, path):
    """The mount a path lives on: the last mounted of those with the longest matching point."""
    covering = [
        m for m in mounts if path == m["point"] or path.startswith(m["point"].rstrip("/") + "/")
    ]
    longest = max(len(m["point"]) for m in covering)
    return [m for m in covering if len(m["point"]) == longest][-1]
