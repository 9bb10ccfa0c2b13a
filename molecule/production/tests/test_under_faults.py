"""The pipeline under faults, modelled on Kafka's own system tests (replication_test,
round_trip_fault_test): brokers bounced cleanly and hard, a broker paused, consumers and the
producer killed, an app host cut off, whole hosts rebooted.

The deployed units do the work, with their acknowledgement ledgers and consumer records on.
Each scenario restarts the producers (new producer ids, so that every message is counted in the
scenario that sent it), injects its fault under load, waits until the pipeline has recovered
without a human (every unit active, no partition under-replicated or leaderless, the group
whole), keeps producing a while, stops the producers and waits for the group's lag to reach 0.
The last test then decides every scenario at once: ``kafka-micro verify --acked`` over all the
ledgers (no acknowledged message lost, none duplicated), the consumers' records (every message
in the topic processed at least once), and the committed offsets sampled all along (never
moving backwards). It writes the scenario table to .ci-logs/faults.md (docs/reliability.md).

Runs last of the scenario's tests (they expect the pipeline as deployed). FAULT_ROUNDS sets the
bounces per broker scenario (default 5, as Kafka's tests); FAULT_SCENARIOS, a comma-separated
list of scenario names (bounce, hard-bounce, pause, kill, cut, reboot, disk, scale, app-config,
upgrade, broker, controller), runs only those, the others reported as skipped; empty, none (CI:
the suite does not fit in its time).
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from faults import (
    BROKER_UNIT,
    CONSUMER_UNITS,
    INSTANCES,
    KAFKA_INSTALL_ROOT,
    MAX_INSTANCES,
    PRODUCER_UNIT,
    Pipeline,
    Scenario,
    consumer_units,
)
from siteplay import INVENTORY, rolled_one_at_a_time, run_site

SHARED = Path(__file__).resolve().parents[2] / "shared"
ARTIFACTS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".ci-logs"
NETWORK = "kafka-micro-production"
ROUNDS = int(os.environ.get("FAULT_ROUNDS", "5"))
SELECTED = os.environ.get(
    "FAULT_SCENARIOS",
    "bounce,hard-bounce,pause,kill,cut,reboot,disk,scale,app-config,upgrade,broker,controller",
).split(",")
pytestmark = pytest.mark.skipif(
    SELECTED == [""], reason="FAULT_SCENARIOS is empty: no fault scenario selected"
)
# Producing before the fault and after the recovery, so that both sides carry load.
LOAD_S = 10
PAUSE_S = 20
CUT_S = 60
# How long the pipeline runs on two brokers while the third one's disk refuses writes.
BROKEN_DISK_S = 30
# Consumers per app host, step by step: fewer, then more, then as deployed.
SCALE_STEPS = (3, MAX_INSTANCES, INSTANCES)
# A consumer setting changed and changed back, so that the consumers roll twice.
CONSUMER_SETTING = "kafka_app_consumer_batch_timeout_s"
CONSUMER_SETTING_VALUES = (0.5, 1.0)
# Day-2 changes run site.yml on these hosts only: the brokers are not what changes.
APP_LIMIT = "kafka_app:monitoring"
# The release a rolling upgrade comes from: `archive/build --release previous` makes its archive.
PREVIOUS_RELEASE = "8.0.0"
CURRENT_RELEASE = "8.0.3"
PROJECT = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
# The node an operator adds to the running cluster, and later retires: a broker, or a controller.
SPARE_BROKER = "production-kafka-4"
SPARE_NODE_ID = 4
SCENARIOS: list[Scenario] = []


@pytest.fixture(scope="module")
def pipeline():
    deployed = Pipeline(os.environ["MOLECULE_INVENTORY_FILE"], NETWORK)
    deployed.install_probe(str(SHARED / "pipeline_probe.py"))
    deployed.wait_recovered(time.monotonic())
    deployed.start_offset_sampler()
    yield deployed
    deployed.stop_offset_sampler()
    # As deployed again, whatever a failed scenario left behind.
    deployed.start_producers()


def selected(key):
    if key not in SELECTED:
        pytest.skip(f"{key} is not in FAULT_SCENARIOS={','.join(SELECTED)}")


def run_scenario(pipeline, name, fault, inject):
    """Restart the producers, inject, wait for recovery, stop producing, wait for lag 0."""
    scenario = Scenario(name, fault)
    pipeline.restart_producers()
    time.sleep(LOAD_S)
    recoveries = [pipeline.wait_recovered(ended) for ended in inject()]
    scenario.recovery_s = max(recoveries)
    time.sleep(LOAD_S)
    pipeline.stop_producers()
    scenario.lag_zero_s = pipeline.wait_lag_zero()
    scenario.producers = pipeline.producer_ids(scenario.started)
    SCENARIOS.append(scenario)
    return scenario


def test_clean_bounces_of_the_busiest_leader(pipeline):
    selected("bounce")

    def inject():
        for _ in range(ROUNDS):
            leader = pipeline.busiest_leader()
            pipeline.stop_broker(leader)
            pipeline.start_broker(leader)
            yield time.monotonic()

    run_scenario(
        pipeline, "clean bounce", f"SIGTERM, restart: the busiest leader, {ROUNDS} times", inject
    )


def test_hard_bounces_of_the_busiest_leader(pipeline):
    selected("hard-bounce")

    def inject():
        for _ in range(ROUNDS):
            pipeline.kill(pipeline.busiest_leader(), ["confluent-kafka.service"])
            # systemd restarts it (Restart=on-failure, after RestartSec).
            yield time.monotonic()

    run_scenario(pipeline, "hard bounce", f"SIGKILL: the busiest leader, {ROUNDS} times", inject)


def test_a_broker_paused_longer_than_its_session(pipeline):
    selected("pause")

    def inject():
        leader = pipeline.busiest_leader()
        pipeline.signal_broker(leader, "STOP")
        time.sleep(PAUSE_S)
        pipeline.signal_broker(leader, "CONT")
        yield time.monotonic()

    run_scenario(pipeline, "broker paused", f"SIGSTOP {PAUSE_S} s, SIGCONT", inject)


def test_killed_consumers_and_producer_come_back_at_once(pipeline):
    selected("kill")
    first, second = pipeline.apps[:2]
    before = {
        name: pipeline.restarts(name, [PRODUCER_UNIT, *CONSUMER_UNITS]) for name in (first, second)
    }

    def inject():
        pipeline.kill(first, CONSUMER_UNITS[:2])
        yield time.monotonic()
        pipeline.kill(second, CONSUMER_UNITS)
        yield time.monotonic()
        pipeline.kill(first, [PRODUCER_UNIT])
        yield time.monotonic()

    run_scenario(
        pipeline,
        "processes killed",
        "SIGKILL: 2 consumers, then all 6 of a host, then a producer",
        inject,
    )
    # No restart loop: the consumers wait in-process for their ids (before, Kafka's 45 s session
    # took up to 22 restarts). Once per kill as a rule; CI-like load (a load average of 40 to 60)
    # saw one consumer restart a second time, not yet explained (docs/reliability.md).
    after = {
        name: pipeline.restarts(name, [PRODUCER_UNIT, *CONSUMER_UNITS]) for name in (first, second)
    }
    killed = {
        first: {*CONSUMER_UNITS[:2], PRODUCER_UNIT},
        second: set(CONSUMER_UNITS),
    }
    for name, counts in after.items():
        for unit, count in counts.items():
            restarted = count - before[name][unit]
            allowed = (1, 2) if unit in killed[name] else (0,)
            assert restarted in allowed, (name, unit, restarted)


def test_an_app_host_cut_from_the_brokers(pipeline):
    selected("cut")

    def inject():
        cut = pipeline.apps[0]
        pipeline.disconnect(cut)
        time.sleep(CUT_S)
        pipeline.connect(cut)
        yield time.monotonic()

    run_scenario(pipeline, "app host cut off", f"network disconnected {CUT_S} s", inject)


def test_whole_hosts_rebooted(pipeline):
    selected("reboot")

    def inject():
        pipeline.restart_container(pipeline.busiest_leader())
        yield time.monotonic()
        pipeline.restart_container(pipeline.apps[-1])
        yield time.monotonic()

    run_scenario(
        pipeline, "hosts rebooted", "container restart: a broker host, then an app host", inject
    )


def test_a_broker_whose_data_directory_became_unwritable(pipeline):
    selected("disk")
    halted = {}

    def inject():
        broken = pipeline.busiest_leader()
        before = pipeline.restarts(broken, [BROKER_UNIT])[BROKER_UNIT]
        mode = pipeline.make_data_dir_unwritable(broken)
        # Kafka takes its only data directory offline at its next checkpoint and halts; systemd
        # restarts it, and it halts again as long as the directory refuses writes.
        halted["s"] = pipeline.wait_restarted(broken, BROKER_UNIT, before)
        halted["log"] = pipeline.run(broken, "grep -h 'log dirs' /var/log/kafka/server.log*")
        time.sleep(BROKEN_DISK_S)
        # The disk is repaired; the next restart systemd makes finds it writable again.
        pipeline.restore_data_dir(broken, mode)
        yield time.monotonic()

    scenario = run_scenario(
        pipeline,
        "data directory unwritable",
        f"a broker's data directory read-only for {BROKEN_DISK_S} s after it halted, then repaired",
        inject,
    )
    scenario.fault += (
        f" (down and restarted by systemd {halted['s']:.0f} s after the directory became read-only)"
    )
    assert "have failed" in halted["log"], halted["log"][-2000:]


def test_consumers_scaled_down_and_up_under_load(pipeline):
    selected("scale")

    def inject():
        for instances in SCALE_STEPS:
            result = run_site(
                "--limit", APP_LIMIT, "-e", json.dumps({"kafka_app_consumer_instances": instances})
            )
            assert result.returncode == 0, result.stdout[-4000:]
            pipeline.instances = instances
            for name in pipeline.apps:
                enabled = pipeline.enabled(name, consumer_units(MAX_INSTANCES))
                expected = {unit: "enabled" for unit in consumer_units(instances)}
                assert {u: s for u, s in enabled.items() if s == "enabled"} == expected, enabled
            yield time.monotonic()

    scenario = run_scenario(
        pipeline,
        "consumers scaled",
        f"kafka_app_consumer_instances {INSTANCES} -> {' -> '.join(map(str, SCALE_STEPS))}",
        inject,
    )
    scenario.graceful = True


def test_an_app_configuration_change_rolls_each_hosts_consumers_one_at_a_time(pipeline):
    selected("app-config")
    rolls = []

    def inject():
        for value in CONSUMER_SETTING_VALUES:
            started = time.time()
            result = run_site("--limit", APP_LIMIT, "-e", json.dumps({CONSUMER_SETTING: value}))
            assert result.returncode == 0, result.stdout[-4000:]
            rolls.extend((name, pipeline.unit_transitions(name, started)) for name in pipeline.apps)
            yield time.monotonic()

    scenario = run_scenario(
        pipeline,
        "app configuration changed",
        f"{CONSUMER_SETTING} {' then '.join(map(str, CONSUMER_SETTING_VALUES))}: site.yml",
        inject,
    )
    scenario.graceful = True
    for name, transitions in rolls:
        down: set[str] = set()
        for _, unit, kind in transitions:
            if kind == "stopping":
                down.add(unit)
                assert len(down) == 1, (name, sorted(down), transitions)
            else:
                down.discard(unit)
        restarted = {unit for _, unit, kind in transitions if kind == "started"}
        assert restarted == set(CONSUMER_UNITS), (name, transitions)


def test_kafka_downgraded_only_when_forced_then_upgraded_one_node_at_a_time(pipeline):
    """The brokers go to the previous release (refused until forced) and back to the current
    one, each time one node at a time behind the health check, under load."""
    selected("upgrade")
    subprocess.run(
        [str(PROJECT / "archive" / "build"), "--release", "previous"],
        check=True,
        capture_output=True,
        timeout=1800,
    )
    consumers_before = {name: pipeline.restarts(name, CONSUMER_UNITS) for name in pipeline.apps}
    refused_pids = {name: pipeline.broker_pid(name) for name in pipeline.brokers}
    refused = run_site("--limit", "kafka", "-e", f"confluent_kafka_version={PREVIOUS_RELEASE}")
    assert refused.returncode != 0
    # Ansible writes a failed task's message to stderr.
    assert "refusing to downgrade" in refused.stderr, refused.stderr[-4000:]
    assert "confluent_kafka_allow_downgrade=true" in refused.stderr, refused.stderr[-4000:]
    # Refused before anything changed: the same release, the same processes.
    assert {name: pipeline.kafka_release(name) for name in pipeline.brokers} == dict.fromkeys(
        pipeline.brokers, CURRENT_RELEASE
    )
    assert {name: pipeline.broker_pid(name) for name in pipeline.brokers} == refused_pids

    def inject():
        for release, extra in (
            (PREVIOUS_RELEASE, {"confluent_kafka_allow_downgrade": True}),
            (CURRENT_RELEASE, {}),
        ):
            result = run_site(
                "--limit", "kafka", "-e", json.dumps({"confluent_kafka_version": release, **extra})
            )
            assert result.returncode == 0, result.stdout[-4000:]
            assert rolled_one_at_a_time(result.stdout, pipeline.brokers), result.stdout[-4000:]
            assert {name: pipeline.kafka_release(name) for name in pipeline.brokers} == (
                dict.fromkeys(pipeline.brokers, release)
            )
            yield time.monotonic()

    scenario = run_scenario(
        pipeline,
        "Kafka downgraded and upgraded",
        f"site.yml: {CURRENT_RELEASE} -> {PREVIOUS_RELEASE} (forced) -> {CURRENT_RELEASE}, rolling",
        inject,
    )
    scenario.graceful = True
    # No consumer error: none of them exited meanwhile.
    assert {name: pipeline.restarts(name, CONSUMER_UNITS) for name in pipeline.apps} == (
        consumers_before
    )


def add_spare_node(pipeline, scenario, host_vars):
    """A fourth host in the inventory's kafka group, as an operator adds a VM; yields its
    inventory entry, which sits beside molecule's, where the cluster's CA and passwords are."""
    # Here rather than in the test: an unselected scenario boots no container.
    selected(scenario)
    pipeline.start_host_like(SPARE_BROKER, pipeline.brokers[0])
    entry = Path(INVENTORY) / "spare-node.yml"
    host = {
        "ansible_connection": "community.docker.docker",
        "confluent_kafka_node_id": SPARE_NODE_ID,
        **host_vars,
    }
    entry.write_text(json.dumps({"kafka": {"hosts": {SPARE_BROKER: host}}}))
    yield entry
    entry.unlink(missing_ok=True)
    pipeline.remove_host(SPARE_BROKER)


@pytest.fixture
def spare_broker(pipeline):
    """A broker-only node."""
    yield from add_spare_node(pipeline, "broker", {"confluent_kafka_process_roles": ["broker"]})


@pytest.fixture
def spare_controller(pipeline):
    """A combined broker and controller node, joining the running quorum."""
    yield from add_spare_node(
        pipeline,
        "controller",
        {
            "confluent_kafka_process_roles": ["broker", "controller"],
            "confluent_kafka_join_existing_quorum": True,
        },
    )


def test_a_broker_added_then_retired_under_load(pipeline, spare_broker):
    """A broker-only node joins the running cluster, let in on the controllers' listener by an
    ACL rather than by a new super user list, so no running broker restarts; it takes its share
    of every topic's replicas (rebalance.yml), then gives them back and leaves
    (retire_broker.yml), its ACL withdrawn: nothing lost, and no broker restarts at any step."""
    three = sorted(pipeline.node_ids)
    four = [*three, SPARE_NODE_ID]
    pids = {name: pipeline.broker_pid(name) for name in pipeline.brokers}
    spare_acl = f"principal=User:CN={SPARE_BROKER}, host=*, operation=CLUSTER_ACTION"

    def inject():
        # A new host: Java, Kafka and the app's wheelhouse to install; nothing to roll.
        added = run_site(timeout=1800)
        assert added.returncode == 0, added.stdout[-4000:]
        assert {name: pipeline.broker_pid(name) for name in pipeline.brokers} == pids
        assert spare_acl in pipeline.cluster_acls()
        yield time.monotonic()

        spread = run_site(playbook="rebalance.yml")
        assert spread.returncode == 0, spread.stdout[-4000:]
        replicas, preferred = pipeline.replicas_per_broker()
        assert replicas == dict.fromkeys(four, 18), replicas
        assert preferred == dict.fromkeys(four, 6), preferred
        again = run_site(playbook="rebalance.yml")
        assert set(re.findall(r" changed=(\d+) ", again.stdout)) == {"0"}, again.stdout[-3000:]
        yield time.monotonic()

        retired = run_site("--limit", SPARE_BROKER, playbook="retire_broker.yml")
        assert retired.returncode == 0, retired.stdout[-4000:]
        replicas, preferred = pipeline.replicas_per_broker()
        assert replicas == dict.fromkeys(three, 24), replicas
        assert preferred == dict.fromkeys(three, 8), preferred
        spare = pipeline.host(SPARE_BROKER).service(BROKER_UNIT)
        assert not spare.is_running and not spare.is_enabled
        registered = pipeline.run(
            pipeline.brokers[0],
            f"{KAFKA_INSTALL_ROOT}/current/bin/kafka-cluster list-endpoints "
            f"--include-fenced-brokers --bootstrap-server {pipeline.brokers[0]}:9092 "
            "--config /etc/kafka/admin-client.properties",
        )
        assert sorted(int(line.split()[0]) for line in registered.splitlines()[1:]) == three
        assert spare_acl not in pipeline.cluster_acls()
        # The operator's last step: out of the inventory, and the clients forget it.
        spare_broker.unlink()
        forgotten = run_site("--limit", APP_LIMIT)
        assert forgotten.returncode == 0, forgotten.stdout[-4000:]
        yield time.monotonic()

    run_scenario(
        pipeline,
        "broker added and retired",
        f"broker-only node {SPARE_NODE_ID} added (site.yml), every topic spread over 4 brokers "
        "(rebalance.yml), then drained and retired (retire_broker.yml)",
        inject,
    ).graceful = True
    assert {name: pipeline.broker_pid(name) for name in pipeline.brokers} == pids


def test_a_controller_added_to_the_quorum_then_retired_under_load(pipeline, spare_controller):
    """A combined node joins the running quorum: it starts as an observer, the three running
    nodes restart one at a time to trust it, and it becomes the fourth voter; retired, it stops,
    then leaves the voters; out of the inventory, the three roll once more and forget it. Nothing
    lost."""
    three = sorted(pipeline.node_ids)
    four = [*three, SPARE_NODE_ID]
    assert pipeline.voters() == three

    def inject():
        added = run_site(timeout=2400)
        assert added.returncode == 0, added.stdout[-4000:]
        assert rolled_one_at_a_time(added.stdout, pipeline.brokers), added.stdout[-4000:]
        assert pipeline.voters() == four
        again = run_site("--limit", "kafka")
        assert set(re.findall(r" changed=(\d+) ", again.stdout)) == {"0"}, again.stdout[-3000:]
        yield time.monotonic()

        retired = run_site("--limit", SPARE_BROKER, playbook="retire_broker.yml")
        assert retired.returncode == 0, retired.stdout[-4000:]
        assert pipeline.voters() == three
        replicas, _preferred = pipeline.replicas_per_broker()
        assert SPARE_NODE_ID not in replicas, replicas
        spare = pipeline.host(SPARE_BROKER).service(BROKER_UNIT)
        assert not spare.is_running and not spare.is_enabled
        spare_controller.unlink()
        forgotten = run_site(timeout=2400)
        assert forgotten.returncode == 0, forgotten.stdout[-4000:]
        assert rolled_one_at_a_time(forgotten.stdout, pipeline.brokers), forgotten.stdout[-4000:]
        assert pipeline.voters() == three
        yield time.monotonic()

    run_scenario(
        pipeline,
        "controller added and retired",
        f"combined node {SPARE_NODE_ID} joins the quorum as its fourth voter (site.yml, the "
        "three rolled), then leaves it (retire_broker.yml) and the inventory (site.yml, rolled)",
        inject,
    ).graceful = True


def test_every_acknowledged_message_was_processed_once_in_order_and_offsets_never_fell(pipeline):
    assert SCENARIOS, "no scenario ran"
    report = pipeline.verify()
    found = {p["producer"]: p for p in report["producers"]}
    acked = {p["producer"]: p for p in report["acked"]["producers"]}
    ids = [producer for scenario in SCENARIOS for producer in scenario.producers]
    processed = pipeline.processed(str(SHARED / "record_summary.py"), ids)
    window = pipeline.at_least_once_window()
    rows = []
    for scenario in SCENARIOS:
        totals = dict.fromkeys(
            (
                "acknowledged",
                "found",
                "processed",
                "processed_again",
                "lost",
                "duplicated",
                "out_of_order",
            ),
            0,
        )
        for producer in scenario.producers:
            assert producer in acked, f"{scenario.name}: {producer} left no ledger"
            totals["acknowledged"] += acked[producer]["acknowledged"]
            totals["lost"] += acked[producer]["lost"]
            totals["found"] += found.get(producer, {}).get("count", 0)
            totals["duplicated"] += found.get(producer, {}).get("duplicates", 0)
            totals["out_of_order"] += found.get(producer, {}).get("out_of_order", 0)
            distinct, records = processed[producer]
            totals["processed"] += distinct
            totals["processed_again"] += records - distinct
        rows.append(
            {
                "scenario": scenario.name,
                "fault": scenario.fault,
                **totals,
                "recovery_s": round(scenario.recovery_s, 1),
                "lag_zero_s": round(scenario.lag_zero_s, 1),
                "graceful": scenario.graceful,
            }
        )
    samples = pipeline.committed_offset_samples()
    fell = committed_offsets_that_fell(samples)
    write_table(rows, fell, len(samples), window)

    for row in rows:
        assert row["lost"] == 0, row
        assert row["duplicated"] == 0, row
        assert row["out_of_order"] == 0, row
        assert row["acknowledged"] > 0, row
        # Each message in the topic (acknowledged ones and any of the unacknowledged tail).
        assert row["processed"] == row["found"] - row["duplicated"], row
        if row["graceful"]:
            # Stopped consumers commit what they processed: anything read again must fit in
            # what the whole pipeline sends between two automatic commits.
            assert row["processed_again"] <= window, (row, window)
    assert samples, "no committed offsets were sampled"
    assert not fell, fell


def committed_offsets_that_fell(samples):
    """(partition, before, after) wherever a committed offset was lower than the one before."""
    last: dict[str, int] = {}
    fell = []
    for sample in samples:
        for partition, offset in sample.get("offsets", {}).items():
            if offset < last.get(partition, -1):
                fell.append((partition, last[partition], offset))
            last[partition] = offset
    return fell


def write_table(rows, fell, samples, window):
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| scenario | fault | acknowledged | in the topic | processed | processed again | lost "
        "| duplicated | recovered after | lag 0 after |",
        "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['scenario']} | {r['fault']} | {r['acknowledged']} | {r['found']} "
        f"| {r['processed']} | {r['processed_again']} | {r['lost']} | {r['duplicated']} "
        f"| {r['recovery_s']} s | {r['lag_zero_s']} s |"
        for r in rows
    ]
    lines.append(f"\nCommitted offsets sampled {samples} times; moved backwards: {len(fell)}.")
    lines.append(
        f"At-least-once window (messages between two automatic commits, whole pipeline): {window}."
    )
    (ARTIFACTS / "faults.md").write_text("\n".join(lines) + "\n")
