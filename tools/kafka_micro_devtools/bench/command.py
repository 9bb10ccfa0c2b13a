"""``kafka-micro-bench``: options, broker set-up, output files."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import confluent_kafka

from kafka_micro.argtypes import positive_int
from kafka_micro.runtime import configure_logging
from kafka_micro.settings import ConfigError, ProfileName, Settings, load_settings
from kafka_micro_devtools.bench import (
    batchpass,
    groups,
    metricscost,
    report,
    runner,
    security,
    sweep,
)
from kafka_micro_devtools.bench.context import NAME_PREFIX, BenchContext, BenchError
from kafka_micro_devtools.bench.profile import (
    BenchProfile,
    java_connection_properties,
    java_consumer_properties,
    java_producer_properties,
)
from kafka_micro_devtools.bench.results import BenchResults, load_average
from kafka_micro_devtools.broker_security import USERS
from kafka_micro_devtools.localbroker import (
    ARCHIVE_NAME,
    BrokerStartError,
    LocalBroker,
    unpack_archive,
)

log = logging.getLogger(__name__)

# Where archive/build leaves the archive, relative to a checkout's root.
CHECKOUT_ARCHIVE = Path("build") / ARCHIVE_NAME
EXIT_FAILED = 1
EXIT_USAGE = 2
# One round of the batch pass takes a fraction of a second: a few give a stable best.
_BATCH_PASS_ROUNDS = 5


def build_parser() -> argparse.ArgumentParser:
    """The ``kafka-micro-bench`` options."""
    bench = argparse.ArgumentParser(
        prog="kafka-micro-bench",
        description="Measure producer throughput (100 B and 1 KB), end-to-end latency at "
        "10/50/90% of the max rate, and consumer throughput (1 and 6 processes), and run Kafka's "
        "perf-test tools with the same settings on the same broker. Writes a table to stdout, "
        "bench.json and bench.png to --output-dir. Creates and deletes its own "
        "kafka-micro-bench-* topics.",
    )
    bench.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="TOML config file whose producer/consumer settings are benchmarked "
        "(default: the built-in defaults; KAFKA_MICRO_* variables apply as usual); with "
        "--bootstrap, every client, ours and Kafka's tools, connects with its top-level "
        "librdkafka table (security.protocol, sasl.*, ssl.ca.location)",
    )
    bench.add_argument(
        "--profile",
        choices=get_args(ProfileName),
        help="benchmark a named tuning profile (first-kafka: the original system's)",
    )
    broker = bench.add_mutually_exclusive_group()
    broker.add_argument("--bootstrap", metavar="HOST:PORT", help="benchmark this running broker")
    broker.add_argument(
        "--broker-heap",
        default="1g",
        metavar="SIZE",
        help="heap of the broker started from the archive when no --bootstrap (default 1g)",
    )
    bench.add_argument(
        "--kafka-home",
        type=Path,
        metavar="DIR",
        help="unpacked Kafka install: its bin/ perf-test tools, and the broker if no --bootstrap",
    )
    bench.add_argument(
        "--archive",
        type=Path,
        metavar="TARBALL",
        help=f"Kafka archive unpacked when no --kafka-home (default {CHECKOUT_ARCHIVE}, "
        "when run from a checkout where archive/build made it)",
    )
    bench.add_argument(
        "--no-kafka-tools",
        action="store_true",
        help="do not run Kafka's perf-test tools (no ratios)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="small counts and short runs: a smoke test (< 1 min)"
    )
    bench.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        metavar="N",
        help="run each throughput measurement N times, alternating ours and theirs; "
        "medians are compared (default 1)",
    )
    measurement = bench.add_mutually_exclusive_group()
    measurement.add_argument(
        "--sweep",
        action="append",
        choices=sorted(sweep.SWEEPS),
        metavar="NAME",
        help=f"run a tuning sweep instead of the standard benchmark; repeatable; one of "
        f"{', '.join(sorted(sweep.SWEEPS))}",
    )
    measurement.add_argument(
        "--group-protocols",
        action="store_true",
        help="instead of the standard benchmark, time how each consumer group protocol "
        "(KIP-848 consumer, classic) balances six members, hands over on restarts and copes "
        "with a stalled member; --repeats N rounds (docs/consumer-protocol.md)",
    )
    measurement.add_argument(
        "--security-cost",
        action="store_true",
        help="instead of the standard benchmark, measure our producer (100 B, 1 KB) and "
        "consumers (1 and 6) over PLAINTEXT and over SASL_SSL (SCRAM-SHA-512, TLS, ACLs) "
        "listeners of one broker started from the archive, in turns; --repeats N rounds; "
        "no --bootstrap, Kafka's tools not run",
    )
    measurement.add_argument(
        "--metrics-cost",
        action="store_true",
        help="instead of the standard benchmark, measure our producer (100 B, 1 KB) and "
        "consumers (1 and 6) with /metrics off and on (librdkafka statistics every "
        f"{metricscost.STATISTICS_INTERVAL_MS} ms, a scrape every "
        f"{metricscost.SCRAPE_INTERVAL_S:g} s) on one broker, in turns; --repeats N rounds; "
        "Kafka's tools not run",
    )
    measurement.add_argument(
        "--batch-pass",
        action="store_true",
        help="instead of the standard benchmark, time the consumer's Python work per message "
        "(its batch processor over real Message objects, no broker); --repeats N rounds, "
        f"at least {_BATCH_PASS_ROUNDS}, of which the best is reported",
    )
    bench.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="where bench.json, bench.png and logs/ go (default bench-results/UTC-TIMESTAMP)",
    )
    return bench


@dataclass(frozen=True)
class _Broker:
    bootstrap: str
    kafka_home: Path | None
    info: dict[str, Any]


@contextlib.contextmanager
def _broker(args: argparse.Namespace, scratch: Path) -> Iterator[_Broker]:
    """The broker under test and the Kafka install whose tools run against it."""
    kafka_home: Path | None = args.kafka_home
    needs_install = args.bootstrap is None or not args.no_kafka_tools
    if kafka_home is None and needs_install:
        kafka_home = unpack_archive(_archive(args), scratch / "kafka")
    if args.no_kafka_tools and args.bootstrap is not None:
        kafka_home = None
    if args.bootstrap is not None:
        yield _Broker(args.bootstrap, kafka_home, {"bootstrap": args.bootstrap, "started": False})
        return
    assert kafka_home is not None
    with LocalBroker(
        kafka_home, scratch / "broker", heap=args.broker_heap, num_partitions=24
    ) as local:
        yield _Broker(
            local.bootstrap,
            None if args.no_kafka_tools else kafka_home,
            {
                "bootstrap": local.bootstrap,
                "started": True,
                "heap": args.broker_heap,
                "kafka_jars": _kafka_version(kafka_home),
                "same_machine": True,
            },
        )


def _archive(args: argparse.Namespace) -> Path:
    """The tarball to unpack: --archive, else archive/build's output under the current directory."""
    alternatives = "pass --archive TARBALL or --kafka-home DIR (an unpacked install)" + (
        "" if args.bootstrap is None else ", or --no-kafka-tools"
    )
    archive: Path | None = args.archive
    if archive is None:
        if not CHECKOUT_ARCHIVE.is_file():
            raise BenchError(
                f"no Kafka archive: {CHECKOUT_ARCHIVE} is not under the current directory "
                f"({Path.cwd()}); run archive/build in a checkout and start the bench from its "
                f"root, or {alternatives}"
            )
        archive = CHECKOUT_ARCHIVE
    if not archive.is_file():
        raise BenchError(f"Kafka archive {archive} does not exist: {alternatives}")
    return archive


