"""Evidence for docs/consumer-protocol.md: KIP-848 ``consumer`` against ``classic`` protocol.

Six consumer processes on a 24-partition topic, per protocol: time until each owns 4
partitions; restart of one static member (same group.instance.id); restart of one
dynamic member. Prints the seconds measured (run with -s); asserts only behaviour,
never a time limit.
"""

import signal
import time

import pytest
from apprunner import balanced, start_consumers, wait_until

pytestmark = pytest.mark.integration

PROTOCOLS = ["consumer", "classic"]


def elapsed_until(condition, what, timeout=120.0) -> float:
    started = time.monotonic()
    wait_until(condition, timeout, what, interval=0.05)
    return round(time.monotonic() - started, 2)


def settle_time(consumers) -> float:
    """From the last member's start (its first log line) to the last assignment change."""
    ready = max(c.times_of("consuming ")[0] for c in consumers)
    settled = max(c.times_of("now owns")[-1] for c in consumers)
    return round(settled - ready, 2)


def restart(app, consumers, index, name, **settings):
    """SIGTERM consumers[index], wait for its exit, start a replacement; return it."""
    assert consumers[index].stop() == 0, consumers[index].log()
    replacement = app.start(name, "consume", record=True, **settings)
    consumers[index] = replacement
    return replacement


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_static_members_get_four_partitions_each_and_keep_them_across_a_restart(
    app, protocol, capsys
):
    app.create_topic(partitions=24)
    consumers = [
        app.start(
            f"static-{n}",
            "consume",
            "--instance-id",
            f"member-{n}",
            record=True,
            consumer__group_protocol=protocol,
        )
        for n in range(1, 7)
    ]
    initial = elapsed_until(lambda: balanced(consumers), "six static members to balance")
    settle = settle_time(consumers)

    before = [c.owned() for c in consumers]
    changes_before = [c.assignment_changes() for c in consumers]
    started = time.monotonic()
    replacement = restart(
        app,
        consumers,
        2,
        "static-3-restarted",
        consumer__group_protocol=protocol,
        consumer__instance_id="member-3",
    )
    wait_until(lambda: replacement.owned() == before[2], 120, "member-3 to get its partitions back")
    rejoin = round(time.monotonic() - started, 2)
    others_changed = [
        c.assignment_changes() - changes_before[i] for i, c in enumerate(consumers) if i != 2
    ]
    with capsys.disabled():
        print(
            f"\n[{protocol}] static: 6 members balanced after {initial} s "
            f"({settle} s after the last one started); "
            f"restart of one member (stop+start) until it owned its 4 partitions again: "
            f"{rejoin} s; assignment changes seen by the other 5: {others_changed}"
        )
    assert [c.owned() for c in consumers] == before
    assert others_changed == [0] * 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dynamic_members_rebalance_when_one_restarts(app, protocol, capsys):
    app.create_topic(partitions=24)
    consumers = start_consumers(app, 6, prefix="dynamic", consumer__group_protocol=protocol)
    initial = elapsed_until(lambda: balanced(consumers), "six dynamic members to balance")
    settle = settle_time(consumers)

    changes_before = [c.assignment_changes() for c in consumers]
    started = time.monotonic()
    assert consumers[2].stop() == 0
    survivors = consumers[:2] + consumers[3:]
    wait_until(
        lambda: sorted(p for c in survivors for p in (c.owned() or [])) == list(range(24)),
        120,
        "five members to take over all 24 partitions",
        interval=0.05,
    )
    takeover = round(time.monotonic() - started, 2)
    consumers[2] = app.start("dynamic-3-restarted", "consume", consumer__group_protocol=protocol)
    started = time.monotonic()
    rejoin = elapsed_until(lambda: balanced(consumers), "six members to balance again")
    others_changed = [
        c.assignment_changes() - changes_before[i] for i, c in enumerate(consumers) if i != 2
    ]
    with capsys.disabled():
        print(
            f"\n[{protocol}] dynamic: 6 members balanced after {initial} s "
            f"({settle} s after the last one started); one stopped: "
            f"5 owned all 24 after {takeover} s; replacement started: balanced after "
            f"{rejoin} s; assignment changes seen by the other 5: {others_changed}"
        )
    assert balanced(consumers)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_stalled_member_does_not_keep_a_new_member_waiting_forever(app, protocol, capsys):
    """SIGSTOP one member (a VM or GC stall), then start a seventh: when does it get work?"""
    app.create_topic(partitions=24)
    consumers = start_consumers(app, 6, prefix="member", consumer__group_protocol=protocol)
    wait_until(lambda: balanced(consumers), 120, "six members to balance")
    stalled = consumers[0]
    stalled.popen.send_signal(signal.SIGSTOP)
    try:
        newcomer = app.start("member-7", "consume", consumer__group_protocol=protocol)
        started = time.monotonic()
        wait_until(newcomer.owned, 120, "the seventh member to get partitions", 0.05)
        first_work = round(time.monotonic() - started, 2)
    finally:
        stalled.popen.send_signal(signal.SIGCONT)
    with capsys.disabled():
        print(
            f"\n[{protocol}] one of 6 members stalled (SIGSTOP): a 7th member got its first "
            f"partitions after {first_work} s ({newcomer.owned()})"
        )
    assert newcomer.owned()
