"""kafka-micro: a throughput-tuned Kafka producer and batch consumer."""
