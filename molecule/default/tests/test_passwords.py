"""New SCRAM passwords, given to a running deployment: Kafka learns each one before the units
that log in with it restart, so the health checks and the pipeline keep working."""

import json
import os
import re

import testinfra.utils.ansible_runner
from groupstate import ADMIN, INSTANCES, KAFKA_BIN, bootstrap
from siteplay import run_site

# The one instance runs Kafka and the app.
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(
    os.environ["MOLECULE_INVENTORY_FILE"]
).get_hosts("kafka")

NEW_PASSWORDS = json.dumps(
    {
        "kafka_cluster_admin_password": "Rotated-Admin-Pass-1",
        "kafka_cluster_broker_password": "Rotated-Broker-Pass-1",
        "kafka_cluster_producer_password": "Rotated-Producer-Pass-1",
        "kafka_cluster_consumer_password": "Rotated-Consumer-Pass-1",
    }
)
# Type=notify: a consumer restarted with a password Kafka does not know never gets ready.
CONSUMERS = tuple(f"kafka-consumer@{number}.service" for number in range(1, INSTANCES + 1))
UNITS = ("confluent-kafka.service", "kafka-producer.service", *CONSUMERS)


def main_pids(host):
    return {
        unit: host.check_output(f"systemctl show --property=MainPID --value {unit}")
        for unit in UNITS
    }


def test_changed_passwords_roll_the_units_that_use_them_and_a_rerun_changes_nothing(host):
    # The new passwords stay: the tests after this one read the credentials from the instance's
    # files, and verify destroys the instance. Rotating back would cost one more full run of
    # site.yml, and molecule's idempotence step has already proven the original ones.
    before = main_pids(host)
    changed = run_site("-e", NEW_PASSWORDS)
    assert changed.returncode == 0, changed.stdout[-4000:]
    after = main_pids(host)
    for unit in UNITS:
        assert after[unit] not in ("0", before[unit]), unit
    assert "Rotated-" not in changed.stdout
    assert host.file("/etc/kafka/admin-client.properties").contains("Rotated-Admin-Pass-1")
    assert host.file("/etc/kafka-micro/kafka-micro.toml").contains("Rotated-Consumer-Pass-1")
    listed = host.run(
        f"{KAFKA_BIN}/kafka-topics --bootstrap-server {bootstrap(host)} {ADMIN} --list"
    )
    assert listed.rc == 0, listed.stderr[-2000:]
    assert host.service("kafka-producer.service").is_running

    again = run_site("-e", NEW_PASSWORDS)
    assert again.returncode == 0, again.stdout[-4000:]
    assert re.search(r"changed=0\s", again.stdout), again.stdout[-3000:]
