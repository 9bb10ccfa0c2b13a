"""Dead letters: messages the consumer cannot process, kept in a topic of their own with why.

A dead letter is the message as it was read (key, value, headers) plus headers that say why it
could not be processed (``reason``, a word from ``DEAD_LETTER_REASONS``, and ``error``, a
sentence), where it came from (source topic, partition, offset, timestamp) and who gave up on it
(consumer group and instance). The consumer writes a batch's dead letters and waits until every
one is acknowledged by all in-sync replicas before it stores the batch's offsets: a dead letter
is never lost, and a message that could not be dead-lettered is read again by the next run.

A dead letter the dead-letter topic refuses as too large is written once more on its own (the
brokers refuse a whole batch); refused again, it is written cut to the first
``TRUNCATED_VALUE_BYTES`` bytes of its value and without its own headers, with headers saying so
(the value's size and SHA-256, how many headers were dropped): accounted for, never dropped.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, get_args

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message, Producer

from kafka_micro.access import denied, raised_fatal
from kafka_micro.clients import ClientErrors, client_config, client_name, create_client
from kafka_micro.message import MalformedReason
from kafka_micro.settings import Settings

log = logging.getLogger(__name__)

DeadLetterReason = MalformedReason | Literal["processing-error"]
"""Why a message was dead-lettered: a malformed value, or an exception while processing it."""
DEAD_LETTER_REASONS: Final[tuple[DeadLetterReason, ...]] = (
    *get_args(MalformedReason),
    "processing-error",
)

HEADER_PREFIX: Final = "kafka-micro.dlq."
REASON: Final = HEADER_PREFIX + "reason"
ERROR: Final = HEADER_PREFIX + "error"
SOURCE_TOPIC: Final = HEADER_PREFIX + "source.topic"
SOURCE_PARTITION: Final = HEADER_PREFIX + "source.partition"
SOURCE_OFFSET: Final = HEADER_PREFIX + "source.offset"
SOURCE_TIMESTAMP: Final = HEADER_PREFIX + "source.timestamp"
CONSUMER_GROUP: Final = HEADER_PREFIX + "consumer.group"
CONSUMER_INSTANCE: Final = HEADER_PREFIX + "consumer.instance"
VALUE_SIZE: Final = HEADER_PREFIX + "value.size"
VALUE_TRUNCATED: Final = HEADER_PREFIX + "value.truncated"
VALUE_SHA256: Final = HEADER_PREFIX + "value.sha256"
HEADERS_DROPPED: Final = HEADER_PREFIX + "headers.dropped"
REPLAY_OF: Final = HEADER_PREFIX + "replay.of"
"""On a note that ``dlq replay`` wrote into the dead-letter topic: the dead letter it replayed."""
REPLAYED_TO: Final = HEADER_PREFIX + "replay.to"
"""On such a note: where the replayed message went (topic/partition/offset)."""
REPLAYED_FROM: Final = "kafka-micro.replayed-from"
"""On a replayed message in the source topic: the dead letter it came from, TOPIC/PARTITION/OFFSET.
Outside HEADER_PREFIX: it is the message's own, kept if the message is dead-lettered again."""

TRUNCATED_VALUE_BYTES: Final = 1024
# An exception's text can be anything; a header should stay readable.
_ERROR_TEXT_CHARS: Final = 1000
# How often a wait for acknowledgements looks whether the client has failed meanwhile.
_WAIT_STEP_S: Final = 0.5

Headers = list[tuple[str, str | bytes | None]]
# librdkafka's RD_KAFKA_PARTITION_UA: the partitioner chooses.
_ANY_PARTITION: Final = -1


class DeadLetterError(Exception):
    """Dead letters could not be written: the consumer stops without storing offsets past them."""


@dataclass(frozen=True)
class DeadLetter:
    """A message the consumer could not process, and why."""

    message: Message
    reason: DeadLetterReason
    error: str


class DeadLetterSink(Protocol):
    """Takes a batch's dead letters; returns once they are safe, or raises DeadLetterError."""

    def write(self, letters: Sequence[DeadLetter]) -> None: ...


