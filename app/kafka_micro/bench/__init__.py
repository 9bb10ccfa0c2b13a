"""``kafka-micro bench``: our producer and consumer against Kafka's own perf-test tools.

Every measurement runs our shipped code in separate processes (see ``probe``), on one broker,
with the settings being benchmarked given to both sides (see ``profile``).
"""

from kafka_micro.bench.command import add_bench_parser, run_bench

__all__ = ["add_bench_parser", "run_bench"]
