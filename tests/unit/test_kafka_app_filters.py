"""The kafka_app role's filters: the site report's per-host summary of the consumer group, from
kafka-consumer-groups output, and `systemctl show` output read as data.

The inputs (tests/unit/data) are the tool's output as Kafka 4.0 printed it on the
production-shaped lab, cut to three members and edited into the states a live group passes
through: a partition nobody owns yet and a member without partitions. Host names end in a
number, as instance ids (HOST-N) do.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

FILTERS = Path(__file__).resolve().parents[2] / "roles/kafka_app/filter_plugins"

DATA = Path(__file__).resolve().parent / "data"
MEMBERS = (DATA / "consumer-groups-members.txt").read_text()
OFFSETS = (DATA / "consumer-groups-offsets.txt").read_text()


def load_filter(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, FILTERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load_filter("consumer_group_report")


def test_summary_counts_members_partitions_and_lag_per_host(report: ModuleType) -> None:
    lines = report.consumer_group_report(MEMBERS, OFFSETS, "kafka-micro")
    assert lines[0] == (
        "Consumer group kafka-micro: 3 members on 2 hosts, 3 of 4 partitions owned, total lag 557"
    )
    assert lines[1].split() == ["lab-app-1", "1", "members", "2", "partitions", "lag", "507"]
    # The member without partitions still counts on its host.
    assert lines[2].split() == ["lab-app-2", "2", "members", "1", "partitions", "lag", "50"]


def test_partitions_are_listed_in_order_with_their_owner(report: ModuleType) -> None:
    lines = report.consumer_group_report(MEMBERS, OFFSETS, "kafka-micro")
    table = [line.split() for line in lines[4:]]
    assert table == [
        ["test-topic:3", "-", "40", "-", "-"],
        ["test-topic:10", "100", "150", "50", "lab-app-2-6"],
        ["test-topic:20", "8712", "8923", "211", "lab-app-1-2"],
        ["test-topic:21", "7374", "7670", "296", "lab-app-1-2"],
    ]


def test_an_empty_group_reports_no_members(report: ModuleType) -> None:
    lines = report.consumer_group_report("", "", "kafka-micro")
    assert lines[0].startswith("Consumer group kafka-micro: 0 members on 0 hosts, 0 of 0")


# As systemd 252 printed it for a target, an enabled running instance, a running instance that
# is not enabled, and a unit without a unit file; a glob repeats units already listed.
SYSTEMCTL_SHOW = """Id=kafka-consumers.target
Wants=kafka-consumer@1.service kafka-consumer@7.service
SubState=active
UnitFileState=enabled

Id=kafka-consumer@1.service
Wants=
SubState=running
UnitFileState=enabled

Id=kafka-consumer@2.service
Wants=
SubState=running
UnitFileState=disabled

Id=nothere.service
Wants=
SubState=dead
UnitFileState=

Id=kafka-consumer@1.service
Wants=
SubState=running
UnitFileState=enabled
"""


def test_systemctl_show_output_becomes_one_entry_per_unit() -> None:
    units = load_filter("systemctl_show").systemctl_show(SYSTEMCTL_SHOW)
    assert list(units) == [
        "kafka-consumers.target",
        "kafka-consumer@1.service",
        "kafka-consumer@2.service",
        "nothere.service",
    ]
    assert units["kafka-consumers.target"]["Wants"].split() == [
        "kafka-consumer@1.service",
        "kafka-consumer@7.service",
    ]
    assert units["kafka-consumer@2.service"] == {
        "Id": "kafka-consumer@2.service",
        "Wants": "",
        "SubState": "running",
        "UnitFileState": "disabled",
    }
    assert units["nothere.service"]["UnitFileState"] == ""
