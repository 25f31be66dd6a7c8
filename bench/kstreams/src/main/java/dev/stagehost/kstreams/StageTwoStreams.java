package dev.stagehost.kstreams;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.avro.Schema;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sun.misc.Signal;

/**
 * Stage two of the example pipeline as a Kafka Streams application: the benchmark's peer for
 * stage-host running {@code libstage_two.so} (same input, same output, same key, same
 * registry framing), in {@code at_least_once} or {@code exactly_once_v2}.
 *
 * <p>Exit codes follow stage-host's: 0 stopped by SIGTERM/SIGINT after closing, 1 failed while
 * running (a record that does not decode fails the stage, like {@code --on-error fail}),
 * 2 bad arguments, 4 broker or registry unreachable at start-up or the input topic never
 * appeared, 5 the cluster refused (schema or topic).
 */
public final class StageTwoStreams {
    private static final Logger LOG = LoggerFactory.getLogger(StageTwoStreams.class);

    /** How long start-up waits for the broker's first answer and for the input topic. */
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(15);
    private static final Duration INPUT_TOPIC_TIMEOUT = Duration.ofSeconds(60);
    /** How long a stop may take: finish in-flight work, flush, commit, leave the group. */
    private static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(30);

    private StageTwoStreams() {}

    public static void main(String[] args) {
        System.exit(run(args));
    }

