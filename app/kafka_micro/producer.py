"""``kafka-micro produce``: numbered messages, as fast as allowed, none dropped."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import CollectorRegistry

from kafka_micro.access import (
    AccessWatch,
    BrokerAccessError,
    ConnectDeadline,
    denied,
    raised_fatal,
)
from kafka_micro.ackledger import AckLedgerWriter
from kafka_micro.clients import ClientErrors, client_config, create_client
from kafka_micro.message import value_packer
from kafka_micro.metrics import (
    LibrdkafkaStatistics,
    ProducerMetrics,
    ProduceTotals,
    serve_metrics,
)
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import Settings
from kafka_micro.systemd import SystemdNotifier

log = logging.getLogger(__name__)

# How long to serve delivery reports when librdkafka's queue is full before retrying.
_BUFFER_FULL_POLL_S = 0.05
# Rate limiting sleeps at most this often, so a low rate still sends evenly.
_RATE_CHUNKS_PER_S = 100
_LOGGED_FAILURES = 10
# The final flush looks this often whether the brokers proved unusable meanwhile.
_FLUSH_STEP_S = 0.5
# After a complete flush the next statistics report is due within an interval; allow this more.
_FINAL_REPORT_MARGIN_S = 1.0
# A purge fails the messages at once, but those in flight are reported by the broker threads.
_PURGE_REPORTS_S = 5.0
_PURGED = frozenset((KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT))


@dataclass(frozen=True)
class ProduceLimits:
    """When to stop on its own; with neither, produce until SIGTERM/SIGINT."""

    count: int | None = None
    duration_s: float | None = None


class FailureCounter:
    """Delivery report callback: counts and logs failures; a denial fails ``access``.

    librdkafka reports only failures (``delivery.report.only.error``), which spares a
    Python call per delivered message; delivered messages are those neither failed nor
    still queued. Should the raw properties turn successful reports back on, they are ignored.
    The failures are also counted per partition, for the acknowledgement ledger. Messages the
    producer purged itself are counted apart (``purged``): they are undelivered, not failed.
    """

    __slots__ = ("_access", "by_partition", "failed", "purged")

    def __init__(self, access: AccessWatch) -> None:
        self._access = access
        self.failed = 0
        self.purged = 0
        self.by_partition: dict[int, int] = {}

    def __call__(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            return
        if error.code() in _PURGED:
            self.purged += 1
            return
        self.failed += 1
        partition = message.partition()
        if partition is not None:
            self.by_partition[partition] = self.by_partition.get(partition, 0) + 1
        cause = denied(error)
        if cause is not None:
            # Every later message would fail the same way: stop rather than count them.
            self._access.fail(cause)
        if self.failed <= _LOGGED_FAILURES:
            log.warning(
                "delivery failed (partition %s): %s%s",
                message.partition(),
                error.str(),
                "; further failures are counted, not logged"
                if self.failed == _LOGGED_FAILURES
                else "",
            )


class _Progress:
    """Writes the periodic throughput line; tells systemd when the producer works and how.

    Also holds the totals the metrics show (``totals``), renewed once per poll cycle.
    Delivered messages are counted from ``len(producer)``, which also counts pending events:
    the count shown never goes back, so that it stays a counter.
    """

    def __init__(
        self,
        message_bytes: int,
        failures: FailureCounter,
        producer: Producer,
        notifier: SystemdNotifier,
        deadline: ConnectDeadline,
    ) -> None:
        self._message_bytes = message_bytes
        self._failures = failures
        self._producer = producer
        self._notifier = notifier
        self._deadline = deadline
        self._last_time = time.monotonic()
        self._last_sent = 0
        self._delivered_most = 0
        self.ready = False
        self.totals: ProduceTotals = (0, 0, 0, 0)

    def counted(self, sent: int, queue_full: int) -> None:
        """Once per poll cycle: the totals as of now, for the next scrape."""
        delivered = self._delivered_given(sent, len(self._producer))
        self.totals = (sent, delivered, self._failures.failed, queue_full)

    def check_ready(self, sent: int) -> None:
        """READY=1 once a message is delivered: the brokers took one, so producing works."""
        if self._delivered(sent) > 0:
            self.ready = True
            self._deadline.reached()
            # Logged first, so that the journal shows why before systemd acts on READY=1.
            log.info("first message delivered: ready")
            self._notifier.ready()

    def report(self, sent: int, queue_full: int, now: float) -> None:
        elapsed = max(now - self._last_time, 1e-9)
        rate = (sent - self._last_sent) / elapsed
        in_queue = len(self._producer)
        log.info(
            "produced %d msgs (%.0f msg/s, %.2f MB/s), delivered %d, failed %d, in-queue %d, "
            "queue-full waits %d",
            sent,
            rate,
            rate * self._message_bytes / 1e6,
            self._delivered(sent),
            self._failures.failed,
            in_queue,
            queue_full,
        )
        self._notifier.status(f"produced {sent} msgs, {rate:.0f} msg/s")
        self._last_time = now
        self._last_sent = sent

    def check_connected(self, sent: int) -> None:
        """While stopping: a delivered message ends the connect deadline, with no READY=1."""
        if self._delivered(sent) > 0:
            self._deadline.reached()

    def _delivered(self, sent: int) -> int:
        """Messages neither failed nor still queued (see FailureCounter)."""
        return self._delivered_given(sent, _queued_messages(self._producer))

    def _delivered_given(self, sent: int, queued: int) -> int:
        self._delivered_most = max(self._delivered_most, sent - self._failures.failed - queued)
        return self._delivered_most


def run_producer(
    settings: Settings, limits: ProduceLimits, stop: StopRequest, notifier: SystemdNotifier
) -> int:
    """Produce until a limit or a stop signal, flush within the bound; return the exit code.

    ``/metrics`` is served throughout, from before the first connection (see ``metrics``).
    """
    registry = CollectorRegistry()
    with serve_metrics(settings.metrics, registry):
        return _run_producer(settings, limits, stop, notifier, registry)


def _run_producer(
    settings: Settings,
    limits: ProduceLimits,
    stop: StopRequest,
    notifier: SystemdNotifier,
    registry: CollectorRegistry,
) -> int:
    options = settings.producer
    errors = ClientErrors("producer", stop)
    failures = FailureCounter(errors.access)
    producer_id = options.resolved_id
    ledger = _open_ledger(settings, producer_id, failures)
    statistics = LibrdkafkaStatistics(on_report=ledger)
    producer = create_client(
        Producer,
        client_config(settings, "producer", errors, on_delivery=failures, on_statistics=statistics),
    )
    pack = value_packer(producer_id, options.message_size)
    message_bytes = len(pack(0, 0))
    deadline = ConnectDeadline(errors.access, settings.connect_timeout_s, "no message delivered")
    progress = _Progress(message_bytes, failures, producer, notifier, deadline)
    registry.register(ProducerMetrics(settings.topic, message_bytes, progress, statistics))
    log.info(
        "producing to %s on %s as %r: %d-byte messages, rate %s, %s",
        settings.topic,
        settings.bootstrap_servers,
        producer_id,
        message_bytes,
        f"{options.rate:g} msg/s" if options.rate else "unlimited",
        _describe_limits(limits),
    )
    # Kept running through the final flush: a short run ends its loop before any connection.
    deadline.start()
    try:
        sent, queue_full = _produce_loop(
            settings=settings,
            limits=limits,
            stop=stop,
            producer=producer,
            pack=pack,
            progress=progress,
        )
        notifier.stopping()
        if stop.signal_name:
            log.info("received %s: stopping after %d messages", stop.signal_name, sent)
        code = _finish(
            producer=producer,
            progress=progress,
            failures=failures,
            access=errors.access,
            sent=sent,
            queue_full=queue_full,
            flush_timeout_s=options.flush_timeout_s,
            ledger=ledger,
            statistics_interval_s=settings.metrics.statistics_interval_ms / 1000,
        )
    except (KafkaException, SystemError) as error:
        fatal = raised_fatal(error)
        if fatal is None:
            raise
        cause = denied(fatal)
        if cause is not None:
            raise BrokerAccessError(cause) from None
        raise KafkaException(fatal) from None
    finally:
        deadline.reached()
    errors.access.raise_failure()
    return 1 if errors.fatal else code


def _open_ledger(
    settings: Settings, producer_id: str, failures: FailureCounter
) -> AckLedgerWriter | None:
    """The acknowledgement ledger in ``producer.acked_ledger_dir``, ready; None when unset."""
    options = settings.producer
    if options.acked_ledger_dir is None:
        return None
    ledger = AckLedgerWriter(
        Path(options.acked_ledger_dir), producer_id, settings.topic, failures.by_partition
    )
    ledger.open(options.acked_ledger_keep)
    return ledger


def _describe_limits(limits: ProduceLimits) -> str:
    if limits.count is not None:
        return f"{limits.count} messages"
    if limits.duration_s is not None:
        return f"for {limits.duration_s:g} s"
    return "until stopped"


def _produce_loop(
    *,
    settings: Settings,
    limits: ProduceLimits,
    stop: StopRequest,
    producer: Producer,
    pack: Callable[[int, int], bytes],
    progress: _Progress,
) -> tuple[int, int]:
    """The hot loop: per message only pack, clock read and produce; the rest per chunk.

    Returns the number of messages produced and of waits for a full queue.
    """
    options = settings.producer
    topic = settings.topic
    produce = producer.produce
    poll = producer.poll
    time_ns = time.time_ns
    rate = options.rate
    chunk = options.poll_every
    if rate:
        chunk = max(1, min(chunk, int(rate / _RATE_CHUNKS_PER_S)))
    count = limits.count if limits.count is not None else math.inf
    start = time.monotonic()
    deadline = start + limits.duration_s if limits.duration_s is not None else math.inf
    report_every = settings.report_interval_s
    next_report = start + report_every
    sequence = 0
    queue_full = 0
    while sequence < count and not stop.is_set():
        chunk_end = int(min(sequence + chunk, count))
        while sequence < chunk_end:
            try:
                produce(topic, pack(sequence, time_ns()))
            except BufferError:
                # Queue full: let deliveries drain it, then send the same sequence again.
                queue_full += 1
                poll(_BUFFER_FULL_POLL_S)
                if stop.is_set():
                    break
                continue
            sequence += 1
        poll(0)
        progress.counted(sequence, queue_full)
        if not progress.ready:
            progress.check_ready(sequence)
        now = time.monotonic()
        if now >= next_report:
            progress.report(sequence, queue_full, now)
            next_report = now + report_every
        if now >= deadline:
            break
        if rate:
            ahead = start + sequence / rate - now
            if now + ahead >= deadline:
                stop.event.wait(deadline - now)
                break
            if ahead > 0:
                stop.event.wait(ahead)
    return sequence, queue_full


def _finish(
    *,
    producer: Producer,
    progress: _Progress,
    failures: FailureCounter,
    access: AccessWatch,
    sent: int,
    queue_full: int,
    flush_timeout_s: float,
    ledger: AckLedgerWriter | None,
    statistics_interval_s: float,
) -> int:
    started = time.monotonic()
    unflushed = _flush(
        producer, progress, access, sent, started + flush_timeout_s, queue_full=queue_full
    )
    flush_s = time.monotonic() - started
    if unflushed:
        # close() would wait for these without a bound; give up on them explicitly. (What
        # len(producer) counted may have been events only: then nothing is purged.)
        unflushed = _purge(producer, failures)
    if unflushed:
        log.error(
            "%d messages not delivered %s: purged",
            unflushed,
            "(the brokers cannot be used)"
            if access.failure is not None
            else f"within flush_timeout_s={flush_timeout_s:g}",
        )
    elif ledger is not None:
        # Everything is acknowledged or failed now: the next report makes the ledger exact.
        ledger.finish(producer.poll, statistics_interval_s + _FINAL_REPORT_MARGIN_S)
    producer.close()
    log.info(
        "final: produced %d, delivered %d, failed %d, unflushed %d, queue-full waits %d "
        "(flush took %.2f s)",
        sent,
        sent - failures.failed - unflushed,
        failures.failed,
        unflushed,
        queue_full,
        flush_s,
    )
    return 0 if failures.failed == 0 and unflushed == 0 else 1


def _flush(
    producer: Producer,
    progress: _Progress,
    access: AccessWatch,
    sent: int,
    deadline: float,
    *,
    queue_full: int,
) -> int:
    """flush() until ``deadline``, given up once the brokers proved unusable; returns unflushed."""
    while True:
        producer.flush(max(0.0, min(deadline - time.monotonic(), _FLUSH_STEP_S)))
        unflushed = _queued_messages(producer)
        progress.counted(sent, queue_full)
        progress.check_connected(sent)
        if not unflushed or access.failure is not None or time.monotonic() >= deadline:
            return unflushed


def _purge(producer: Producer, failures: FailureCounter) -> int:
    """Purges every message not yet acknowledged; returns how many, counted from their reports.

    ``len(producer)`` cannot tell: events (errors, statistics) keep arriving while the brokers
    are unreachable, and it counts them too.
    """
    producer.purge(in_queue=True, in_flight=True, blocking=False)
    producer.flush(_PURGE_REPORTS_S)
    return failures.purged


def _queued_messages(producer: Producer) -> int:
    """Messages not yet acknowledged or failed.

    ``len(producer)`` also counts the events (statistics, errors, reports) waiting to be served,
    as does flush()'s result: serving them first leaves the messages.
    """
    producer.poll(0)
    return len(producer)
