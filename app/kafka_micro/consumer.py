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

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from kafka_micro.access import BrokerAccessError, ConnectDeadline
from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.deadletter import DeadLetterError
from kafka_micro.membership import (
    InstanceIdHeldError,
    Membership,
    Readiness,
    await_instance_id_retry,
    commit_stored,
    instance_id_held,
)
from kafka_micro.metrics import ConsumerMetrics, LibrdkafkaStatistics, serve_metrics
from kafka_micro.processing import BatchProcessor, ConsumeStats
from kafka_micro.runtime import StopRequest, replace_process
from kafka_micro.settings import Settings
from kafka_micro.systemd import SystemdNotifier

log = logging.getLogger(__name__)


class _Reporter:
    """Writes the periodic throughput line; reads lag from cached watermarks."""

    def __init__(
        self, consumer: Consumer, topic: str, stats: ConsumeStats, notifier: SystemdNotifier
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._stats = stats
        self._notifier = notifier
        self._last_time = time.monotonic()
        self._last_messages = 0

    def report(self, owned: set[int], now: float) -> None:
        stats = self._stats
        rate = (stats.messages - self._last_messages) / max(now - self._last_time, 1e-9)
        latency = stats.take_latency_percentiles()
        lag = self._lag(owned)
        log.info(
            "consumed %d msgs (%.0f msg/s), batches %d (avg %.1f msgs), partitions %d, "
            "lag %s, e2e latency %s, dead-lettered %d",
            stats.messages,
            rate,
            stats.batches,
            stats.messages / stats.batches if stats.batches else 0.0,
            len(owned),
            lag,
            f"p50 {latency[0]:.1f} ms p99 {latency[1]:.1f} ms" if latency else "n/a",
            stats.dead_lettered,
        )
        self._notifier.status(
            f"consumed {stats.messages} msgs, {rate:.0f} msg/s, {len(owned)} partitions, lag {lag}"
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
    settings: Settings,
    process: BatchProcessor,
    stats: ConsumeStats,
    stop: StopRequest,
    notifier: SystemdNotifier,
) -> int:
    """Consume until a stop signal; return the exit code.

    ``/metrics`` is served throughout, from before joining the group (see ``metrics``).
    """
    registry = CollectorRegistry()
    with serve_metrics(settings.metrics, registry, consumer=settings.consumer):
        return _run_consumer(settings, process, stats, stop, notifier, registry=registry)


def _run_consumer(
    settings: Settings,
    process: BatchProcessor,
    stats: ConsumeStats,
    stop: StopRequest,
    notifier: SystemdNotifier,
    *,
    registry: CollectorRegistry,
) -> int:
    options = settings.consumer
    errors = ClientErrors("consumer", stop)
    statistics = LibrdkafkaStatistics()
    deadline = ConnectDeadline(
        errors.access, settings.connect_timeout_s, f"not in group {options.group_id!r}"
    )
    readiness = Readiness(notifier, deadline)
    membership = Membership(readiness)
    registry.register(ConsumerMetrics(settings.topic, stats, membership, readiness, statistics))
    log.info(
        "consuming %s on %s: group %r, protocol %s, member %s, batches of up to %d",
        settings.topic,
        settings.bootstrap_servers,
        options.group_id,
        options.group_protocol,
        f"static {options.instance_id!r}" if options.instance_id else "dynamic",
        options.batch_size,
    )
    deadline.start()
    consumer = create_client(
        Consumer, client_config(settings, "consumer", errors, on_statistics=statistics)
    )
    try:
        return _run_member(
            settings=settings,
            consumer=consumer,
            errors=errors,
            process=process,
            stats=stats,
            stop=stop,
            membership=membership,
            readiness=readiness,
            notifier=notifier,
        )
    except InstanceIdHeldError as error:
        log.warning("%s; waiting for it (no restart needed)", error)
        await_instance_id_retry(stop)
        # librdkafka gives up on this refusal for good, and closing or freeing that client
        # aborted the process once (assertion in rd_kafka_enq_once_del_source_return, seen in
        # the fault suite): a fresh process image joins instead, with the same PID.
        replace_process(stop)
    finally:
        deadline.reached()


def _run_member(
    *,
    settings: Settings,
    consumer: Consumer,
    errors: ClientErrors,
    process: BatchProcessor,
    stats: ConsumeStats,
    stop: StopRequest,
    membership: Membership,
    readiness: Readiness,
    notifier: SystemdNotifier,
) -> int:
    """Join with ``consumer`` and consume until stopped; closes it and returns the exit code.

    Raises InstanceIdHeldError, with the consumer left as it is (see ``_run_consumer``), when the
    group refused this member's instance id: before it was ever ready (a predecessor killed
    without leaving), or later (its own earlier session, fenced while the broker still held it).
    """
    consumer.subscribe(
        [settings.topic],
        on_assign=membership.on_assign,
        on_revoke=membership.on_revoke,
        on_lost=membership.on_lost,
    )
    reporter = _Reporter(consumer, settings.topic, stats, notifier)
    try:
        _consume_loop(
            settings=settings,
            consumer=consumer,
            process=process,
            stop=stop,
            membership=membership,
            readiness=readiness,
            reporter=reporter,
        )
    except KafkaException as error:
        if instance_id_held(error):
            # Not closed: see _run_consumer. Nothing stored since the last commit can be
            # committed by a client that librdkafka has given up on; its successor re-reads it.
            raise InstanceIdHeldError(settings.consumer) from error
        consumer.close()
        notifier.stopping()
        log.error("consumer failed: %s", error)
        return 1
    except DeadLetterError as error:
        # Dead letters not written: nothing past them was stored, so nothing past them is
        # committed; the next member reads them again.
        consumer.close()
        notifier.stopping()
        log.error("consumer failed: %s", error)
        return 1
    except BrokerAccessError:
        notifier.stopping()
        consumer.close()
        raise
    notifier.stopping()
    if errors.access.failure is not None:
        # Nothing can be committed to brokers that cannot be used; close() still leaves the group.
        consumer.close()
        raise BrokerAccessError(errors.access.failure)
    if stop.signal_name:
        log.info("received %s: batch finished, committing and leaving the group", stop.signal_name)
    reporter.report(membership.owned, time.monotonic())
    commit_stored(consumer, "stop")
    consumer.close()
    log.info(
        "final: consumed %d msgs in %d batches, dead-lettered %d",
        stats.messages,
        stats.batches,
        stats.dead_lettered,
    )
    return 1 if errors.fatal else 0


def _consume_loop(
    *,
    settings: Settings,
    consumer: Consumer,
    process: BatchProcessor,
    stop: StopRequest,
    membership: Membership,
    readiness: Readiness,
    reporter: _Reporter,
) -> None:
    """The hot loop: a batch from two consume calls, one pass over it (``process``), one store."""
    consume = consumer.consume
    topic = settings.topic
    batch_size = settings.consumer.batch_size
    timeout = settings.consumer.batch_timeout_s
    fill_wait = settings.consumer.batch_wait_ms / 1000
    rest = batch_size - 1
    report_every = settings.report_interval_s
    next_report = time.monotonic() + report_every
    while not stop.is_set():
        # Only the first message is waited for up to the timeout; the batch then takes what
        # arrives within the fill wait, so a slow trickle is not held back to fill it.
        handovers = membership.handovers
        messages = consume(1, timeout)
        if messages and rest:
            messages += consume(rest, fill_wait)
        if messages and membership.handovers != handovers:
            messages = drop_handed_over(messages, membership.owned)
        if messages:
            next_offsets = process(messages)
            if next_offsets:
                _store(consumer, topic, next_offsets)
        now = time.monotonic()
        if not readiness.ready:
            readiness.check(now, consumer)
        if now >= next_report:
            reporter.report(membership.owned, now)
            next_report = now + report_every


def drop_handed_over(messages: list[Message], owned: set[int]) -> list[Message]:
    """Drop what a rebalance inside the consume calls took away, before it is processed.

    librdkafka runs the revocation callback inside ``consume``, after some of the batch came
    from the partitions it revokes. Their offsets were committed on revoke up to the previous
    batch; the new owner reads these from there, so processing them here too would be a
    second, needless delivery.
    """
    return [m for m in messages if m.error() is not None or m.partition() in owned]


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
