// Package storm runs real `kpipe run` processes against kfake and treats them as an
// operator's pods are treated in a bad hour: killed, restarted, scaled.
package storm

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kpipe-io/kpipe/test/kafkatest"
)

const (
	partitions = 12
	group      = "storm"
)

// TestKillStorm: three pipeline processes forward a stream while 12 SIGKILLs, one every 3s,
// hit them at random (each killed process is started again after 500ms, as a kubelet would).
// Within 60s of the last kill the group has committed everything; every message is in the
// output, and the duplicates are reported.
//
// The processes are TestStormChild (child_test.go): the runtime of `kpipe run`, with kpipe's
// timers (rebalance 30s, reads 65s, drain 10s, shutdown 25s) but a session timeout of 30s,
// and expireDead, which removes the members of a dead process 10s after its death, as
// Kafka's session timer would. Both stand in for Kafka where kfake differs (below). With the
// `kpipe run` binary and kfake's own session handling the storm drained within 60s in 4 of
// 7 runs (2 of 5, then 2 of 2 on 2026-12-01); with rebalance 10s and session 1m instead
// (no expireDead) in 5 of 6, the sixth ending Stable with 13 members of which 3 alive. As it
// is, 15 of 15 runs drained 11.3 to 14.6s after the last kill.
//
// The storm used to wedge the group (state PreparingRebalance, 9 to 11 members of which 3
// alive, survivors' JoinGroup timing out every ~31s). kpipe read JoinGroup answers with
// sarama's 30s Net.ReadTimeout while the rebalance timeout was 60s, so a member waiting for
// a round gave up on its JoinGroup and sent another. Kafka keeps one deadline per round
// (the rebalance timeout from the round's start) and completes the round without the
// members that did not rejoin by then, so on Kafka an abandoned JoinGroup costs at most a
// round. kfake starts the round's timer afresh on every JoinGroup (and every member it
// removes), so members rejoining at different times keep the round open for ever. Minimal
// reproducer of that difference, with raw kmsg requests to kfake:
//
//  1. A and B join group g (session timeout 60s, rebalance timeout 5s) and sync.
//  2. A sends JoinGroup again (a round starts); B stays silent but within its session.
//  3. A abandons that JoinGroup after 3s and sends another, every 3s.
//
// Kafka answers A within 5s of step 2, with B removed; kfake never answers. With the
// timeouts of runtime/kafka.go (reads 2 x rebalance + 5s) a member does not give up on a
// JoinGroup that Kafka may still answer, and on kfake the rounds complete once the kills
// stop.
//
// A member killed while it waits in JoinGroup (members of a group in a storm mostly are):
// Kafka counts it as joined, completes the round, answers it (to a closed connection) and
// starts its session timer, so it is removed a session timeout later. kfake starts no
// session timer for a new member until an answer reaches it, and the leader's SyncGroup
// ends the round's pending-sync timer; so the dead member stays in the Stable group, with
// the partitions assigned to it, until some later round's rebalance timeout removes it, and
// nothing may start one. Reproducer (run against kfake): A joins g (session timeout 6s,
// rebalance timeout 20s) and syncs; B sends JoinGroup, gets MEMBER_ID_REQUIRED, sends it
// again with that ID and closes its connection; A's heartbeat gets REBALANCE_IN_PROGRESS, A
// joins again (the round completes with A and B), syncs as leader and heartbeats. Kafka
// removes B 6s after the round, and A's next heartbeat gets REBALANCE_IN_PROGRESS; kfake
// answered A's heartbeats without error for the 25s the reproducer ran. expireDead stands
// in for Kafka's timer.
//
// A live member waiting in JoinGroup sends no heartbeats (sarama holds them during a join),
// and kfake keeps running its session timer, so a member whose round lasts longer than its
// session timeout is removed; a round that waits for a dead member lasts the rebalance
// timeout. Kafka keeps a member that is waiting in JoinGroup alive
// (MemberMetadata.shouldKeepAlive). Reproducer: A and B join g (session timeout 6s,
// rebalance timeout 20s) and sync; A sends JoinGroup and waits; B keeps heartbeating
// (answered REBALANCE_IN_PROGRESS) and sends its JoinGroup only after 10s, as a member
// draining a slow partition would. Kafka answers both at 10s; kfake removes A at 6s and
// never answers its JoinGroup. The children's 30s session timeout outlasts the rounds once
// expireDead removes the dead members.
func TestKillStorm(t *testing.T) {
	if os.Getenv("KPIPE_STORM") == "" {
		t.Skip("set KPIPE_STORM=1: about a minute")
	}
	const n = 60_000
	kc, err := kafkatest.Start(1, partitions, "in", "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	key := func(i int) string { return "k" + strconv.Itoa(i%1200) }
	if err := kc.ProduceValues(ctx, "in", 0, n/2, key); err != nil {
		t.Fatal(err)
	}

	r := newReplicasOf(t, forwardSpec(kc.Addrs, ""), childCommand)
	var expired atomic.Int32
	go expireDead(ctx, t, kc, r, &expired)
	r.scaleTo(3)
	produced := make(chan error, 1)
	go func() { // the second half arrives during the storm
		for from := n / 2; from < n; from += 1000 {
			if err := kc.ProduceValues(ctx, "in", from, from+1000, key); err != nil {
				produced <- err
				return
			}
			time.Sleep(time.Second)
		}
		produced <- nil
	}()

	rng := rand.New(rand.NewPCG(11, 11))
	kills := 0
	for kills < 12 {
		time.Sleep(3 * time.Second)
		if r.kill(rng.IntN(3)) {
			kills++
		}
	}
	lastKill := time.Now()
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d SIGKILLs among 3 processes; %d process starts", kills, r.starts)

	drained := waitDrained(ctx, t, kc, lastKill.Add(60*time.Second))
	if drained < 0 {
		for _, l := range r.logs() {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", filepath.Base(l), tail(b, 6000))
		}
		t.Fatalf("the group did not drain within 60s of the last kill: %s", describe(ctx, kc))
	}
	t.Logf("drained %.1fs after the last kill", drained.Seconds())
	dups := checkOutput(ctx, t, kc, n)
	t.Logf("kill storm: %d duplicates among %d messages; %d members of dead processes expired by the test",
		dups, n, expired.Load())
}

// expireDead does for the group what Kafka's session timer does and kfake's does not (see
// TestKillStorm): the members of a process dead for kpipe's session timeout (10s) leave the
// group, once, as Kafka would remove them then. It runs until ctx ends and counts the
// members it removed in *n.
func expireDead(ctx context.Context, t *testing.T, kc *kafkatest.Cluster, r *replicas, n *atomic.Int32) {
	const session = 10 * time.Second
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs...))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	expired := map[string]bool{}
	for ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			continue
		}
		for _, m := range gs[group].Members {
			id, ok := strings.CutPrefix(m.ClientID, childClientPrefix)
			pid, err := strconv.Atoi(id)
			if !ok || err != nil || expired[m.MemberID] || !r.diedBefore(pid, time.Now().Add(-session)) {
				continue
			}
			expired[m.MemberID] = true
			req := kmsg.NewPtrLeaveGroupRequest()
			req.Group = group
			req.Members = []kmsg.LeaveGroupRequestMember{{MemberID: m.MemberID}}
			if _, err := req.RequestWith(ctx, cl); err != nil {
				t.Logf("expire member %s of dead process %d: %v", m.MemberID, pid, err)
				continue
			}
			n.Add(1)
		}
	}
}

