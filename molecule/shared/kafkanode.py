"""A Kafka node as the tests see it: the Java of its Debian release, the ports it listens on."""

# Debian 12 ships Java 17 and 21 is not in it; Debian 13 ships 21 and no 17.
JAVA_OF_RELEASE = {"12": "17", "13": "21"}


def debian_release(host):
    fields = dict(
        line.split("=", 1)
        for line in host.file("/etc/os-release").content_string.splitlines()
        if "=" in line
    )
    return fields["VERSION_ID"].strip('"')


def assert_runs_the_releases_java(host, pid):
    # /proc/PID/exe of another user's process needs CAP_SYS_PTRACE, which a container lacks;
    # the command line is readable, and the launcher starts "java" from the PATH.
    command = host.file(f"/proc/{pid}/cmdline").content.split(b"\0")[0].decode()
    executable = host.check_output(f'readlink -f "$(command -v {command})"')
    release = debian_release(host)
    assert f"/java-{JAVA_OF_RELEASE[release]}-openjdk" in executable, (release, executable)


# Docker's embedded DNS server listens in every container on a user-defined network.
DOCKER_DNS = "127.0.0.11"


def listening_tcp_ports(host):
    """The TCP ports something listens on in the host's network namespace, Docker's DNS aside."""
    addresses = [line.split()[3] for line in host.check_output("ss -ltnH").splitlines()]
    return {
        int(address.rsplit(":", 1)[1])
        for address in addresses
        if not address.startswith(f"{DOCKER_DNS}:")
    }
