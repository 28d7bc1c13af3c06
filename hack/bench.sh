#!/usr/bin/env bash
# Runs kpipe's benchmarks against its peers in one go and prints one table of the ratios
# measured in this run (`make bench`). Each benchmark logs its rows as
# "BENCH|section|row|kpipe|peer|ratio|note"; this script only collects them.
#
#   hack/bench.sh                      # everything, 3-4 minutes on 2 cores
#   BENCH_SKIP=operator hack/bench.sh   # leave out parts (consume parallelism forward lag operator scaling)
#
# The operator-scale benchmark needs envtest's binaries: KUBEBUILDER_ASSETS, or bin/.envtest-assets
# written by `make envtest`. Raw logs go to bin/bench/.
set -uo pipefail
cd "$(dirname "$0")/.."
out=bin/bench
mkdir -p "$out"
skip=" ${BENCH_SKIP:-} "
failed=()

run() { # name package bench-regexp [extra go test flags...]
	local name=$1 pkg=$2 re=$3
	shift 3
	if [[ $skip == *" $name "* ]]; then
		echo "skipped: $name" >&2
		return
	fi
	echo "running: $name ($pkg $re)" >&2
	local began=$SECONDS
	if ! go test "$pkg" -run '^$' -bench "$re" -benchtime 1x -count 1 -v "$@" >"$out/$name.log" 2>&1; then
		failed+=("$name")
		echo "FAILED: $name (see $out/$name.log)" >&2
	fi
	echo "  $name took $((SECONDS - began)) s" >&2
}

began=$SECONDS
rm -f "$out"/*.log
run consume ./runtime '^BenchmarkConsume$' -timeout 10m
run parallelism ./runtime '^BenchmarkParallelism$' -timeout 10m
run forward ./runtime '^BenchmarkForwardPipeline$' -timeout 10m
run lag ./controllers/lag '^BenchmarkLagPoll$' -timeout 10m
run operator ./controllers '^BenchmarkOperatorScale$' -timeout 60m
run scaling ./test/bench/scalesim '^BenchmarkScalingPolicy$' -timeout 5m

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
echo "# kpipe benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $(nproc) CPUs ($cpu), $(go version | sed 's/^go version //'). Command: make bench (hack/bench.sh), $((SECONDS - began)) s."
echo "Shared machine, other builds running: absolute numbers are noisy; compare the ratios of one run."
for name in consume parallelism forward lag operator scaling; do
	[[ -f $out/$name.log && $skip != *" $name "* ]] && cat "$out/$name.log"
done | grep -ho 'BENCH|.*' | sed 's/^BENCH|//' | awk -F'|' '
	$1 != section {
		section = $1
		printf "\n### %s\n\n| | kpipe | peer | kpipe / peer | note |\n| --- | --- | --- | --- | --- |\n", section
	}
	{ printf "| %s | %s | %s | %s | %s |\n", $2, $3, $4, $5, $6 }'
if ((${#failed[@]})); then
	echo
	echo "FAILED: ${failed[*]} (logs in $out/)"
	exit 1
fi
