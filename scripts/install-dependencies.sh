#!/usr/bin/env bash
# Installs the C library the package builds on (Debian's librdkafka-dev) when it is missing.
set -euo pipefail
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists rdkafka; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "Installing librdkafka-dev and pkg-config with apt-get..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq librdkafka-dev pkg-config >/dev/null
pkg-config --modversion rdkafka >&2
