"""kafka-micro's development tools: the benchmark and the local test broker; never deployed."""