def dead_letter_sink(settings: Settings) -> DeadLetterSink:
    """The consumer's dead-letter topic, or, when it has none, a stop at the first dead letter."""
    topic = settings.dead_letter_topic()
    if topic is None:
        return StopAtDeadLetter()
    return DeadLetterWriter(settings, topic)


class StopAtDeadLetter:
    """No dead-letter topic (``consumer.dead_letter_topic = ''``): a bad message stops the consumer.

    Skipping it would lose it; stopping leaves its offset unstored, so it is there to be dealt
    with (a topic to write it to, a fixed consumer) when the consumer runs again.
    """

    def write(self, letters: Sequence[DeadLetter]) -> None:
        first = letters[0]
        raise DeadLetterError(
            f"cannot process {describe_source(first.message)} ({first.reason}: {first.error}) "
            "and consumer.dead_letter_topic is '' (no dead-letter topic); stopping without "
            "storing its offset"
        )


def message_headers(message: Message) -> Headers:
    """A message's headers in their order, as librdkafka gives them; [] when it has none."""
    headers = message.headers()
    return list(headers) if isinstance(headers, list) else []


def describe_source(message: Message) -> str:
    return (
        f"the message at topic {message.topic()} partition {message.partition()} "
        f"offset {message.offset()}"
    )


@dataclass
class Outgoing:
    """One record to write, and what became of it: ``delivered`` once acknowledged, or why not."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    partition: int = _ANY_PARTITION
    delivered: tuple[int, int] | None = None
    """Partition and offset it was written at."""
    failure: str | None = None
    too_large: bool = False

    def report(self, error: KafkaError | None, message: Message) -> None:
        """librdkafka's delivery report of this record."""
        if error is not None:
            self.fail(error)
            return
        # A delivered message always has a partition and an offset.
        self.delivered = (message.partition(), message.offset())  # type: ignore[assignment]

    def fail(self, error: KafkaError) -> None:
        self.too_large = error.code() in {
            KafkaError.MSG_SIZE_TOO_LARGE,
            KafkaError.RECORD_LIST_TOO_LARGE,
        }
        self.failure = denied(error) or error.str()


class AcknowledgedWriter:
    """A producer whose ``write`` returns only once every record is acknowledged or has failed.

    Made on first use: a consumer that never meets a bad message never connects it.
    """

    def __init__(self, settings: Settings, kind: Literal["dead-letter", "replay"]) -> None:
        self._settings = settings
        self._kind: Literal["dead-letter", "replay"] = kind
        self._errors = ClientErrors(kind)
        self._producer: Producer | None = None

    def write(self, records: Sequence[Outgoing]) -> None:
        """Write ``records``; each then has where it was ``delivered``, or its ``failure``."""
        producer = self._connect()
        try:
            for record in records:
                self._produce(producer, record)
            self._wait(producer, records)
        except (KafkaException, SystemError) as error:
            # A fatal error (an idempotent producer denied its id, say) is raised by flush or
            # poll rather than reported; see access.raised_fatal.
            fatal = raised_fatal(error)
            if fatal is None:
                raise
            self._fail_undelivered(records, denied(fatal) or fatal.str())

    def _connect(self) -> Producer:
        if self._producer is None:
            config = client_config(self._settings, self._kind, self._errors)
            self._producer = create_client(Producer, config)
        return self._producer

    def _produce(self, producer: Producer, record: Outgoing) -> None:
        while True:
            try:
                producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    partition=record.partition,
                    headers=record.headers,
                    on_delivery=record.report,
                )
            except BufferError:
                # librdkafka's queue is full: make room by serving delivery reports.
                producer.poll(_WAIT_STEP_S)
                continue
            except KafkaException as error:
                # Refused before sending, e.g. larger than the client's message.max.bytes.
                record.fail(error.args[0])
            return

    def _wait(self, producer: Producer, records: Sequence[Outgoing]) -> None:
        """Serve delivery reports until none is due; librdkafka fails a record at its timeout."""
        while producer.flush(_WAIT_STEP_S) > 0:
            failure = self._errors.access.failure
            if failure is None and not self._errors.fatal:
                continue
            self._fail_undelivered(records, failure or "the client failed with a fatal error")
            return

    @staticmethod
    def _fail_undelivered(records: Sequence[Outgoing], failure: str) -> None:
        for record in records:
            if record.delivered is None and record.failure is None:
                record.failure = failure


