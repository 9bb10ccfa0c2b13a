"""Reads the pipeline's state from an app host, as its consumers see the cluster.

Copied to an app host by the fault suite and run there with the deployed app's Python, so that
it connects exactly as the consumers do: their configuration and credentials, through the app's
one function that builds Kafka clients. The Admin API answers in a fraction of a second where
Kafka's command-line tools start a JVM each time.

    python pipeline_probe.py state             one JSON line: partitions, members, lag
    python pipeline_probe.py sample FILE       a JSON line of committed offsets every 2 s
"""

import json
import sys
import time
from pathlib import Path

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.settings import Settings, load_settings

CONFIG = Path("/etc/kafka-micro/kafka-micro.toml")
SAMPLE_INTERVAL_S = 2.0
TIMEOUT_S = 10


def committed(admin: AdminClient, settings: Settings) -> dict[int, int]:
    group = settings.consumer.group_id
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)
    return {
        tp.partition: tp.offset
        for tp in result[group].result().topic_partitions
        if tp.topic == settings.topic and tp.offset >= 0
    }


def state(admin: AdminClient, settings: Settings) -> dict:
    topic = admin.describe_topics(TopicCollection([settings.topic]), request_timeout=TIMEOUT_S)
    partitions = {
        p.id: {
            "leader": p.leader.id if p.leader is not None else -1,
            "replicas": [node.id for node in p.replicas],
            "isr": [node.id for node in p.isr],
        }
        for p in topic[settings.topic].result().partitions
    }
    group = settings.consumer.group_id
    described = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group].result()
    members = {
        member.group_instance_id or member.member_id: sorted(
            tp.partition
            for tp in (member.assignment.topic_partitions if member.assignment else [])
            if tp.topic == settings.topic
        )
        for member in described.members
    }
    ends = admin.list_offsets(
        {TopicPartition(settings.topic, p): OffsetSpec.latest() for p in partitions},
        request_timeout=TIMEOUT_S,
    )
    end_offsets = {tp.partition: future.result().offset for tp, future in ends.items()}
    commits = committed(admin, settings)
    lag = {p: end - commits.get(p, 0) for p, end in end_offsets.items()}
    return {"partitions": partitions, "members": members, "lag": lag}


def sample(admin: AdminClient, settings: Settings, output: Path) -> None:
    with output.open("a", encoding="utf-8") as sink:
        while True:
            line: dict[str, object] = {"time": time.time()}
            try:
                line["offsets"] = committed(admin, settings)
            except KafkaException as error:
                line["error"] = str(error)
            sink.write(json.dumps(line) + "\n")
            sink.flush()
            time.sleep(SAMPLE_INTERVAL_S)


def main(argv: list[str]) -> None:
    settings = load_settings(CONFIG)
    admin = create_client(AdminClient, client_config(settings, "admin", ClientErrors("admin")))
    if argv[0] == "state":
        print(json.dumps(state(admin, settings)))
    else:
        sample(admin, settings, Path(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