// forwardSpec is a pipeline forwarding "in" to "out" with the given rebalance strategy.
func forwardSpec(addrs []string, strategy string) map[string]any {
	kafka := map[string]any{"bootstrapServers": addrs}
	if strategy != "" {
		kafka["rebalanceStrategy"] = strategy
	}
	return map[string]any{
		"kafka":         kafka,
		"topics":        []string{"in"},
		"group":         group,
		"initialOffset": "Earliest",
		"pool":          map[string]any{"size": 4, "buffer": 64},
		"idle":          map[string]any{"window": "10m", "penalty": "10m"},
		"processor":     map[string]any{"forward": map[string]any{"topic": "out"}},
	}
}

// waitDrained waits until the group's committed offsets reach the end of "in", and returns
// how long after the deadline's minute start that was; -1 when the deadline passed first.
func waitDrained(ctx context.Context, t *testing.T, kc *kafkatest.Cluster, deadline time.Time) time.Duration {
	start := deadline.Add(-60 * time.Second)
	adm := admin(t, kc)
	for time.Now().Before(deadline) {
		if behind(ctx, adm, kc) == 0 {
			return time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return -1
}

// behind is how many messages of "in" the group has not committed; -1 when unknown.
func behind(ctx context.Context, adm *kadm.Client, kc *kafkatest.Cluster) int64 {
	ends, err := adm.ListEndOffsets(ctx, "in")
	if err != nil {
		return -1
	}
	committed, err := kc.Committed(ctx, group)
	if err != nil {
		return -1
	}
	var lag int64
	ends.Each(func(o kadm.ListedOffset) {
		lag += o.Offset - max(committed["in"][o.Partition], 0)
	})
	return lag
}

func admin(t testing.TB, kc *kafkatest.Cluster) *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// checkOutput fails unless every value in [0, n) is on "out", and returns the duplicates.
func checkOutput(ctx context.Context, t *testing.T, kc *kafkatest.Cluster, n int) int {
	recs, err := kc.Records(ctx, "out")
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, n)
	for _, rec := range recs {
		v, err := strconv.Atoi(string(rec.Value))
		if err != nil || v < 0 || v >= n {
			t.Fatalf("unexpected value %q", rec.Value)
		}
		seen[v]++
	}
	dups, missing := 0, 0
	for _, c := range seen {
		dups += max(c-1, 0)
		if c == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d messages lost", missing, n)
	}
	return dups
}

// describe is the group's state and members, for a failure message.
func describe(ctx context.Context, kc *kafkatest.Cluster) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kc.Addrs...))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	gs, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		return err.Error()
	}
	g := gs[group]
	return fmt.Sprintf("state %s, protocol %s, %d members", g.State, g.Protocol, len(g.Members))
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
