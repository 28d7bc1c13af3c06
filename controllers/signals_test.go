package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/scaling"
	"github.com/kpipe-io/kpipe/internal/telemetry"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// reporter is a group member that commits offset 0 on every partition of a 4-partition topic
// every 300ms, with the telemetry record a kpipe pod would write: the partitions have lag
// and their committed offsets never move, and what the record says decides what the
// operator makes of it.
func reporter(topic, group string, rec telemetry.Record) {
	member, err := kafkatest.JoinGroup(kc.Addrs, group, rec.Replica, topic)
	Expect(err).NotTo(HaveOccurred())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	started := time.Now()
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			r := rec
			r.At = time.Now()
			if r.InFlight > 0 {
				r.OldestInFlight = rec.OldestInFlight + time.Since(started)
			}
			_ = member.Commit(map[string]map[int32]int64{topic: {0: 0, 1: 0, 2: 0, 3: 0}}, telemetry.Encode(r))
			time.Sleep(300 * time.Millisecond)
		}
	}()
	DeferCleanup(func() {
		cancel()
		<-done
		_ = member.Close()
	})
}

// reportingPipeline creates a topic with lag 50 on each of 4 partitions and a pipeline of
// it that wants a replica per 10 messages (the partition cap, 4, under that lag).
func reportingPipeline(name string, rec telemetry.Record, mut ...func(*kpipev1.KafkaPipeline)) types.NamespacedName {
	return pipelineWithLag(name, func(ctx context.Context, topic string) error { return kc.ProduceAll(ctx, topic, 4, 50) }, rec, mut...)
}

// onePartitionLagging is reportingPipeline with all the lag, 200, on partition 0.
func onePartitionLagging(name string, rec telemetry.Record, mut ...func(*kpipev1.KafkaPipeline)) types.NamespacedName {
	return pipelineWithLag(name, func(ctx context.Context, topic string) error { return kc.Produce(ctx, topic, 200, 0) }, rec, mut...)
}

