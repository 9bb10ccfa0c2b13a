"""The test and bench broker (kafka_micro_devtools.localbroker) runs the group timings the
confluent_kafka role deploys, so that what they see of consumer groups is what a cluster does."""

from pathlib import Path

import yaml

from kafka_micro_devtools.localbroker import GROUP_TIMINGS

DEFAULTS = Path(__file__).resolve().parents[2] / "roles/confluent_kafka/defaults/main.yml"


def test_local_broker_group_timings_are_the_roles_defaults():
    defaults = yaml.safe_load(DEFAULTS.read_text())
    session = str(defaults["confluent_kafka_group_consumer_session_timeout_ms"])
    heartbeat = str(defaults["confluent_kafka_group_consumer_heartbeat_interval_ms"])
    assert {
        "group.consumer.session.timeout.ms": session,
        "group.consumer.min.session.timeout.ms": session,
        "group.consumer.heartbeat.interval.ms": heartbeat,
        "group.consumer.min.heartbeat.interval.ms": heartbeat,
    } == GROUP_TIMINGS
