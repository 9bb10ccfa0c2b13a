"""``kafka-micro consume``: one group member, batches, at-least-once.

Offsets are stored only after a batch is processed (``enable.auto.offset.store=false``)
and librdkafka's auto commit sends the stored offsets every ``auto_commit_interval_ms``.
A per-batch synchronous commit would add a broker round trip per 100 messages; auto
commit of *stored* offsets loses nothing, since only processed offsets are stored, and
re-reads at most one commit interval after a crash. On revocation and on stop the
stored offsets are committed synchronously, so an orderly handover re-reads nothing.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.processing import BatchProcessor, ConsumeStats
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import Settings

log = logging.getLogger(__name__)


def _commit_stored(consumer: Consumer, why: str) -> None:
    """Synchronously commit the stored offsets; nothing stored is not an error."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as error:
        kafka_error = error.args[0]
        if isinstance(kafka_error, KafkaError) and kafka_error.code() == KafkaError._NO_OFFSET:
            return
        log.warning("commit on %s failed: %s", why, error)


class Membership:
    """Rebalance callbacks: tracks and logs the partitions this member owns."""

    def __init__(self) -> None:
        self.owned: set[int] = set()
        self.changes = 0

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.owned.update(partition.partition for partition in partitions)
        self._log("assigned", partitions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        _commit_stored(consumer, "revoke")
        self.owned.difference_update(partition.partition for partition in partitions)
        self._log("revoked", partitions)

    def on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost partitions may already belong to another member: committing would be wrong.
        self.owned.difference_update(partition.partition for partition in partitions)
        self._log("lost", partitions)

    def _log(self, what: str, partitions: list[TopicPartition]) -> None:
        self.changes += 1
        log.info(
            "partitions %s: %s; now owns %d partitions: %s",
            what,
            sorted(partition.partition for partition in partitions),
            len(self.owned),
            sorted(self.owned),
        )


class _Reporter:
    """Writes the periodic throughput line; reads lag from cached watermarks."""

    def __init__(self, consumer: Consumer, topic: str, stats: ConsumeStats) -> None:
        self._consumer = consumer
        self._topic = topic
        self._stats = stats
        self._last_time = time.monotonic()
        self._last_messages = 0

    def report(self, owned: set[int], now: float) -> None:
        stats = self._stats
        rate = (stats.messages - self._last_messages) / max(now - self._last_time, 1e-9)
        latency = stats.take_latency_percentiles()
        log.info(
            "consumed %d msgs (%.0f msg/s), batches %d (avg %.1f msgs), partitions %d, "
            "lag %s, e2e latency %s, malformed %d",
            stats.messages,
            rate,
            stats.batches,
            stats.messages / stats.batches if stats.batches else 0.0,
            len(owned),
            self._lag(owned),
            f"p50 {latency[0]:.1f} ms p99 {latency[1]:.1f} ms" if latency else "n/a",
            stats.malformed,
        )
        self._last_time = now
        self._last_messages = stats.messages

    def _lag(self, owned: set[int]) -> str:
        """Sum over owned partitions of cached high watermark minus position."""
        if not owned:
            return "0"
        partitions = [TopicPartition(self._topic, partition) for partition in sorted(owned)]
        try:
            positions = self._consumer.position(partitions)
            lag = 0
            for position in positions:
                _low, high = self._consumer.get_watermark_offsets(position, cached=True)
                if position.offset >= 0 and high >= 0:
                    lag += max(0, high - position.offset)
        except KafkaException as error:
            log.debug("lag unavailable: %s", error)
            return "n/a"
        return str(lag)


def run_consumer(
    settings: Settings, process: BatchProcessor, stats: ConsumeStats, stop: StopRequest
) -> int:
    """Consume until a stop signal; return the exit code."""
    options = settings.consumer
    errors = ClientErrors("consumer", stop)
    consumer = create_client(Consumer, client_config(settings, "consumer", errors))
    membership = Membership()
    consumer.subscribe(
        [settings.topic],
        on_assign=membership.on_assign,
        on_revoke=membership.on_revoke,
        on_lost=membership.on_lost,
    )
    log.info(
        "consuming %s on %s: group %r, protocol %s, member %s, batches of up to %d",
        settings.topic,
        settings.bootstrap_servers,
        options.group_id,
        options.group_protocol,
        f"static {options.instance_id!r}" if options.instance_id else "dynamic",
        options.batch_size,
    )
    reporter = _Reporter(consumer, settings.topic, stats)
    try:
        _consume_loop(
            settings=settings,
            consumer=consumer,
            process=process,
            stop=stop,
            membership=membership,
            reporter=reporter,
        )
    except KafkaException as error:
        log.error("consumer failed: %s", error)
        consumer.close()
        return 1
    if stop.signal_name:
        log.info("received %s: batch finished, committing and leaving the group", stop.signal_name)
    reporter.report(membership.owned, time.monotonic())
    _commit_stored(consumer, "stop")
    consumer.close()
    log.info(
        "final: consumed %d msgs in %d batches, malformed %d",
        stats.messages,
        stats.batches,
        stats.malformed,
    )
    return 1 if errors.fatal else 0


def _consume_loop(
    *,
    settings: Settings,
    consumer: Consumer,
    process: BatchProcessor,
    stop: StopRequest,
    membership: Membership,
    reporter: _Reporter,
) -> None:
    consume = consumer.consume
    topic = settings.topic
    batch_size = settings.consumer.batch_size
    timeout = settings.consumer.batch_timeout_s
    report_every = settings.report_interval_s
    next_report = time.monotonic() + report_every
    while not stop.is_set():
        messages = consume(batch_size, timeout)
        if messages:
            next_offsets: dict[int, int] = {}
            failed = False
            for message in messages:
                if message.error() is not None:
                    failed = True
                    continue
                # An error-free message always has a partition and an offset.
                next_offsets[message.partition()] = message.offset() + 1  # type: ignore[operator,index]
            if failed:
                messages = _without_errors(messages)
            if messages:
                process(messages)
                _store(consumer, topic, next_offsets)
        now = time.monotonic()
        if now >= next_report:
            reporter.report(membership.owned, now)
            next_report = now + report_every


def _store(consumer: Consumer, topic: str, next_offsets: dict[int, int]) -> None:
    """Mark the batch processed; auto commit (or the next sync commit) sends the offsets."""
    try:
        consumer.store_offsets(
            offsets=[
                TopicPartition(topic, partition, offset)
                for partition, offset in next_offsets.items()
            ]
        )
    except KafkaException as error:
        # A partition revoked meanwhile: its new owner re-reads these, at least once.
        log.warning("could not store offsets %s: %s", next_offsets, error)


def _without_errors(messages: list[Message]) -> list[Message]:
    good = []
    for message in messages:
        error = message.error()
        if error is None:
            good.append(message)
        elif error.fatal() or error.code() == KafkaError._FATAL:
            # librdkafka reports some fatal errors only as a message error code, not fatal().
            # E.g. a static member whose previous session still holds its instance id: only a
            # new process can rejoin, so stop and let systemd restart us.
            raise KafkaException(error)
        elif error.code() != KafkaError._PARTITION_EOF:
            log.warning("consume error on partition %s: %s", message.partition(), error.str())
    return good
