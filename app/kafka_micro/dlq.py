"""``kafka-micro dlq inspect`` and ``dlq replay``: dead letters read back, and sent back.

Both read the dead-letter topic as it is now, from its first record to its end, without a
consumer group (``snapshot``): the consumer's principal, which may read that topic, runs them.

``replay`` writes each selected dead letter back to the topic and partition it came from, with its
key, value and own headers plus ``kafka-micro.replayed-from`` naming the dead letter, as the
producer writes (its settings and login). Once the brokers acknowledged it, replay leaves a note
in the dead-letter topic itself: a record without key or value whose headers name the dead letter
and where it went. Every later replay and inspect reads those notes, so a dead letter is replayed
once, whatever filters earlier runs had: a consumer group's position could not tell a record
passed over by a filter from one replayed. If the replayed message fails again, it is a new dead
letter, which may be replayed in turn. Replays should not run side by side: two runs reading
before either wrote its notes would both replay the same dead letters.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, Message

from kafka_micro.deadletter import (
    CONSUMER_GROUP,
    CONSUMER_INSTANCE,
    ERROR,
    HEADER_PREFIX,
    REASON,
    REPLAY_OF,
    REPLAYED_FROM,
    REPLAYED_TO,
    SOURCE_OFFSET,
    SOURCE_PARTITION,
    SOURCE_TIMESTAMP,
    SOURCE_TOPIC,
    VALUE_SIZE,
    VALUE_TRUNCATED,
    AcknowledgedWriter,
    Headers,
    Outgoing,
    message_headers,
)
from kafka_micro.settings import ConfigError, Settings
from kafka_micro.snapshot import open_snapshot

log = logging.getLogger(__name__)

_ERROR_COLUMN_CHARS: Final = 60


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command takes: by reason and by source partition (empty: any)."""

    reasons: frozenset[str] = frozenset()
    source_partitions: frozenset[int] = frozenset()

    def matches(self, letter: StoredDeadLetter) -> bool:
        return (not self.reasons or letter.reason in self.reasons) and (
            not self.source_partitions or letter.source_partition in self.source_partitions
        )


@dataclass
class StoredDeadLetter:
    """A dead letter as read from the dead-letter topic."""

    partition: int
    offset: int
    dead_lettered_ms: int | None
    reason: str
    error: str
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None
    consumer_group: str
    consumer_instance: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    """The message's own headers, without those the consumer added."""
    value_size: int | None
    value_truncated: bool
    replayed_to: str | None = None
    """Where a replay wrote it, from replay's note."""

    @property
    def location(self) -> str:
        return f"{self.partition}/{self.offset}"

    @property
    def replayed_from(self) -> str | None:
        """The dead letter this message was itself replayed from, if it was."""
        return _text(dict(self.headers).get(REPLAYED_FROM))

    def to_dict(self, value_bytes: int) -> dict[str, Any]:
        document: dict[str, Any] = {
            "partition": self.partition,
            "offset": self.offset,
            "dead_lettered_at": _iso(self.dead_lettered_ms),
            "reason": self.reason,
            "error": self.error,
            "source": {
                "topic": self.source_topic,
                "partition": self.source_partition,
                "offset": self.source_offset,
                "timestamp": _iso(self.source_timestamp_ms),
            },
            "consumer": {"group": self.consumer_group, "instance": self.consumer_instance},
            "key_hex": None if self.key is None else self.key.hex(),
            "value_size": self.value_size,
            "value_truncated": self.value_truncated,
            "headers": len(self.headers),
            "replayed_from": self.replayed_from,
            "replayed_to": self.replayed_to,
        }
        if value_bytes:
            head = None if self.value is None else self.value[:value_bytes].hex()
            document["value_head_hex"] = head
        return document


@dataclass
class DeadLetterTopic:
    """What a read of the dead-letter topic found: the selected dead letters and the counts."""

    topic: str
    letters: list[StoredDeadLetter] = field(default_factory=list)
    """The selected ones, in partition and offset order, at most the limit."""
    selected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    """Every dead letter in the topic, by reason."""
    replay_notes: int = 0
    foreign: int = 0
    """Records that are neither dead letters nor replay's notes (written by something else)."""


def read_dead_letters(
    settings: Settings, selection: Selection, limit: int | None, idle_timeout_s: float
) -> DeadLetterTopic:
    """Read the dead-letter topic to its end; keep the first ``limit`` selected dead letters."""
    topic = dead_letter_topic(settings)
    collector = DeadLetterCollector(topic, selection, limit)
    with open_snapshot(settings, "dead-letter-reader", topic) as snapshot:
        for batch in snapshot.batches(idle_timeout_s):
            for message in batch:
                collector.take(message)
    return collector.result()


