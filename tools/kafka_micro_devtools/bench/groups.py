"""Consumer group protocols timed: KIP-848 ``consumer`` against ``classic``, six members each.

The evidence behind docs/consumer-protocol.md. Per protocol: six static members start until
each owns its share; one is restarted (same ``group.instance.id``) until it owns the same
partitions again; six dynamic members start, one stops until the other five own everything,
a replacement starts until all six are balanced again; one member is stalled (SIGSTOP) and a
seventh starts, until the seventh owns partitions. Ownership is what each member logged last
("now owns N partitions: [...]"), i.e. what its assignment callbacks saw.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from kafka_micro_devtools.bench.context import BenchContext, BenchError
from kafka_micro_devtools.bench.ours import Probe, settings_tree
from kafka_micro_devtools.bench.profile import BenchProfile
from kafka_micro_devtools.bench.results import load_average

PROTOCOLS = ("consumer", "classic")
MEMBERS = 6
PARTITIONS = 24
_TIMEOUT_S = 120.0
_POLL_S = 0.05
_OWNS = re.compile(r"now owns \d+ partitions: \[([\d, ]*)\]")


class GroupTimings(BaseModel):
    """Seconds measured for one protocol in one round, and the load while it ran."""

    model_config = ConfigDict(extra="forbid")

    protocol: str
    static_balanced_s: float
    static_restart_s: float
    static_restart_changes_seen_by_others: list[int]
    dynamic_balanced_s: float
    dynamic_takeover_s: float
    dynamic_rebalanced_s: float
    dynamic_changes_seen_by_others: list[int]
    stalled_member_newcomer_s: float
    load_average: tuple[float, float, float]


def owned(probe: Probe) -> list[int] | None:
    """The partitions the member last said it owns; None before its first assignment."""
    found = _OWNS.findall(probe.log_file.read_text(encoding="utf-8", errors="replace"))
    if not found:
        return None
    return [int(partition) for partition in found[-1].split(",") if partition.strip()]


def assignment_changes(probe: Probe) -> int:
    return len(_OWNS.findall(probe.log_file.read_text(encoding="utf-8", errors="replace")))


def balanced(members: Sequence[Probe]) -> bool:
    """Each member owns an equal share and together they own every partition."""
    shares = [owned(member) for member in members]
    if any(share is None or len(share) != PARTITIONS // len(members) for share in shares):
        return False
    return sorted(p for share in shares for p in share or []) == list(range(PARTITIONS))


def seconds_until(condition: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > _TIMEOUT_S:
            raise BenchError(f"group protocols: {what} did not happen within {_TIMEOUT_S:g} s")
        time.sleep(_POLL_S)
    return round(time.monotonic() - started, 2)


class _Group:
    """The member processes of one consumer group on a topic of its own."""

    def __init__(self, ctx: BenchContext, profile: BenchProfile, protocol: str, what: str) -> None:
        self._ctx = ctx
        self._profile = profile
        self._protocol = protocol
        self._topic = ctx.create_topic(f"{what}-{protocol}", PARTITIONS)
        self._group = ctx.unique_name(f"{what}-{protocol}")
        self.members: list[Probe] = []

    def start(self, name: str, instance_id: str | None = None) -> Probe:
        consumer = {"group_id": self._group, "group_protocol": self._protocol}
        if instance_id is not None:
            consumer["instance_id"] = instance_id
        settings = settings_tree(
            self._ctx, self._profile, self._topic, user="consumer", consumer=consumer
        )
        probe = Probe(self._ctx, f"{self._group}-{name}", settings, "consume")
        self.members.append(probe)
        return probe

    def kill_all(self) -> None:
        for probe in self.members:
            probe.resume()
            probe.kill()


def _changes_of_others(members: list[Probe], before: list[int], skip: int) -> list[int]:
    return [
        assignment_changes(member) - before[index]
        for index, member in enumerate(members)
        if index != skip
    ]


def _static(ctx: BenchContext, profile: BenchProfile, protocol: str) -> dict[str, object]:
    group = _Group(ctx, profile, protocol, "static")
    try:
        members = [group.start(f"static-{n}", f"member-{n}") for n in range(1, MEMBERS + 1)]
        balanced_s = seconds_until(lambda: balanced(members), "six static members to balance")
        before = owned(members[2])
        changes_before = [assignment_changes(member) for member in members]
        started = time.monotonic()
        members[2].stop()
        members[2] = group.start("static-3-restarted", "member-3")
        seconds_until(lambda: owned(members[2]) == before, "member-3 to own its partitions again")
        return {
            "static_balanced_s": balanced_s,
            "static_restart_s": round(time.monotonic() - started, 2),
            "static_restart_changes_seen_by_others": _changes_of_others(
                members, changes_before, skip=2
            ),
        }
    finally:
        group.kill_all()


def _dynamic(ctx: BenchContext, profile: BenchProfile, protocol: str) -> dict[str, object]:
    group = _Group(ctx, profile, protocol, "dynamic")
    try:
        members = [group.start(f"dynamic-{n}") for n in range(1, MEMBERS + 1)]
        balanced_s = seconds_until(lambda: balanced(members), "six dynamic members to balance")
        changes_before = [assignment_changes(member) for member in members]
        members[2].stop()
        survivors = members[:2] + members[3:]
        takeover_s = seconds_until(
            lambda: sorted(p for m in survivors for p in owned(m) or []) == list(range(PARTITIONS)),
            "five members to own all partitions",
        )
        members[2] = group.start("dynamic-3-restarted")
        return {
            "dynamic_balanced_s": balanced_s,
            "dynamic_takeover_s": takeover_s,
            "dynamic_rebalanced_s": seconds_until(
                lambda: balanced(members), "six members to balance again"
            ),
            "dynamic_changes_seen_by_others": _changes_of_others(members, changes_before, skip=2),
        }
    finally:
        group.kill_all()


def _stalled(ctx: BenchContext, profile: BenchProfile, protocol: str) -> dict[str, object]:
    group = _Group(ctx, profile, protocol, "stalled")
    try:
        members = [group.start(f"member-{n}") for n in range(1, MEMBERS + 1)]
        seconds_until(lambda: balanced(members), "six members to balance")
        members[0].pause()
        newcomer = group.start("member-7")
        return {
            "stalled_member_newcomer_s": seconds_until(
                lambda: bool(owned(newcomer)), "the seventh member to get partitions"
            )
        }
    finally:
        group.kill_all()


def measure(ctx: BenchContext, profile: BenchProfile, repeats: int) -> list[GroupTimings]:
    """Every scenario for both protocols, ``repeats`` rounds taking turns at going first."""
    timings = []
    for round_number in range(repeats):
        protocols = PROTOCOLS if round_number % 2 == 0 else PROTOCOLS[::-1]
        for protocol in protocols:
            load = load_average()
            values = {
                **_static(ctx, profile, protocol),
                **_dynamic(ctx, profile, protocol),
                **_stalled(ctx, profile, protocol),
            }
            ctx.delete_topics()
            timing = GroupTimings.model_validate(
                {"protocol": protocol, "load_average": load, **values}
            )
            ctx.progress("group protocol %s: %s", protocol, timing.model_dump_json())
            timings.append(timing)
    return timings


def to_table(timings: Sequence[GroupTimings]) -> str:
    """One row per scenario, one column per protocol: min-max seconds over the rounds."""
    rows = [
        ("6 static members start -> each owns 4", "static_balanced_s"),
        ("restart one static member -> it owns the same 4 again", "static_restart_s"),
        ("6 dynamic members start -> each owns 4", "dynamic_balanced_s"),
        ("stop one dynamic member -> the other 5 own all 24", "dynamic_takeover_s"),
        ("start a replacement -> balanced again", "dynamic_rebalanced_s"),
        (
            "one member stalled (SIGSTOP), a 7th joins -> its first partitions",
            "stalled_member_newcomer_s",
        ),
    ]
    lines = ["seconds (min-max over rounds) | " + " | ".join(PROTOCOLS)]
    for label, field in rows:
        cells = []
        for protocol in PROTOCOLS:
            values = [getattr(t, field) for t in timings if t.protocol == protocol]
            cells.append(f"{min(values):.1f}-{max(values):.1f}" if values else "n/a")
        lines.append(f"{label} | " + " | ".join(cells))
    for field in ("static_restart_changes_seen_by_others", "dynamic_changes_seen_by_others"):
        cells = [
            str([getattr(t, field) for t in timings if t.protocol == protocol])
            for protocol in PROTOCOLS
        ]
        lines.append(f"{field.replace('_', ' ')} | " + " | ".join(cells))
    return "\n".join(lines)
