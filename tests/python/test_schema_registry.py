"""Wire compatibility of the project's schema registry with Confluent's Python client.

Runs confluent-kafka's SchemaRegistryClient, AvroSerializer and AvroDeserializer against a
running registry (the project's local one, or a Confluent one for comparison):

    SCHEMA_REGISTRY_URL=http://127.0.0.1:8081 pytest tests/python/test_schema_registry.py

Subjects are unique per run, so the tests can be repeated against the same registry. Without
a registry the tests skip (or fail under STAGE_HOST_REQUIRE_CLUSTER), as conftest.py decides.
"""

import json
import pathlib
import uuid

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMAS = pathlib.Path(__file__).resolve().parents[2] / "schemas"


def schema_text(name):
    return (SCHEMAS / f"{name}.json").read_text()


def with_extra_field(text, field):
    parsed = json.loads(text)
    parsed["fields"].append(field)
    return json.dumps(parsed)


@pytest.fixture
def url(schema_registry_url):
    return schema_registry_url


@pytest.fixture
def client(url):
    return SchemaRegistryClient({"url": url})


@pytest.fixture
def subject():
    return f"pytest-{uuid.uuid4().hex}-value"


def test_register_read_back_and_lookup(client, subject, url):
    text = schema_text("stage_one")
    schema_id = client.register_schema(subject, Schema(text, "AVRO"))
    assert isinstance(schema_id, int)
    # Idempotent, also from a fresh client without a cache.
    assert SchemaRegistryClient({"url": url}).register_schema(subject, Schema(text, "AVRO")) == schema_id

    latest = client.get_latest_version(subject)
    assert latest.schema_id == schema_id
    assert latest.version == 1
    assert latest.subject == subject
    assert json.loads(latest.schema.schema_str) == json.loads(text)

    fresh = SchemaRegistryClient({"url": url})
    fetched = fresh.get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert json.loads(fetched.schema_str) == json.loads(text)

    found = fresh.lookup_schema(subject, Schema(text, "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (schema_id, 1, subject)

    assert subject in client.get_subjects()
    assert client.get_versions(subject) == [1]
    assert fresh.get_version(subject, 1).schema_id == schema_id


def test_ids_are_global_across_subjects(client, subject):
    text = schema_text("stage_two")
    first = client.register_schema(subject, Schema(text, "AVRO"))
    second = client.register_schema(subject + "-copy", Schema(text, "AVRO"))
    assert first == second


def test_errors_carry_confluent_codes(client, subject, url):
    fresh = SchemaRegistryClient({"url": url})
    with pytest.raises(SchemaRegistryError) as err:
        fresh.get_latest_version(subject)
    assert (err.value.http_status_code, err.value.error_code) == (404, 40401)

    with pytest.raises(SchemaRegistryError) as err:
        fresh.get_schema(2**31 - 1)
    assert (err.value.http_status_code, err.value.error_code) == (404, 40403)

    with pytest.raises(SchemaRegistryError) as err:
        fresh.register_schema(subject, Schema('{"type": "record", "name": "r"}', "AVRO"))
    assert (err.value.http_status_code, err.value.error_code) == (422, 42201)

    client.register_schema(subject, Schema(schema_text("stage_one"), "AVRO"))
    with pytest.raises(SchemaRegistryError) as err:
        fresh.lookup_schema(subject, Schema(schema_text("stage_three"), "AVRO"))
    assert err.value.error_code == 40403

    with pytest.raises(SchemaRegistryError) as err:
        fresh.get_version(subject, 7)
    assert err.value.error_code == 40402


def test_compatibility(client, subject):
    text = schema_text("stage_one")
    client.register_schema(subject, Schema(text, "AVRO"))

    compatible = with_extra_field(text, {"name": "lang", "type": "string", "default": "en"})
    incompatible = with_extra_field(text, {"name": "lang", "type": "string"})
    assert client.test_compatibility(subject, Schema(compatible, "AVRO")) is True
    assert client.test_compatibility(subject, Schema(incompatible, "AVRO")) is False
    assert client.test_compatibility(subject, Schema(incompatible, "AVRO"), version=1) is False
    assert client.test_compatibility_all_versions(subject, Schema(compatible, "AVRO")) is True

    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(subject, Schema(incompatible, "AVRO"))
    assert (err.value.http_status_code, err.value.error_code) == (409, 409)
    assert "lang" in err.value.error_message

    assert client.register_schema(subject, Schema(compatible, "AVRO")) > 0
    assert client.get_latest_version(subject).version == 2


def test_set_compatibility(client, subject):
    text = schema_text("stage_one")
    client.register_schema(subject, Schema(text, "AVRO"))
    incompatible = with_extra_field(text, {"name": "lang", "type": "string"})

    result = client.set_compatibility(subject_name=subject, level="FORWARD")
    assert result["compatibility"] == "FORWARD"
    assert client.get_compatibility(subject) == "FORWARD"
    # Adding a field without a default is forward compatible.
    assert client.test_compatibility(subject, Schema(incompatible, "AVRO")) is True

    client.set_compatibility(subject_name=subject, level="NONE")
    assert client.register_schema(subject, Schema(incompatible, "AVRO")) > 0

    with pytest.raises(SchemaRegistryError) as err:
        client.set_compatibility(subject_name=subject, level="SIDEWAYS")
    assert err.value.error_code == 42203

    assert client.get_compatibility() in {
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    }


def test_delete_subject_soft_then_permanent(client, subject, url):
    client.set_compatibility(subject_name=subject, level="NONE")
    client.register_schema(subject, Schema(schema_text("stage_one"), "AVRO"))
    client.register_schema(subject, Schema(schema_text("stage_two"), "AVRO"))

    with pytest.raises(SchemaRegistryError) as err:
        client.delete_subject(subject, permanent=True)
    assert err.value.error_code == 40405

    assert client.delete_subject(subject) == [1, 2]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)

    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as err:
        SchemaRegistryClient({"url": url}).get_latest_version(subject)
    assert err.value.error_code == 40401


def test_delete_version(client, subject):
    client.set_compatibility(subject_name=subject, level="NONE")
    client.register_schema(subject, Schema(schema_text("stage_one"), "AVRO"))
    client.register_schema(subject, Schema(schema_text("stage_two"), "AVRO"))
    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.delete_version(subject, 2, permanent=True) == 2


def test_avro_serializer_round_trip(client, subject, url):
    topic = subject[: -len("-value")]
    text = schema_text("stage_one")
    serializer = AvroSerializer(client, text, conf={"auto.register.schemas": True})
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
    ctx = SerializationContext(topic, MessageField.VALUE)

    value = {"postid": "p-1", "title": "hello"}
    payload = serializer(value, ctx)
    assert payload[0] == 0, "Confluent magic byte"
    schema_id = int.from_bytes(payload[1:5], "big")
    assert client.get_latest_version(f"{topic}-value").schema_id == schema_id

    assert deserializer(payload, ctx) == value


@pytest.mark.parametrize("name", ["stage_one", "stage_two", "stage_three", "test_topic"])
def test_project_schemas_register(client, subject, name, url):
    text = schema_text(name)
    schema_id = client.register_schema(subject, Schema(text, "AVRO"))
    assert json.loads(SchemaRegistryClient({"url": url}).get_schema(schema_id).schema_str) == json.loads(text)