class DeadLetterWriter:
    """Writes dead letters to the dead-letter topic, each acknowledged before ``write`` returns."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self._writer = AcknowledgedWriter(settings, "dead-letter")
        self._identity: Headers = [
            (CONSUMER_GROUP, settings.consumer.group_id.encode()),
            (CONSUMER_INSTANCE, client_name(settings, "dead-letter").encode()),
        ]

    def write(self, letters: Sequence[DeadLetter]) -> None:
        records = [self._record(letter) for letter in letters]
        self._writer.write(records)
        for index, record in enumerate(records):
            if record.too_large:
                records[index] = self._alone_or_truncated(letters[index])
        failed = [
            (letter, record.failure)
            for letter, record in zip(letters, records, strict=True)
            if record.failure is not None
        ]
        if failed:
            raise DeadLetterError(self._failure(failed, len(letters)))
        for letter, record in zip(letters, records, strict=True):
            log.debug(
                "%s dead-lettered to %s at %s",
                describe_source(letter.message),
                self.topic,
                record.delivered,
            )

    def _record(self, letter: DeadLetter) -> Outgoing:
        message = letter.message
        value = message.value()
        headers = message_headers(message)
        headers.extend(self._why_and_where(letter))
        if value is not None:
            headers.append((VALUE_SIZE, str(len(value)).encode()))
        return Outgoing(self.topic, message.key(), value, headers)

    def _alone_or_truncated(self, letter: DeadLetter) -> Outgoing:
        """Write a dead letter refused as too large once more on its own, since the brokers
        refuse a whole batch that is too large; cut it short only if it is still refused."""
        record = self._record(letter)
        self._writer.write([record])
        if not record.too_large:
            return record
        record = self._truncated(letter)
        self._writer.write([record])
        return record

    def _truncated(self, letter: DeadLetter) -> Outgoing:
        message = letter.message
        value = message.value() or b""
        headers: Headers = self._why_and_where(letter)
        headers.extend(
            [
                (VALUE_SIZE, str(len(value)).encode()),
                (VALUE_TRUNCATED, b"true"),
                (VALUE_SHA256, hashlib.sha256(value).hexdigest().encode()),
                (HEADERS_DROPPED, str(len(message_headers(message))).encode()),
            ]
        )
        return Outgoing(self.topic, message.key(), value[:TRUNCATED_VALUE_BYTES], headers)

    def _why_and_where(self, letter: DeadLetter) -> Headers:
        message = letter.message
        headers: Headers = [
            (REASON, letter.reason.encode()),
            (ERROR, letter.error[:_ERROR_TEXT_CHARS].encode()),
            (SOURCE_TOPIC, (message.topic() or "").encode()),
            (SOURCE_PARTITION, str(message.partition()).encode()),
            (SOURCE_OFFSET, str(message.offset()).encode()),
        ]
        timestamp_type, timestamp_ms = message.timestamp()
        if timestamp_type != TIMESTAMP_NOT_AVAILABLE:
            headers.append((SOURCE_TIMESTAMP, str(timestamp_ms).encode()))
        headers.extend(self._identity)
        return headers

    def _failure(self, failed: list[tuple[DeadLetter, str]], total: int) -> str:
        letter, failure = failed[0]
        # Every refusal of access reads "not authorized for the ..." (access.denied).
        hint = (
            f" (the consumer's principal needs Write on topic {self.topic})"
            if failure.startswith("not authorized")
            else ""
        )
        return (
            f"could not write {len(failed)} of {total} dead letters to topic {self.topic}; the "
            f"first is {describe_source(letter.message)} ({letter.reason}): {failure}{hint}; "
            "the batch's offsets are not stored, so it is read again when the consumer restarts"
        )
