"""Prometheus ``/metrics`` of the producer and consumer processes: the series and the endpoint.

Each process builds a ``CollectorRegistry`` of its own and serves it (``serve_metrics``). Every
value is read when Prometheus scrapes, from what the process keeps anyway, so the hot loops make
no metric call per message:

- the producer's totals, stored once per poll cycle (``ProducerProgress.totals``);
- the consumer's counts, kept once per batch by ``ConsumeStats`` (dead letters as they happen),
  and its end-to-end latency samples (first and last message of each batch), bucketed once per
  report (``LatencyHistogram``);
- librdkafka's statistics (queue depth, broker round-trip times, consumer lag), which librdkafka
  hands to ``LibrdkafkaStatistics`` every ``metrics.statistics_interval_ms`` from within the
  loop's own poll or consume call.

The series and their labels are documented in roles/kafka_app/README.md (Metrics), which alerts
are written against: rename nothing without changing it.
"""

from __future__ import annotations

import bisect
import errno
import importlib.metadata
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from confluent_kafka import libversion
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from pydantic import BaseModel, ValidationError

from kafka_micro.deadletter import DEAD_LETTER_REASONS
from kafka_micro.settings import ConfigError, ConsumerSettings, MetricsSettings

if TYPE_CHECKING:
    from kafka_micro.membership import Membership, Readiness
    from kafka_micro.processing import ConsumeStats

PREFIX: Final = "kafka_micro_"
# End-to-end latency bucket bounds in seconds: a healthy pipeline is in the first few (linger.ms
# plus a fetch), a consumer catching up on a backlog in the last ones.
LATENCY_BUCKETS_S: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
_MICROSECONDS: Final = 1e6
_MILLISECONDS: Final = 1e3
_MAX_PORT: Final = 65535

log = logging.getLogger(__name__)


# --- librdkafka's statistics (statistics.interval.ms), only the fields the metrics use ---


class _RoundTrip(BaseModel):
    avg: int
    p99: int
    cnt: int


class _Broker(BaseModel):
    nodeid: int
    rtt: _RoundTrip


class _Partition(BaseModel):
    partition: int
    consumer_lag: int
    msgs: int
    acked_msgid: int


class _Topic(BaseModel):
    partitions: dict[str, _Partition]


class _Statistics(BaseModel):
    type: str
    ts: int
    msg_cnt: int
    msg_size: int
    brokers: dict[str, _Broker]
    topics: dict[str, _Topic]


class ProducedPartition(NamedTuple):
    """A producer's progress in one partition, in librdkafka's numbering of its messages there.

    librdkafka numbers the messages of each partition 1, 2, 3... as they are queued to it
    (its msgid); for an idempotent producer the brokers accept them in that order only.
    """

    enqueued: int
    """Messages queued to the partition so far (``msgs``): the highest msgid given."""
    acked_msgid: int
    """The highest msgid the brokers acknowledged (``acked_msgid``; idempotent producer)."""


class RoundTrip(NamedTuple):
    """A broker's request round-trip time over the last statistics interval, in seconds."""

    avg_s: float
    p99_s: float


@dataclass(frozen=True)
class ClientStatistics:
    """What the metrics take from one librdkafka statistics report."""

    queue_messages: int = 0
    """Messages waiting in the producer's queues or in flight (``msg_cnt``)."""
    queue_bytes: int = 0
    """Their size (``msg_size``)."""
    broker_rtt: Mapping[int, RoundTrip] = field(default_factory=dict)
    """By broker node id; brokers that answered no request in the interval are left out."""
    consumer_lag: Mapping[tuple[str, int], int] = field(default_factory=dict)
    """By (topic, partition): high watermark minus committed offset, where both are known."""
    produced: Mapping[tuple[str, int], ProducedPartition] = field(default_factory=dict)
    """Producer only, by (topic, partition): what was queued there and what acknowledged."""
    made_at_us: int = 0
    """When librdkafka made the report (``ts``), on its clock: CLOCK_MONOTONIC in microseconds,
    the clock of Python's ``time.monotonic`` on Linux."""


