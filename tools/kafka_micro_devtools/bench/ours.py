"""Runs our producer and consumer as separate processes (see ``probe``); collects their numbers."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import IO, Any

from kafka_micro.settings import ENV_PREFIX
from kafka_micro_devtools.bench.context import BenchContext, BenchError
from kafka_micro_devtools.bench.latencyfile import latency_ns_from_file
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import LatencyRun, RatePlan, Throughput, load_average
from kafka_micro_devtools.broker_security import User

log = logging.getLogger(__name__)

TOOL = "kafka-micro"
_PRODUCE_TIMEOUT_S = 900.0
_STOP_TIMEOUT_S = 60.0
_ASSIGNMENT_TIMEOUT_S = 90.0
# A consumer is done when its count has not moved for this long (a batch waits <= 1 s).
_IDLE_S = 1.5
# Draining has failed when the count stops moving for this long before reaching the goal.
_STALLED_S = 60.0
# The line a child logs once its /metrics is served.
_METRICS_URL = re.compile(r"metrics on (http://\S+/metrics)")


class Probe:
    """One probe process; a thread keeps the last JSON line it printed."""

    def __init__(
        self,
        ctx: BenchContext,
        name: str,
        settings: dict[str, Any],
        command: str,
        *options: str,
    ) -> None:
        settings_file = ctx.log_path(f"{name}.settings.json")
        settings_file.write_text(json.dumps(settings, indent=2), encoding="utf-8")
        self.name = name
        self.log_file = ctx.log_path(f"{name}.log")
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(ENV_PREFIX)}
        env.pop("JOURNAL_STREAM", None)
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kafka_micro_devtools.bench.probe",
                    command,
                    "--settings",
                    str(settings_file),
                    *options,
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        self.last: dict[str, Any] = {}
        self._reader = threading.Thread(target=self._read, args=(self.popen.stdout,), daemon=True)
        self._reader.start()
        self.scrapes = 0
        if ctx.metrics and ctx.scrape_interval_s is not None:
            scraper = threading.Thread(
                target=self._scrape, args=(ctx.scrape_interval_s,), daemon=True
            )
            scraper.start()

    def _scrape(self, interval_s: float) -> None:
        """GET the child's /metrics every ``interval_s`` while it runs, as Prometheus would."""
        url = None
        while self.popen.poll() is None:
            if url is None:
                found = _METRICS_URL.search(self.log_file.read_text(encoding="utf-8"))
                url = found.group(1) if found else None
            else:
                try:
                    with urllib.request.urlopen(url, timeout=interval_s) as response:
                        response.read()
                    self.scrapes += 1
                except OSError:
                    # The child stopping between the check and the request.
                    pass
            time.sleep(interval_s if url else 0.05)

    def _read(self, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for line in stream:
            try:
                self.last = json.loads(line)
            except ValueError:
                continue

    def messages(self) -> int:
        return int(self.last.get("messages", 0))

    def pause(self) -> None:
        self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.popen.send_signal(signal.SIGCONT)

    def stop(self) -> dict[str, Any]:
        """SIGTERM once its handler is installed, wait for the orderly exit; the last line."""
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        while not self.last and self.popen.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.wait(_STOP_TIMEOUT_S)

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise BenchError(
                f"{self.name} did not finish within {timeout:g} s; see {self.log_file}"
            ) from None
        self._reader.join()
        if self.scrapes:
            log.info("%s: /metrics scraped %d times", self.name, self.scrapes)
        if code != 0:
            raise BenchError(f"{self.name} exited with code {code}; see {self.log_file}")
        return self.last

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def settings_tree(
    ctx: BenchContext,
    profile: BenchProfile,
    topic: str,
    *,
    user: User,
    producer: dict[str, Any] | None = None,
    consumer: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Child settings: the profile plus per-run values, in the config file's layout.

    ``user`` is whom the child connects as: the top-level librdkafka table gets its
    connection properties when the broker is secured (``ctx.client_properties``).
    """
    tree = {
        "bootstrap_servers": ctx.bootstrap,
        "topic": topic,
        "producer": {**profile.producer.model_dump(), **(producer or {})},
        "consumer": {**profile.consumer.model_dump(), **(consumer or {})},
        "metrics": ctx.metrics_settings(),
    }
    connection = ctx.librdkafka(user)
    return {**tree, "librdkafka": connection} if connection else tree


def produce(
    ctx: BenchContext,
    profile: BenchProfile,
    topic: str,
    *,
    message_bytes: int,
    count: int,
    name: str,
) -> Throughput:
    """Our producer sends ``count`` messages as fast as it can; timed around ``run_producer``."""
    settings = settings_tree(
        ctx,
        profile,
        topic,
        user="producer",
        producer={"id": name, "message_size": message_bytes, "rate": 0.0},
    )
    load = load_average()
    probe = Probe(ctx, name, settings, "produce", "--count", str(count))
    try:
        result = probe.wait(_PRODUCE_TIMEOUT_S)
    finally:
        probe.kill()
    return Throughput.of(
        TOOL,
        count,
        message_bytes,
        float(result["elapsed_s"]),
        load=load,
        detail={"cpu_s": float(result["cpu_s"])},
    )


def drain(
    ctx: BenchContext,
    profile: BenchProfile,
    topic: str,
    *,
    count: int,
    message_bytes: int,
    instances: int,
    partitions: int,
) -> tuple[Throughput, list[float]]:
    """``instances`` consumers of a new group, balanced first, drain a backlog of ``count``.

    The consumers join the empty ``topic`` and wait until each owns its share of the
    partitions; then they are paused (SIGSTOP), our producer writes the backlog, and they
    are resumed (SIGCONT). So the drain is that of a balanced group catching up, as a
    deployed group does after an outage, and no member drains alone while the others
    are still joining. Throughput counts from the resume to the last full batch of any
    instance (see ``probe.BatchTimes``). Also returns each instance's peak RSS in MB.
    """
    group = ctx.unique_name(f"drain{instances}")
    settings = settings_tree(ctx, profile, topic, user="consumer", consumer={"group_id": group})
    probes = [Probe(ctx, f"{group}-{n}", settings, "consume") for n in range(1, instances + 1)]
    try:
        ctx.wait_for_assignment(group, partitions, _ASSIGNMENT_TIMEOUT_S, members=instances)
        for probe in probes:
            probe.pause()
        try:
            produce(ctx, profile, topic, message_bytes=message_bytes, count=count, name=group)
        finally:
            load = load_average()
            resumed_ns = time.time_ns()
            for probe in probes:
                probe.resume()
        _wait_for_count(probes, count, what=f"{instances} consumer(s) to drain {count}")
        finals = [probe.stop() for probe in probes]
    finally:
        for probe in probes:
            probe.kill()
    in_full_batches = sum(int(final["full_messages"]) for final in finals)
    last = max(int(final["full_last_ns"]) for final in finals)
    if in_full_batches <= 0 or last <= resumed_ns:
        raise BenchError(
            f"{instances} consumer(s) got no full batch from {count} messages: too few to time"
        )
    throughput = Throughput.of(
        TOOL,
        in_full_batches,
        message_bytes,
        (last - resumed_ns) / 1e9,
        load=load,
        detail={
            "instances": instances,
            "consumed": sum(int(f["messages"]) for f in finals),
            "cpu_s": sum(float(f["cpu_s"]) for f in finals),
        },
    )
    return throughput, [round(int(final["peak_rss_kb"]) / 1024, 1) for final in finals]


def _wait_for_count(probes: list[Probe], expected: int, what: str) -> None:
    """Until the probes have handled ``expected`` messages together (or stopped moving)."""
    last_total = -1
    moved = time.monotonic()
    deadline = moved + _PRODUCE_TIMEOUT_S
    while True:
        total = sum(probe.messages() for probe in probes)
        now = time.monotonic()
        if total >= expected:
            return
        if total != last_total:
            last_total, moved = total, now
        for probe in probes:
            if probe.popen.poll() is not None:
                raise BenchError(f"{probe.name} exited early; see {probe.log_file}")
        stalled = now - moved > (_STALLED_S if total else _ASSIGNMENT_TIMEOUT_S)
        if now > deadline or stalled:
            raise BenchError(f"timed out waiting for {what}: {total} handled")
        time.sleep(0.05)


def latency(ctx: BenchContext, profile: BenchProfile, plan: RatePlan) -> LatencyRun:
    """Our producer at a fixed rate, our consumer recording each message's end-to-end latency.

    The consumer joins first; messages sent before the first one arrives (the producer's
    connections) and in the ``warmup_s`` after it are produced but not counted.
    """
    topic = ctx.create_topic(f"latency{round(plan.rate)}", plan.partitions)
    group = ctx.unique_name("latency")
    name = f"{group}-consumer"
    latency_file = ctx.log_path(f"{name}.latency")
    consumer = Probe(
        ctx,
        name,
        settings_tree(ctx, profile, topic, user="consumer", consumer={"group_id": group}),
        "consume",
        "--latency-out",
        str(latency_file),
    )
    producer_name = f"{group}-producer"
    settings = settings_tree(
        ctx,
        profile,
        topic,
        user="producer",
        producer={"id": producer_name, "message_size": plan.message_bytes, "rate": plan.rate},
    )
    try:
        ctx.wait_for_assignment(group, plan.partitions, _ASSIGNMENT_TIMEOUT_S)
        load = load_average()
        sending_s = plan.duration_s + plan.warmup_s
        producer = Probe(ctx, producer_name, settings, "produce", "--duration", str(sending_s))
        try:
            sent = producer.wait(sending_s + _PRODUCE_TIMEOUT_S)
        finally:
            producer.kill()
        _wait_until_idle(consumer)
        consumer.stop()
    finally:
        consumer.kill()
    latencies = latency_ns_from_file(
        latency_file, int(sent["started_ns"]), int(plan.warmup_s * 1e9)
    )
    latency_file.unlink()
    if not latencies:
        raise BenchError(f"the latency consumer received nothing; see {consumer.log_file}")
    return LatencyRun.of(latencies, plan, load)


def _wait_until_idle(probe: Probe) -> None:
    """Until the probe's message count has not changed for ``_IDLE_S``."""
    count = probe.messages()
    quiet_since = time.monotonic()
    deadline = quiet_since + _PRODUCE_TIMEOUT_S
    while time.monotonic() - quiet_since < _IDLE_S:
        if time.monotonic() > deadline:
            raise BenchError(f"{probe.name} kept receiving for {_PRODUCE_TIMEOUT_S:g} s")
        time.sleep(0.1)
        if probe.messages() != count:
            count = probe.messages()
            quiet_since = time.monotonic()
