package dev.stagehost.kstreams;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * Stage two's transform ({@code plugins/stage-two/src/lib.rs}): a framed stage-one value in,
 * {@code {postid, ppm}} framed with the output schema's id out, the key untouched.
 *
 * <p>One instance per task (Streams calls it from one thread at a time), so the decoder,
 * encoder and records are reused across records without locking, as stage-host's codec does.
 * Input values are decoded with their writer schema (from the registry, by the id in the frame)
 * resolved to stage two's declared input schema, like the plugin's {@code .input_schema(..)}.
 */
final class ScoreProcessor implements FixedKeyProcessor<byte[], byte[], byte[]> {
    /** Confluent framing: magic byte 0, then the schema id as a 4-byte big-endian int. */
    static final byte MAGIC = 0;

    static final int HEADER = 5;

    private final SchemaRegistry registry;
    private final Schema readerSchema;
    private final int outputSchemaId;
    private final float ppm;

    /** Readers by writer schema id: resolving writer to reader is worked out once per id. */
    private final Map<Integer, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
    private final GenericDatumWriter<GenericRecord> writer;
    private final GenericRecord output;
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(64);
    private BinaryDecoder decoder;
    private BinaryEncoder encoder;
    private GenericRecord input;
    private FixedKeyProcessorContext<byte[], byte[]> context;

    ScoreProcessor(SchemaRegistry registry, Schema inputSchema, Schema outputSchema,
            int outputSchemaId, float ppm) {
        this.registry = registry;
        this.readerSchema = inputSchema;
        this.outputSchemaId = outputSchemaId;
        this.ppm = ppm;
        this.writer = new GenericDatumWriter<>(outputSchema);
        this.output = new GenericData.Record(outputSchema);
    }

    @Override
    public void init(FixedKeyProcessorContext<byte[], byte[]> context) {
        this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<byte[], byte[]> record) {
        byte[] value = record.value();
        // A value that is not a framed Avro datum fails the record, and with it the stage, as
        // stage-host's default `--on-error fail` does.
        if (value == null || value.length < HEADER || value[0] != MAGIC) {
            throw new IllegalArgumentException("not a Confluent-framed Avro value at "
                    + where() + " (" + (value == null ? "null" : value.length + " bytes") + ")");
        }
        int writerId = ByteBuffer.wrap(value, 1, 4).getInt();
        try {
            decoder = DecoderFactory.get()
                    .binaryDecoder(value, HEADER, value.length - HEADER, decoder);
            input = reader(writerId).read(input, decoder);
            output.put("postid", input.get("postid"));
            output.put("ppm", ppm);
            context.forward(record.withValue(encode()));
        } catch (IOException e) {
            throw new UncheckedIOException(
                    "decoding " + where() + " (schema id " + writerId + ")", e);
        }
    }

    private GenericDatumReader<GenericRecord> reader(int writerId) {
        GenericDatumReader<GenericRecord> reader = readers.get(writerId);
        if (reader == null) {
            reader = new GenericDatumReader<>(registry.schema(writerId), readerSchema);
            readers.put(writerId, reader);
        }
        return reader;
    }

    /** The framed output value. */
    private byte[] encode() throws IOException {
        buffer.reset();
        buffer.write(MAGIC);
        buffer.write(outputSchemaId >>> 24);
        buffer.write(outputSchemaId >>> 16);
        buffer.write(outputSchemaId >>> 8);
        buffer.write(outputSchemaId);
        encoder = EncoderFactory.get().directBinaryEncoder(buffer, encoder);
        writer.write(output, encoder);
        encoder.flush();
        return buffer.toByteArray();
    }

    private String where() {
        return context.recordMetadata()
                .map(m -> m.topic() + "[" + m.partition() + "]@" + m.offset())
                .orElse("a record");
    }
}