def dead_letter_topic(settings: Settings) -> str:
    topic = settings.dead_letter_topic()
    if topic is None:
        raise ConfigError(
            "consumer.dead_letter_topic is '' (no dead-letter topic): there are no dead letters "
            "to read; name the topic"
        )
    return topic


class DeadLetterCollector:
    """Sorts the records of the dead-letter topic: dead letters, replay's notes, the rest."""

    def __init__(self, topic: str, selection: Selection, limit: int | None) -> None:
        self._found = DeadLetterTopic(topic)
        self._selection = selection
        self._limit = limit
        self._replayed: dict[tuple[int, int], str] = {}

    def take(self, message: Message) -> None:
        found = self._found
        headers = message_headers(message)
        ours = {name: _text(value) for name, value in headers if name.startswith(HEADER_PREFIX)}
        replay_of = _location(ours.get(REPLAY_OF))
        if replay_of is not None:
            found.replay_notes += 1
            self._replayed[replay_of] = ours.get(REPLAYED_TO) or "?"
            return
        letter = _parse(message, headers, ours)
        if letter is None:
            found.foreign += 1
            return
        found.by_reason[letter.reason] += 1
        if not self._selection.matches(letter):
            return
        found.selected += 1
        if self._limit is None or len(found.letters) < self._limit:
            found.letters.append(letter)

    def result(self) -> DeadLetterTopic:
        """What was taken, the selected dead letters in order, each with its replay if any."""
        found = self._found
        found.letters.sort(key=lambda letter: (letter.partition, letter.offset))
        for letter in found.letters:
            letter.replayed_to = self._replayed.get((letter.partition, letter.offset))
        return found


