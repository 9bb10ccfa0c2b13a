"""Messages the consumer cannot process go to the dead-letter topic, and can be sent back.

Every kind of bad record the consumer can meet, interleaved with good ones, against a real
broker: each bad one lands in ``TOPIC.dlq`` with its key, value and headers and the headers that
say why and where from, every good one is processed, the consumer keeps running and its committed
offsets pass them all. Then ``dlq inspect`` lists them and ``dlq replay`` sends them back once.
"""

import hashlib
import json
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from apprunner import committed_offsets, read_topic, wait_until
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_micro.deadletter import TRUNCATED_VALUE_BYTES
from kafka_micro.message import MAGIC, value_packer

pytestmark = pytest.mark.integration

MAX_VALUE_BYTES = 4096
# The dead-letter topic of the first test takes records of at most this size, so one dead
# letter (a value of TOO_LARGE_FOR_THE_DLQ bytes) must be cut short to be kept.
DLQ_MAX_MESSAGE_BYTES = 20000
TOO_LARGE_FOR_THE_DLQ = 50000
FAILING = (500, 501)
TESTS_DIR = Path(__file__).parent
_REPORTED = re.compile(r"dead-lettered (\d+)$", re.MULTILINE)


@dataclass
class Record:
    """A record to write straight to the topic, and the reason it must be dead-lettered for."""

    value: bytes | None
    reason: str | None = None
    key: bytes | None = None
    headers: list = field(default_factory=list)
    placed: tuple[int, int] | None = None


def packed(sequence: int, size: int = 64, producer: str = "good") -> bytes:
    return value_packer(producer, size)(sequence, time.time_ns())


def with_id(id_bytes: bytes, announced: int | None = None, magic: int = MAGIC) -> bytes:
    length = len(id_bytes) if announced is None else announced
    return struct.pack("!BBQQ", magic, length, 1, time.time_ns()) + id_bytes


def bad_records() -> list[Record]:
    """One of every kind of record the consumer cannot process (23 of them)."""
    many_headers = [(f"h{number}", f"value {number}".encode()) for number in range(300)]
    return [
        Record(None, "no-value"),
        Record(None, "no-value", key=b"user-1"),  # a tombstone
        Record(None, "no-value", headers=[("trace-id", b"abc")]),  # headers only
        Record(b"", "empty-value"),
        Record(b"", "empty-value", key=b"k"),
        Record(b"\xa1", "too-short"),
        Record(with_id(b"")[:-1], "too-short"),  # a header cut one byte short
        Record(b'{"json": "not kafka-micro\'s format"}', "wrong-magic"),
        Record(bytes(18), "wrong-magic"),
        Record(with_id(b"p", magic=0xA2), "wrong-magic"),
        Record(packed(7, size=0, producer="producer")[:-3], "producer-id-overrun"),
        Record(with_id(b"", announced=255), "producer-id-overrun"),
        Record(with_id(b"\xff\xfe"), "producer-id-not-utf8"),
        Record(with_id("é".encode()[:1]), "producer-id-not-utf8"),
        Record(with_id(b"ok\xed\xa0\x80"), "producer-id-not-utf8"),  # an encoded surrogate
        Record(packed(8, size=MAX_VALUE_BYTES + 904), "too-large"),
        Record(b"x" * (MAX_VALUE_BYTES + 1), "too-large"),
        Record(b"y" * TOO_LARGE_FOR_THE_DLQ, "too-large", headers=[("kept", b"no")]),
        Record(packed(FAILING[0]), "processing-error"),
        Record(packed(FAILING[1]), "processing-error", key=b"key", headers=[("h", b"v")]),
        Record(b"not ours, with many headers", "wrong-magic", headers=many_headers),
        Record(b"not ours, binary key", "wrong-magic", key=bytes([0, 255, 16, 1])),
        Record(
            b"not ours, odd headers",
            "wrong-magic",
            headers=[("same", b"1"), ("same", b"2"), ("empty", b""), ("null", None)],
        ),
    ]


def good_records(count: int) -> list[Record]:
    records = [Record(packed(sequence)) for sequence in range(count)]
    records.append(Record(packed(count, size=MAX_VALUE_BYTES)))  # exactly at the bound: good
    records.append(Record(packed(count + 1), key=b"good-key", headers=[("good", b"yes")]))
    return records


def interleave(bad: list[Record], good: list[Record]) -> list[Record]:
    mixed = []
    for index in range(max(len(bad), len(good))):
        mixed.extend(group[index] for group in (good, bad) if index < len(group))
    return mixed