def parse_statistics(text: str) -> ClientStatistics:
    """The figures of a librdkafka statistics JSON report; raises ValidationError if malformed."""
    report = _Statistics.model_validate_json(text)
    return ClientStatistics(
        queue_messages=report.msg_cnt,
        queue_bytes=report.msg_size,
        broker_rtt={
            # Bootstrap and coordinator entries (node id -1) repeat a real broker's connection.
            broker.nodeid: RoundTrip(broker.rtt.avg / _MICROSECONDS, broker.rtt.p99 / _MICROSECONDS)
            for broker in report.brokers.values()
            if broker.nodeid >= 0 and broker.rtt.cnt > 0
        },
        consumer_lag={
            # Partition -1 is librdkafka's queue of messages not yet assigned a partition;
            # a lag of -1 means the committed offset or the watermark is not known yet.
            (name, partition.partition): partition.consumer_lag
            for name, topic in report.topics.items()
            for partition in topic.partitions.values()
            if partition.partition >= 0 and partition.consumer_lag >= 0
        },
        produced={
            (name, partition.partition): ProducedPartition(partition.msgs, partition.acked_msgid)
            for name, topic in report.topics.items()
            for partition in topic.partitions.values()
            if report.type == "producer" and partition.partition >= 0
        },
        made_at_us=report.ts,
    )


class LibrdkafkaStatistics:
    """librdkafka's ``stats_cb``: keeps the latest report's figures for the next scrape, and
    hands each to ``on_report`` (the producer's acknowledgement ledger), if given.

    Called on the loop's thread inside poll or consume; an exception here would surface there,
    so a report that cannot be read is logged (once) and skipped.
    """

    def __init__(self, on_report: Callable[[ClientStatistics], None] | None = None) -> None:
        self.latest = ClientStatistics()
        self._on_report = on_report
        self._warned = False

    def __call__(self, text: str) -> None:
        try:
            self.latest = parse_statistics(text)
        except ValidationError as error:
            if not self._warned:
                self._warned = True
                log.warning("librdkafka statistics not understood, metrics not renewed: %s", error)
            return
        if self._on_report is not None:
            self._on_report(self.latest)


# --- End-to-end latency, bucketed in bulk ---


class _HistogramState(NamedTuple):
    cumulative: tuple[int, ...]
    """Samples up to each bound of LATENCY_BUCKETS_S, cumulative like Prometheus' buckets."""
    samples: int
    sum_s: float


class LatencyHistogram:
    """End-to-end latency samples, added a sorted list at a time (one bisect per bucket).

    The state is replaced whole, so a scrape from another thread sees one consistent state.
    """

    def __init__(self) -> None:
        self._bounds_ms = [bound * _MILLISECONDS for bound in LATENCY_BUCKETS_S]
        self.state = _HistogramState((0,) * len(self._bounds_ms), 0, 0.0)

    def add_sorted_ms(self, samples_ms: Sequence[float]) -> None:
        """Add latencies in milliseconds, sorted in ascending order."""
        if not samples_ms:
            return
        old = self.state
        self.state = _HistogramState(
            tuple(
                total + bisect.bisect_right(samples_ms, bound)
                for total, bound in zip(old.cumulative, self._bounds_ms, strict=True)
            ),
            old.samples + len(samples_ms),
            old.sum_s + sum(samples_ms) / _MILLISECONDS,
        )


# --- The series of each kind of process ---


ProduceTotals = tuple[int, int, int, int]
"""Messages produced, delivered and failed, and queue-full waits, since start.

A plain tuple: the loop stores one per poll cycle, and building a NamedTuple there took about
four times as long (1 us against 0.3 us, measured on this project's VM).
"""


class ProducerProgress(Protocol):
    """What the producer's loop keeps that its series show."""

    @property
    def ready(self) -> bool: ...

    @property
    def totals(self) -> ProduceTotals: ...


