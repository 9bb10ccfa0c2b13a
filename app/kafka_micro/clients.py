"""The one place a librdkafka client's configuration is made, for every kind of client.

Layers, each overriding the one before: what every client gets (brokers, client id, error
callback, logger); the top-level ``librdkafka`` table (connection and security); the kind's own
properties (the producer's and consumer's typed settings and their ``librdkafka`` tables, what
verify and the dead-letter reader need to read without a group, what the dead-letter writer needs
to have each write acknowledged); last, when the caller takes them and metrics are enabled or the
producer keeps an acknowledgement ledger, librdkafka's statistics every
``metrics.statistics_interval_ms``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from confluent_kafka import KafkaError, KafkaException, Message

from kafka_micro.access import AccessWatch
from kafka_micro.runtime import StopRequest
from kafka_micro.settings import ConfigError, LibrdkafkaValue, Settings
from kafka_micro.tls_probe import ClientSecurity

ClientKind = Literal[
    "producer", "consumer", "admin", "verify", "dead-letter", "dead-letter-reader", "replay"
]
"""``dead-letter`` writes the consumer's dead letters (and replay's notes of what it replayed),
``dead-letter-reader`` reads them, ``replay`` writes them back to their topic as the producer."""
DeliveryCallback = Callable[[KafkaError | None, Message], None]
StatisticsCallback = Callable[[str], None]
Client = TypeVar("Client")

log = logging.getLogger(__name__)


class ClientErrors:
    """librdkafka's error callback: logs each error; a fatal one is remembered and stops the loop.

    Fatal errors are those after which the client cannot go on, e.g. a producer whose
    idempotence broke or a static member fenced by another with its instance id. Errors that
    mean the brokers cannot be used as configured (see ``access``) stop the loop too, their
    cause kept in ``access``; the rest pass, the last one kept to explain a timeout.
    """

    def __init__(self, kind: ClientKind, stop: StopRequest | None = None) -> None:
        self._kind = kind
        self._stop = stop
        self.fatal = False
        self.access = AccessWatch(on_failure=stop.event.set if stop is not None else None)

    def __call__(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("fatal %s error, stopping: %s", self._kind, error.str())
            self.fatal = True
            if self._stop is not None:
                self._stop.event.set()
            return
        if group_lookup_refused(self._kind, error):
            log.debug("kafka: %s (%s needs no group)", error.str(), self._kind)
            return
        log.warning("kafka: %s", error.str())
        self.access.saw(error)


def group_lookup_refused(kind: ClientKind, error: KafkaError) -> bool:
    """Whether ``error`` only says a group-less reader may not use its throwaway group.

    Readers of ``kind`` verify and dead-letter-reader join no group, but librdkafka still looks
    up their group's coordinator, which a principal with no rights on that group is refused.
    """
    return (
        kind in {"verify", "dead-letter-reader"}
        and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    )


def client_config(
    settings: Settings,
    kind: ClientKind,
    errors: ClientErrors,
    on_delivery: DeliveryCallback | None = None,
    on_statistics: StatisticsCallback | None = None,
) -> dict[str, Any]:
    """The configuration of one client of ``kind``, callbacks included.

    ``on_statistics`` gets librdkafka's statistics JSON, and only when something reads it
    (``_reads_statistics``): the reports cost librdkafka work every interval.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"kafka-micro-{kind}-{client_name(settings, kind)}",
        "error_cb": errors,
        "logger": logging.getLogger("librdkafka"),
        **settings.librdkafka,
        **_kind_properties(settings, kind),
    }
    if on_delivery is not None:
        config["on_delivery"] = on_delivery
    if on_statistics is not None and _reads_statistics(settings, kind):
        config["statistics.interval.ms"] = settings.metrics.statistics_interval_ms
        config["stats_cb"] = on_statistics
    errors.access.security = ClientSecurity.of(config)
    return config


def create_client(factory: Callable[[dict[str, Any]], Client], config: dict[str, Any]) -> Client:
    """``factory(config)``; a property librdkafka refuses is a ConfigError like any bad setting."""
    try:
        return factory(config)
    except (KafkaException, TypeError) as error:
        # TypeError: a property of the Python client itself (e.g. delivery.report.only.error)
        # given with the wrong type.
        raise librdkafka_config_error(error) from None


def librdkafka_config_error(error: Exception) -> ConfigError:
    """Turn librdkafka's refusal of a property into the same error as any bad setting."""
    detail = error.args[0].str() if error.args and isinstance(error.args[0], KafkaError) else error
    return ConfigError(f"invalid librdkafka configuration: {detail}")


def _reads_statistics(settings: Settings, kind: ClientKind) -> bool:
    """The metrics show librdkafka's statistics; the producer's ledger is written from them."""
    ledger = kind == "producer" and settings.producer.acked_ledger_dir is not None
    return settings.metrics.enabled or ledger


def client_name(settings: Settings, kind: ClientKind) -> str:
    """Who a client of ``kind`` is: the producer id, the consumer's instance id or HOST-PID."""
    if kind == "producer":
        return settings.producer.resolved_id
    if kind in {"consumer", "dead-letter"} and settings.consumer.instance_id is not None:
        return settings.consumer.instance_id
    return f"{socket.gethostname()}-{os.getpid()}"


def _kind_properties(settings: Settings, kind: ClientKind) -> dict[str, LibrdkafkaValue]:
    if kind == "producer":
        # Failures only: spares a Python call per delivered message (see FailureCounter).
        return {"delivery.report.only.error": True, **settings.producer.librdkafka_properties()}
    if kind == "consumer":
        return settings.consumer.librdkafka_properties()
    if kind in {"verify", "dead-letter-reader"}:
        # A group of its own that never commits: these assign partitions and read them
        # without joining or disturbing the consumers' group.
        return {
            "group.id": f"kafka-micro-{kind}-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    if kind == "dead-letter":
        # Every dead letter is acknowledged by all in-sync replicas, exactly once, before the
        # consumer stores the offsets past it; librdkafka gives up on one after the timeout.
        return {
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": round(settings.consumer.dead_letter_timeout_s * 1000),
        }
    if kind == "replay":
        # Replayed messages go back to the topic as the producer writes it, with its login;
        # replay needs the report of each delivery to say where it went.
        return {**settings.producer.librdkafka_properties(), "delivery.report.only.error": False}
    return {}
