#!/usr/bin/env bash
# Measures the runtime's hand-off against its peers and against another commit (default:
# main), interleaved, PAIRS pairs (default 5), and prints medians:
#   consume-only (BenchmarkConsume, no-op handler): kpipe / plain sarama for both commits,
#     and kpipe new / old;
#   floors: the same runs' floor peers (plain sarama with only a hand-off: per claim in
#     batches, or per message to 8 shared goroutines) against plain sarama and kpipe;
#   cpu: the same runs' CPU time per message (the process's; lower is better), kpipe / plain
#     sarama and kpipe new / old;
#   forward (BenchmarkForwardPipeline, KPIPE_BENCH_FORWARDERS=kpipe,sarama-async): kpipe /
#     the AsyncProducer handler without ack tracking for both commits, and the loss lines
#     of the kill scenario (first run of each binary).
# Which of kpipe and its peer runs first in a process alternates in pairs of pairs (the one
# that runs first was measured slower, by about a tenth in forward); the medians are also
# printed by which ran first.
# Both sides run this commit's benchmark files (peers_bench_test.go and
# floor_peers_bench_test.go are copied over). Within a pair the side that runs first
# alternates. Raw lines go to bin/bench-handoff/raw.txt.
#
#   hack/bench-handoff.sh [BASE_COMMIT]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-main}
pairs=${PAIRS:-5}
out=${OUT:-bin/bench-handoff}
mkdir -p "$out"
out=$(cd "$out" && pwd)
wt=$(mktemp -d)
trap 'git worktree remove --force "$wt" >/dev/null 2>&1 || true' EXIT
git worktree add -q --detach "$wt" "$base"
cp runtime/peers_bench_test.go runtime/floor_peers_bench_test.go "$wt/runtime/"
go test -c -o "$out/new.test" ./runtime
(cd "$wt" && go test -c -o "$out/old.test" ./runtime)
metric() { grep -o "[0-9.]* $1" | head -1 | cut -d' ' -f1; }
: >"$out/raw.txt"
run() { # side pair
	local side=$1 i=$2 log
	local first=sarama
	if ((i % 4 >= 2)); then first=kpipe; fi
	order() { # peers: kpipe before or after them, the peers' order reversed with it
		if [[ $first == kpipe ]]; then echo "kpipe,$(tr , '\n' <<<"$1" | tac | paste -sd,)"; else echo "$1,kpipe"; fi
	}
	log=$(cd runtime && KPIPE_BENCH_ONLY=$(order sarama,sarama-batches,sarama-each) "$out/$side.test" -test.run '^$' -test.bench '^BenchmarkConsume$' -test.benchtime 1x)
	echo "$i $side consume kpipe $(metric kpipe-msgs/s <<<"$log") sarama $(metric sarama-msgs/s <<<"$log") first $first" | tee -a "$out/raw.txt"
	echo "$i $side floors batches $(metric sarama-batches-msgs/s <<<"$log") each $(metric sarama-each-msgs/s <<<"$log") sarama $(metric sarama-msgs/s <<<"$log") kpipe $(metric kpipe-msgs/s <<<"$log")" | tee -a "$out/raw.txt"
	echo "$i $side cpu kpipe $(metric kpipe-cpu-us/msg <<<"$log") sarama $(metric sarama-cpu-us/msg <<<"$log") first $first" | tee -a "$out/raw.txt"
	log=$(cd runtime && KPIPE_BENCH_FORWARDERS=$(order sarama-async) "$out/$side.test" -test.run '^$' -test.bench '^BenchmarkForwardPipeline$' -test.benchtime 1x -test.v)
	echo "$i $side forward kpipe $(metric kpipe-msgs/s <<<"$log") async $(metric async-msgs/s <<<"$log") first $first" | tee -a "$out/raw.txt"
	grep -o 'after kill.*' <<<"$log" | sed "s/^/$i $side /" >>"$out/raw.txt"
}
for i in $(seq "$pairs"); do
	if ((i % 2)); then run old "$i"; run new "$i"; else run new "$i"; run old "$i"; fi
done
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratios() { # kind side: per-run kpipe / peer
	awk -v k="$1" -v s="$2" '$3 == k && $2 == s { printf "%.3f\n", $5 / $7 }' "$out/raw.txt"
}
for kind in consume cpu forward; do
	for side in old new; do
		r=$(ratios "$kind" "$side")
		echo "$kind $side kpipe/peer: median $(median <<<"$r") (sorted: $(sort -n <<<"$r" | tr '\n' ' '))"
	done
	r=$(awk -v k="$kind" '$3 == k { v[$1 " " $2] = $5 } END { for (p in v) { split(p, a, " "); if (a[2] == "new") printf "%.3f\n", v[p] / v[a[1] " old"] } }' "$out/raw.txt")
	echo "$kind kpipe new/old: median $(median <<<"$r") (sorted: $(sort -n <<<"$r" | tr '\n' ' '))"
	for first in kpipe peer; do # both sides' runs, by which ran first in the process
		r=$(awk -v k="$kind" -v f="$first" '$3 == k && ($9 == "kpipe") == (f == "kpipe") { printf "%.3f\n", $5 / $7 }' "$out/raw.txt")
		echo "$kind kpipe/peer with $first first: median $(median <<<"$r") (sorted: $(sort -n <<<"$r" | tr '\n' ' '))"
	done
done
floors() { # numerator denominator: per-run ratio of two fields of the floors lines
	awk -v a="$1" -v b="$2" '$3 == "floors" { for (f = 4; f < NF; f += 2) v[$f] = $(f + 1); printf "%.3f\n", v[a] / v[b] }' "$out/raw.txt"
}
for r in "batches sarama" "each sarama" "kpipe batches" "kpipe each"; do
	set -- $r
	v=$(floors "$1" "$2")
	echo "floors $1/$2 (both sides): median $(median <<<"$v") (sorted: $(sort -n <<<"$v" | tr '\n' ' '))"
done
grep 'after kill' "$out/raw.txt" | grep -v 'sarama-sync' || true
