#!/usr/bin/env bash
# Runs BenchmarkForward (kpipe against a plain sarama consumer-group handler, same kfake
# cluster, same run) and prints msgs/s of each and their ratios.
#   hack/bench-runtime.sh [runs per variant, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./runtime -run '^$' -bench '^BenchmarkForward$' -benchtime "${1:-3}x" -v |
	awk '/^BenchmarkForward\/.*msgs\/s/ { name=$1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkForward\//, "", name); printf "%-18s %10.0f msgs/s\n", name, $(NF-1) }
	     /ratio/ { sub(/^[ \t]*bench_test.go:[0-9]+: /, ""); print }'
