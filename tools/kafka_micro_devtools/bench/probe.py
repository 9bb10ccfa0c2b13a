"""The benchmark's child processes: our shipped producer and consumer loops, timed from outside.

``python -m kafka_micro_devtools.bench.probe produce|consume --settings FILE ...`` runs
``run_producer`` or ``run_consumer`` (the code ``kafka-micro produce|consume`` runs) in a
process of its own, as deployed, so it competes for the CPU like the Java tools do. The
settings file holds JSON nested like a config file; it is validated by ``load_settings``.

``produce`` prints one JSON line when done. ``consume`` prints a JSON status line every
``_STATUS_INTERVAL_S`` (messages so far; count and wall-clock ns at the last full batch) and
a last one with ``"done": true`` and the peak RSS, after the loop ends on SIGTERM. Both last
lines give the CPU seconds the process used (``cpu_s``: user and system, every thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Message

from kafka_micro.consumer import run_consumer
from kafka_micro.deadletter import dead_letter_sink
from kafka_micro.message import MalformedMessageError, value_decoder
from kafka_micro.processing import ConsumeStats, StatsProcessor, skip_error_event
from kafka_micro.producer import ProduceLimits, run_producer
from kafka_micro.runtime import StopRequest, configure_logging
from kafka_micro.settings import ConfigError, Settings, load_settings
from kafka_micro.systemd import SystemdNotifier
from kafka_micro_devtools.bench.latencyfile import write_latency_file

_STATUS_INTERVAL_S = 0.1
_EXIT_USAGE = 2


class BatchTimes:
    """Messages handled so far; the count and wall-clock time at the last full batch.

    A drain ends with partial batches, each returned only after ``batch_wait_ms`` of waiting
    for more; throughput is measured up to the last full batch to leave that out.
    """

    __slots__ = ("batch_size", "full_last_ns", "full_messages", "stats")

    def __init__(self, stats: ConsumeStats, batch_size: int) -> None:
        self.stats = stats
        self.batch_size = batch_size
        self.full_last_ns = 0
        self.full_messages = 0

    def batch_done(self, size: int, now_ns: int) -> None:
        if size >= self.batch_size:
            self.full_last_ns = now_ns
            self.full_messages = self.stats.messages

    def status(self) -> dict[str, int]:
        return {
            "messages": self.stats.messages,
            "full_messages": self.full_messages,
            "full_last_ns": self.full_last_ns,
        }


class TimedStatsProcessor:
    """The shipped batch processor, with one clock read after each batch."""

    def __init__(self, times: BatchTimes, settings: Settings) -> None:
        self.times = times
        self._process = StatsProcessor(
            times.stats, dead_letter_sink(settings), settings.consumer.max_value_bytes
        )

    def __call__(self, messages: list[Message]) -> dict[int, int]:
        next_offsets = self._process(messages)
        self.times.batch_done(len(messages), time.time_ns())
        return next_offsets


class LatencyRecorder:
    """Keeps every message's send time and each batch's receive time and size.

    Per message only a decode and an append; latencies are computed after the run
    (``latencyfile.latency_ns_from_file``), so recording costs about what the shipped
    processor does. The bench writes kafka-micro messages only: one that is not is passed over
    (not dead-lettered) and left out of the latencies.
    """

    def __init__(self, times: BatchTimes) -> None:
        self.times = times
        self._decode = value_decoder()
        self.sent_ns = array("q")
        self.batches = array("q")

    def __call__(self, messages: list[Message]) -> dict[int, int]:
        received_ns = time.time_ns()
        keep = self.sent_ns.append
        decode = self._decode
        next_offsets: dict[int, int] = {}
        processed = kept = 0
        for message in messages:
            if message.error() is not None:
                skip_error_event(message)
                continue
            processed += 1
            # An error-free message always has a partition and an offset.
            next_offsets[message.partition()] = message.offset() + 1  # type: ignore[index,operator]
            try:
                _producer, _sequence, sent_ns = decode(message.value())
            except MalformedMessageError:
                continue
            keep(sent_ns)
            kept += 1
        self.batches.append(received_ns)
        self.batches.append(kept)
        times = self.times
        stats = times.stats
        stats.messages += processed
        stats.batches += 1
        times.batch_done(len(messages), received_ns)
        return next_offsets

    def save(self, path: Path) -> None:
        write_latency_file(path, self.batches, self.sent_ns)


def _peak_rss_kb() -> int:
    """VmHWM: the most resident memory this process has had, in KiB (0 if unknown)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _print_json(values: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(values) + "\n")
    sys.stdout.flush()


def _report_status(times: BatchTimes, finished: threading.Event) -> None:
    while not finished.wait(_STATUS_INTERVAL_S):
        _print_json(times.status())


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    stop = StopRequest()
    stop.install()
    started_ns = time.time_ns()
    started = time.perf_counter()
    limits = ProduceLimits(args.count, args.duration)
    code = run_producer(settings, limits, stop, SystemdNotifier())
    _print_json(
        {
            "exit_code": code,
            "started_ns": started_ns,
            "elapsed_s": time.perf_counter() - started,
            "cpu_s": _cpu_seconds(),
        }
    )
    return code


def _consume(settings: Settings, args: argparse.Namespace) -> int:
    stop = StopRequest()
    stop.install()
    stats = ConsumeStats()
    times = BatchTimes(stats, settings.consumer.batch_size)
    recorder = LatencyRecorder(times) if args.latency_out is not None else None
    finished = threading.Event()
    reporter = threading.Thread(target=_report_status, args=(times, finished), daemon=True)
    # The first status line tells the parent that SIGTERM now stops the loop cleanly.
    _print_json(times.status())
    reporter.start()
    try:
        process = recorder or TimedStatsProcessor(times, settings)
        code = run_consumer(settings, process, stats, stop, SystemdNotifier())
    finally:
        finished.set()
        reporter.join()
    if recorder is not None:
        recorder.save(args.latency_out)
    _print_json(
        {
            **times.status(),
            "done": True,
            "exit_code": code,
            "peak_rss_kb": _peak_rss_kb(),
            "cpu_s": _cpu_seconds(),
        }
    )
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kafka_micro_devtools.bench.probe")
    commands = parser.add_subparsers(dest="command", required=True)
    produce = commands.add_parser("produce")
    produce.add_argument("--settings", type=Path, required=True)
    limit = produce.add_mutually_exclusive_group(required=True)
    limit.add_argument("--count", type=int)
    limit.add_argument("--duration", type=float)
    consume = commands.add_parser("consume")
    consume.add_argument("--settings", type=Path, required=True)
    consume.add_argument("--latency-out", type=Path)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        overrides = json.loads(args.settings.read_text(encoding="utf-8"))
        settings = load_settings(None, overrides)
    except (OSError, ValueError, ConfigError) as error:
        print(f"probe: bad settings file {args.settings}: {error}", file=sys.stderr)
        return _EXIT_USAGE
    configure_logging(settings.log_level)
    return _produce(settings, args) if args.command == "produce" else _consume(settings, args)


if __name__ == "__main__":
    sys.exit(main())
