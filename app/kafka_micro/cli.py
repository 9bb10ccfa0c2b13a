"""The ``kafka-micro`` command line.

Exit codes: 0 success; 1 messages failed, unflushed or missing (verify --acked: acknowledged
messages lost, or messages duplicated or out of order); 2 bad configuration or usage; 3 could
not complete: the brokers refused the credentials, their TLS certificate was not accepted,
access was denied, or they were not reached within connect_timeout_s (every command), or verify
or topic failed against them.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, get_args

from confluent_kafka import KafkaException

from kafka_micro import config_output
from kafka_micro.access import BrokerAccessError
from kafka_micro.ackledger import read_ledgers
from kafka_micro.argtypes import non_negative_int, positive_float, positive_int
from kafka_micro.consumer import run_consumer
from kafka_micro.deadletter import DEAD_LETTER_REASONS, dead_letter_sink
from kafka_micro.dlq import Selection, inspect_json, inspect_table, read_dead_letters, replay
from kafka_micro.processing import ConsumeStats, StatsProcessor
from kafka_micro.producer import ProduceLimits, run_producer
from kafka_micro.runtime import StopRequest, configure_logging
from kafka_micro.settings import ConfigError, ProfileName, Settings, load_settings
from kafka_micro.status.auth import hash_password
from kafka_micro.status.server import run_status_page
from kafka_micro.systemd import SystemdNotifier
from kafka_micro.topic import ensure_topics
from kafka_micro.verify import run_verify

EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130

log = logging.getLogger("kafka_micro")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every subcommand has --help.

    The common options are accepted before and after the subcommand, as in git. Their
    defaults are SUPPRESS: an option not given leaves no attribute, so the subcommand's parser
    cannot reset a value given before it, and one given after the subcommand wins.
    """
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML config file; KAFKA_MICRO_* environment variables override it",
    )
    common.add_argument(
        "--profile",
        choices=get_args(ProfileName),
        help="named tuning profile under the config file's values (first-kafka: the original "
        "system's)",
    )
    common.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]", help="Kafka brokers")
    common.add_argument("--topic", help="topic name")

    parser = argparse.ArgumentParser(
        prog="kafka-micro",
        parents=[common],
        description="Throughput-tuned Kafka producer, batch consumer and loss checker.",
        epilog="Settings: see `kafka-micro config --describe`. "
        "Exit codes: 0 ok, 1 messages failed/missing, 2 bad configuration, 3 incomplete "
        "(brokers not reached, credentials or certificate refused, access denied).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    produce = commands.add_parser(
        "produce", parents=[common], help="produce numbered messages until stopped or a limit"
    )
    limit = produce.add_mutually_exclusive_group()
    limit.add_argument("--count", type=positive_int, help="stop after N messages")
    limit.add_argument(
        "--duration", type=positive_float, metavar="SECONDS", help="stop after this long"
    )
    produce.add_argument("--rate", type=float, help="messages per second, 0 = unlimited")
    produce.add_argument("--message-size", type=int, metavar="BYTES", help="bytes per message")
    produce.add_argument("--producer-id", help="id written into each message")

    consume = commands.add_parser(
        "consume", parents=[common], help="consume in batches as one group member until stopped"
    )
    consume.add_argument("--instance-id", help="static membership id (group.instance.id)")
    consume.add_argument("--group-id", help="consumer group")
    consume.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="append 'PRODUCER SEQUENCE PARTITION OFFSET' per processed message (for tests)",
    )

    verify = commands.add_parser(
        "verify", parents=[common], help="read the topic and report missing or duplicate messages"
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    verify.add_argument(
        "--acked",
        type=Path,
        nargs="+",
        action="extend",
        metavar="PATH",
        help="acknowledgement ledgers (files, or directories of them, e.g. the producer's "
        "producer.acked_ledger_dir): check that every message they count as acknowledged is "
        "in the topic; exit 1 on any lost, duplicated or out-of-order message",
    )
    verify.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up when no message arrives for this long (default 30)",
    )

    config = commands.add_parser(
        "config", parents=[common], help="print the effective settings (secrets redacted)"
    )
    config_format = config.add_mutually_exclusive_group()
    config_format.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    config_format.add_argument(
        "--describe", action="store_true", help="list every setting with its documentation"
    )

    topic = commands.add_parser(
        "topic",
        parents=[common],
        help="create the topic and its dead-letter topic, or add partitions, idempotently",
    )
    topic.add_argument("--partitions", type=positive_int, default=24, help="default 24")
    topic.add_argument(
        "--dead-letter-partitions",
        type=positive_int,
        default=3,
        metavar="N",
        help="partitions of the dead-letter topic, if there is one (default 3)",
    )
    topic.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="default -1: the brokers' default.replication.factor",
    )

    _add_dlq_parser(commands, common)

    status = commands.add_parser(
        "status-page",
        parents=[common],
        help="serve the read-only status page: cluster, quorum, topic, group, the last hour",
    )
    status.add_argument("--group-id", help="consumer group shown (default consumer.group_id)")
    status.add_argument("--bind-address", metavar="ADDRESS", help="listen address")
    status.add_argument("--port", type=positive_int, help="listen port (default 8080)")
    status.add_argument("--prometheus-url", metavar="URL", help="Prometheus to read")
    status.add_argument(
        "--hash-password",
        action="store_true",
        help="read a password (stdin, or prompted) and print its hash for "
        "status_page.basic_auth_password_hash, then exit",
    )
    return parser


