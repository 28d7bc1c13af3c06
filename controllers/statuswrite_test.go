package controllers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/controllers"
	"github.com/kpipe-io/kpipe/controllers/lag"
	"github.com/kpipe-io/kpipe/controllers/manager"
	"github.com/kpipe-io/kpipe/test/envtest"
	"github.com/kpipe-io/kpipe/test/kafkatest"
	"github.com/kpipe-io/kpipe/test/kubelet"
)

// gaugeValue is a gauge of the operator's metrics for one pipeline (-1 when absent).
func gaugeValue(t *testing.T, name, pipeline string) float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "pipeline" && l.GetValue() == pipeline {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// TestStatusWritesInSteadyState runs a manager with the reconciler's default status rule
// (StatusLagWrites) on its own control plane. A pipeline polled every second whose lag grows
// a little on every poll while its consumer commits gets no status write for 15 polls, while
// the lag metric follows the polls; then, when the commits stop, the Stalled condition is
// written as soon as the partition counts as stalled.
func TestStatusWritesInSteadyState(t *testing.T) {
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	te, err := envtest.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = te.Stop() }()
	kc, err := kafkatest.Start(1, 1, "steady")
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	const group = "steady-group"
	if err := kc.Commit(ctx, group, map[string]map[int32]int64{"steady": {0: 0}}); err != nil {
		t.Fatal(err)
	}
	if err := kc.Produce(ctx, "steady", 1000, 0); err != nil {
		t.Fatal(err)
	}
	// The consumer is a member of the group (a group without members is resting, never
	// stalled); it commits without a telemetry record, so stalls are told from offsets alone.
	member, err := kafkatest.JoinGroup(kc.Addrs, group, "steady-0", "steady")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = member.Close() }()
	r := &controllers.KafkaPipelineReconciler{Image: "ghcr.io/kpipe-io/kpipe:test", Lag: lag.NewReader(lag.Options{Timeout: 5 * time.Second})}
	mgr, err := manager.New(te.Config, manager.Options{SkipNameValidation: true}, r) // the suite runs its own in this process
	if err != nil {
		t.Fatal(err)
	}
	// The Deployment controller and kubelet of envtest: the replica turns ready, so the
	// pipeline consumes and a partition whose commits stop can stall.
	if err := (&kubelet.Runner{Client: mgr.GetClient(), StatusOnly: true, ReadyInterval: 200 * time.Millisecond}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("manager: %v", err)
		}
	}()

	kube, err := client.NewWithWatch(te.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "default", Name: "steady"}
	kp := &kpipev1.KafkaPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Spec: kpipev1.KafkaPipelineSpec{
			Kafka: kpipev1.KafkaConnection{BootstrapServers: kc.Addrs}, Topics: []string{"steady"}, Group: group,
			InitialOffset: kpipev1.InitialOffsetEarliest, Replicas: ptr.To[int32](1),
			Processor: kpipev1.ProcessorSpec{Forward: &kpipev1.ForwardProcessor{Topic: "steady-out"}},
			Scaling:   kpipev1.ScalingSpec{Mode: kpipev1.ScalingManual, PollInterval: &metav1.Duration{Duration: time.Second}},
		},
	}
	if err := kube.Create(ctx, kp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the first status with lag 1000", func() bool {
		return kube.Get(ctx, key, kp) == nil && kp.Status.Lag == 1000 && kp.Status.ObservedGeneration == kp.Generation
	})
	waitFor(t, 30*time.Second, "the replica ready", func() bool {
		return kube.Get(ctx, key, kp) == nil && kp.Status.ReadyReplicas == 1 && conditionOf(kp, kpipev1.ConditionReady).Status == metav1.ConditionTrue
	})
	time.Sleep(2 * time.Second) // the status settles

	var writes atomic.Int32
	w, err := kube.Watch(ctx, &kpipev1.KafkaPipelineList{}, client.InNamespace(key.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				writes.Add(1)
			}
		}
	}()
	// Each second a producer adds 2 messages and a consumer commits 1, half a second later:
	// commits progress and the lag grows by one a second, 1.5% over the 15 polls.
	committed := int64(0)
	metricValues := map[float64]bool{}
	for range 15 {
		if err := kc.Produce(ctx, "steady", 2, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		committed++
		if err := member.Commit(map[string]map[int32]int64{"steady": {0: committed}}, ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		metricValues[gaugeValue(t, "kpipe_pipeline_lag", key.Name)] = true
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("%d status writes in 15 polls whose only change was lag growing by 1.5%%; want none", n)
	}
	if len(metricValues) < 5 {
		t.Errorf("the lag metric took the values %v over 15 polls of a growing lag; want it to follow the polls", metricValues)
	}
	if err := kube.Get(ctx, key, kp); err != nil || kp.Status.Lag != 1000 {
		t.Fatalf("status.lag %d (%v); want the stored 1000", kp.Status.Lag, err)
	}

	// Commits stop while lag waits: after StallPolls (6) polls the partition is stalled, a
	// change of a condition, written by the poll that sees it.
	if err := kc.Produce(ctx, "steady", 2, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the Stalled condition written", func() bool {
		return kube.Get(ctx, key, kp) == nil && conditionOf(kp, kpipev1.ConditionStalled).Status == metav1.ConditionTrue
	})
	if n := writes.Load(); n < 1 || n > 2 {
		t.Errorf("%d status writes for the stall; want it written (once, with at most one lag write)", n)
	}
}

func conditionOf(kp *kpipev1.KafkaPipeline, typ string) metav1.Condition {
	for _, c := range kp.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{Type: typ, Status: "Absent"}
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