def _parse(
    message: Message, headers: Headers, ours: dict[str, str | None]
) -> StoredDeadLetter | None:
    reason = ours.get(REASON)
    source_partition = _number(ours.get(SOURCE_PARTITION))
    source_offset = _number(ours.get(SOURCE_OFFSET))
    if reason is None or source_partition is None or source_offset is None:
        return None
    timestamp_type, timestamp_ms = message.timestamp()
    # An error-free message always has a partition and an offset.
    partition: int = message.partition()  # type: ignore[assignment]
    offset: int = message.offset()  # type: ignore[assignment]
    return StoredDeadLetter(
        partition=partition,
        offset=offset,
        dead_lettered_ms=None if timestamp_type == TIMESTAMP_NOT_AVAILABLE else timestamp_ms,
        reason=reason,
        error=ours.get(ERROR) or "",
        source_topic=ours.get(SOURCE_TOPIC) or "",
        source_partition=source_partition,
        source_offset=source_offset,
        source_timestamp_ms=_number(ours.get(SOURCE_TIMESTAMP)),
        consumer_group=ours.get(CONSUMER_GROUP) or "",
        consumer_instance=ours.get(CONSUMER_INSTANCE) or "",
        key=message.key(),
        value=message.value(),
        headers=[(name, value) for name, value in headers if not name.startswith(HEADER_PREFIX)],
        value_size=_number(ours.get(VALUE_SIZE)),
        value_truncated=ours.get(VALUE_TRUNCATED) == "true",
    )


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def _location(text: str | None) -> tuple[int, int] | None:
    """PARTITION/OFFSET as numbers; None if it is not that."""
    partition, _, offset = (text or "").partition("/")
    numbers = _number(partition), _number(offset)
    return None if numbers[0] is None or numbers[1] is None else (numbers[0], numbers[1])


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _iso(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    moment = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- inspect ---


def inspect_json(found: DeadLetterTopic, value_bytes: int) -> str:
    return json.dumps(
        {
            "topic": found.topic,
            "dead_letters": [letter.to_dict(value_bytes) for letter in found.letters],
            "selected": found.selected,
            "by_reason": dict(sorted(found.by_reason.items())),
            "replay_notes": found.replay_notes,
            "foreign_records": found.foreign,
        },
        indent=2,
    )


def inspect_table(found: DeadLetterTopic, value_bytes: int) -> str:
    rows = [
        (
            letter.location,
            _iso(letter.dead_lettered_ms) or "-",
            f"{letter.source_partition}/{letter.source_offset}",
            letter.reason,
            "null" if letter.value_size is None else str(letter.value_size),
            letter.replayed_to or "-",
            _shorten(letter.error),
        )
        for letter in found.letters
    ]
    header = ("dlq", "dead-lettered (UTC)", "source", "reason", "bytes", "replayed to", "error")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = [_columns(header, widths)]
    for letter, row in zip(found.letters, rows, strict=True):
        lines.append(_columns(row, widths))
        if value_bytes:
            head = b"" if letter.value is None else letter.value[:value_bytes]
            lines.append(f"    value: {head.hex(' ') or '(null)'}")
    lines.append(_summary(found))
    return "\n".join(lines)


def _columns(row: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def _shorten(text: str) -> str:
    line = " ".join(text.split())
    if len(line) <= _ERROR_COLUMN_CHARS:
        return line
    return line[: _ERROR_COLUMN_CHARS - 3] + "..."


def _summary(found: DeadLetterTopic) -> str:
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(found.by_reason.items()))
    shown = len(found.letters)
    more = f" (first {shown} shown; --limit)" if shown < found.selected else ""
    return (
        f"topic {found.topic}: {found.by_reason.total()} dead letters ({reasons or 'none'}), "
        f"{found.selected} selected{more}, {found.replay_notes} replayed"
        + (f", {found.foreign} other records" if found.foreign else "")
    )


# --- replay ---


@dataclass
class ReplayReport:
    """What a replay did, or with ``dry_run`` would do."""

    topic: str
    dry_run: bool
    replayed: list[StoredDeadLetter] = field(default_factory=list)
    already_replayed: int = 0
    truncated: int = 0
    failed: list[tuple[StoredDeadLetter, str]] = field(default_factory=list)
    unnoted: list[tuple[StoredDeadLetter, str]] = field(default_factory=list)
    """Replayed, but the note saying so could not be written."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "topic": self.topic,
                "dry_run": self.dry_run,
                "replayed": [
                    {"dead_letter": letter.location, "to": letter.replayed_to}
                    for letter in self.replayed
                ],
                "already_replayed": self.already_replayed,
                "truncated": self.truncated,
                "failed": [
                    {"dead_letter": letter.location, "error": why} for letter, why in self.failed
                ],
                "unnoted": [
                    {"dead_letter": letter.location, "error": why} for letter, why in self.unnoted
                ],
            },
            indent=2,
        )

    def to_text(self) -> str:
        lines = [
            f"{'would replay' if self.dry_run else 'replayed'} dead letter {letter.location} "
            f"({letter.reason}) to {letter.replayed_to or letter.source_topic}"
            for letter in self.replayed
        ]
        lines.extend(
            f"failed to replay dead letter {letter.location}: {why}" for letter, why in self.failed
        )
        lines.extend(
            f"replayed dead letter {letter.location} but could not note it (a later replay "
            f"would send it again): {why}"
            for letter, why in self.unnoted
        )
        lines.append(
            f"topic {self.topic}: {len(self.replayed)} "
            f"{'would be replayed' if self.dry_run else 'replayed'}, {len(self.failed)} failed, "
            f"{self.already_replayed} replayed before (skipped), {self.truncated} with a "
            "truncated value (not replayable)"
        )
        return "\n".join(lines)


def replay(
    settings: Settings,
    selection: Selection,
    limit: int | None,
    idle_timeout_s: float,
    *,
    dry_run: bool,
) -> ReplayReport:
    """Replay the selected dead letters not replayed before, at most ``limit`` of them."""
    found = read_dead_letters(settings, selection, None, idle_timeout_s)
    report = ReplayReport(found.topic, dry_run)
    candidates: list[StoredDeadLetter] = []
    for letter in found.letters:
        if letter.replayed_to is not None:
            report.already_replayed += 1
        elif letter.value_truncated:
            report.truncated += 1
        elif limit is None or len(candidates) < limit:
            candidates.append(letter)
    if dry_run:
        report.replayed = candidates
        return report
    replays = [_replay_record(letter, found.topic) for letter in candidates]
    if replays:
        AcknowledgedWriter(settings, "replay").write(replays)
    for letter, record in zip(candidates, replays, strict=True):
        if record.delivered is None:
            report.failed.append((letter, record.failure or "not acknowledged"))
            continue
        partition, offset = record.delivered
        letter.replayed_to = f"{record.topic}/{partition}/{offset}"
        report.replayed.append(letter)
    _note(settings, found.topic, report)
    return report


def _replay_record(letter: StoredDeadLetter, dead_letter_topic: str) -> Outgoing:
    headers: Headers = [(name, value) for name, value in letter.headers if name != REPLAYED_FROM]
    headers.append((REPLAYED_FROM, f"{dead_letter_topic}/{letter.location}".encode()))
    return Outgoing(letter.source_topic, letter.key, letter.value, headers, letter.source_partition)


def _note(settings: Settings, topic: str, report: ReplayReport) -> None:
    """Write one note per replayed dead letter into the dead-letter topic."""
    if not report.replayed:
        return
    notes = [
        Outgoing(
            topic,
            None,
            None,
            [
                (REPLAY_OF, letter.location.encode()),
                (REPLAYED_TO, (letter.replayed_to or "").encode()),
            ],
        )
        for letter in report.replayed
    ]
    AcknowledgedWriter(settings, "dead-letter").write(notes)
    report.unnoted = [
        (letter, note.failure or "not acknowledged")
        for letter, note in zip(report.replayed, notes, strict=True)
        if note.delivered is None
    ]
