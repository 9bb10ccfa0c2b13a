import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.FileOutputStream;
import java.io.FileReader;
import java.io.IOException;
import java.io.Reader;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Kafka's Java consumer timing every message of a rate-limited kafka-producer-perf-test: the
 * Java side of kafka-micro-bench's latency-at-a-rate table, which Kafka's tools do not offer
 * (EndToEndLatency keeps one message in flight).
 *
 * <p>Arguments: CONSUMER_PROPERTIES TOPIC MESSAGES IDLE_MS OUTPUT. For each message it writes
 * two big-endian longs to OUTPUT: the record's timestamp (the producer's send time, ms) and the
 * wall clock when the poll that returned it came back (ms); the bench computes the percentiles.
 * It stops after MESSAGES messages, or IDLE_MS after the last one, and prints "received N".
 */
public final class RateLatencyConsumer {
    private static final Duration POLL_TIMEOUT = Duration.ofMillis(100);

    private RateLatencyConsumer() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 5) {
            System.err.println(
                    "usage: RateLatencyConsumer CONSUMER_PROPERTIES TOPIC MESSAGES IDLE_MS OUTPUT");
            System.exit(2);
        }
        Properties properties = new Properties();
        try (Reader reader = new FileReader(args[0])) {
            properties.load(reader);
        }
        String topic = args[1];
        long expected = Long.parseLong(args[2]);
        long idleMs = Long.parseLong(args[3]);
        long received = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                        new KafkaConsumer<>(
                                properties, new ByteArrayDeserializer(), new ByteArrayDeserializer());
                DataOutputStream output =
                        new DataOutputStream(
                                new BufferedOutputStream(new FileOutputStream(args[4]), 1 << 20))) {
            consumer.subscribe(List.of(topic));
            long lastMessageAt = 0;
            while (received < expected) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(POLL_TIMEOUT);
                long polledAt = System.currentTimeMillis();
                if (records.isEmpty()) {
                    if (received > 0 && polledAt - lastMessageAt > idleMs) {
                        break;
                    }
                    continue;
                }
                for (ConsumerRecord<byte[], byte[]> record : records) {
                    output.writeLong(record.timestamp());
                    output.writeLong(polledAt);
                }
                received += records.count();
                lastMessageAt = polledAt;
            }
        }
        System.out.println("received " + received);
    }
}
