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
    release = debian_release(host)
    executable = host.file(f"/proc/{pid}/exe").linked_to
    assert f"/java-{JAVA_OF_RELEASE[release]}-openjdk" in executable, (release, executable)
