package controllers_test

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kmsg"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// The Kafka requests the running operator sends per poll, counted by kfake. The lag reader's
// own test (controllers/lag, TestRequestsPerPoll) measures single polls exactly; this one
// measures the whole operator over a few seconds, where a poll is one OffsetFetch of a group.
var _ = Describe("Kafka requests per poll", Ordered, func() {
	ctx := context.Background()
	var (
		cluster *kafkatest.Cluster
		ns      string
		topics  = []string{"cost-a", "cost-b", "cost-c"}
	)
	BeforeAll(func() {
		var err error
		cluster, err = kafkatest.Start(3, 32, topics...)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(cluster.Close)
		ns = newNamespace()
		cluster.CountRequests()
	})

	create := func(from, to int) {
		for i := from; i < to; i++ {
			kp := newPipeline(ns, fmt.Sprintf("cost-%d", i), topics, func(kp *kpipev1.KafkaPipeline) {
				kp.Spec.Kafka.BootstrapServers = cluster.Addrs
			})
			Expect(k8s.Create(ctx, kp)).To(Succeed())
		}
		Eventually(func(g Gomega) {
			for i := from; i < to; i++ {
				kp := getPipeline(g, types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("cost-%d", i)})
				g.Expect(kp.Status.Partitions).To(Equal(int32(96)))
			}
		}, 2*time.Minute).Should(Succeed())
	}

	measure := func(pipelines int) kafkatest.Counts {
		cluster.Counts()
		time.Sleep(5 * time.Second) // a measuring window, not a timing assertion
		c := cluster.Counts()
		polls := c.Of(kmsg.OffsetFetch)
		Expect(polls).To(BeNumerically(">", 0))
		GinkgoWriter.Printf("%d pipeline(s), 3 topics x 32 partitions, 3 brokers: %d polls in 5s, %s; per poll: %.2f Metadata, %.2f ListOffsets, %.2f in all\n",
			pipelines, polls, c, float64(c.Of(kmsg.Metadata))/float64(polls), float64(c.Of(kmsg.ListOffsets))/float64(polls), float64(c.Total())/float64(polls))
		AddReportEntry(fmt.Sprintf("Kafka requests, %d pipeline(s)", pipelines), fmt.Sprintf("%d polls: %s", polls, c))
		return c
	}

	It("costs one Metadata, one ListOffsets per broker and one OffsetFetch for one pipeline", func() {
		create(0, 1)
		c := measure(1)
		polls := c.Of(kmsg.OffsetFetch)
		Expect(c.Of(kmsg.Metadata)).To(BeNumerically("<=", polls))
		Expect(c.Of(kmsg.ListOffsets)).To(BeNumerically("<=", 3*polls+3)) // + oldest offsets, once a minute
	})

	It("shares the broker-wide reads among 50 pipelines", func() {
		create(1, 50)
		c := measure(50)
		polls := c.Of(kmsg.OffsetFetch)
		// Broker-wide reads happen at most once per half poll interval for the whole cluster,
		// not once per pipeline: far fewer than one per poll.
		Expect(c.Of(kmsg.Metadata)).To(BeNumerically("<", polls/5))
		Expect(c.Of(kmsg.ListOffsets)).To(BeNumerically("<", 3*polls/5))
	})

	It("closes the shared client and drops the metrics when the pipelines are deleted", func() {
		before := reconciler.Lag.Connections()
		for i := range 50 {
			Expect(k8s.Delete(ctx, &kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cost-%d", i)}})).To(Succeed())
		}
		Eventually(reconciler.Lag.Connections).Should(Equal(before - 1))
		Eventually(func(g Gomega) {
			families, err := metrics.Registry.Gather()
			g.Expect(err).NotTo(HaveOccurred())
			for _, f := range families {
				for _, m := range f.Metric {
					for _, l := range m.Label {
						if l.GetName() == "namespace" {
							g.Expect(l.GetValue()).NotTo(Equal(ns), f.GetName())
						}
					}
				}
			}
		}).Should(Succeed())
	})

	AfterAll(func() {
		for i := range 50 {
			_ = k8s.Delete(ctx, &kpipev1.KafkaPipeline{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("cost-%d", i)}})
		}
	})
})
