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
list of scenario names (bounce, hard-bounce, pause, kill, cut, reboot), runs only those, the
others reported as skipped; empty, none (CI: the suite does not fit in its time).
"""

import json
import os
import time
from pathlib import Path

import pytest
from faults import CONSUMER_UNITS, PRODUCER_UNIT, Pipeline, Scenario

SHARED = Path(__file__).resolve().parents[2] / "shared"
ARTIFACTS = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".ci-logs"
NETWORK = "kafka-micro-production"
ROUNDS = int(os.environ.get("FAULT_ROUNDS", "5"))
SELECTED = os.environ.get("FAULT_SCENARIOS", "bounce,hard-bounce,pause,kill,cut,reboot").split(",")
pytestmark = pytest.mark.skipif(
    SELECTED == [""], reason="FAULT_SCENARIOS is empty: no fault scenario selected"
)
# Producing before the fault and after the recovery, so that both sides carry load.
LOAD_S = 10
PAUSE_S = 20
CUT_S = 60
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


def test_every_acknowledged_message_was_processed_once_in_order_and_offsets_never_fell(pipeline):
    assert SCENARIOS, "no scenario ran"
    report = pipeline.verify()
    found = {p["producer"]: p for p in report["producers"]}
    acked = {p["producer"]: p for p in report["acked"]["producers"]}
    ids = [producer for scenario in SCENARIOS for producer in scenario.producers]
    processed = pipeline.processed(str(SHARED / "record_summary.py"), ids)
    rows = []
    for scenario in SCENARIOS:
        totals = dict.fromkeys(("acknowledged", "found", "processed", "lost", "duplicated"), 0)
        for producer in scenario.producers:
            assert producer in acked, f"{scenario.name}: {producer} left no ledger"
            totals["acknowledged"] += acked[producer]["acknowledged"]
            totals["lost"] += acked[producer]["lost"]
            totals["found"] += found.get(producer, {}).get("count", 0)
            totals["duplicated"] += found.get(producer, {}).get("duplicates", 0)
            totals["processed"] += processed[producer]
        rows.append(
            {
                "scenario": scenario.name,
                "fault": scenario.fault,
                **totals,
                "recovery_s": round(scenario.recovery_s, 1),
                "lag_zero_s": round(scenario.lag_zero_s, 1),
            }
        )
    samples = pipeline.committed_offset_samples()
    fell = committed_offsets_that_fell(samples)
    write_table(rows, fell, len(samples))

    for row in rows:
        assert row["lost"] == 0, row
        assert row["duplicated"] == 0, row
        assert row["acknowledged"] > 0, row
        # Each message in the topic (acknowledged ones and any of the unacknowledged tail).
        assert row["processed"] == row["found"] - row["duplicated"], row
    assert report["out_of_order"] == 0
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


def write_table(rows, fell, samples):
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| scenario | fault | acknowledged | in the topic | processed | lost | duplicated "
        "| recovered after | lag 0 after |",
        "| :--- | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['scenario']} | {r['fault']} | {r['acknowledged']} | {r['found']} "
        f"| {r['processed']} | {r['lost']} | {r['duplicated']} | {r['recovery_s']} s "
        f"| {r['lag_zero_s']} s |"
        for r in rows
    ]
    lines.append(f"\nCommitted offsets sampled {samples} times; moved backwards: {len(fell)}.")
    (ARTIFACTS / "faults.md").write_text("\n".join(lines) + "\n")
