package runtime

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	. "github.com/onsi/gomega"
)

// TestTimeoutsFit: the rebalance timeout stays above the drain and shutdown timeouts, and
// JoinGroup reads outlive it, whatever the options and a sarama hook set; a member rejoins
// quickly after REBALANCE_IN_PROGRESS.
func TestTimeoutsFit(t *testing.T) {
	cases := []struct {
		name                string
		opts                []Option
		rebalance, readWait time.Duration
	}{
		{"defaults", nil, 30 * time.Second, 65 * time.Second},
		{"a pod grace period of 2m", []Option{WithShutdownTimeout(100 * time.Second)}, 105 * time.Second, 215 * time.Second},
		{"a hook's short rebalance timeout", []Option{WithSaramaConfig(func(sc *sarama.Config) {
			sc.Consumer.Group.Rebalance.Timeout = 10 * time.Second
			sc.Net.ReadTimeout = time.Second
		})}, 30 * time.Second, 65 * time.Second},
		{"a long drain", []Option{WithDrainTimeout(40 * time.Second)}, 45 * time.Second, 95 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := NewWithT(t)
			cfg, err := LoadConfig(merge(t, minimal, nil), SecretDirs{})
			g.Expect(err).NotTo(HaveOccurred())
			p, err := New(cfg, c.opts...)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(p.sarama.Consumer.Group.Session.Timeout).To(Equal(10 * time.Second))
			g.Expect(p.sarama.Consumer.Group.Heartbeat.Interval).To(Equal(time.Second))
			g.Expect(p.sarama.Consumer.Group.Rebalance.Timeout).To(Equal(c.rebalance))
			g.Expect(p.sarama.Net.ReadTimeout).To(Equal(c.readWait))
			g.Expect(p.set.drainTimeout).To(BeNumerically("<", c.rebalance))
			g.Expect(p.set.shutdownTimeout).To(BeNumerically("<", c.rebalance))
			// A member told REBALANCE_IN_PROGRESS rejoins within a heartbeat, and a moved
			// coordinator still gets sarama's 8s of retries.
			retry := p.sarama.Consumer.Group.Rebalance.Retry
			g.Expect(retry.Backoff).To(BeNumerically("<", p.sarama.Consumer.Group.Heartbeat.Interval))
			g.Expect(time.Duration(retry.Max) * retry.Backoff).To(BeNumerically(">=", 8*time.Second))
		})
	}
}
