"""Settings: one schema (``schema``), loaded from a TOML file, environment variables and
command-line options (``loading``), documented per setting (``docs``)."""

from kafka_micro.settings.docs import FieldDoc, iter_field_docs
from kafka_micro.settings.loading import (
    load_settings,
    read_config_file,
    read_profile,
    settings_from,
)
from kafka_micro.settings.schema import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    ConfigError,
    ConsumerSettings,
    LibrdkafkaValue,
    MetricsSettings,
    ProducerSettings,
    ProfileName,
    Settings,
)
from kafka_micro.settings.status_page import StatusPageSettings

__all__ = [
    "ENV_NESTED_DELIMITER",
    "ENV_PREFIX",
    "ConfigError",
    "ConsumerSettings",
    "FieldDoc",
    "LibrdkafkaValue",
    "MetricsSettings",
    "ProducerSettings",
    "ProfileName",
    "Settings",
    "StatusPageSettings",
    "iter_field_docs",
    "load_settings",
    "read_config_file",
    "read_profile",
    "settings_from",
]