def inject(bootstrap: str, topic: str, records: list[Record], partitions: int, **config) -> None:
    """Write the records round-robin over the partitions; note where each landed."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **config})
    for index, record in enumerate(records):

        def placed(error, message, record=record):
            assert error is None, error
            record.placed = (message.partition(), message.offset())

        producer.produce(
            topic,
            record.value,
            record.key,
            partition=index % partitions,
            headers=record.headers,
            on_delivery=placed,
        )
    assert producer.flush(30) == 0


def create_dead_letter_topic(bootstrap: str, topic: str, **config) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=2, replication_factor=1, config=config)
    admin.create_topics([new])[topic].result(30)


def headers_of(message) -> dict[str, str]:
    """The dead-letter headers of a record, as text."""
    return {
        name: value.decode()
        for name, value in message.headers() or []
        if name.startswith("kafka-micro.dlq.")
    }


def own_headers(message) -> list:
    return [(name, value) for name, value in message.headers() or [] if "dlq" not in name]


def dead_lettered(process) -> int:
    """The dead letters the consumer's last report line counts (0 before the first)."""
    counts = _REPORTED.findall(process.log())
    return int(counts[-1]) if counts else 0


def failing_consumer(app, name, failing=FAILING, **settings):
    return app.start(
        name,
        "consume",
        record=True,
        module="failing_processing",
        environ={
            "PYTHONPATH": str(TESTS_DIR),
            "FAILING_SEQUENCES": ",".join(map(str, failing)),
        },
        **settings,
    )


