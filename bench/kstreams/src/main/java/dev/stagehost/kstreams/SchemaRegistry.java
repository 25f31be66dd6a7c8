package dev.stagehost.kstreams;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;

/**
 * The two Schema Registry calls the stage needs, as Confluent's serializers make them (they are
 * not on Maven Central): the writer schema of an id, fetched once per id and cached for the
 * life of the process (ids are immutable), and registering the output schema under a subject.
 */
final class SchemaRegistry {
    /** A registry answer that retrying will not change (unknown id, refused schema). */
    static final class RefusedException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        RefusedException(String message) {
            super(message);
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    /** How long a lookup keeps retrying an unreachable registry before the record fails. */
    private static final Duration RETRY_FOR = Duration.ofSeconds(60);

    private final String baseUrl;
    private final HttpClient http;
    private final Map<Integer, Schema> byId = new ConcurrentHashMap<>();

    SchemaRegistry(String url) {
        this.baseUrl = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
        this.http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    }

    /**
     * The schema with this id. A miss asks the registry (retrying while it is unreachable, as
     * stage-host does); stream threads share the cache, so each id costs one request.
     */
    Schema schema(int id) {
        Schema cached = byId.get(id);
        if (cached != null) {
            return cached;
        }
        return byId.computeIfAbsent(id, this::fetch);
    }

    /** Registers {@code schema} under {@code subject} and returns its id. */
    int register(String subject, String schema) throws IOException, InterruptedException {
        String body = JSON.writeValueAsString(Map.of("schema", schema));
        HttpRequest request = request("/subjects/" + subject + "/versions")
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .POST(HttpRequest.BodyPublishers.ofString(body))
                .build();
        HttpResponse<String> response = http.send(request, HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new RefusedException("registering the schema under " + subject + ": HTTP "
                    + response.statusCode() + " " + response.body());
        }
        return JSON.readTree(response.body()).get("id").asInt();
    }

    private Schema fetch(int id) {
        long deadline = System.nanoTime() + RETRY_FOR.toNanos();
        long backoffMs = 100;
        while (true) {
            try {
                HttpResponse<String> response = http.send(
                        request("/schemas/ids/" + id).GET().build(),
                        HttpResponse.BodyHandlers.ofString());
                if (response.statusCode() == 200) {
                    JsonNode schema = JSON.readTree(response.body()).get("schema");
                    return new Schema.Parser().parse(schema.asText());
                }
                if (response.statusCode() / 100 == 4) {
                    throw new RefusedException("schema id " + id + ": HTTP "
                            + response.statusCode() + " " + response.body());
                }
                retryOrThrow(deadline, "schema id " + id + ": HTTP " + response.statusCode(), null);
            } catch (IOException e) {
                retryOrThrow(deadline, "schema id " + id + ": " + e, e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted fetching schema id " + id, e);
            }
            try {
                Thread.sleep(backoffMs);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted fetching schema id " + id, e);
            }
            backoffMs = Math.min(backoffMs * 2, 5_000);
        }
    }

    private static void retryOrThrow(long deadline, String what, Exception cause) {
        if (System.nanoTime() > deadline) {
            throw new IllegalStateException("the Schema Registry did not answer for "
                    + RETRY_FOR.toSeconds() + " s: " + what, cause);
        }
    }

    private HttpRequest.Builder request(String path) {
        return HttpRequest.newBuilder(URI.create(baseUrl + path)).timeout(Duration.ofSeconds(10));
    }
}
