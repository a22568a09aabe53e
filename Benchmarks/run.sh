#!/usr/bin/env bash
# The benchmark table of the README: the Swift consumer beside a raw librdkafka loop and
# beside Python's confluent-kafka with msgspec and with Pydantic, on one in-process mock
# cluster, in one run.
#   bash Benchmarks/run.sh [--events N] [--partitions P] [--repetitions R]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c "import confluent_kafka, pydantic, msgspec" 2>/dev/null; then
    echo "installing the Python side: confluent-kafka, pydantic and msgspec (pip)" >&2
    python3 -m pip install --quiet confluent-kafka pydantic msgspec
fi
swift build -c release --product workflow-events-benchmarks
exec stdbuf -oL .build/release/workflow-events-benchmarks --python Benchmarks/python/consume.py "$@"