    private static int run(String[] args) {
        Options options;
        try {
            options = Options.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("stage-kstreams: " + e.getMessage() + "\n\n" + Options.USAGE);
            return 2;
        }
        if (options.help) {
            System.out.println(Options.USAGE);
            return 0;
        }
        Schema inputSchema;
        Schema outputSchema;
        String outputSchemaText;
        try {
            inputSchema = new Schema.Parser().parse(resource("schemas/stage_one.json"));
            outputSchemaText = resource("schemas/stage_two.json");
            outputSchema = new Schema.Parser().parse(outputSchemaText);
        } catch (IOException e) {
            LOG.error("reading the packaged schemas: {}", e.toString());
            return 2;
        }

        SchemaRegistry registry = new SchemaRegistry(options.registryUrl);
        int outputSchemaId;
        try (Admin admin = Admin.create(adminConfig(options))) {
            waitForTopic(admin, options.inputTopic);
            createIfMissing(admin, options.outputTopic, options.outputPartitions);
            // As stage-host: the output schema is registered (or found) under <topic>-value at
            // start, and every output is framed with that id.
            outputSchemaId = registry.register(options.outputTopic + "-value", outputSchemaText);
        } catch (SchemaRegistry.RefusedException e) {
            LOG.error("{}", e.getMessage());
            return 5;
        } catch (ExecutionException e) {
            if (e.getCause() instanceof org.apache.kafka.common.errors.ApiException api
                    && !(api instanceof org.apache.kafka.common.errors.RetriableException)) {
                LOG.error("the cluster refused: {}", api.toString());
                return 5;
            }
            LOG.error("the broker at {} did not answer: {}",
                    options.bootstrapServers, e.getCause().toString());
            return 4;
        } catch (TimeoutException | IOException e) {
            LOG.error("start-up: {}", e.getMessage());
            return 4;
        } catch (InterruptedException e) {
            return 1;
        }

        Properties config = streamsConfig(options);
        StreamsBuilder builder = new StreamsBuilder(new TopologyConfig(new StreamsConfig(config)));
        builder.stream(options.inputTopic, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
                .processValues(() -> new ScoreProcessor(
                        registry, inputSchema, outputSchema, outputSchemaId, options.ppm))
                .to(options.outputTopic, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));
        Topology topology = builder.build();

        CountDownLatch stop = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        AtomicBoolean announced = new AtomicBoolean();
        KafkaStreams streams = new KafkaStreams(topology, config);
        // An exception that ends a stream thread (a record that fails, an error Streams gives up
        // on) ends the whole client, not just that thread, which Streams would replace and
        // which would fail on the same record again: the process exits 1 and its supervisor
        // decides, as for stage-host.
        streams.setUncaughtExceptionHandler(e -> {
            failure.compareAndSet(null, e);
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((state, previous) -> {
            if (state == KafkaStreams.State.RUNNING && announced.compareAndSet(false, true)) {
                LOG.info("running: {} -> {}, application.id {}, {}, {} thread(s), "
                        + "output schema id {}, ppm {}",
                        options.inputTopic, options.outputTopic, options.applicationId,
                        options.mode, options.threads, outputSchemaId, options.ppm);
            }
            if (state == KafkaStreams.State.ERROR || state == KafkaStreams.State.PENDING_ERROR) {
                stop.countDown();
            }
        });
        // A signal handler rather than a shutdown hook, so that a stop by signal closes Streams
        // and then exits 0 (a JVM ended by SIGTERM exits 143 whatever its hooks did).
        // sun.misc.Signal is in jdk.unsupported, which the JDK keeps open for this use; javac
        // warns about it all the same.
        AtomicReference<String> signal = new AtomicReference<>();
        for (String name : List.of("TERM", "INT")) {
            Signal.handle(new Signal(name), s -> {
                signal.compareAndSet(null, "SIG" + s.getName());
                stop.countDown();
            });
        }

        streams.start();
        try {
            stop.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (signal.get() != null) {
            LOG.info("{}: closing", signal.get());
        }
        // Leave the group on close, as stage-host does: Streams' default is to stay until the
        // session times out, which suits a quick restart but leaves the partitions idle.
        boolean closed = streams.close(CloseOptions.timeout(CLOSE_TIMEOUT)
                .withGroupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP));
        Throwable error = failure.get();
        if (error != null || streams.state() == KafkaStreams.State.ERROR) {
            LOG.error("failed: {}", error == null ? "Streams entered ERROR" : oneLine(error));
            return 1;
        }
        if (!closed) {
            LOG.warn("Streams did not close within {} s", CLOSE_TIMEOUT.toSeconds());
            return 1;
        }
        LOG.info("stopped");
        return 0;
    }

    /**
     * Streams settings. Only what differs from Streams' defaults is set, to put the peer on
     * stage-host's footing ({@code host/src/settings.rs}); everything else is Kafka Streams as
     * it ships.
     */
    static Properties streamsConfig(Options o) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, o.applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrapServers);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, o.mode);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, o.threads);
        // Changed: Streams commits every 30 s under at_least_once (100 ms under exactly_once_v2).
        // stage-host commits as soon as a batch's outputs are acknowledged, and the benchmark
        // detects progress and completion by the group's committed offsets; with 30 s the last
        // records would be counted up to 30 s late. 100 ms in both modes is what Streams uses
        // for EOS, so the two modes differ only in the guarantee.
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, o.commitIntervalMs);

        // Producer, as stage-host's PRODUCER_DEFAULTS. acks=all and idempotence are the Java
        // client's defaults too; named so that a change of defaults cannot skew the comparison.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ACKS_CONFIG), "all");
        p.put(StreamsConfig.producerPrefix(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG), true);
        // Changed: linger 5 ms, stage-host's linger.ms (Streams overrides the client's to 100 ms).
        p.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        // Changed: batches up to 1,000,000 bytes, librdkafka's batch.size (the Java client's
        // 16 KB holds only a few hundred of these ~40-byte outputs).
        p.put(StreamsConfig.producerPrefix(ProducerConfig.BATCH_SIZE_CONFIG), 1_000_000);

        // Consumer, as stage-host's CONSUMER_DEFAULTS. Streams already reads from the earliest
        // offset, never auto-commits, and polls at most 1000 records (stage-host's batch size).
        // Changed: session 6 s, heartbeat 1 s (the client's are 45 s and 3 s).
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        // Changed: a fetch that finds nothing returns after 10 ms (the client's default is
        // 500 ms), stage-host's fetch.wait.max.ms.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG), 10);

        p.putAll(o.extra);
        return p;
    }

    private static Properties adminConfig(Options o) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrapServers);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, (int) CONNECT_TIMEOUT.toMillis());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) CONNECT_TIMEOUT.toMillis());
        for (var e : o.extra.entrySet()) {
            // Security settings (-X security.protocol=...) apply to the admin client too.
            if (AdminClientConfig.configNames().contains(e.getKey())) {
                p.put(e.getKey(), e.getValue());
            }
        }
        return p;
    }

    /** Waits for {@code topic} as stage-host does (Streams would fail on a missing source). */
    private static void waitForTopic(Admin admin, String topic)
            throws ExecutionException, InterruptedException, TimeoutException {
        long deadline = System.nanoTime() + INPUT_TOPIC_TIMEOUT.toNanos();
        boolean logged = false;
        while (!admin.listTopics().names().get(CONNECT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS)
                .contains(topic)) {
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("the input topic " + topic + " did not appear within "
                        + INPUT_TOPIC_TIMEOUT.toSeconds() + " s");
            }
            if (!logged) {
                LOG.info("waiting for the input topic {}", topic);
                logged = true;
            }
            Thread.sleep(500);
        }
    }

    /** Creates the output topic unless it exists (replication: the broker's default). */
    private static void createIfMissing(Admin admin, String topic, int partitions)
            throws ExecutionException, InterruptedException, TimeoutException {
        try {
            NewTopic newTopic = new NewTopic(topic, Optional.of(partitions), Optional.empty());
            admin.createTopics(List.of(newTopic))
                    .all().get(CONNECT_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            LOG.info("created the output topic {} ({} partitions)", topic, partitions);
        } catch (ExecutionException e) {
            if (!(e.getCause() instanceof TopicExistsException)) {
                throw e;
            }
        }
    }

    private static String resource(String name) throws IOException {
        try (InputStream in = StageTwoStreams.class.getClassLoader().getResourceAsStream(name)) {
            if (in == null) {
                throw new IOException(name + " is not in the jar");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    /** The exception and its causes on one line. */
    private static String oneLine(Throwable e) {
        StringBuilder line = new StringBuilder(e.toString());
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            line.append(": ").append(c);
        }
        return line.toString().replace('\n', ' ');
    }
}
