"""The Python user's consumer, measured beside the Swift package on the same cluster.

confluent-kafka (with the librdkafka it bundles) reads every partition of TOPIC from the
beginning in batches of 500, validating each value with the contract's Pydantic model
(or not, with --no-validation). Prints one line: "events/s RATE".

fetch.queue.backoff.ms is 10: by default librdkafka waits up to a second before fetching
again once its queue was full, which a reader slower than the fetcher pays over and over;
the Swift consumer avoids that wait too (it wakes the fetcher), so both are measured
without it.

    python3 consume.py BOOTSTRAP TOPIC COUNT PARTITIONS [--no-validation]
"""

import sys
import time
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

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


def main() -> None:
    bootstrap, topic, count, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    validate = "--no-validation" not in sys.argv[5:]
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
            if validate:
                WorkflowEvent.model_validate_json(message.value())
            received += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    print(f"events/s {received / elapsed:.0f}")


if __name__ == "__main__":
    main()
