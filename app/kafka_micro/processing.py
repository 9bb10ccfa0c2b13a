"""What the consumer does with a batch, in one pass: decode, keep statistics, optionally record."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

from confluent_kafka import KafkaError, KafkaException, Message

from kafka_micro.access import BrokerAccessError, denied
from kafka_micro.message import MalformedMessageError, decode
from kafka_micro.metrics import LatencyHistogram

log = logging.getLogger(__name__)

BatchProcessor = Callable[[list[Message]], dict[int, int]]
"""Processes one batch; returns the next offset of each partition in it, which the consumer
stores only after the call returns (at-least-once). Error events in the batch are passed to
``skip_error_event`` and neither processed nor stored."""

# Log each malformed message up to this many, then one in every _MALFORMED_LOG_EVERY.
_MALFORMED_LOGGED = 100
_MALFORMED_LOG_EVERY = 1000


class ConsumeStats:
    """Totals since start, plus latency samples since the last report.

    The samples of each report also go into ``latency_histogram`` (the metrics' histogram), so
    the metrics cost the batch loop nothing beyond the two samples it keeps anyway.
    """

    def __init__(self) -> None:
        self.messages = 0
        self.batches = 0
        self.malformed = 0
        self.latency_samples_ms: list[float] = []
        self.latency_histogram = LatencyHistogram()

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
        # consumer then joins again with a new client).
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consume error on partition %s: %s", message.partition(), error.str())


class StatsProcessor:
    """Decodes every message and tracks count, malformed messages and latency.

    Latency is sampled from the first and last message of each batch (one clock read
    per batch). With ``record``, appends ``PRODUCER SEQUENCE PARTITION OFFSET`` lines
    and flushes them before returning, i.e. before the offsets are stored.
    """

    def __init__(self, stats: ConsumeStats, record: TextIO | None = None) -> None:
        self.stats = stats
        self._record = record

    def __call__(self, messages: list[Message]) -> dict[int, int]:
        lines: list[str] | None = [] if self._record is not None else None
        next_offsets: dict[int, int] = {}
        first_sent = last_sent = 0
        processed = 0
        for message in messages:
            if message.error() is not None:
                skip_error_event(message)
                continue
            processed += 1
            partition = message.partition()
            offset = message.offset()
            # An error-free message always has a partition and an offset.
            next_offsets[partition] = offset + 1  # type: ignore[index,operator]
            try:
                producer_id, sequence, sent_ns = decode(message.value())
            except MalformedMessageError as error:
                self._count_malformed(message, error)
                continue
            if not first_sent:
                first_sent = sent_ns
            last_sent = sent_ns
            if lines is not None:
                lines.append(
                    f"{producer_id.decode(errors='replace')} {sequence} {partition} {offset}\n"
                )
        stats = self.stats
        if processed:
            stats.messages += processed
            stats.batches += 1
        if first_sent:
            now_ns = time.time_ns()
            stats.latency_samples_ms.append((now_ns - first_sent) / 1e6)
            stats.latency_samples_ms.append((now_ns - last_sent) / 1e6)
        if self._record is not None and lines:
            self._record.write("".join(lines))
            self._record.flush()
        return next_offsets

    def _count_malformed(self, message: Message, error: MalformedMessageError) -> None:
        self.stats.malformed += 1
        count = self.stats.malformed
        if count <= _MALFORMED_LOGGED or count % _MALFORMED_LOG_EVERY == 0:
            log.warning(
                "skipping malformed message at topic %s partition %s offset %s: %s "
                "(%d malformed so far)",
                message.topic(),
                message.partition(),
                message.offset(),
                error,
                count,
            )
