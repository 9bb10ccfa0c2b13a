"""`kafka-micro config` hides every librdkafka property that holds a secret or key material."""

import pytest

from kafka_micro import config_output
from kafka_micro.settings import settings_from

SECRET = "s3cr3t-value"
SECRET_PROPERTIES = [
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.client.credentials.client.secret",
    "sasl.oauthbearer.assertion.private.key.passphrase",
    "sasl.oauthbearer.assertion.private.key.pem",
    "sasl.oauthbearer.config",
]


@pytest.mark.parametrize("table", ["librdkafka", "producer", "consumer"])
@pytest.mark.parametrize("key", SECRET_PROPERTIES)
def test_secret_properties_are_redacted_in_every_table(table, key):
    values = (
        {table: {key: SECRET}} if table == "librdkafka" else {table: {"librdkafka": {key: SECRET}}}
    )
    settings = settings_from(values)
    assert SECRET not in config_output.to_toml(settings)
    assert SECRET not in config_output.to_json(settings)


def test_paths_and_names_stay_visible():
    properties = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "producer",
        "ssl.ca.location": "/etc/kafka-micro/ca.pem",
        "ssl.key.location": "/etc/kafka-micro/client.key",
    }
    effective = config_output.effective_settings(settings_from({"librdkafka": properties}))
    assert effective["librdkafka"] == properties