// pipelineWithLag creates a 4-partition topic committed at 0, produces to it, starts a
// reporter with rec (unless it names no replica) and creates the pipeline.
func pipelineWithLag(name string, produce func(context.Context, string) error, rec telemetry.Record,
	mut ...func(*kpipev1.KafkaPipeline)) types.NamespacedName {
	ctx := context.Background()
	topic := name + "-in"
	Expect(kc.CreateTopic(ctx, topic, 4)).To(Succeed())
	ns := newNamespace()
	key := types.NamespacedName{Namespace: ns, Name: name}
	Expect(kc.Commit(ctx, name+"-group", map[string]map[int32]int64{topic: {0: 0, 1: 0, 2: 0, 3: 0}})).To(Succeed())
	Expect(produce(ctx, topic)).To(Succeed())
	if rec.Replica != "" {
		reporter(topic, name+"-group", rec)
	}
	Expect(k8s.Create(ctx, newPipeline(ns, name, []string{topic}, append([]func(*kpipev1.KafkaPipeline){func(kp *kpipev1.KafkaPipeline) {
		kp.Spec.Scaling.LagPerReplica = ptr.To[int64](10)
	}}, mut...)...))).To(Succeed())
	DeferCleanup(func() {
		Expect(k8s.Delete(ctx, &kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
	})
	return key
}

var _ = Describe("what the pods report", func() {
	It("a partition whose pod reports busy workers is Slow, not Stalled, and its lag keeps counting", func() {
		lastTS := time.Now().Add(-90 * time.Second)
		key := reportingPipeline("slow", telemetry.Record{Busy: 1, InFlight: 1, OldestInFlight: 30 * time.Second,
			LastTimestamp: lastTS, State: telemetry.StateOK, Replica: "slow-0"})
		Eventually(func(g Gomega) {
			kp := getPipeline(g, key)
			stalled := condition(kp, kpipev1.ConditionStalled)
			g.Expect(stalled.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(stalled.Reason).To(Equal(controllers.ReasonPartitionsSlow))
			g.Expect(stalled.Message).To(ContainSubstring("slow-in/0"))
			g.Expect(hasEvent(eventsFor(g, key.Namespace, key.Name), controllers.ReasonPartitionsSlow, "slow-in/0")).To(BeTrue())
		}, 60*time.Second).Should(Succeed())
		// Slow for more than the stall threshold (6 polls of 1s, and the in-flight age past
		// it): the lag still drives the replicas to the partition cap.
		time.Sleep(7 * time.Second)
		kp := getPipeline(Default, key)
		Expect(condition(kp, kpipev1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse))
		Expect(kp.Status.Lag).To(Equal(int64(200)))
		Expect(*getDeployment(Default, key).Spec.Replicas).To(Equal(int32(4)))
		// The oldest waiting message is the one after the last committed: 90s and more.
		Expect(kp.Status.LagSeconds).To(BeNumerically(">=", 90))
		Expect(kp.Status.LagSeconds).To(BeNumerically("<=", int64(time.Since(lastTS).Seconds())+1))
		Expect(kp.Status.Topics[0].LagSeconds).To(Equal(kp.Status.LagSeconds))
	})

	It("a slow partition's lag counts for one replica's worth: one replica is the most a partition gets", func() {
		// All the lag (200, at 10 a replica) is on partition 0, slow; the other three have none.
		// Counted whole it would ask for the partition cap (4); one replica is what helps.
		key := onePartitionLagging("serial", telemetry.Record{Busy: 0.1, InFlight: 1, OldestInFlight: 30 * time.Second,
			State: telemetry.StateOK, Replica: "serial-0"})
		Eventually(func(g Gomega) {
			kp := getPipeline(g, key)
			stalled := condition(kp, kpipev1.ConditionStalled)
			g.Expect(stalled.Reason).To(Equal(controllers.ReasonPartitionsSlow))
			g.Expect(stalled.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(kp.Status.Lag).To(Equal(int64(200)))
		}, 60*time.Second).Should(Succeed())
		time.Sleep(3 * time.Second) // a few more polls of 1s: the count must not move
		Expect(*getDeployment(Default, key).Spec.Replicas).To(Equal(int32(1)), "lag 200 on one slow partition, at 10 a replica")
	})

	It("a lag time target scales on the capacity the pods report, where the lag alone asks for one replica", func() {
		// Lag 200 at 1000 a replica asks for 1. The pods report 10 msg/s on each of the 4
		// partitions with their workers always busy: 40 msg/s a replica. Working off 200 in
		// lagTimeTarget 1s needs 200 msg/s: 5 replicas, the partition cap (4).
		key := reportingPipeline("timetarget", telemetry.Record{Rate: 10, Busy: 1, State: telemetry.StateOK, Replica: "timetarget-0"},
			func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Scaling.LagPerReplica = ptr.To[int64](1000)
				kp.Spec.Scaling.LagTimeTarget = dur(time.Second)
			})
		Eventually(func(g Gomega) {
			g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(4)))
			g.Expect(hasEvent(eventsFor(g, key.Namespace, key.Name), scaling.ReasonScaledUp, "lagTimeTarget 1s")).To(BeTrue())
		}, 60*time.Second).Should(Succeed())
	})

	It("a partition whose pod reports retrying is Stalled with reason PartitionsRetrying, and its lag adds no replicas", func() {
		key := reportingPipeline("retrying", telemetry.Record{Busy: 0.2, InFlight: 1, State: telemetry.StateRetrying, Replica: "retrying-0"})
		Eventually(func(g Gomega) {
			kp := getPipeline(g, key)
			stalled := condition(kp, kpipev1.ConditionStalled)
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(stalled.Reason).To(Equal(controllers.ReasonPartitionsRetrying))
			g.Expect(stalled.Message).To(ContainSubstring("retrying a message: retrying-in/0"))
			g.Expect(*getDeployment(g, key).Spec.Replicas).To(Equal(int32(1)))
		}, 90*time.Second).Should(Succeed())
	})

	It("a partition retried for longer than a poll counts for one replica's worth before it is called Stalled", func() {
		// All the lag (200, at 10 a replica) is on partition 0, whose pod has retried one
		// message for 4s and on. Polls every 3s: from the offsets alone that lag would scale
		// to the partition cap (4) until the message has been in flight for six polls (18s:
		// slow) or the offset stood still for six (stalled), and the scale-down window would
		// then hold 4 for minutes. Retried for over a poll, it never asks for more than one.
		key := onePartitionLagging("retried", telemetry.Record{Busy: 0.2, InFlight: 1, OldestInFlight: 4 * time.Second,
			State: telemetry.StateRetrying, Replica: "retried-0"}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.PollInterval = dur(3 * time.Second)
			kp.Spec.Scaling.MinReplicas = ptr.To[int32](1) // running: waking from zero counts all lag
		})
		ctx := context.Background()
		replicas := func() int32 {
			dep := &appsv1.Deployment{}
			if err := k8s.Get(ctx, key, dep); err != nil || dep.Spec.Replicas == nil {
				return 0
			}
			return *dep.Spec.Replicas
		}
		// From the creation on: one replica, never the cap.
		Consistently(replicas, 12*time.Second).Should(BeNumerically("<=", 1), "lag 200 on one retrying partition, at 10 a replica")
		Expect(replicas()).To(Equal(int32(1)))
		Eventually(func(g Gomega) {
			stalled := condition(getPipeline(g, key), kpipev1.ConditionStalled)
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(stalled.Reason).To(Equal(controllers.ReasonPartitionsRetrying))
		}, 60*time.Second).Should(Succeed())
	})

	It("a partition whose pod reports a blocked dead letter is Stalled with reason DeadLetterUnwritable", func() {
		key := reportingPipeline("deadletter", telemetry.Record{State: telemetry.StateDeadLetterBlocked, Replica: "deadletter-0"})
		Eventually(func(g Gomega) {
			stalled := condition(getPipeline(g, key), kpipev1.ConditionStalled)
			g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(stalled.Reason).To(Equal(controllers.ReasonDeadLetterUnwritable))
		}, 90*time.Second).Should(Succeed())
	})

	It("a pipeline with minReplicas 1 whose group has no members is Idle (Resting), never Stalled", func() {
		key := reportingPipeline("resting", telemetry.Record{}, func(kp *kpipev1.KafkaPipeline) {
			kp.Spec.Scaling.MinReplicas = ptr.To[int32](1)
			kp.Spec.Scaling.MaxReplicas = ptr.To[int32](1)
		})
		Eventually(func(g Gomega) {
			kp := getPipeline(g, key)
			idle := condition(kp, kpipev1.ConditionIdle)
			g.Expect(idle.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(idle.Reason).To(Equal(controllers.ReasonResting))
			g.Expect(kp.Status.ReadyReplicas).To(Equal(int32(1)))
		}, 60*time.Second).Should(Succeed())
		time.Sleep(8 * time.Second) // past the stall threshold: 6 polls of 1s
		kp := getPipeline(Default, key)
		Expect(condition(kp, kpipev1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse))
		Expect(condition(kp, kpipev1.ConditionIdle).Reason).To(Equal(controllers.ReasonResting))
		Expect(kp.Status.Lag).To(Equal(int64(200)))
	})
})
