"""The top-level librdkafka table reaches the clients of verify and topic too."""

import pytest

pytestmark = pytest.mark.integration

# The test broker listens in plaintext: a client told to speak TLS to it cannot connect.
TLS = '{"security.protocol": "ssl"}'


def test_verify_speaks_tls_when_the_table_says_so_and_fails_with_exit_3(app):
    app.create_topic(partitions=1)
    assert app.run("verify").returncode == 0

    result = app.run("verify", librdkafka=TLS)
    assert result.returncode == 3, result.stderr
    assert "SSL handshake failed" in result.stderr
    assert "verify failed" in result.stderr


def test_topic_passes_the_table_to_its_admin_client(app):
    result = app.run("topic", "--partitions", "1", librdkafka='{"security.protocol": "tls"}')
    assert result.returncode == 2, result.stderr
    assert "invalid librdkafka configuration" in result.stderr
    assert "security.protocol" in result.stderr
    assert "Traceback" not in result.stderr
