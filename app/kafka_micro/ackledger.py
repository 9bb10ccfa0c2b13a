"""The producer's acknowledgement ledger: how many of its messages the brokers acknowledged in
each partition, kept on disk so that ``verify --acked`` can tell lost messages from messages
that were never acknowledged, even after the producer was killed.

Why a count per partition decides it (librdkafka's source and statistics, see
docs/acknowledged-messages.md): librdkafka numbers the messages queued to each partition 1, 2,
3... (its msgid) and reports per partition ``msgs``, the messages queued so far, and, for an
idempotent producer, ``acked_msgid``, the highest msgid the brokers acknowledged. The brokers
accept an idempotent producer's messages of a partition in msgid order only, so each message
numbered up to ``acked_msgid`` was acknowledged or reported failed: at least ``acked_msgid``
minus the failures in that partition were acknowledged. After a complete flush, a report made
later has every queued message acknowledged or failed: exactly ``msgs`` minus the failures.

The ledger is written at each statistics report, so it lags by up to one interval: messages
acknowledged since the last report are not claimed. Writing costs nothing per message.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, NamedTuple

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from kafka_micro.metrics import ClientStatistics, ProducedPartition
from kafka_micro.settings import ConfigError

LEDGER_SCHEMA: Final = "kafka-micro-acked-ledger/1"
LEDGER_SUFFIX: Final = ".acked.json"
_TEMP_SUFFIX: Final = ".tmp"
# A producer id that is already a good file name is the name; any other is made one.
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_NOT_PLAIN: Final = re.compile(r"[^A-Za-z0-9_-]")
_READABLE_PART: Final = 100
_DIGEST_CHARS: Final = 16
_FINISH_POLL_S: Final = 0.1
_NOTHING_PRODUCED: Final = ProducedPartition(enqueued=0, acked_msgid=0)

log = logging.getLogger(__name__)


class PartitionAcks(BaseModel):
    """One partition of a ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    acknowledged: int = Field(ge=0)
    """Messages the brokers acknowledged here: at least this many, exactly in a final ledger."""
    enqueued: int = Field(ge=0)
    """librdkafka's ``msgs``: messages queued to the partition as of the report."""
    acked_msgid: int = Field(ge=0)
    """librdkafka's ``acked_msgid``: the highest acknowledged of them in its numbering."""
    failed: int = Field(ge=0)
    """Messages of the partition whose delivery failed, as of the report."""