def _add_dlq_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    dlq = commands.add_parser(
        "dlq",
        parents=[common],
        help="the dead-letter topic: list the messages the consumers could not process, or "
        "send them back to the topic",
    )
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument(
        "--reason",
        action="append",
        choices=DEAD_LETTER_REASONS,
        metavar="REASON",
        help=f"only dead letters of this reason (repeatable): {', '.join(DEAD_LETTER_REASONS)}",
    )
    selection.add_argument(
        "--source-partition",
        action="append",
        type=non_negative_int,
        metavar="N",
        help="only dead letters from this partition of the topic (repeatable)",
    )
    selection.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="give up when no record arrives for this long (default 30)",
    )
    selection.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect = dlq_commands.add_parser(
        "inspect",
        parents=[common, selection],
        help="list the dead letters: where each came from, why, when, its size, its replay",
    )
    inspect.add_argument(
        "--limit",
        type=non_negative_int,
        default=1000,
        metavar="N",
        help="list at most N (default 1000; 0: all); the counts cover every one",
    )
    inspect.add_argument(
        "--value-bytes",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also show the first N bytes of each value, in hex",
    )
    replay = dlq_commands.add_parser(
        "replay",
        parents=[common, selection],
        help="write the selected dead letters back to their topic and partition, each once",
    )
    replay.add_argument("--limit", type=positive_int, metavar="N", help="replay at most N")
    replay.add_argument(
        "--dry-run", action="store_true", help="list what would be replayed; write nothing"
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as a settings tree; unset options are left out."""
    mapping = {
        "profile": ("profile",),
        "bootstrap_servers": ("bootstrap_servers",),
        "topic": ("topic",),
        "rate": ("producer", "rate"),
        "message_size": ("producer", "message_size"),
        "producer_id": ("producer", "id"),
        "instance_id": ("consumer", "instance_id"),
        "group_id": ("consumer", "group_id"),
        "bind_address": ("status_page", "bind_address"),
        "port": ("status_page", "port"),
        "prometheus_url": ("status_page", "prometheus_url"),
    }
    tree: dict[str, Any] = {}
    for option, path in mapping.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return tree


def _produce(settings: Settings, args: argparse.Namespace) -> int:
    stop = StopRequest()
    stop.install()
    limits = ProduceLimits(args.count, args.duration)
    return run_producer(settings, limits, stop, SystemdNotifier())


def _consume(settings: Settings, args: argparse.Namespace) -> int:
    stop = StopRequest()
    stop.install()
    stats = ConsumeStats()
    record: TextIO | None = None
    try:
        if args.record is not None:
            record = args.record.open("a", encoding="utf-8")
        process = StatsProcessor(
            stats, dead_letter_sink(settings), settings.consumer.max_value_bytes, record
        )
        return run_consumer(settings, process, stats, stop, SystemdNotifier())
    finally:
        if record is not None:
            record.close()


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    ledgers = read_ledgers(args.acked, settings.topic) if args.acked else None
    report = run_verify(settings, args.idle_timeout, ledgers)
    print(report.to_json() if args.json else report.to_table())
    return 0 if report.ok else 1


def _config(settings: Settings, args: argparse.Namespace) -> int:
    if args.describe:
        print(config_output.describe())
    elif args.json:
        print(config_output.to_json(settings))
    else:
        print(config_output.to_toml(settings), end="")
    return 0


def _topic(settings: Settings, args: argparse.Namespace) -> int:
    partitions = {settings.topic: args.partitions}
    dead_letter_topic = settings.dead_letter_topic()
    if dead_letter_topic is not None:
        partitions[dead_letter_topic] = args.dead_letter_partitions
    for done in ensure_topics(settings, partitions, args.replication_factor):
        log.info("%s", done)
    return 0


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    selection = Selection(frozenset(args.reason or ()), frozenset(args.source_partition or ()))
    if args.dlq_command == "inspect":
        found = read_dead_letters(settings, selection, args.limit or None, args.idle_timeout)
        if args.json:
            print(inspect_json(found, args.value_bytes))
        else:
            print(inspect_table(found, args.value_bytes))
        return 0
    report = replay(settings, selection, args.limit, args.idle_timeout, dry_run=args.dry_run)
    print(report.to_json() if args.json else report.to_text())
    return 1 if report.failed or report.unnoted else 0


def _status_page(settings: Settings, args: argparse.Namespace) -> int:
    if args.hash_password:
        if sys.stdin.isatty():
            password = getpass.getpass("password: ")
            if getpass.getpass("again: ") != password:
                raise ConfigError("the two passwords differ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ConfigError("an empty password cannot protect the status page")
        print(hash_password(password))
        return 0
    stop = StopRequest()
    stop.install()
    return run_status_page(settings, stop, SystemdNotifier())


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "produce": _produce,
    "consume": _consume,
    "verify": _verify,
    "config": _config,
    "topic": _topic,
    "dlq": _dlq,
    "status-page": _status_page,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None), _overrides(args))
    except ConfigError as error:
        print(f"kafka-micro: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level)
    try:
        return _COMMANDS[args.command](settings, args)
    except ConfigError as error:
        log.error("%s", error)
        return EXIT_USAGE
    except (KafkaException, BrokerAccessError) as error:
        log.error("%s failed: %s", args.command, error)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        log.error("%s interrupted", args.command)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`): stop quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
