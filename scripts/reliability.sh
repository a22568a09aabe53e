#!/usr/bin/env bash
# Runs the reliability suite and prints its figures as a table.
#   scripts/reliability.sh            (or: make reliability)
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
swift test --filter 'ReliabilityTests|revocationWaitsForHandlers' 2>&1 | tee "$log" | grep -E '^(✔|✘) (Test|Suite)' || status=$?
if grep -q '✘' "$log"; then status=1; fi
echo
echo "| test | figures |"
echo "| --- | --- |"
grep '^FIGURE ' "$log" | sed -e 's/^FIGURE //' | awk -F ' \\| ' '{
    row = "| " $1 " | "
    for (i = 2; i <= NF; i++) row = row (i > 2 ? ", " : "") $i
    print row " |"
}' | sort
echo
echo "machine: $(nproc) cores, $(uname -m), $(. /etc/os-release && echo "$PRETTY_NAME"), librdkafka $(pkg-config --modversion rdkafka)"
exit $status