class AckLedger(BaseModel):
    """The content of one ledger file: one producer id, one topic."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal["kafka-micro-acked-ledger/1"] = Field(default=LEDGER_SCHEMA, alias="schema")
    producer: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    final: bool
    """Written after a complete flush: every count is exact."""
    updated: AwareDatetime
    partitions: dict[int, PartitionAcks]
    """Partitions the producer queued messages to (or failed some in)."""

    @property
    def acknowledged(self) -> int:
        return sum(partition.acknowledged for partition in self.partitions.values())

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=1) + "\n"


class LedgerFile(NamedTuple):
    """A ledger read by verify, with the file it came from."""

    path: Path
    ledger: AckLedger


def acknowledged_in(progress: ProducedPartition, failed: int, *, settled: bool) -> int:
    """Messages acknowledged in one partition: a lower bound, exact once ``settled``.

    ``settled``: the report was made after a complete flush, so every queued message was
    acknowledged or failed. Before, each message up to ``acked_msgid`` was; failures above it
    are subtracted too, which only lowers the bound.
    """
    highest = progress.enqueued if settled else progress.acked_msgid
    return max(0, highest - failed)


def ledger_file_name(producer_id: str) -> str:
    """The ledger's file name: the id itself if it makes a plain one, else a readable part and a
    digest (ids are unique per run; any text is allowed)."""
    if _PLAIN_ID.fullmatch(producer_id):
        return producer_id + LEDGER_SUFFIX
    digest = hashlib.sha256(producer_id.encode()).hexdigest()[:_DIGEST_CHARS]
    readable = _NOT_PLAIN.sub("_", producer_id)[:_READABLE_PART]
    return f"{readable}-{digest}{LEDGER_SUFFIX}"


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{_TEMP_SUFFIX}")


def _ledger_name_of(file_name: str) -> str | None:
    """The ledger a file of the directory belongs to (itself or its temp file), else None."""
    if file_name.startswith("."):
        inner = file_name[1:].removesuffix(_TEMP_SUFFIX)
        return inner if file_name.endswith(_TEMP_SUFFIX) and inner.endswith(LEDGER_SUFFIX) else None
    return file_name if file_name.endswith(LEDGER_SUFFIX) else None


def prune_ledgers(directory: Path, keep: int, own: Path) -> list[Path]:
    """Remove all but the ``keep`` newest ledgers of ``directory``, ``own`` counted among them.

    Newest by last write: a running producer rewrites its ledger every statistics interval. A
    temp file left by a killed producer goes with its ledger. Returns the files removed.
    """
    newest: dict[str, int] = {}
    files: dict[str, list[Path]] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            name = _ledger_name_of(entry.name)
            if name is None or name == own.name:
                continue
            try:
                written = entry.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            newest[name] = max(newest.get(name, written), written)
            files.setdefault(name, []).append(Path(entry.path))
    by_age = sorted(newest, key=lambda name: (newest[name], name), reverse=True)
    removed = []
    for name in by_age[keep - 1 :]:
        for path in files[name]:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader, or a crash, sees the old or the new file."""
    temp = _temp_path(path)
    with temp.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    # The rename is durable only once the directory is.
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class AckLedgerWriter:
    """Keeps one producer's ledger: librdkafka's ``on_report`` listener and the final write.

    Called on the producer loop's thread from within poll (as the statistics callback), so a
    failed write is logged, not raised; the next report tries again.
    """

    def __init__(
        self, directory: Path, producer_id: str, topic: str, failed: Mapping[int, int]
    ) -> None:
        self.path = directory / ledger_file_name(producer_id)
        self._producer_id = producer_id
        self._topic = topic
        self._failed = failed
        self._settled_after_us: int | None = None
        self._failing = False
        self.final = False

    def open(self, keep: int) -> None:
        """Create the directory, prune old ledgers and write an empty one, or raise ConfigError.

        The empty ledger proves the directory writable before the first message, and stands
        for a producer killed before its first report: nothing acknowledged.
        """
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            removed = prune_ledgers(directory, keep, self.path)
            write_atomically(self.path, self._ledger(ClientStatistics(), settled=False).to_json())
        except OSError as error:
            raise ConfigError(
                f"producer.acked_ledger_dir = {str(directory)!r}: cannot write a ledger there: "
                f"{error.strerror or error}"
            ) from None
        log.info(
            "acknowledgement ledger %s (%d old ledgers removed, %d kept at most)",
            self.path,
            len(removed),
            keep,
        )

    def __call__(self, statistics: ClientStatistics) -> None:
        settled = (
            self._settled_after_us is not None and statistics.made_at_us >= self._settled_after_us
        )
        try:
            write_atomically(self.path, self._ledger(statistics, settled=settled).to_json())
        except OSError as error:
            if not self._failing:
                self._failing = True
                log.error("acknowledgement ledger %s not written: %s", self.path, error)
            return
        if self._failing:
            self._failing = False
            log.info("acknowledgement ledger %s written again", self.path)
        self.final = settled

    def finish(self, poll: Callable[[float], object], wait_s: float) -> None:
        """After a complete flush: serve librdkafka's queue until a report made after the flush
        is written as the final, exact ledger, for at most ``wait_s``."""
        self._settled_after_us = time.monotonic_ns() // 1000
        deadline = time.monotonic() + wait_s
        while not self.final and time.monotonic() < deadline:
            poll(_FINISH_POLL_S)
        if self.final:
            log.info("final acknowledgement ledger written: %s", self.path)
        else:
            log.warning(
                "no statistics report within %.1f s of the flush: ledger %s stays a lower bound",
                wait_s,
                self.path,
            )

    def _ledger(self, statistics: ClientStatistics, *, settled: bool) -> AckLedger:
        produced = {
            partition: progress
            for (topic, partition), progress in statistics.produced.items()
            if topic == self._topic and progress.enqueued
        }
        # Failures without a partition (-1: the topic unknown) are of no partition's count.
        touched = sorted(produced.keys() | {p for p in self._failed if p >= 0})
        partitions = {}
        for partition in touched:
            progress = produced.get(partition, _NOTHING_PRODUCED)
            failed = self._failed.get(partition, 0)
            partitions[partition] = PartitionAcks(
                acknowledged=acknowledged_in(progress, failed, settled=settled),
                enqueued=progress.enqueued,
                acked_msgid=progress.acked_msgid,
                failed=failed,
            )
        return AckLedger(
            producer=self._producer_id,
            topic=self._topic,
            final=settled,
            updated=datetime.now(UTC),
            partitions=partitions,
        )


def read_ledgers(paths: Sequence[Path], topic: str) -> list[LedgerFile]:
    """The ledgers of ``topic`` in ``paths`` (ledger files, or directories of them).

    Raises ConfigError naming a path that is missing or not a ledger, a producer with two
    ledgers, or paths holding no ledger of the topic.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob(f"[!.]*{LEDGER_SUFFIX}")))
        elif path.exists():
            files.append(path)
        else:
            raise ConfigError(f"--acked {str(path)!r} does not exist")
    found: dict[str, LedgerFile] = {}
    other_topics = 0
    for file in dict.fromkeys(file.resolve() for file in files):
        ledger = _read_ledger(file)
        if ledger.topic != topic:
            other_topics += 1
            continue
        earlier = found.get(ledger.producer)
        if earlier is not None:
            raise ConfigError(
                f"two ledgers of producer {ledger.producer!r}: {str(earlier.path)!r} and "
                f"{str(file)!r}; producer ids must be unique per run"
            )
        found[ledger.producer] = LedgerFile(file, ledger)
    if other_topics:
        log.info("ignoring %d ledgers of topics other than %s", other_topics, topic)
    if not found:
        shown = ", ".join(repr(str(path)) for path in paths)
        raise ConfigError(f"--acked {shown}: no acknowledgement ledger of topic {topic!r}")
    return list(found.values())


def _read_ledger(path: Path) -> AckLedger:
    try:
        return AckLedger.model_validate_json(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"ledger {str(path)!r} cannot be read: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(file)"
        raise ConfigError(
            f"{str(path)!r} is not a kafka-micro acknowledgement ledger ({LEDGER_SCHEMA}): "
            f"{where}: {first['msg']}"
        ) from None
