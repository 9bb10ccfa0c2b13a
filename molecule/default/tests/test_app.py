"""The kafka-micro producer and consumers deployed by roles/kafka_app, checked on the running hosts.

Units and files are read on each app host; the consumer group and its offsets are read with
Kafka's own kafka-consumer-groups on the first broker host. The last tests restart units and run
playbooks/site.yml again.
"""

import json
import os
import re
import signal
import time
import tomllib

import pytest
import testinfra
import testinfra.utils.ansible_runner
from groupstate import (
    GROUP,
    INSTANCES,
    PARTITIONS,
    SETTLE_TIMEOUT_S,
    TOPIC,
    bootstrap,
    members,
    offsets,
    wait_for_balanced_group,
)
from hardening import assert_app_processes_confined, assert_app_units_declare_hardening
from siteplay import run_site, start_site

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
APP_HOSTS = RUNNER.get_hosts("kafka_app")
testinfra_hosts = APP_HOSTS

SERVICE_USER = "kafka-micro"
PRODUCER = "kafka-producer.service"
TARGET = "kafka-consumers.target"
CONSUMERS = [f"kafka-consumer@{number}.service" for number in range(1, INSTANCES + 1)]
UNITS = [PRODUCER, *CONSUMERS]
CONFIG = "/etc/kafka-micro/kafka-micro.toml"
INSTALL_DIR = "/opt/kafka-micro"
# Longer than the consumers' auto commit interval (5 s), so committed offsets must move.
SAMPLE_GAP_S = 8


@pytest.fixture(scope="module")
def broker():
    """The first Kafka host: it has the Kafka tools."""
    name = RUNNER.get_hosts("kafka")[0]
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


def main_pid(host, unit):
    return int(host.check_output(f"systemctl show --property=MainPID --value {unit}"))


def show(host, unit, *properties):
    output = host.check_output(f"systemctl show --property={','.join(properties)} {unit}")
    return dict(line.split("=", 1) for line in output.splitlines())


def journal_of_current_run(host, unit):
    invocation = host.check_output(f"systemctl show --property=InvocationID --value {unit}")
    return host.check_output(
        f"journalctl --no-pager --output=cat _SYSTEMD_INVOCATION_ID={invocation}"
    )


def wait_for_line(host, unit, pattern):
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        match = re.search(pattern, journal_of_current_run(host, unit))
        if match:
            return match
        if time.monotonic() > deadline:
            pytest.fail(f"{unit} logged no {pattern!r} within {SETTLE_TIMEOUT_S} s")
        time.sleep(2)


def test_units_are_enabled_and_running(host):
    for unit in [*UNITS, TARGET]:
        service = host.service(unit)
        assert service.is_enabled, unit
        assert service.is_running, unit


def test_target_groups_exactly_the_consumers(host):
    consists_of = show(host, TARGET, "ConsistsOf")["ConsistsOf"].split()
    assert sorted(consists_of) == sorted(CONSUMERS)
    for unit in CONSUMERS:
        assert show(host, unit, "PartOf")["PartOf"] == TARGET


def test_units_and_config_are_marked_as_managed(host):
    for path in (
        f"/etc/systemd/system/{PRODUCER}",
        "/etc/systemd/system/kafka-consumer@.service",
        f"/etc/systemd/system/{TARGET}",
        CONFIG,
    ):
        assert host.file(path).content_string.startswith("#\n# Ansible managed"), path


def test_config_file_is_readable_by_the_service_group_only(host):
    config = host.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", SERVICE_USER, 0o640)
    directory = host.file(os.path.dirname(CONFIG))
    assert (directory.user, directory.group, directory.mode) == ("root", SERVICE_USER, 0o750)
    assert host.run(f"runuser -u {SERVICE_USER} -- cat {CONFIG}").rc == 0
    assert host.run(f"runuser -u nobody -- cat {CONFIG}").rc != 0


