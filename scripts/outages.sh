#!/usr/bin/env bash
# The five-outage sequence (every broker of a 3-broker mock down for 2, 4, 8, 3 and 12 s,
# 3 s apart, while one consumeEvents call reads 60,000 events) in ROUNDS rounds, one at a
# time (Tests/OutageSequence); prints each round's figure and how soon reading resumed after
# each return, and what a failed round saw.
#   scripts/outages.sh [ROUNDS]      (default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
swift build --product OutageSequence >/dev/null 2>&1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for round in $(seq 1 "$rounds"); do
    if ! .build/debug/OutageSequence >"$log" 2>&1; then
        failed=$((failed + 1))
        grep '^outage-sequence: ' "$log" || tail -5 "$log"
    fi
    echo "round $round: $(grep '^FIGURE ' "$log" | sed -e 's/^FIGURE whole-cluster outages | //')"
done
echo "rounds: $rounds, failed: $failed; machine: $(nproc) cores, librdkafka $(pkg-config --modversion rdkafka)"
[ "$failed" -eq 0 ]
