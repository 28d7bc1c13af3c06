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
// measures the whole operator over a few seconds. One pipeline's poll is one OffsetFetch of its
// group; many pipelines' groups are fetched together (one OffsetFetch per coordinator carries
// every group whose last read is older than half the poll interval).
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
		Expect(c.Of(kmsg.OffsetFetch)).To(BeNumerically(">", 0))
		GinkgoWriter.Printf("%d pipeline(s), 3 topics x 32 partitions, 3 brokers, polled every second: in 5s %s\n", pipelines, c)
		AddReportEntry(fmt.Sprintf("Kafka requests in 5s, %d pipeline(s)", pipelines), c.String())
		return c
	}

	It("costs one Metadata, one ListOffsets per broker and one OffsetFetch for one pipeline", func() {
		create(0, 1)
		c := measure(1)
		polls := c.Of(kmsg.OffsetFetch) // one per poll: the pipeline's reads are older than half its interval
		Expect(c.Of(kmsg.Metadata)).To(BeNumerically("<=", polls))
		Expect(c.Of(kmsg.ListOffsets)).To(BeNumerically("<=", 3*polls+3)) // + oldest offsets, once a minute
	})

	It("shares every read among 50 pipelines: requests grow with brokers and coordinators", func() {
		create(1, 50)
		c := measure(50)
		// The 50 pipelines poll about 250 times in the 5 s. Each read is shared for half a
		// poll interval, so about 10 reads serve them all (a few more with the jitter): one
		// Metadata, one ListOffsets per broker and one OffsetFetch per coordinator (3 brokers,
		// each coordinating some of the 50 groups) each.
		Expect(c.Of(kmsg.Metadata)).To(BeNumerically("<=", 15))
		Expect(c.Of(kmsg.ListOffsets)).To(BeNumerically("<=", 3*15+3)) // + oldest offsets, once a minute
		Expect(c.Of(kmsg.OffsetFetch)).To(BeNumerically("<=", 3*15))
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
