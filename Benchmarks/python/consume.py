"""The Python user's consumer, measured beside the Swift package on the same cluster.

confluent-kafka (with the librdkafka it bundles) reads every partition of TOPIC from the
beginning in batches of 500, validating each value with the contract's model in Pydantic
(the default), in msgspec (--validator msgspec), or not at all (--validator none). Prints
one line: "events/s RATE".

With --decode-only FILE it reads no Kafka: it validates each line of FILE (one JSON
document per line, the benchmark's own documents) with msgspec, and prints the rate.

fetch.queue.backoff.ms is 10: by default librdkafka waits up to a second before fetching
again once its queue was full, which a reader slower than the fetcher pays over and over;
the Swift consumer avoids that wait too (it wakes the fetcher), so both are measured
without it.

    python3 consume.py BOOTSTRAP TOPIC COUNT PARTITIONS [--validator pydantic|msgspec|none]
    python3 consume.py --decode-only FILE
"""

import sys
import time
import uuid
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from pydantic import BaseModel, Field


class EventPayload(BaseModel):
    model_config = {"extra": "allow"}
    data: dict[str, Any] = {}


class WorkflowEvent(BaseModel):
    event_id: UUID
    event_type: str
    source: str
    workflow_id: str = Field(min_length=1)
    workflow_run_id: str | None = None
    timestamp: datetime
    payload: EventPayload
    metadata: dict[str, str] = {}
    schema_version: int = 1


class MsgspecPayload(msgspec.Struct):
    data: dict[str, Any] = {}


class MsgspecEvent(msgspec.Struct):
    """The same contract in msgspec: unknown fields are ignored, UUID and datetime checked."""
    event_id: UUID
    event_type: str
    source: str
    workflow_id: Annotated[str, msgspec.Meta(min_length=1)]
    timestamp: datetime
    payload: MsgspecPayload
    workflow_run_id: str | None = None
    metadata: dict[str, str] = {}
    schema_version: int = 1


def decode_only(path: str) -> None:
    with open(path, "rb") as file:
        documents = file.read().splitlines()
    decoder = msgspec.json.Decoder(MsgspecEvent)
    start = time.perf_counter()
    for document in documents:
        decoder.decode(document)
    elapsed = time.perf_counter() - start
    print(f"events/s {len(documents) / elapsed:.0f}")


def main() -> None:
    if sys.argv[1] == "--decode-only":
        decode_only(sys.argv[2])
        return
    bootstrap, topic, count, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    options = sys.argv[5:]
    validator = options[options.index("--validator") + 1] if "--validator" in options else "pydantic"
    msgspec_decoder = msgspec.json.Decoder(MsgspecEvent)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"python-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "fetch.queue.backoff.ms": 10,
        "log_level": 3,
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    received = 0
    start = None
    idle = 0
    while received < count:
        batch = consumer.consume(num_messages=500, timeout=1.0)
        if not batch:
            idle += 1
            if idle == 10:
                sys.exit(f"read {received} of {count} messages, then nothing for 10 s")
            continue
        for message in batch:
            if message.error():
                continue
            if start is None:
                start = time.perf_counter()
            if validator == "pydantic":
                WorkflowEvent.model_validate_json(message.value())
            elif validator == "msgspec":
                msgspec_decoder.decode(message.value())
            received += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    print(f"events/s {received / elapsed:.0f}")


if __name__ == "__main__":
    main()
