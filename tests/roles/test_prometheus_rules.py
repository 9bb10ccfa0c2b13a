"""The prometheus role's configuration and alert rules, checked and unit-tested with promtool.

A real ansible-playbook run renders the role's templates with its defaults and variables, for an
inventory shaped like the lab plus a monitoring host, into a temporary directory; Debian's
promtool (package prometheus) then checks them and runs the rule unit tests of
tests/roles/data/prometheus-rules-test.yml, which prove that each alert fires on bad series and
stays silent on healthy ones.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from playbookrun import render_templates_play, run_playbook

DATA = Path(__file__).resolve().parent / "data"
MONITORING_HOST = "lab-monitoring-1"
ALERTS = [
    "KafkaMicroTargetDown",
    "KafkaUnderReplicatedPartitions",
    "KafkaOfflinePartitions",
    "KafkaNoActiveController",
    "KafkaMicroConsumerLagGrowing",
    "KafkaMicroProducerDeliveryFailures",
    "KafkaMicroDeadLetters",
    "HostDataDiskFull",
]


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install --no-install-recommends prometheus"
    return found


def inventory(tmp_path: Path) -> Path:
    """The lab's hosts (lab-app-2 with two consumers) and a monitoring host run locally."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "all": {
            "children": {
                "kafka": {
                    "hosts": {f"lab-kafka-{n}": {"confluent_kafka_node_id": n} for n in (1, 2, 3)}
                },
                "kafka_app": {
                    "hosts": {"lab-app-1": {}, "lab-app-2": {"kafka_app_consumer_instances": 2}}
                },
                "monitoring": {"hosts": {MONITORING_HOST: local}},
            }
        }
    }
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(hosts))
    return path


