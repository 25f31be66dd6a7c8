package dev.stagehost.kstreams;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/** The command line. Connection defaults come from stage-host's environment variables. */
final class Options {
    static final String USAGE = String.join("\n",
            "usage: java [-Xmx128m ...] -jar stage-kstreams.jar [options]",
            "",
            "Stage two of the example pipeline, {postid, title} -> {postid, ppm}, on Kafka Streams.",
            "",
            "  --bootstrap-servers HOST:PORT   default $STAGE_HOST_BOOTSTRAP_SERVERS or 127.0.0.1:9092",
            "  --schema-registry-url URL       default $STAGE_HOST_SCHEMA_REGISTRY_URL",
            "                                  or http://127.0.0.1:8081",
            "  --input-topic T                 default test_stage_one_topic",
            "  --output-topic T                default test_stage_two_topic (created with",
            "                                  --output-partitions if missing, as stage-host does)",
            "  --output-partitions N           default 2 (stage two's declaration)",
            "  --application-id ID             Streams application.id, which is also the consumer",
            "                                  group; --group-id is the same flag.",
            "                                  default stage_two_kstreams",
            "  --mode MODE                     processing.guarantee: at_least_once (default)",
            "                                  or exactly_once_v2",
            "  --threads N                     num.stream.threads, default 1",
            "  --ppm F                         the score written, default 100.0",
            "  --commit-interval-ms MS         default 100 (see StageTwoStreams for why)",
            "  -X key=value                    any Streams, consumer.* or producer.* property,",
            "                                  repeatable, applied last",
            "  --help");

    String bootstrapServers = env("STAGE_HOST_BOOTSTRAP_SERVERS", "127.0.0.1:9092");
    String registryUrl = env("STAGE_HOST_SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081");
    String inputTopic = "test_stage_one_topic";
    String outputTopic = "test_stage_two_topic";
    int outputPartitions = 2;
    String applicationId = "stage_two_kstreams";
    String mode = "at_least_once";
    int threads = 1;
    float ppm = 100.0f;
    long commitIntervalMs = 100;
    final Map<String, String> extra = new LinkedHashMap<>();
    boolean help;

    /** Parses {@code args}; throws {@link IllegalArgumentException} with a one-line reason. */
    static Options parse(String[] args) {
        Options o = new Options();
        for (int i = 0; i < args.length; i++) {
            String flag = args[i];
            if (flag.equals("--help") || flag.equals("-h")) {
                o.help = true;
                continue;
            }
            String value;
            int eq = flag.indexOf('=');
            if (flag.startsWith("--") && eq > 0) {
                value = flag.substring(eq + 1);
                flag = flag.substring(0, eq);
            } else {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(flag + " needs a value");
                }
                value = args[++i];
            }
            switch (flag) {
                case "--bootstrap-servers" -> o.bootstrapServers = value;
                case "--schema-registry-url" -> o.registryUrl = value;
                case "--input-topic" -> o.inputTopic = value;
                case "--output-topic" -> o.outputTopic = value;
                case "--output-partitions" -> o.outputPartitions = positive(flag, value);
                case "--application-id", "--group-id" -> o.applicationId = value;
                case "--mode" -> o.mode = mode(value);
                case "--threads" -> o.threads = positive(flag, value);
                case "--ppm" -> o.ppm = number(flag, value);
                case "--commit-interval-ms" -> o.commitIntervalMs = positive(flag, value);
                case "-X" -> {
                    int at = value.indexOf('=');
                    if (at <= 0) {
                        throw new IllegalArgumentException("-X expects key=value, got " + value);
                    }
                    o.extra.put(value.substring(0, at), value.substring(at + 1));
                }
                default -> throw new IllegalArgumentException("unknown option " + flag);
            }
        }
        return o;
    }

    private static String mode(String value) {
        String m = value.toLowerCase(Locale.ROOT).replace('-', '_');
        if (!m.equals("at_least_once") && !m.equals("exactly_once_v2")) {
            throw new IllegalArgumentException(
                    "--mode must be at_least_once or exactly_once_v2, got " + value);
        }
        return m;
    }

    private static int positive(String flag, String value) {
        try {
            int n = Integer.parseInt(value);
            if (n > 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new IllegalArgumentException(flag + " must be a positive integer, got " + value);
    }

    private static float number(String flag, String value) {
        try {
            return Float.parseFloat(value);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(flag + " must be a number, got " + value);
        }
    }

    private static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }
}