def test_every_bad_record_is_dead_lettered_with_why_and_where_and_the_rest_is_processed(app):
    partitions = 3
    create_dead_letter_topic(
        app.bootstrap, f"{app.topic}.dlq", **{"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}
    )
    app.create_topic(partitions=partitions)
    bad, good = bad_records(), good_records(60)
    assert len({(record.reason, record.value) for record in bad}) >= 20
    inject(app.bootstrap, app.topic, interleave(bad, good), partitions)

    consumer = failing_consumer(app, "consumer", consumer__max_value_bytes=str(MAX_VALUE_BYTES))
    wait_until(lambda: len(consumer.records()) >= len(good), 90, "every good record processed")
    wait_until(
        lambda: dead_lettered(consumer) == len(bad), 30, f"a report of {len(bad)} dead letters"
    )
    assert consumer.popen.poll() is None, consumer.log()
    assert consumer.stop() == 0, consumer.log()

    assert sorted(sequence for _p, sequence, _part, _off in consumer.records()) == list(
        range(len(good))
    )
    dead_letters = {
        (
            int(headers["kafka-micro.dlq.source.partition"]),
            int(headers["kafka-micro.dlq.source.offset"]),
        ): (
            message,
            headers,
        )
        for message in read_topic(app.bootstrap, f"{app.topic}.dlq")
        for headers in [headers_of(message)]
    }
    assert len(dead_letters) == len(bad)
    for record in bad:
        message, headers = dead_letters[record.placed]
        assert headers["kafka-micro.dlq.reason"] == record.reason, (record, headers)
        assert headers["kafka-micro.dlq.error"]
        assert headers["kafka-micro.dlq.source.topic"] == app.topic
        assert int(headers["kafka-micro.dlq.source.timestamp"]) > 0
        assert headers["kafka-micro.dlq.consumer.group"] == app.group
        assert headers["kafka-micro.dlq.consumer.instance"]
        assert message.key() == record.key
        if len(record.value or b"") >= TOO_LARGE_FOR_THE_DLQ:
            # Refused by the dead-letter topic whole: kept cut short, with what was cut.
            assert message.value() == record.value[:TRUNCATED_VALUE_BYTES]
            assert headers["kafka-micro.dlq.value.truncated"] == "true"
            assert headers["kafka-micro.dlq.value.size"] == str(len(record.value))
            expected_sha256 = hashlib.sha256(record.value).hexdigest()
            assert headers["kafka-micro.dlq.value.sha256"] == expected_sha256
            assert headers["kafka-micro.dlq.headers.dropped"] == "1"
            assert own_headers(message) == []
            continue
        assert message.value() == record.value
        assert own_headers(message) == record.headers
        assert "kafka-micro.dlq.value.truncated" not in headers
        if record.value is not None:
            assert headers["kafka-micro.dlq.value.size"] == str(len(record.value))
    processing_errors = [
        headers["kafka-micro.dlq.error"]
        for _message, headers in dead_letters.values()
        if headers["kafka-micro.dlq.reason"] == "processing-error"
    ]
    assert sorted(processing_errors) == [
        f"RuntimeError: bug: cannot process sequence {sequence}" for sequence in FAILING
    ]

    ends = {partition: 0 for partition in range(partitions)}
    for record in bad + good:
        partition, offset = record.placed
        ends[partition] = max(ends[partition], offset + 1)
    assert committed_offsets(app, partitions) == ends


def dlq(app, *args, **settings):
    result = app.run("dlq", *args, **settings)
    assert "Traceback" not in result.stderr
    return result


def inspect(app, *args, **settings) -> dict:
    result = dlq(app, "inspect", "--json", *args, **settings)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_inspect_lists_the_dead_letters_and_replay_sends_each_back_once(app):
    app.create_topic(partitions=2)
    failing = (10, 20)
    good = [
        Record(
            packed(sequence, producer="fixme"), "processing-error" if sequence in failing else None
        )
        for sequence in range(100)
    ]
    bad = [
        Record(b"not ours: the first one", "wrong-magic"),
        Record(b"not ours: the second one", "wrong-magic"),
    ]
    inject(app.bootstrap, app.topic, interleave(bad, good), 2)

    buggy = failing_consumer(app, "buggy", failing)
    wait_until(lambda: dead_lettered(buggy) == 4, 90, "four dead letters")
    wait_until(lambda: len(buggy.records()) == 98, 30, "98 records processed")
    assert buggy.stop() == 0, buggy.log()

    listed = inspect(app)
    assert listed["by_reason"] == {"processing-error": 2, "wrong-magic": 2}
    assert listed["selected"] == 4
    letters = listed["dead_letters"]
    where = {
        (letter["source"]["partition"], letter["source"]["offset"]): letter for letter in letters
    }
    for record in bad + [record for record in good if record.reason]:
        letter = where[record.placed]
        assert letter["reason"] == record.reason
        assert letter["source"]["topic"] == app.topic
        assert letter["value_size"] == len(record.value)
        assert letter["consumer"]["group"] == app.group
        assert letter["replayed_to"] is None
        assert letter["dead_lettered_at"].endswith("Z")
    assert {letter["error"] for letter in letters if letter["reason"] == "processing-error"} == {
        f"RuntimeError: bug: cannot process sequence {sequence}" for sequence in failing
    }
    assert [
        letter["reason"] for letter in inspect(app, "--reason", "wrong-magic")["dead_letters"]
    ] == [
        "wrong-magic",
        "wrong-magic",
    ]
    from_partition_1 = inspect(app, "--source-partition", "1")["dead_letters"]
    assert {letter["source"]["partition"] for letter in from_partition_1} == {1}
    assert len(from_partition_1) < 4
    assert inspect(app, "--limit", "1")["selected"] == 4
    with_values = inspect(app, "--reason", "wrong-magic", "--value-bytes", "3")
    assert {letter["value_head_hex"] for letter in with_values["dead_letters"]} == {b"not".hex()}
    table = dlq(app, "inspect", "--value-bytes", "3")
    assert table.returncode == 0, table.stderr
    assert "processing-error" in table.stdout
    assert "value: 6e 6f 74" in table.stdout
    assert "4 dead letters (processing-error 2, wrong-magic 2), 4 selected" in table.stdout

    fixed = app.start("fixed", "consume", record=True)
    wait_until(lambda: fixed.owned() == [0, 1], 60, "the fixed consumer to own both partitions")

    dry_run = dlq(app, "replay", "--reason", "processing-error", "--dry-run")
    assert dry_run.returncode == 0, dry_run.stderr
    assert "2 would be replayed" in dry_run.stdout
    assert all(letter["replayed_to"] is None for letter in inspect(app)["dead_letters"])

    replayed = dlq(app, "replay", "--reason", "processing-error", "--json")
    assert replayed.returncode == 0, replayed.stderr
    report = json.loads(replayed.stdout)
    assert len(report["replayed"]) == 2
    assert report["failed"] == [] and report["unnoted"] == []
    wait_until(lambda: len(fixed.records()) == 2, 60, "the replayed records processed")
    assert sorted(sequence for _p, sequence, _part, _off in fixed.records()) == list(failing)

    again = json.loads(dlq(app, "replay", "--reason", "processing-error", "--json").stdout)
    assert (again["replayed"], again["already_replayed"]) == ([], 2)

    still_bad = dlq(app, "replay", "--reason", "wrong-magic", "--limit", "1", "--json")
    assert still_bad.returncode == 0, still_bad.stderr
    [replay] = json.loads(still_bad.stdout)["replayed"]
    wait_until(lambda: dead_lettered(fixed) == 1, 60, "the still-bad one dead-lettered")
    after = inspect(app)
    assert after["by_reason"] == {"processing-error": 2, "wrong-magic": 3}
    assert after["replay_notes"] == 3
    by_location = {
        f"{letter['partition']}/{letter['offset']}": letter for letter in after["dead_letters"]
    }
    assert by_location[replay["dead_letter"]]["replayed_to"] == replay["to"]
    [again_dead] = [letter for letter in after["dead_letters"] if letter["replayed_from"]]
    assert again_dead["replayed_from"] == f"{app.topic}.dlq/{replay['dead_letter']}"
    assert again_dead["reason"] == "wrong-magic"
    assert f"{again_dead['source']['topic']}/{again_dead['source']['partition']}/" in replay["to"]
    assert fixed.stop() == 0, fixed.log()


def test_without_a_dead_letter_topic_a_bad_record_stops_the_consumer_before_its_offset(app):
    app.create_topic(partitions=1)
    records = [
        Record(packed(0)),
        Record(packed(1)),
        Record(b"garbage without the magic byte"),
        Record(packed(2)),
    ]
    inject(app.bootstrap, app.topic, records, 1)
    consumer = app.start("consumer", "consume", record=True, consumer__dead_letter_topic="")
    assert consumer.wait(60) == 1
    log = consumer.log()
    assert f"at topic {app.topic} partition 0 offset 2 (wrong-magic)" in log
    assert "consumer.dead_letter_topic is '' (no dead-letter topic)" in log
    assert "Traceback" not in log
    assert committed_offsets(app, 1)[0] <= 2
    assert all(offset < 2 for _p, _s, _part, offset in consumer.records())