def render(tmp_path: Path, *extra_vars: str) -> Path:
    """The role's rules, prometheus.yml and command line, rendered into ``tmp_path/out``."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    templates = {
        "kafka-micro-rules.yml.j2": "kafka-micro-rules.yml",
        "prometheus.yml.j2": "prometheus.yml",
        "prometheus.default.j2": "prometheus.default",
    }
    (tmp_path / "render.yml").write_text(
        render_templates_play(
            "prometheus", "monitoring", {name: out / dest for name, dest in templates.items()}
        )
    )
    # The configuration names the rules where they were rendered (extra vars win over include_vars).
    result = run_playbook(
        inventory(tmp_path), tmp_path / "render.yml", f"_prometheus_config_dir={out}", *extra_vars
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return out


def check(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("prometheus"))


def test_rules_and_configuration_pass_promtool(rendered: Path) -> None:
    rules = check("check", "rules", "kafka-micro-rules.yml", cwd=rendered)
    assert f"{len(ALERTS)} rules found" in rules
    config = check("check", "config", "prometheus.yml", cwd=rendered)
    assert "1 rule files found" in config


def test_each_alert_fires_on_bad_series_and_stays_silent_on_healthy_ones(rendered: Path) -> None:
    shutil.copy(DATA / "prometheus-rules-test.yml", rendered)
    check("test", "rules", "prometheus-rules-test.yml", cwd=rendered)
    tested = yaml.safe_load((DATA / "prometheus-rules-test.yml").read_text())
    names = {case["alertname"] for test in tested["tests"] for case in test["alert_rule_test"]}
    assert names == set(ALERTS)


def test_every_process_of_the_inventory_is_a_target(rendered: Path) -> None:
    config = yaml.safe_load((rendered / "prometheus.yml").read_text())
    assert config["rule_files"] == [str(rendered / "kafka-micro-rules.yml")]
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert list(jobs) == ["prometheus", "kafka", "kafka_app", "node"]
    assert jobs["prometheus"] == [{"targets": ["localhost:9090"]}]
    assert [(c["targets"], c["labels"]["node_id"]) for c in jobs["kafka"]] == [
        ([f"lab-kafka-{n}:9404"], str(n)) for n in (1, 2, 3)
    ]
    app = [(c["targets"][0], c["labels"].get("consumer")) for c in jobs["kafka_app"]]
    assert app == [
        ("lab-app-1:9410", None),
        *((f"lab-app-1:{9410 + n}", str(n)) for n in range(1, 7)),
        ("lab-app-2:9410", None),
        ("lab-app-2:9411", "1"),
        ("lab-app-2:9412", "2"),
    ]
    # Sorted, whatever order the inventory's groups came in: the file does not change between runs.
    assert jobs["node"] == [
        {
            "targets": [
                "lab-app-1:9100",
                "lab-app-2:9100",
                "lab-kafka-1:9100",
                "lab-kafka-2:9100",
                "lab-kafka-3:9100",
                f"{MONITORING_HOST}:9100",
            ]
        }
    ]
    args = (rendered / "prometheus.default").read_text().split('ARGS="')[1].split('"')[0].split()
    assert args == [
        f"--config.file={rendered / 'prometheus.yml'}",
        "--web.listen-address=0.0.0.0:9090",
        "--storage.tsdb.path=/var/lib/prometheus/metrics2",
        "--storage.tsdb.retention.time=15d",
    ]


def test_the_configuration_is_the_same_on_every_run(tmp_path: Path, rendered: Path) -> None:
    again = render(tmp_path, f"_prometheus_config_dir={rendered}")
    assert (again / "prometheus.yml").read_bytes() == (rendered / "prometheus.yml").read_bytes()


def test_every_alert_window_is_a_role_variable(tmp_path: Path) -> None:
    windows = {
        "prometheus_alert_target_down_for": "10s",
        "prometheus_alert_under_replicated_for": "20s",
        "prometheus_alert_offline_partitions_for": "30s",
        "prometheus_alert_no_active_controller_for": "40s",
        "prometheus_alert_consumer_lag_growing_for": "50s",
        "prometheus_alert_producer_failures_for": "1m10s",
        "prometheus_alert_dead_letters_for": "1m15s",
        "prometheus_alert_disk_full_for": "1m20s",
    }
    ranges = {
        "prometheus_alert_consumer_lag_range": "45s",
        "prometheus_alert_producer_failures_range": "55s",
        "prometheus_alert_dead_letters_range": "65s",
    }
    out = render(
        tmp_path,
        *(f"{name}={value}" for name, value in {**windows, **ranges}.items()),
        "prometheus_alert_disk_used_percent=90",
        "prometheus_alert_consumer_lag_min=10",
        "prometheus_alert_disk_mountpoints=/var/lib/kafka.*",
        "prometheus_scrape_interval=5s",
        "prometheus_evaluation_interval=5s",
    )
    check("check", "rules", "kafka-micro-rules.yml", cwd=out)
    # A scrape interval under Prometheus's 10s timeout needs no timeout of its own.
    check("check", "config", "prometheus.yml", cwd=out)
    config = yaml.safe_load((out / "prometheus.yml").read_text())
    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}
    rules = {
        rule["alert"]: rule
        for rule in yaml.safe_load((out / "kafka-micro-rules.yml").read_text())["groups"][0][
            "rules"
        ]
    }
    assert [rules[alert]["for"] for alert in ALERTS] == list(windows.values())
    assert "[45s]" in rules["KafkaMicroConsumerLagGrowing"]["expr"]
    assert "> 10" in rules["KafkaMicroConsumerLagGrowing"]["expr"]
    assert "[55s]" in rules["KafkaMicroProducerDeliveryFailures"]["expr"]
    assert "[65s]" in rules["KafkaMicroDeadLetters"]["expr"]
    assert "> 90" in rules["HostDataDiskFull"]["expr"]
    assert "mountpoint=~`/var/lib/kafka.*`" in rules["HostDataDiskFull"]["expr"]
    for alert in ALERTS:
        assert rules[alert]["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description"} <= rules[alert]["annotations"].keys()


def preflight(tmp_path: Path, *extra_vars: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "preflight.yml").write_text(
        "- name: Run the prometheus role's checks\n"
        "  hosts: monitoring\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: Check the variables\n"
        "      ansible.builtin.include_role:\n"
        "        name: prometheus\n"
        "        tasks_from: preflight\n"
    )
    return run_playbook(inventory(tmp_path), tmp_path / "preflight.yml", *extra_vars)


def test_the_checks_pass_the_defaults(tmp_path: Path) -> None:
    result = preflight(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "prometheus_alert_consumer_lag_growing_for='5 minutes'",
            "prometheus_alert_consumer_lag_growing_for is",
        ),
        ("prometheus_retention_time=15", "prometheus_retention_time is"),
        ("prometheus_web_listen_address=9090", "prometheus_web_listen_address must be"),
        ('{"prometheus_extra_args": ["--a b"]}', "--a b"),
        ('{"prometheus_service_overrides": {"memory-max": "1G"}}', "prometheus_service_overrides"),
        (
            "kafka_cluster_monitoring_group=prometheus_hosts",
            "not in the inventory group prometheus_hosts",
        ),
    ],
)
def test_the_checks_refuse_bad_values_by_name(tmp_path: Path, extra: str, message: str) -> None:
    result = preflight(tmp_path, extra)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
