"""The kafka_app role's state directory: the producer's acknowledgement ledgers and the consumers'
records, as its units and configuration give them to systemd and the app.

A real ansible-playbook run renders the role's configuration and writes its two units through
hardened_service's ``unit`` entry point, as the role does, into a temporary directory; the app
itself then reads the configuration.
"""

import json
import sys
from pathlib import Path

from playbookrun import REPO, app_settings, render_templates_play, run_playbook

ROLE = REPO / "roles" / "kafka_app"


def render(tmp_path: Path, *extra_vars: str) -> dict[str, str]:
    """The producer unit, the consumer unit template and the configuration, by file name."""
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    hosts = {
        "all": {
            "children": {
                "kafka": {"hosts": {"lab-kafka-1": {"confluent_kafka_node_id": 1}}},
                "kafka_app": {"hosts": {"lab-app-1": local}},
            }
        }
    }
    (tmp_path / "hosts.json").write_text(json.dumps(hosts))
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "play.yml").write_text(
        render_templates_play(
            "kafka_app", "kafka_app", {"kafka-micro.toml.j2": out / "kafka-micro.toml"}
        )
        # hardened_service writes /etc/systemd/system/UNIT: the name climbs back out to out/.
        + "    - name: Write each unit through hardened_service\n"
        "      ansible.builtin.include_role:\n"
        "        name: hardened_service\n"
        "        tasks_from: unit\n"
        "      vars:\n"
        f"        hardened_service_unit: '../../..{out}/{{{{ item }}}}'\n"
        f"        hardened_service_template: '{ROLE / 'templates'}/{{{{ item }}}}.j2'\n"
        "        hardened_service_overrides: {}\n"
        "      loop: [kafka-producer.service, kafka-consumer@.service]\n"
    )
    result = run_playbook(tmp_path / "hosts.json", tmp_path / "play.yml", *extra_vars)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {path.name: path.read_text() for path in out.iterdir()}


def service_lines(unit: str) -> list[str]:
    return [line for line in unit.splitlines() if line and not line.startswith("#")]


def written_settings(tmp_path: Path, config: str) -> dict:
    path = tmp_path / "app.toml"
    path.write_text(config)
    return app_settings(path)


def test_by_default_the_producer_keeps_ledgers_in_its_state_directory_and_consumers_no_record(
    tmp_path: Path,
) -> None:
    files = render(tmp_path)
    producer = service_lines(files["kafka-producer.service"])
    assert "StateDirectory=kafka-micro/acked" in producer
    # ProtectSystem=strict leaves a StateDirectory= writable: nothing else is needed.
    assert "ProtectSystem=strict" in producer
    consumer = service_lines(files["kafka-consumer@.service"])
    assert not [line for line in consumer if line.startswith("StateDirectory=")]
    (exec_start,) = [line for line in consumer if line.startswith("ExecStart=")]
    assert exec_start.endswith(" consume --instance-id %H-%i")
    settings = written_settings(tmp_path, files["kafka-micro.toml"])
    assert settings["producer"]["acked_ledger_dir"] == "/var/lib/kafka-micro/acked"
    assert settings["producer"]["acked_ledger_keep"] == 100


def test_consumer_records_and_no_ledger_in_a_state_directory_of_ones_choice(
    tmp_path: Path,
) -> None:
    files = render(
        tmp_path,
        "kafka_app_consumer_record=true",
        "kafka_app_producer_acked_ledger=false",
        "kafka_app_state_directory=pipeline/state",
    )
    consumer = service_lines(files["kafka-consumer@.service"])
    assert "StateDirectory=pipeline/state/record" in consumer
    (exec_start,) = [line for line in consumer if line.startswith("ExecStart=")]
    assert exec_start.endswith(
        " consume --instance-id %H-%i --record /var/lib/pipeline/state/record/consumer-%i.log"
    )
    producer = service_lines(files["kafka-producer.service"])
    assert not [line for line in producer if line.startswith("StateDirectory=")]
    assert (
        written_settings(tmp_path, files["kafka-micro.toml"])["producer"]["acked_ledger_dir"]
        is None
    )


def test_the_number_of_ledgers_kept_reaches_the_app(tmp_path: Path) -> None:
    files = render(tmp_path, "kafka_app_producer_acked_ledger_keep=250")
    assert (
        written_settings(tmp_path, files["kafka-micro.toml"])["producer"]["acked_ledger_keep"]
        == 250
    )
