"""What the consumer does with a batch: decode, keep statistics, optionally record."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TextIO

from confluent_kafka import Message

from kafka_micro.message import MalformedMessageError, decode

log = logging.getLogger(__name__)

BatchProcessor = Callable[[list[Message]], None]
"""Processes one batch; offsets are stored only after it returns."""

# Log each malformed message up to this many, then one in every _MALFORMED_LOG_EVERY.
_MALFORMED_LOGGED = 100
_MALFORMED_LOG_EVERY = 1000


class ConsumeStats:
    """Totals since start, plus latency samples since the last report."""

    def __init__(self) -> None:
        self.messages = 0
        self.batches = 0
        self.malformed = 0
        self.max_sequence: dict[bytes, int] = {}
        self.latency_samples_ms: list[float] = []

    def take_latency_percentiles(self) -> tuple[float, float] | None:
        """p50 and p99 of the samples since the last call, which are then dropped."""
        samples = sorted(self.latency_samples_ms)
        self.latency_samples_ms.clear()
        if not samples:
            return None
        last = len(samples) - 1
        return samples[round(last * 0.50)], samples[round(last * 0.99)]


class StatsProcessor:
    """Decodes every message and tracks count, per-producer max sequence and latency.

    Latency is sampled from the first and last message of each batch (one clock read
    per batch). With ``record``, appends ``PRODUCER SEQUENCE PARTITION OFFSET`` lines
    and flushes them before returning, i.e. before the offsets are stored.
    """

    def __init__(self, stats: ConsumeStats, record: TextIO | None = None) -> None:
        self.stats = stats
        self._record = record

    def __call__(self, messages: list[Message]) -> None:
        stats = self.stats
        max_sequence = stats.max_sequence
        lines: list[str] | None = [] if self._record is not None else None
        first_sent = last_sent = 0
        for message in messages:
            try:
                producer_id, sequence, sent_ns = decode(message.value())
            except MalformedMessageError as error:
                self._count_malformed(message, error)
                continue
            if sequence > max_sequence.get(producer_id, -1):
                max_sequence[producer_id] = sequence
            if not first_sent:
                first_sent = sent_ns
            last_sent = sent_ns
            if lines is not None:
                lines.append(
                    f"{producer_id.decode(errors='replace')} {sequence} "
                    f"{message.partition()} {message.offset()}\n"
                )
        stats.messages += len(messages)
        stats.batches += 1
        if first_sent:
            now_ns = time.time_ns()
            stats.latency_samples_ms.append((now_ns - first_sent) / 1e6)
            stats.latency_samples_ms.append((now_ns - last_sent) / 1e6)
        if self._record is not None and lines:
            self._record.write("".join(lines))
            self._record.flush()

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
