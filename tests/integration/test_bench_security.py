"""`kafka-micro-bench --security-cost --quick` end to end: both modes measured on one broker.

Structure only, never a speed.
"""

import json
import subprocess
import sys
from pathlib import Path

BENCH = str(Path(sys.executable).parent / "kafka-micro-bench")
MEASUREMENTS = ["producer 100 B", "producer 1024 B", "consumer x1", "consumer x6"]


def test_security_cost_measures_both_modes_on_one_broker(kafka_home, tmp_path):
    output = tmp_path / "out"
    result = subprocess.run(
        [
            BENCH,
            "--security-cost",
            "--quick",
            "--kafka-home",
            str(kafka_home),
            "--output-dir",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    results = json.loads((output / "security-cost.json").read_text())
    assert results["schema"] == "kafka-micro-bench-security/1"
    broker = results["broker"]
    assert broker["plaintext_bootstrap"].startswith("127.0.0.1:")
    assert broker["sasl_ssl_bootstrap"].startswith("localhost:")
    assert [(r["measurement"], r["mode"]) for r in results["runs"]] == [
        (measurement, mode) for measurement in MEASUREMENTS for mode in ("plaintext", "sasl_ssl")
    ]
    for run in results["runs"]:
        assert run["throughput"]["msgs_per_s"] > 0
    assert [c["measurement"] for c in results["comparisons"]] == MEASUREMENTS
    assert all(c["ratio"] > 0 for c in results["comparisons"])
    # The SASL_SSL children really connected as the pipeline's users.
    settings = [json.loads(path.read_text()) for path in (output / "logs").glob("*.settings.json")]
    users = {s["librdkafka"]["sasl.username"] for s in settings if "librdkafka" in s}
    assert users == {"producer", "consumer"}
    assert any("librdkafka" not in s for s in settings)
    assert "SASL_SSL / PLAINTEXT" in result.stdout


def test_security_cost_refuses_a_running_broker():
    result = subprocess.run(
        [BENCH, "--security-cost", "--bootstrap", "127.0.0.1:9092"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "takes no --bootstrap" in result.stderr
