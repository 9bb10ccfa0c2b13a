"""Which Java a Kafka process runs, against the one its host's Debian release ships."""

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
