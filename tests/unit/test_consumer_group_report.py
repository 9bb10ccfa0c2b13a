"""The site report's per-host summary of the consumer group, from kafka-consumer-groups output.

The inputs (tests/unit/data) are the tool's output as Kafka 4.0 printed it on the
production-shaped lab, cut to three members and edited into the states a live group passes
through: a partition nobody owns yet and a member without partitions. Host names end in a
number, as instance ids (HOST-N) do.
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

MODULE_PATH = (
    Path(__file__).resolve().parents[2] / "roles/kafka_app/filter_plugins/consumer_group_report.py"
)

DATA = Path(__file__).resolve().parent / "data"
MEMBERS = (DATA / "consumer-groups-members.txt").read_text()
OFFSETS = (DATA / "consumer-groups-offsets.txt").read_text()


@pytest.fixture(scope="module")
def report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("consumer_group_report", MODULE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