def test_config_points_at_the_brokers_and_the_topic(host, broker):
    settings = tomllib.loads(host.file(CONFIG).content_string)
    assert settings["bootstrap_servers"] == bootstrap(broker)
    assert settings["topic"] == TOPIC
    assert settings["consumer"]["group_id"] == GROUP


def test_tuning_is_left_to_the_apps_measured_defaults(host):
    """Tuning variables default to null: the file leaves them out and the app's defaults apply."""
    settings = tomllib.loads(host.file(CONFIG).content_string)
    assert "profile" not in settings
    assert "batch_size" not in settings["producer"]
    assert "fetch_min_bytes" not in settings["consumer"]
    effective = json.loads(
        host.check_output(
            f"runuser -u {SERVICE_USER} -- {INSTALL_DIR}/venv/bin/kafka-micro config --json "
            f"--config {CONFIG}"
        )
    )
    assert effective["producer"]["batch_size"] == 1_000_000
    assert effective["consumer"]["queued_max_messages_kbytes"] == 1024


def test_app_runs_as_system_user_without_login_shell(host):
    user = host.user(SERVICE_USER)
    assert user.shell == "/usr/sbin/nologin"
    assert user.uid < 1000
    for unit in UNITS:
        assert host.process.get(pid=main_pid(host, unit)).user == SERVICE_USER, unit


def test_app_is_installed_from_the_hashed_wheelhouse(host):
    requirements = host.file(f"{INSTALL_DIR}/requirements.txt").content_string
    assert re.search(r"^kafka-micro==\S+ \\\n\s+--hash=sha256:[0-9a-f]{64}$", requirements, re.M)
    venv = host.file(f"{INSTALL_DIR}/venv")
    assert venv.is_symlink
    assert venv.linked_to.startswith(f"{INSTALL_DIR}/venvs/")
    # The only venv left is the one the units run from.
    assert host.check_output(f"ls {INSTALL_DIR}/venvs").split() == [
        os.path.basename(venv.linked_to)
    ]
    check = host.run(
        f"runuser -u {SERVICE_USER} -- {INSTALL_DIR}/venv/bin/kafka-micro --config {CONFIG} config"
    )
    assert check.rc == 0, check.stderr


def test_consumers_are_static_members_owning_an_equal_share(host, broker):
    found = wait_for_balanced_group(broker, APP_HOSTS)
    name = host.backend.get_hostname()
    share = PARTITIONS // len(found)
    expected = {f"{name}-{number}": share for number in range(1, INSTANCES + 1)}
    assert expected.items() <= found.items()


def test_messages_flow_and_lag_stays_bounded(host, broker):
    assert host.service(PRODUCER).is_running
    first = offsets(broker)
    started = time.monotonic()
    time.sleep(SAMPLE_GAP_S)
    second = offsets(broker)
    elapsed = time.monotonic() - started
    assert sorted(first) == sorted(second) == list(range(PARTITIONS))
    assert all(committed is not None for committed, _end in second.values()), second
    produced = sum(end for _c, end in second.values()) - sum(end for _c, end in first.values())
    committed = sum(c for c, _end in second.values()) - sum(c or 0 for c, _end in first.values())
    assert produced > 0, "the log end offsets did not move: the producer writes nothing"
    assert committed > 0, "the committed offsets did not move: the consumers process nothing"
    # Lag: what was produced but not yet committed. Bounded by what ~30 s of production adds up to
    # (commits are 5 s apart), whatever the configured rate.
    lag = sum(end - c for c, end in second.values())
    assert lag <= 30 * produced / elapsed + 5000, (lag, produced / elapsed)


def test_units_are_hardened(host):
    assert_app_units_declare_hardening(host)


def test_hardening_is_in_effect_in_the_processes(host):
    assert_app_processes_confined(host)


def test_units_tell_systemd_when_they_are_ready(host):
    for unit in UNITS:
        assert show(host, unit, "Type", "NotifyAccess") == {
            "Type": "notify",
            "NotifyAccess": "main",
        }, unit


