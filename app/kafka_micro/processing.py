"""What the consumer does with a batch, in one pass: check each value, keep statistics, record.

A message that cannot be processed (a malformed value, one longer than
``consumer.max_value_bytes``, an exception while processing it) becomes a dead letter
(``deadletter``): the batch's dead letters are written, and acknowledged, before the batch's
offsets are returned for storing. The pass pays for them only when there are some.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException, Message

from kafka_micro.access import BrokerAccessError, denied
from kafka_micro.deadletter import DeadLetter, DeadLetterReason, DeadLetterSink, describe_source
from kafka_micro.message import (
    ID_OFFSET,
    MAGIC,
    MalformedMessageError,
    send_time_ns,
    value_decoder,
)
from kafka_micro.metrics import LatencyHistogram

log = logging.getLogger(__name__)

BatchProcessor = Callable[[list[Message]], dict[int, int]]
"""Processes one batch; returns the next offset of each partition in it, which the consumer
stores only after the call returns (at-least-once). Error events in the batch are passed to
``skip_error_event`` and neither processed nor stored."""

# Log each dead letter up to this many, then one in every _DEAD_LETTER_LOG_EVERY.
_DEAD_LETTERS_LOGGED = 100
_DEAD_LETTER_LOG_EVERY = 1000


class ConsumeStats:
    """Totals since start, plus latency samples since the last report.

    The samples of each report also go into ``latency_histogram`` (the metrics' histogram), so
    the metrics cost the batch loop nothing beyond the two samples it keeps anyway.
    """

    def __init__(self) -> None:
        self.messages = 0
        self.batches = 0
        self.dead_letters: Counter[DeadLetterReason] = Counter()
        self.latency_samples_ms: list[float] = []
        self.latency_histogram = LatencyHistogram()

    @property
    def dead_lettered(self) -> int:
        """Messages dead-lettered since start, whatever the reason."""
        return self.dead_letters.total()

    def take_latency_percentiles(self) -> tuple[float, float] | None:
        """p50 and p99 of the samples since the last call, which are then dropped."""
        samples = sorted(self.latency_samples_ms)
        self.latency_samples_ms.clear()
        self.latency_histogram.add_sorted_ms(samples)
        if not samples:
            return None
        last = len(samples) - 1
        return samples[round(last * 0.50)], samples[round(last * 0.99)]


def skip_error_event(message: Message) -> None:
    """An error event in a batch: log it, or raise if the consumer must stop.

    Raises KafkaException for a fatal error, BrokerAccessError for a denied topic or group.
    """
    error = message.error()
    if error is None:
        return
    cause = denied(error)
    if cause is not None:
        raise BrokerAccessError(cause)
    if error.fatal() or error.code() == KafkaError._FATAL:
        # librdkafka reports some fatal errors only as a message error code, not fatal(),
        # e.g. a static member refused the instance id its predecessor still holds (the
        # consumer then waits for it and runs again: see consumer.py).
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consume error on partition %s: %s", message.partition(), error.str())


class StatsProcessor:
    """Checks every message's format and tracks count, dead letters and latency.

    Latency is sampled from the first and last message of each batch (one clock read
    per batch). With ``record``, appends ``PRODUCER SEQUENCE PARTITION OFFSET`` lines
    and flushes them before returning, i.e. before the offsets are stored.
    """

    def __init__(
        self,
        stats: ConsumeStats,
        dead_letters: DeadLetterSink,
        max_value_bytes: int,
        record: TextIO | None = None,
    ) -> None:
        self.stats = stats
        self._dead_letters = dead_letters
        self._decode = value_decoder(max_value_bytes)
        self._max_value_bytes = max_value_bytes
        self._record = record

    def __call__(self, messages: list[Message]) -> dict[int, int]:
        lines: list[str] | None = [] if self._record is not None else None
        next_offsets: dict[int, int] = {}
        first_value = last_value = None
        run_partition = -1
        run_last: Message | None = None
        events = 0
        dead: list[DeadLetter] | None = None
        decode = self._decode
        max_value_bytes = self._max_value_bytes
        for message in messages:
            if message.error() is not None:
                skip_error_event(message)
                events += 1
                continue
            # A batch holds runs of one partition's messages: the offset to store is read once
            # a run ends, from its last message. (An error-free message has both.)
            if (partition := message.partition()) != run_partition:
                if run_last is not None:
                    next_offsets[run_partition] = run_last.offset() + 1  # type: ignore[operator]
                run_partition = partition  # type: ignore[assignment]
            run_last = message
            value = message.value()
            # No cost while nothing raises (zero-cost exception handling since Python 3.11).
            try:
                # decode()'s checks, inline and with nothing unpacked, for a value whose
                # producer id is ASCII: a call per message would cost half as much again.
                # Any other value is decode()'s to accept (a UTF-8 id) or to reject.
                if value is None or not (
                    ID_OFFSET <= (size := len(value)) <= max_value_bytes
                    and value[0] == MAGIC
                    and ID_OFFSET + value[1] <= size
                    and value[ID_OFFSET : ID_OFFSET + value[1]].isascii()
                ):
                    decode(value)
                if first_value is None:
                    first_value = value
                last_value = value
                if lines is not None:
                    producer_id, sequence, _ = decode(value)
                    offset = message.offset()
                    lines.append(f"{producer_id.decode()} {sequence} {partition} {offset}\n")
            except Exception as error:
                # Whatever failed, the message is kept, as a dead letter.
                if dead is None:
                    dead = []
                dead.append(self._dead_letter(message, error))
        if run_last is not None:
            next_offsets[run_partition] = run_last.offset() + 1  # type: ignore[operator]
        if dead is not None:
            self._dead_letters.write(dead)
        self._account(len(messages) - events, first_value, last_value, lines)
        return next_offsets

    def _account(
        self,
        processed: int,
        first_value: bytes | None,
        last_value: bytes | None,
        lines: list[str] | None,
    ) -> None:
        """The batch's counts and latency samples; its record lines, written and flushed."""
        stats = self.stats
        if processed:
            stats.messages += processed
            stats.batches += 1
        if first_value is not None and last_value is not None:
            now_ns = time.time_ns()
            stats.latency_samples_ms.append((now_ns - send_time_ns(first_value)) / 1e6)
            stats.latency_samples_ms.append((now_ns - send_time_ns(last_value)) / 1e6)
        if self._record is not None and lines:
            self._record.write("".join(lines))
            self._record.flush()

    def _dead_letter(self, message: Message, error: Exception) -> DeadLetter:
        if isinstance(error, MalformedMessageError):
            letter = DeadLetter(message, error.reason, str(error))
        else:
            letter = DeadLetter(message, "processing-error", f"{type(error).__name__}: {error}")
        self.stats.dead_letters[letter.reason] += 1
        count = self.stats.dead_lettered
        if count <= _DEAD_LETTERS_LOGGED or count % _DEAD_LETTER_LOG_EVERY == 0:
            log.warning(
                "dead letter: %s (%s): %s (%d dead letters so far)",
                describe_source(message),
                letter.reason,
                letter.error,
                count,
            )
        return letter