def _kafka_version(kafka_home: Path) -> str:
    jars = sorted((kafka_home / "share" / "java" / "kafka").glob("kafka-clients-*.jar"))
    return jars[0].stem.removeprefix("kafka-clients-") if jars else "unknown"


def _machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
            "",
        )
    memory_kb = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="ascii") as meminfo:
        memory_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "confluent_kafka": importlib.metadata.version("confluent-kafka"),
        "librdkafka": confluent_kafka.libversion()[0],
    }


def _new_results(
    args: argparse.Namespace, broker: _Broker, profile: BenchProfile, notes: list[str]
) -> BenchResults:
    java_producer, producer_unmapped = java_producer_properties(profile.producer)
    java_consumer, consumer_unmapped = java_consumer_properties(profile.consumer)
    if producer_unmapped or consumer_unmapped:
        notes = [
            *notes,
            "librdkafka properties not applied to Kafka's tools: "
            f"{producer_unmapped + consumer_unmapped}",
        ]
    return BenchResults(
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        command=sys.orig_argv,
        quick=args.quick,
        machine=_machine(),
        broker=broker.info,
        profile=profile.model_dump(),
        java_settings={"producer": java_producer, "consumer": java_consumer},
        load_average_start=load_average(),
        notes=notes,
    )


def _baseline(args: argparse.Namespace, settings: Settings) -> BenchProfile:
    sources: list[str] = [settings.profile] if settings.profile else []
    sources += [f"config {args.config}"] if args.config else []
    name = ", ".join(sources) or "defaults"
    return BenchProfile(name=name, producer=settings.producer, consumer=settings.consumer)


