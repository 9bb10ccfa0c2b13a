"""Every Kafka node's and app host's units hardened, as declared and as the kernel applies it."""

import os

import pytest
import testinfra
import testinfra.utils.ansible_runner
from hardening import (
    assert_app_processes_confined,
    assert_app_units_declare_hardening,
    assert_kafka_server_confined,
    assert_kafka_unit_declares_hardening,
)

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)


def host_named(name):
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY)


@pytest.mark.parametrize("name", RUNNER.get_hosts("kafka"))
def test_the_kafka_server_is_hardened_and_confined(name):
    node = host_named(name)
    assert_kafka_unit_declares_hardening(node)
    assert_kafka_server_confined(node)


@pytest.mark.parametrize("name", RUNNER.get_hosts("kafka_app"))
def test_the_producer_and_consumers_are_hardened_and_confined(name):
    app_host = host_named(name)
    assert_app_units_declare_hardening(app_host)
    assert_app_processes_confined(app_host)