def test_a_consumer_restart_returns_once_the_consumer_owns_its_partitions(host, broker):
    unit = CONSUMERS[1]
    member = f"{host.backend.get_hostname()}-2"
    wait_for_balanced_group(broker, APP_HOSTS)
    host.check_output(f"systemctl restart {unit}")
    # Read at once: systemd returned only after the new process reported ready.
    assert members(broker).get(member) == PARTITIONS // (INSTANCES * len(APP_HOSTS))
    assert "partitions assigned" in journal_of_current_run(host, unit)


def test_restarting_the_target_restarts_every_consumer(host, broker):
    before = {unit: main_pid(host, unit) for unit in CONSUMERS}
    producer_before = main_pid(host, PRODUCER)
    host.check_output(f"systemctl restart {TARGET}")
    for unit in CONSUMERS:
        wait_for_line(host, unit, "partitions assigned")
    after = {unit: main_pid(host, unit) for unit in CONSUMERS}
    assert all(after[unit] not in (0, before[unit]) for unit in CONSUMERS), (before, after)
    assert main_pid(host, PRODUCER) == producer_before
    wait_for_balanced_group(broker, APP_HOSTS)


def test_a_restarted_consumer_resumes_from_its_committed_offsets(host, broker):
    """Producer stopped and group caught up: a restarted consumer reads nothing again."""
    unit = CONSUMERS[0]
    host.check_output(f"systemctl stop {PRODUCER}")
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while any(committed != end for committed, end in offsets(broker).values()):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the group did not catch up in {SETTLE_TIMEOUT_S} s: {offsets(broker)}"
                )
            time.sleep(3)
        committed_before = offsets(broker)
        host.check_output(f"systemctl restart {unit}")
        wait_for_line(host, unit, "partitions assigned")
        # The first throughput line counts what the new process consumed: from the committed
        # offsets there is nothing left; from the start of the partitions it would be thousands.
        consumed = int(wait_for_line(host, unit, r"consumed (\d+) msgs").group(1))
        assert consumed == 0, f"{unit} consumed {consumed} messages again after its restart"
        assert offsets(broker) == committed_before
    finally:
        host.check_output(f"systemctl start {PRODUCER}")
    wait_for_line(host, PRODUCER, "producing to ")


def pids(host):
    return {unit: main_pid(host, unit) for unit in UNITS}


def test_an_interrupted_run_still_restarts_the_units_next_time(host):
    """A run killed after it wrote a new configuration, before its handlers restarted anything."""
    markers = [f"/run/{PRODUCER}.restart-pending", "/run/kafka-consumer@.service.restart-pending"]
    tags = ["--tags", "kafka_app_configure,kafka_app_run"]
    changed = [*tags, "-e", json.dumps({"kafka_app_report_interval_s": 7})]
    before = pids(host)
    config_before = host.file(CONFIG).sha256sum
    run = start_site(*changed)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while host.file(CONFIG).sha256sum == config_before:
            assert run.poll() is None, "the run ended before it wrote the new configuration"
            if time.monotonic() > deadline:
                pytest.fail(f"the run did not write {CONFIG} within {SETTLE_TIMEOUT_S} s")
            time.sleep(0.2)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    try:
        assert pids(host) == before, "the killed run restarted a unit"
        assert all(host.file(marker).exists for marker in markers)

        # Nothing left to write, yet every unit restarts onto the new configuration.
        resumed = run_site(*changed)
        assert resumed.returncode == 0, resumed.stdout[-3000:]
        after = pids(host)
        assert all(after[unit] not in (0, before[unit]) for unit in UNITS), (before, after)
        assert not any(host.file(marker).exists for marker in markers)

        again = run_site(*changed)
        assert again.returncode == 0, again.stdout[-3000:]
        assert re.search(r"changed=0\s", again.stdout), again.stdout[-3000:]
        assert pids(host) == after
    finally:
        restored = run_site(*tags)
        assert restored.returncode == 0, restored.stdout[-3000:]