class ProducerMetrics:
    """The series of ``kafka-micro produce``."""

    def __init__(
        self,
        topic: str,
        message_bytes: int,
        progress: ProducerProgress,
        statistics: LibrdkafkaStatistics,
    ) -> None:
        self._info = _info_labels(topic)
        self._message_bytes = message_bytes
        self._progress = progress
        self._statistics = statistics

    def collect(self) -> Iterator[Metric]:
        yield from _process_series(self._info, ready=self._progress.ready)
        produced, delivered, failed, queue_full_waits = self._progress.totals
        size = self._message_bytes
        for what, messages, doc in (
            ("produced", produced, "handed to librdkafka"),
            ("delivered", delivered, "acknowledged by the brokers"),
            ("delivery_failed", failed, "whose delivery failed"),
        ):
            yield _counter(f"{what}_messages", f"Messages {doc}.", messages)
            yield _counter(f"{what}_bytes", f"Value bytes of the messages {doc}.", messages * size)
        yield _counter(
            "queue_full_waits",
            "Times produce() found librdkafka's queue full and waited for deliveries.",
            queue_full_waits,
        )
        statistics = self._statistics.latest
        yield GaugeMetricFamily(
            f"{PREFIX}producer_queue_messages",
            "Messages queued in librdkafka or in flight (msg_cnt), as of its last statistics.",
            value=statistics.queue_messages,
        )
        yield GaugeMetricFamily(
            f"{PREFIX}producer_queue_bytes",
            "Bytes of those messages (msg_size), as of librdkafka's last statistics.",
            value=statistics.queue_bytes,
        )
        yield from _round_trips(statistics)


class ConsumerMetrics:
    """The series of ``kafka-micro consume``."""

    def __init__(
        self,
        topic: str,
        stats: ConsumeStats,
        membership: Membership,
        readiness: Readiness,
        statistics: LibrdkafkaStatistics,
    ) -> None:
        self._topic = topic
        self._info = _info_labels(topic)
        self._stats = stats
        self._membership = membership
        self._readiness = readiness
        self._statistics = statistics

    def collect(self) -> Iterator[Metric]:
        yield from _process_series(self._info, ready=self._readiness.ready)
        stats = self._stats
        yield _counter("consumed_messages", "Messages processed.", stats.messages)
        yield _counter("consumed_batches", "Batches processed.", stats.batches)
        dead_lettered = CounterMetricFamily(
            f"{PREFIX}dead_lettered_messages",
            "Messages that could not be processed, written to the dead-letter topic (or, with "
            "none, the one that stopped the consumer), by reason.",
            labels=["reason"],
        )
        # Every reason from the start, at 0: a series that appears only with its first dead
        # letter would hide that one from increase().
        for reason in DEAD_LETTER_REASONS:
            dead_lettered.add_metric([reason], stats.dead_letters[reason])
        yield dead_lettered
        membership = self._membership
        rebalances = CounterMetricFamily(
            f"{PREFIX}rebalances",
            "Rebalance callbacks that moved partitions, by event: assigned, revoked or lost.",
            labels=["event"],
        )
        for event, count in membership.rebalances.items():
            rebalances.add_metric([event], count)
        yield rebalances
        owned = membership.owned
        yield GaugeMetricFamily(
            f"{PREFIX}assigned_partitions", "Partitions this member owns.", value=len(owned)
        )
        statistics = self._statistics.latest
        lag = GaugeMetricFamily(
            f"{PREFIX}consumer_lag_messages",
            "Per owned partition: high watermark minus committed offset, as of librdkafka's "
            "last statistics; absent until the partition has a committed offset.",
            labels=["topic", "partition"],
        )
        for (topic, partition), messages in sorted(statistics.consumer_lag.items()):
            if topic == self._topic and partition in owned:
                lag.add_metric([topic, str(partition)], messages)
        yield lag
        histogram = stats.latency_histogram.state
        yield HistogramMetricFamily(
            f"{PREFIX}e2e_latency_seconds",
            "Send-to-processing time of the first and last message of each batch, added at "
            "each report_interval_s.",
            buckets=[
                *(
                    (f"{bound:g}", count)
                    for bound, count in zip(LATENCY_BUCKETS_S, histogram.cumulative, strict=True)
                ),
                ("+Inf", histogram.samples),
            ],
            sum_value=histogram.sum_s,
        )
        yield from _round_trips(statistics)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}{name}", documentation, value=value)


def _info_labels(topic: str) -> dict[str, str]:
    return {
        "version": importlib.metadata.version("kafka-micro"),
        "librdkafka_version": libversion()[0],
        "topic": topic,
    }


def _process_series(info_labels: dict[str, str], *, ready: bool) -> Iterator[Metric]:
    info = InfoMetricFamily(PREFIX.rstrip("_"), "The running kafka-micro process (always 1).")
    info.add_metric([], info_labels)
    yield info
    yield GaugeMetricFamily(
        f"{PREFIX}ready",
        "1 once the process works (producer: a message delivered; consumer: in its group), "
        "as systemd's READY=1; 0 before.",
        value=int(ready),
    )


