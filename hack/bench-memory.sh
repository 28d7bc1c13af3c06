#!/usr/bin/env bash
# Compares the small-message throughput of the runtime with that of another commit (default:
# the memory branch's starting point), interleaved, PAIRS pairs (default 5), and prints the
# median ratios: BenchmarkConsume (kpipe only: no-op handler, tiny messages) and
# BenchmarkForward1KiB (forward, 1 KiB messages).
#
#   hack/bench-memory.sh [BASE_COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-275b120}
pairs=${PAIRS:-5}
out=bin/bench-memory
mkdir -p "$out"
wt=$(mktemp -d)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
git worktree add -q --detach "$wt" "$base"
cp runtime/memory_bench_test.go "$wt/runtime/" # the 1 KiB benchmark, for both sides
go test -c -o "$out/new.test" ./runtime
(cd "$wt" && go test -c -o "$OLDPWD/$out/old.test" ./runtime)
metric() { grep -o "[0-9.]* kpipe-msgs/s" | head -1 | cut -d' ' -f1; }
for i in $(seq "$pairs"); do
	for side in old new; do
		c=$(cd runtime && KPIPE_BENCH_ONLY=kpipe "../$out/$side.test" -test.run '^$' -test.bench '^BenchmarkConsume$' -test.benchtime 1x | metric)
		f=$(cd runtime && "../$out/$side.test" -test.run '^$' -test.bench '^BenchmarkForward1KiB$' -test.benchtime 1x | metric)
		echo "$i $side consume $c forward1k $f" | tee -a "$out/raw.txt"
	done
done
awk -v pairs="$pairs" '
	{ v[$2, "consume", $1] = $4; v[$2, "forward1k", $1] = $6 }
	END {
		split("consume forward1k", names, " ")
		for (k = 1; k <= 2; k++) {
			name = names[k]; n = 0
			for (i = 1; i <= pairs; i++) r[++n] = v["new", name, i] / v["old", name, i]
			asort(r)
			med = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
			printf "%s: median new/old %.3f (pairs:", name, med
			for (i = 1; i <= pairs; i++) printf " %.0f/%.0f", v["new", name, i], v["old", name, i]
			print ")"
			delete r
		}
	}' <(grep -v '^#' "$out/raw.txt" | tail -n $((2 * pairs)))
