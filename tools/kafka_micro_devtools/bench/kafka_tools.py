"""Kafka's own ``kafka-producer-perf-test``, ``kafka-consumer-perf-test`` and EndToEndLatency,
as the yardstick."""

from __future__ import annotations

import os
import random
import re
import string
import subprocess
import sys
from array import array
from collections.abc import Mapping
from pathlib import Path

from kafka_micro.message import HEADER
from kafka_micro_devtools.bench.context import BenchContext, BenchError
from kafka_micro_devtools.bench.profile import (
    BenchProfile,
    java_consumer_properties,
    java_producer_properties,
)
from kafka_micro_devtools.bench.results import (
    JavaLatency,
    LatencyRun,
    RatePlan,
    Throughput,
    load_average,
)

PRODUCER_TOOL = "kafka-producer-perf-test"
CONSUMER_TOOL = "kafka-consumer-perf-test"
# No launcher of its own in the archive; kafka-run-class runs it from the tools jar.
LATENCY_CLASS = "org.apache.kafka.tools.EndToEndLatency"
# Ours (java/), compiled by the bench against the install's jars.
RATE_LATENCY_CLASS = "RateLatencyConsumer"
_CLASSES = (LATENCY_CLASS, RATE_LATENCY_CLASS)
_JAVA_SOURCE = Path(__file__).parent / "java" / f"{RATE_LATENCY_CLASS}.java"
# The Java consumer is done once nothing has arrived for this long (its producer has ended).
_RATE_CONSUMER_IDLE_MS = 3000
_ASSIGNMENT_TIMEOUT_S = 90.0
_LATENCY_SUMMARY = re.compile(
    r"Avg latency: ([\d.]+) ms\s+Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)"
)
# Apache Kafka's perf-test launchers give the JVM this heap when KAFKA_HEAP_OPTS is unset.
_TOOL_HEAP = "-Xmx512M"
_TOOL_TIMEOUT_S = 900.0
_CONSUMER_IDLE_TIMEOUT_MS = 60_000
_PAYLOAD_VARIANTS = 1000
_PRODUCER_SUMMARY = re.compile(
    r"^(\d+) records sent, ([\d.]+) records/sec \([\d.]+ MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th",
    re.MULTILINE,
)


def payload_file(path: Path, message_bytes: int, id_bytes: int) -> Path:
    """Values shaped like ours: a varying header of the same length, then zero padding.

    Our values are mostly zero padding, which compresses far better than the tool's default
    random letters; with the same shape both sides send the broker the same compressed bytes.
    """
    varying = min(message_bytes, HEADER.size + id_bytes)
    chooser = random.Random(message_bytes)
    lines = (
        "".join(chooser.choices(string.ascii_letters, k=varying)) + "\0" * (message_bytes - varying)
        for _ in range(_PAYLOAD_VARIANTS)
    )
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _tool_command(ctx: BenchContext, tool: str, args: list[str]) -> list[str]:
    """The command line of one of Kafka's tools: a launcher in ``bin/``, or a class for
    ``kafka-run-class``."""
    if ctx.kafka_home is None:
        raise BenchError(f"{tool} needs a Kafka install (--kafka-home)")
    if tool in _CLASSES:
        # A server's JVM options, as the perf-test launchers ask: the yardstick runs at its best.
        return [str(ctx.kafka_home / "bin" / "kafka-run-class"), "-long-running", tool, *args]
    return [str(ctx.kafka_home / "bin" / tool), *args]


def _tool_env(ctx: BenchContext, classpath: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "KAFKA_HEAP_OPTS": _TOOL_HEAP, "LOG_DIR": str(ctx.log_path("java"))}
    if classpath is not None:
        # kafka-run-class puts it before the install's jars.
        env["CLASSPATH"] = str(classpath)
    return env


