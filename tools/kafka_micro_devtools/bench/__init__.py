"""``kafka-micro-bench``: our producer and consumer against Kafka's own perf-test tools.

Every measurement runs the product's code in separate processes (see ``probe``), on one broker,
with the settings being benchmarked given to both sides (see ``profile``).
"""
