#!/usr/bin/env bash
# Runs the microbenchmarks (their times are printed, not checked: the machines are noisy),
# then checks their allocation counts against Thresholds/: more allocations fail; fewer
# pass, and are then recorded with
#   swift package --allow-writing-to-package-directory benchmark thresholds update --metric mallocCountTotal
set -uo pipefail
cd "$(dirname "$0")"
swift package benchmark --no-progress || exit 1
swift package benchmark thresholds check --no-progress
status=$?
# 0: as recorded; 4: only improvements.
if [ "$status" -eq 0 ] || [ "$status" -eq 4 ]; then exit 0; fi
echo "allocation counts regressed (status $status): see the table above" >&2
exit 1