def main(argv: Sequence[str] | None = None) -> int:
    """``kafka-micro-bench``: returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.security_cost and args.bootstrap is not None:
        parser.error("--security-cost starts a broker of its own: it takes no --bootstrap")
    try:
        settings = load_settings(args.config, {"profile": args.profile} if args.profile else {})
    except ConfigError as error:
        print(f"kafka-micro-bench: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level)
    if args.batch_pass:
        print(batchpass.to_text(batchpass.measure(max(args.repeats, _BATCH_PASS_ROUNDS))))
        return 0
    return run_bench(args, settings)


def run_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Benchmark ``settings`` (or run the sweeps) as the options ask; returns the exit code."""
    # A running cluster is reached with the config file's connection properties (e.g. its admin
    # user over SASL_SSL); a broker the bench starts is PLAINTEXT.
    connection = (
        {name: str(value) for name, value in settings.librdkafka.items()}
        if args.bootstrap is not None
        else {}
    )
    try:
        java_connection = java_connection_properties(connection)
    except ValueError as error:
        log.error("bench failed: the top-level librdkafka table of %s: %s", args.config, error)
        return EXIT_USAGE
    profile = _baseline(args, settings)
    output_dir: Path = args.output_dir or Path("bench-results") / time.strftime(
        "%Y%m%d-%H%M%S", time.gmtime()
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    plan = (runner.BenchPlan.quick if args.quick else runner.BenchPlan.full)(args.repeats)
    if args.security_cost:
        try:
            _security_cost(args, plan=plan, profile=profile, output_dir=output_dir)
        except (BenchError, BrokerStartError, FileNotFoundError, ValueError) as error:
            log.error("bench failed: %s", error)
            return EXIT_FAILED
        return 0
    if args.metrics_cost:
        # Only our clients run: a broker of our own needs the install, not Kafka's tools.
        args.no_kafka_tools = True
    try:
        with (
            tempfile.TemporaryDirectory(prefix="kafka-micro-bench-") as scratch,
            _broker(args, Path(scratch)) as broker,
        ):
            ctx = BenchContext(
                broker.bootstrap,
                output_dir,
                broker.kafka_home,
                client_properties=dict.fromkeys(USERS, connection),
                java_connection=java_connection,
            )
            ctx.progress("broker %s; results in %s", broker.bootstrap, output_dir)
            notes = [] if broker.kafka_home else ["Kafka's tools not run: no ratios"]
            try:
                if args.metrics_cost:
                    _metrics_cost(
                        args, broker=broker, plan=plan, profile=profile, output_dir=output_dir
                    )
                elif args.group_protocols:
                    _group_protocols(
                        ctx, repeats=args.repeats, profile=profile, output_dir=output_dir
                    )
                elif args.sweep:
                    _sweeps(
                        ctx,
                        args=args,
                        plan=plan,
                        profile=profile,
                        broker=broker,
                        notes=notes,
                        output_dir=output_dir,
                    )
                else:
                    _standard(
                        ctx,
                        args=args,
                        plan=plan,
                        profile=profile,
                        broker=broker,
                        notes=notes,
                        output_dir=output_dir,
                    )
            finally:
                ctx.delete_topics()
                ctx.close()
    except (BenchError, BrokerStartError, FileNotFoundError, ValueError) as error:
        log.error("bench failed: %s", error)
        return EXIT_FAILED
    return 0


def _standard(
    ctx: BenchContext,
    *,
    args: argparse.Namespace,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    broker: _Broker,
    notes: list[str],
    output_dir: Path,
) -> None:
    results = _new_results(args, broker, profile, notes)
    try:
        runner.warm_up(ctx, plan, profile)
        runner.producer_phase(ctx, plan, profile, results)
        max_rate = results.producer[0].ours_msgs_per_s
        runner.latency_phase(ctx, plan, profile, results, max_rate=max_rate, with_kafka_tool=True)
        runner.consumer_phase(ctx, plan, profile, results)
        results.targets = runner.targets(results)
    finally:
        results.finished_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        results.load_average_end = load_average()
        (output_dir / "bench.json").write_text(results.to_json() + "\n", encoding="utf-8")
    print(report.to_table(results))
    written = [output_dir / "bench.json"]
    try:
        report.plot(results, output_dir / "bench.png")
        written.append(output_dir / "bench.png")
    except ModuleNotFoundError as error:
        log.warning("no plot: %s; install matplotlib (a kafka-micro-devtools dependency)", error)
    print(f"\nwrote {' and '.join(map(str, written))}")


def _sweeps(
    ctx: BenchContext,
    *,
    args: argparse.Namespace,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    broker: _Broker,
    notes: list[str],
    output_dir: Path,
) -> None:
    """The baseline's max rate first (the latency runs' fixed rate), then each sweep."""
    baseline = _new_results(args, broker, profile, notes)
    runner.warm_up(ctx, plan, profile)
    runner.producer_phase(ctx, plan, profile, baseline, sizes=(plan.message_bytes,))
    rate = baseline.producer[0].ours_msgs_per_s
    ctx.progress("baseline max rate %.0f msg/s; latency runs use half of it", rate)
    for name in args.sweep:
        points = sweep.run_sweep(
            ctx,
            name,
            plan=plan,
            baseline=profile,
            baseline_rate=rate,
            new_results=lambda variant: _new_results(args, broker, variant, notes),
        )
        path = output_dir / f"sweep-{name}.json"
        path.write_text(
            "[\n"
            + ",\n".join(point.model_dump_json(indent=2, by_alias=True) for point in points)
            + "\n]\n",
            encoding="utf-8",
        )
        print(sweep.to_table(points))
        print(f"wrote {path}")


def _group_protocols(
    ctx: BenchContext, *, repeats: int, profile: BenchProfile, output_dir: Path
) -> None:
    timings = groups.measure(ctx, profile, repeats)
    path = output_dir / "group-protocols.json"
    path.write_text(
        "[\n" + ",\n".join(timing.model_dump_json(indent=2) for timing in timings) + "\n]\n",
        encoding="utf-8",
    )
    print(groups.to_table(timings))
    print(f"wrote {path}")


@contextlib.contextmanager
def _security_contexts(
    args: argparse.Namespace, scratch: Path, output_dir: Path
) -> Iterator[tuple[dict[security.Mode, BenchContext], dict[str, Any]]]:
    """One broker with a PLAINTEXT and a SASL_SSL client listener, a context for each."""
    kafka_home: Path = args.kafka_home or unpack_archive(_archive(args), scratch / "kafka")
    with LocalBroker(
        kafka_home,
        scratch / "broker",
        heap=args.broker_heap,
        num_partitions=24,
        secured=True,
        plaintext_listener=True,
    ) as local:
        local.grant_pipeline(NAME_PREFIX, NAME_PREFIX, prefixed=True)
        contexts: dict[security.Mode, BenchContext] = {
            "plaintext": BenchContext(local.plaintext_bootstrap, output_dir, None),
            "sasl_ssl": BenchContext(
                local.bootstrap,
                output_dir,
                None,
                client_properties={user: local.client_properties(user) for user in USERS},
            ),
        }
        info = {
            "started": True,
            "plaintext_bootstrap": local.plaintext_bootstrap,
            "sasl_ssl_bootstrap": local.bootstrap,
            "sasl_mechanism": "SCRAM-SHA-512",
            "authorizer": "StandardAuthorizer, prefixed ACLs for producer and consumer",
            "heap": args.broker_heap,
            "kafka_jars": _kafka_version(kafka_home),
            "same_machine": True,
        }
        try:
            yield contexts, info
        finally:
            for ctx in contexts.values():
                ctx.delete_topics()
                ctx.close()


def _security_cost(
    args: argparse.Namespace,
    *,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    output_dir: Path,
) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="kafka-micro-bench-") as scratch,
        _security_contexts(args, Path(scratch), output_dir) as (contexts, info),
    ):
        contexts["plaintext"].progress(
            "one broker: PLAINTEXT %s, SASL_SSL %s; results in %s",
            info["plaintext_bootstrap"],
            info["sasl_ssl_bootstrap"],
            output_dir,
        )
        results = security.SecurityResults(
            started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            command=sys.orig_argv,
            quick=args.quick,
            machine=_machine(),
            broker=info,
            profile=profile.model_dump(),
            load_average_start=load_average(),
        )
        path = output_dir / "security-cost.json"
        try:
            for ctx in contexts.values():
                runner.warm_up(ctx, plan, profile)
            results.runs = security.PAIR.measure(contexts, plan, profile)
            results.comparisons = security.summarize(results.runs)
        finally:
            results.finished_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            results.load_average_end = load_average()
            path.write_text(results.to_json() + "\n", encoding="utf-8")
    print(security.to_table(results.comparisons))
    print(f"\nwrote {path}")


def _metrics_cost(
    args: argparse.Namespace,
    *,
    broker: _Broker,
    plan: runner.BenchPlan,
    profile: BenchProfile,
    output_dir: Path,
) -> None:
    by_mode = metricscost.contexts(broker.bootstrap, output_dir)
    results = metricscost.MetricsCostResults(
        started_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        command=sys.orig_argv,
        quick=args.quick,
        machine=_machine(),
        broker=broker.info,
        profile=profile.model_dump(),
        load_average_start=load_average(),
    )
    path = output_dir / "metrics-cost.json"
    try:
        for ctx in by_mode.values():
            runner.warm_up(ctx, plan, profile)
        results.runs = metricscost.PAIR.measure(by_mode, plan, profile)
        results.comparisons = metricscost.summarize(results.runs)
    finally:
        for ctx in by_mode.values():
            ctx.delete_topics()
            ctx.close()
        results.finished_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        results.load_average_end = load_average()
        path.write_text(results.to_json() + "\n", encoding="utf-8")
    print(metricscost.to_table(results.comparisons))
    print(f"\nwrote {path}")
