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
recent=$(grep -v '^#' "$out/raw.txt" | tail -n $((2 * pairs)))
for name in consume forward1k; do
	col=4
	[[ $name == forward1k ]] && col=6
	ratios=$(for i in $(seq "$pairs"); do
		old=$(awk -v i="$i" -v c="$col" '$1 == i && $2 == "old" { print $c }' <<<"$recent")
		new=$(awk -v i="$i" -v c="$col" '$1 == i && $2 == "new" { print $c }' <<<"$recent")
		awk -v o="$old" -v n="$new" 'BEGIN { printf "%.3f %s/%s\n", n / o, n, o }'
	done | sort -n)
	median=$(awk -v n="$pairs" 'NR == int((n + 1) / 2) { print $1 }' <<<"$ratios")
	echo "$name: median new/old $median (ratio new/old, sorted: $(tr '\n' ' ' <<<"$ratios"))"
done
