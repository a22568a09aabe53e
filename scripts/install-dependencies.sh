#!/usr/bin/env bash
# Installs what the package and its tests need when it is missing: the C library the package
# builds on (Debian's librdkafka-dev), and confluent-kafka from PyPI, whose librdkafka (2.16)
# serves as the second broker implementation of the group tests.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! (command -v pkg-config >/dev/null 2>&1 && pkg-config --exists rdkafka); then
    echo "Installing librdkafka-dev and pkg-config with apt-get..." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq librdkafka-dev pkg-config >/dev/null
    pkg-config --modversion rdkafka >&2
fi
if ! python3 -c "import confluent_kafka" >/dev/null 2>&1; then
    echo "Installing confluent-kafka with pip..." >&2
    python3 -m pip install --quiet --disable-pip-version-check confluent-kafka >&2
fi