def _run_tool(ctx: BenchContext, tool: str, args: list[str], log_name: str) -> str:
    command = _tool_command(ctx, tool, args)
    log_file = ctx.log_path(f"{log_name}.log")
    try:
        result = subprocess.run(
            command,
            env=_tool_env(ctx),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{tool} did not finish within {_TOOL_TIMEOUT_S:g} s") from None
    log_file.write_text(
        f"$ {' '.join(command)}\n{result.stdout}\n--- stderr ---\n{result.stderr}", encoding="utf-8"
    )
    if result.returncode != 0:
        raise BenchError(f"{tool} exited with code {result.returncode}; see {log_file}")
    return result.stdout


def _producer_args(
    ctx: BenchContext,
    profile: BenchProfile,
    topic: str,
    name: str,
    *,
    message_bytes: int,
    count: int,
    id_bytes: int,
    rate: float | None = None,
) -> list[str]:
    """``kafka-producer-perf-test``'s arguments: our producer's settings, at ``rate`` msg/s or
    unthrottled."""
    properties, _unmapped = java_producer_properties(profile.producer)
    payloads = payload_file(ctx.log_path(f"{name}.payloads"), message_bytes, id_bytes)
    return [
        "--topic",
        topic,
        "--num-records",
        str(count),
        "--payload-file",
        str(payloads),
        "--throughput",
        "-1" if rate is None else str(round(rate)),
        "--producer.config",
        str(ctx.java_properties_file(name, properties)),
    ]


def producer_perf(
    ctx: BenchContext,
    profile: BenchProfile,
    topic: str,
    *,
    message_bytes: int,
    count: int,
    id_bytes: int,
) -> Throughput:
    """``kafka-producer-perf-test`` with our producer's settings, unthrottled.

    ``id_bytes`` is the length of our producer's id, to shape the payloads like ours.
    """
    name = ctx.unique_name(f"java-producer-{message_bytes}")
    load = load_average()
    output = _run_tool(
        ctx,
        PRODUCER_TOOL,
        _producer_args(
            ctx, profile, topic, name, message_bytes=message_bytes, count=count, id_bytes=id_bytes
        ),
        name,
    )
    match = _PRODUCER_SUMMARY.search(output)
    if match is None:
        raise BenchError(f"{PRODUCER_TOOL} printed no summary line:\n{output[-2000:]}")
    sent, rate = int(match[1]), float(match[2])
    if sent != count:
        raise BenchError(f"{PRODUCER_TOOL} sent {sent} of {count} records")
    return Throughput.of(
        PRODUCER_TOOL,
        sent,
        message_bytes,
        sent / rate,
        load=load,
        detail={
            "ack_latency_ms": {"avg": float(match[3]), "p50": int(match[5]), "p99": int(match[7])}
        },
    )


def _consumer_properties_file(
    ctx: BenchContext, profile: BenchProfile, group: str, **extra: str
) -> Path:
    """A Java consumer's properties file: our consumer's settings, then ``extra``."""
    properties, _unmapped = java_consumer_properties(profile.consumer)
    return ctx.java_properties_file(group, {**properties, **extra})


def consumer_perf(
    ctx: BenchContext,
    profile: BenchProfile,
    topic: str,
    *,
    count: int,
    message_bytes: int,
    overrides: Mapping[str, str] | None = None,
) -> Throughput:
    """``kafka-consumer-perf-test`` with our consumer's settings, reading ``count`` messages.

    ``overrides`` replace or add Java consumer properties (the tool at its fastest).
    Its ``fetch.*`` figures leave out the group join (``rebalance.time.ms``), like ours.
    """
    group = ctx.unique_name("java-consumer")
    config = _consumer_properties_file(ctx, profile, group, **(overrides or {}))
    load = load_average()
    output = _run_tool(
        ctx,
        CONSUMER_TOOL,
        [
            "--bootstrap-server",
            ctx.bootstrap,
            "--topic",
            topic,
            "--messages",
            str(count),
            "--group",
            group,
            "--consumer.config",
            str(config),
            "--timeout",
            str(_CONSUMER_IDLE_TIMEOUT_MS),
        ],
        group,
    )
    rows = [line for line in output.splitlines() if line.count(",") >= 9]
    if len(rows) < 2 or not rows[0].startswith("start.time"):
        raise BenchError(f"{CONSUMER_TOOL} printed no result table:\n{output[-2000:]}")
    fields = dict(
        zip(
            (name.strip() for name in rows[0].split(",")),
            (value.strip() for value in rows[-1].split(",")),
            strict=True,
        )
    )
    consumed = int(fields["data.consumed.in.nMsg"])
    fetch_s = float(fields["fetch.time.ms"]) / 1000
    return Throughput.of(
        CONSUMER_TOOL,
        consumed,
        message_bytes,
        fetch_s,
        load=load,
        detail={"rebalance_ms": float(fields["rebalance.time.ms"]), **(overrides or {})},
    )


def end_to_end_latency(
    ctx: BenchContext, profile: BenchProfile, *, messages: int, message_bytes: int
) -> JavaLatency:
    """Kafka's EndToEndLatency on a fresh one-partition topic, with our producer's ``acks``: it
    sends a message, waits until its own consumer has read it, then sends the next. Its
    percentiles are whole milliseconds."""
    topic = ctx.create_topic("java-latency", 1)
    # The tool takes 1 or all: it needs an acknowledgement to wait for.
    acks = "1" if profile.producer.acks == "1" else "all"
    name = ctx.unique_name("java-latency")
    load = load_average()
    output = _run_tool(
        ctx,
        LATENCY_CLASS,
        [
            ctx.bootstrap,
            topic,
            str(messages),
            str(acks),
            str(message_bytes),
            str(ctx.java_properties_file(name, {})),
        ],
        name,
    )
    match = _LATENCY_SUMMARY.search(output)
    if match is None:
        raise BenchError(f"{LATENCY_CLASS} printed no percentiles:\n{output[-2000:]}")
    return JavaLatency(
        messages=messages,
        message_bytes=message_bytes,
        avg_ms=float(match[1]),
        p50_ms=float(match[2]),
        p99_ms=float(match[3]),
        p999_ms=float(match[4]),
        load_average=load,
    )


def latency_at_rate(ctx: BenchContext, profile: BenchProfile, plan: RatePlan) -> LatencyRun:
    """``kafka-producer-perf-test`` at ``rate`` msg/s and a Java consumer (``java/``) timing
    every message, both with our settings: the Java counterpart of ``ours.latency``.

    The record timestamp (the Java producer's send time) and the consumer's clock are whole
    milliseconds. The messages scheduled in the first ``warmup_s`` are not counted.
    """
    topic = ctx.create_topic(f"java-latency{round(plan.rate)}", plan.partitions)
    group = ctx.unique_name("java-latency")
    # earliest: a message sent before the consumer's first fetch still counts (the topic is new).
    config = _consumer_properties_file(
        ctx, profile, group, **{"group.id": group, "auto.offset.reset": "earliest"}
    )
    count = round(plan.rate * (plan.duration_s + plan.warmup_s))
    times_file = ctx.log_path(f"{group}.times")
    command = _tool_command(
        ctx,
        RATE_LATENCY_CLASS,
        [str(config), topic, str(count), str(_RATE_CONSUMER_IDLE_MS), str(times_file)],
    )
    log_file = ctx.log_path(f"{group}.log")
    with log_file.open("w", encoding="utf-8") as log:
        consumer = subprocess.Popen(
            command,
            env=_tool_env(ctx, _compiled_classes(ctx)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        ctx.wait_for_assignment(group, plan.partitions, _ASSIGNMENT_TIMEOUT_S)
        load = load_average()
        name = ctx.unique_name(f"java-producer-{round(plan.rate)}")
        _run_tool(
            ctx,
            PRODUCER_TOOL,
            _producer_args(
                ctx,
                profile,
                topic,
                name,
                message_bytes=plan.message_bytes,
                count=count,
                id_bytes=len(name),
                rate=plan.rate,
            ),
            name,
        )
        returncode = consumer.wait(_TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{RATE_LATENCY_CLASS} did not stop; see {log_file}") from None
    finally:
        consumer.kill()
        consumer.wait()
    if returncode != 0:
        raise BenchError(f"{RATE_LATENCY_CLASS} exited with code {returncode}; see {log_file}")
    times = array("q")
    times.frombytes(times_file.read_bytes())
    times_file.unlink()
    if sys.byteorder == "little":
        times.byteswap()  # Java's DataOutputStream writes big-endian
    if not times:
        raise BenchError(f"{RATE_LATENCY_CLASS} received nothing; see {log_file}")
    # The tool schedules its i-th message i / rate after it starts and, when late (its first
    # send waits for metadata), catches up at full speed: the warm-up is its first messages.
    sent = times[0::2]
    measured_from_ms = sorted(sent)[min(round(plan.rate * plan.warmup_s), len(sent) - 1)]
    latencies_ns = [
        (received_ms - sent_ms) * 1_000_000
        for sent_ms, received_ms in zip(sent, times[1::2], strict=True)
        if sent_ms >= measured_from_ms
    ]
    return LatencyRun.of(latencies_ns, plan, load)


def _compiled_classes(ctx: BenchContext) -> Path:
    """``java/``'s consumer compiled against the install's client jars, once per run."""
    assert ctx.kafka_home is not None  # _tool_command refused a run without it
    classes = ctx.work_dir / "java-classes"
    if not (classes / f"{RATE_LATENCY_CLASS}.class").exists():
        jars = ctx.kafka_home / "share" / "java" / "kafka" / "*"
        result = subprocess.run(
            ["javac", "-d", str(classes), "-cp", str(jars), str(_JAVA_SOURCE)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"javac could not compile {_JAVA_SOURCE}:\n{result.stderr}")
    return classes
