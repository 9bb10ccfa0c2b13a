import subprocess
import sys


def test_undeliverable_messages_are_purged_after_the_flush_bound_and_exit_1():
    """No broker listens on port 1: the bounded flush gives up instead of hanging in close()."""
    env = {
        "KAFKA_MICRO_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_MICRO_PRODUCER__FLUSH_TIMEOUT_S": "1",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "kafka_micro", "produce", "--count", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "10 messages not delivered within flush_timeout_s=1: purged" in result.stderr
    assert "final: produced 10, delivered 0, failed 0, unflushed 10" in result.stderr
