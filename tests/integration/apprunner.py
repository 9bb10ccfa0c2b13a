"""Helpers that run kafka-micro as separate OS processes against a real broker."""

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

_OWNS = re.compile(r"now owns (\d+) partitions: \[([\d, ]*)\]")


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval=0.2):
    """Poll until condition() is truthy; fail the test naming what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


class AppProcess:
    """One running ``kafka-micro`` subcommand with its combined output in a log file."""

    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path, record: Path | None):
        self.name = name
        self.popen = popen
        self.log_path = log_path
        self.record = record

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def owned(self) -> list[int] | None:
        """Partitions this consumer says it owns now (None before its first assignment)."""
        matches = _OWNS.findall(self.log())
        if not matches:
            return None
        _count, partitions = matches[-1]
        return [int(p) for p in partitions.split(",") if p.strip()]

    def assignment_changes(self) -> int:
        return len(_OWNS.findall(self.log()))

    def records(self) -> list[tuple[str, int, int, int]]:
        """(producer, sequence, partition, offset) per processed message."""
        if self.record is None or not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text(encoding="utf-8").splitlines():
            producer, sequence, partition, offset = line.split(" ")
            rows.append((producer, int(sequence), int(partition), int(offset)))
        return rows

    def stop(self, sig=signal.SIGTERM, timeout=60.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"{self.name} did not exit within {timeout:g} s of {sig!r}:\n{self.log()}")

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running after {timeout:g} s:\n{self.log()}")


class App:
    """Starts kafka-micro processes configured through KAFKA_MICRO_* variables."""

    def __init__(self, bootstrap: str, work_dir: Path):
        self.bootstrap = bootstrap
        self.work_dir = work_dir
        self.processes: list[AppProcess] = []
        self.topic = f"test-topic-{uuid.uuid4().hex[:8]}"
        self.group = f"group-{uuid.uuid4().hex[:8]}"

    def env(self, **settings: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KAFKA_MICRO_")}
        env.update(
            KAFKA_MICRO_BOOTSTRAP_SERVERS=self.bootstrap,
            KAFKA_MICRO_TOPIC=self.topic,
            KAFKA_MICRO_CONSUMER__GROUP_ID=self.group,
            KAFKA_MICRO_REPORT_INTERVAL_S="1",
            # Two producers of one test, or of two runs on one machine, would want the same port.
            KAFKA_MICRO_METRICS__PORT="0",
            KAFKA_MICRO_METRICS__BIND_ADDRESS="127.0.0.1",
        )
        env.update({f"KAFKA_MICRO_{k.upper()}": v for k, v in settings.items()})
        return env

    def run(self, *args: str, timeout=120.0, **settings: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "kafka_micro", *args],
            env=self.env(**settings),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(
        self,
        name: str,
        *args: str,
        record=False,
        environ=None,
        module="kafka_micro",
        **settings: str,
    ) -> AppProcess:
        """Start ``kafka-micro ARGS``; ``environ`` adds variables other than settings, ``module``
        runs another entry point with kafka-micro's arguments (one of the tests', say)."""
        log_path = self.work_dir / f"{name}.log"
        record_path = self.work_dir / f"{name}.records" if record else None
        extra = ["--record", str(record_path)] if record_path else []
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", module, *args, *extra],
                env={**self.env(**settings), **(environ or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = AppProcess(name, popen, log_path, record_path)
        self.processes.append(process)
        return process

    def create_topic(self, partitions=24) -> str:
        result = self.run("topic", "--partitions", str(partitions))
        assert result.returncode == 0, result.stderr
        return self.topic

    def kill_all(self):
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.kill()
                process.popen.wait()


def start_consumers(app: App, count: int, prefix="consumer", **settings: str):
    return [
        app.start(f"{prefix}-{n}", "consume", record=True, **settings) for n in range(1, count + 1)
    ]


def balanced(consumers, partitions=24) -> bool:
    """Every consumer owns partitions/len(consumers) partitions and together they own all."""
    owned = [c.owned() for c in consumers]
    if any(o is None or len(o) != partitions // len(consumers) for o in owned):
        return False
    return sorted(p for o in owned for p in o) == list(range(partitions))


def committed_offsets(app: App, partitions=24, **config) -> dict[int, int]:
    """The group's committed offset of each partition (negative: none)."""
    reader = Consumer({"bootstrap.servers": app.bootstrap, "group.id": app.group, **config})
    try:
        committed = reader.committed(
            [TopicPartition(app.topic, p) for p in range(partitions)], timeout=30
        )
    finally:
        reader.close()
    return {tp.partition: tp.offset for tp in committed}


def read_topic(bootstrap: str, topic: str, **config) -> list[Message]:
    """Every record of ``topic`` up to its current end, by partition and offset; no group."""
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{uuid.uuid4().hex[:8]}", **config}
    )
    try:
        metadata = reader.list_topics(topic, timeout=30)
        ends, starts = {}, []
        for partition in metadata.topics[topic].partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        reader.assign(starts)
        messages = []
        deadline = time.monotonic() + 60
        while ends and time.monotonic() < deadline:
            for message in reader.consume(500, 1.0):
                assert message.error() is None, message.error()
                messages.append(message)
                if message.offset() == ends[message.partition()] - 1:
                    del ends[message.partition()]
        assert not ends, f"partitions {sorted(ends)} of {topic} not read to their end"
    finally:
        reader.close()
    return sorted(messages, key=lambda message: (message.partition(), message.offset()))