def _round_trips(statistics: ClientStatistics) -> Iterator[Metric]:
    avg = GaugeMetricFamily(
        f"{PREFIX}broker_rtt_avg_seconds",
        "Mean request round-trip time to each broker over librdkafka's last statistics interval.",
        labels=["node_id"],
    )
    p99 = GaugeMetricFamily(
        f"{PREFIX}broker_rtt_p99_seconds",
        "99th percentile of the request round-trip time to each broker over that interval.",
        labels=["node_id"],
    )
    for node_id, round_trip in sorted(statistics.broker_rtt.items()):
        avg.add_metric([str(node_id)], round_trip.avg_s)
        p99.add_metric([str(node_id)], round_trip.p99_s)
    yield avg
    yield p99


# --- The endpoint ---


@contextmanager
def serve_metrics(
    settings: MetricsSettings,
    registry: CollectorRegistry,
    *,
    consumer: ConsumerSettings | None = None,
) -> Iterator[None]:
    """Serve ``registry`` at ``/metrics`` while the block runs, if metrics are enabled.

    The producer listens on ``settings.port``, a consumer (``consumer`` given) on its own port
    (``MetricsSettings.consumer_port``). A port that cannot be had is a ConfigError naming it
    and the setting it came from.
    """
    if not settings.enabled:
        yield
        return
    port, origin = _listen_port(settings, consumer)
    address = settings.bind_address
    try:
        server = _MetricsServer(address, port)
    except OSError as error:
        raise ConfigError(_listen_failure(error, address, port, origin)) from None
    server.set_app(make_wsgi_app(registry))
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": _SHUTDOWN_POLL_S},
        name="metrics",
        daemon=True,
    )
    thread.start()
    shown = f"[{address}]" if ":" in address else address
    log.info("metrics on http://%s:%d/metrics (%s)", shown, server.server_port, origin)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# Leaving serve_metrics waits for the serving thread to notice the shutdown at its next poll:
# prometheus_client's own server polls every 0.5 s, which every stop of a process paid (and a
# timed run of the producer with it: runs of 2.01 or 2.51 s).
_SHUTDOWN_POLL_S: Final = 0.05


class _QuietHandler(WSGIRequestHandler):
    """Logs nothing: a line per scrape would fill the journal."""

    def log_message(self, format: str, *args: object) -> None:
        pass


class _MetricsServer(ThreadingMixIn, WSGIServer):
    """A threaded WSGI server on ``address``, IPv4 or IPv6 as the address resolves."""

    daemon_threads = True

    def __init__(self, address: str, port: int) -> None:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        self.address_family = infos[0][0]
        super().__init__((address, port), _QuietHandler)


def _listen_port(settings: MetricsSettings, consumer: ConsumerSettings | None) -> tuple[int, str]:
    """The port to listen on, and the settings it comes from, for the error messages."""
    if consumer is None:
        return settings.port, f"metrics.port = {settings.port}"
    instance = consumer.instance_number()
    port = settings.consumer_port(instance)
    if not port:
        return port, "a free port: metrics.port is 0 or the consumer has no instance id HOST-N"
    origin = (
        f"metrics.port = {settings.port} + instance {instance} of consumer {consumer.instance_id!r}"
    )
    if port > _MAX_PORT:
        raise ConfigError(
            f"cannot serve metrics on port {port} ({origin}): consumer N listens on "
            f"metrics.port + N, at most {_MAX_PORT}; lower metrics.port"
        )
    return port, origin


def _listen_failure(error: OSError, address: str, port: int, origin: str) -> str:
    where = f"cannot serve metrics on {address} port {port} ({origin})"
    if error.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is already in use by another process; stop it or choose "
            "another metrics.port (the kafka_app role's kafka_app_metrics_port)"
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where}: metrics.bind_address {address!r} is not an address of this host; use one "
            "of its addresses, '0.0.0.0' or '::'"
        )
    if error.errno == errno.EACCES:
        return f"{where}: not permitted (ports below 1024 need privileges); choose metrics.port"
    return f"{where}: {error.strerror or error}"
