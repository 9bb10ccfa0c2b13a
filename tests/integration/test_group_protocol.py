"""Both group protocols balance six members and keep a restarted static member's partitions.

Behaviour only; the seconds each protocol takes are measured by ``kafka-micro-bench
--group-protocols`` (docs/consumer-protocol.md), not here.
"""

import signal
import subprocess

import pytest
from apprunner import balanced, start_consumers, wait_until
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration

PROTOCOLS = ["consumer", "classic"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_static_members_get_four_partitions_each_and_keep_them_across_a_restart(app, protocol):
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
    wait_until(lambda: balanced(consumers), 120, "six static members to balance")

    before = [c.owned() for c in consumers]
    changes_before = [c.assignment_changes() for c in consumers]
    assert consumers[2].stop() == 0, consumers[2].log()
    consumers[2] = app.start(
        "static-3-restarted",
        "consume",
        record=True,
        consumer__group_protocol=protocol,
        consumer__instance_id="member-3",
    )
    wait_until(
        lambda: consumers[2].owned() == before[2], 120, "member-3 to get its partitions back"
    )
    others_changed = [
        c.assignment_changes() - changes_before[i] for i, c in enumerate(consumers) if i != 2
    ]
    assert [c.owned() for c in consumers] == before
    assert others_changed == [0] * 5


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_dynamic_members_rebalance_when_one_restarts(app, protocol):
    app.create_topic(partitions=24)
    consumers = start_consumers(app, 6, prefix="dynamic", consumer__group_protocol=protocol)
    wait_until(lambda: balanced(consumers), 120, "six dynamic members to balance")

    assert consumers[2].stop() == 0
    survivors = consumers[:2] + consumers[3:]
    wait_until(
        lambda: sorted(p for c in survivors for p in (c.owned() or [])) == list(range(24)),
        120,
        "five members to take over all 24 partitions",
    )
    consumers[2] = app.start("dynamic-3-restarted", "consume", consumer__group_protocol=protocol)
    wait_until(lambda: balanced(consumers), 120, "six members to balance again")


def test_a_killed_static_member_restarted_at_once_waits_for_its_instance_id_and_rejoins(app):
    """SIGKILL leaves the member in the group until its session expires; a process started with
    its instance id meanwhile joins again every few seconds in the same process (same PID),
    instead of exiting."""
    app.create_topic(partitions=4)
    members = [
        app.start(f"static-{n}", "consume", consumer__instance_id=f"member-{n}") for n in (1, 2)
    ]
    wait_until(lambda: balanced(members, partitions=4), 120, "two static members to balance")
    members[1].popen.kill()
    members[1].popen.wait()
    restarted = app.start("static-2-restarted", "consume", consumer__instance_id="member-2")
    wait_until(restarted.owned, 120, "the restarted member to own partitions")
    log = restarted.log()
    assert restarted.popen.poll() is None, log
    assert "'member-2' is still held in group" in log, "the id was free: the test proved nothing"
    assert "joining again in 2 s" in log, log
    assert "consumer failed" not in log, log


def test_with_kip_848_a_stalled_member_does_not_hold_up_a_newcomer(app, broker):
    """A stalled member (SIGSTOP: a VM or GC pause) is still in the group, its session not yet
    expired, when a seventh member already owns partitions: under classic the seventh waits
    for that session to expire (the bench measures how long)."""
    # The deployed 10 s session could end the stall before a loaded machine starts the seventh.
    set_group_session_timeout(broker, app.group, 45000)
    app.create_topic(partitions=24)
    consumers = start_consumers(app, 6, prefix="member", consumer__group_protocol="consumer")
    wait_until(lambda: balanced(consumers), 120, "six members to balance")
    stalled = consumers[0]
    stalled.popen.send_signal(signal.SIGSTOP)
    try:
        newcomer = app.start("member-7", "consume", consumer__group_protocol="consumer")
        wait_until(newcomer.owned, 120, "the seventh member to get partitions")
        members = group_members(app)
    finally:
        stalled.popen.send_signal(signal.SIGCONT)
    assert members == 7, "the stalled member had left the group: the test proved nothing"


def group_members(app) -> int:
    admin = AdminClient({"bootstrap.servers": app.bootstrap})
    description = admin.describe_consumer_groups([app.group], request_timeout=10)[app.group]
    return len(description.result().members)


def set_group_session_timeout(broker, group: str, timeout_ms: int) -> None:
    """A group config (KIP-848), which takes precedence over the broker's default."""
    subprocess.run(
        [
            str(broker.kafka_home / "bin" / "kafka-configs"),
            "--bootstrap-server",
            broker.bootstrap,
            "--alter",
            "--entity-type",
            "groups",
            "--entity-name",
            group,
            "--add-config",
            f"consumer.session.timeout.ms={timeout_ms}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
