package runtime

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// TestTLSAndSASL runs a forward pipeline against a cluster that requires mutual TLS and
// SASL, with each mechanism, credentials and certificates read from Secret files.
func TestTLSAndSASL(t *testing.T) {
	pki := kafkatest.NewPKI(t)
	for _, tt := range []struct {
		mechanism string
		mech      sasl.Mechanism
	}{
		{"PLAIN", plain.Auth{User: "alice", Pass: "pw-plain"}.AsMechanism()},
		{"SCRAM-SHA-256", scram.Auth{User: "alice", Pass: "pw-256"}.AsSha256Mechanism()},
		{"SCRAM-SHA-512", scram.Auth{User: "alice", Pass: "pw-512"}.AsSha512Mechanism()},
	} {
		t.Run(tt.mechanism, func(t *testing.T) {
			g := NewWithT(t)
			const n = 200
			password := map[string]string{"PLAIN": "pw-plain", "SCRAM-SHA-256": "pw-256", "SCRAM-SHA-512": "pw-512"}[tt.mechanism]
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "in", "out"),
				kfake.TLS(pki.ServerTLS(t)), kfake.EnableSASL(), kfake.Superuser(tt.mechanism, "alice", password))
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(c.Close)
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DialTLSConfig(pki.ClientTLS(t)),
				kgo.SASL(tt.mech), kgo.RecordPartitioner(kgo.ManualPartitioner()))
			g.Expect(err).NotTo(HaveOccurred())
			t.Cleanup(cl.Close)
			tc := &testCluster{t: t, c: c, addrs: c.ListenAddrs(), cl: cl}
			tc.produce(input{topic: "in", n: n, keys: 10, partitions: 2}, 0, n)

			spec := tc.baseSpec("secure")
			spec["kafka"] = map[string]any{
				"bootstrapServers": tc.addrs,
				"tls":              map[string]any{"secretRef": map[string]any{"name": "kafka-tls"}},
				"sasl":             map[string]any{"mechanism": tt.mechanism, "secretRef": map[string]any{"name": "kafka-user"}},
			}
			dirs := SecretDirs{
				TLS:  writeFiles(t, map[string]string{"ca.crt": string(pki.CA), "tls.crt": string(pki.ClientCert), "tls.key": string(pki.ClientKey)}),
				SASL: writeFiles(t, map[string]string{"username": "alice", "password": password}),
			}
			cfg, err := LoadConfig(specJSON(t, spec), dirs)
			g.Expect(err).NotTo(HaveOccurred())
			r := startConfig(t, cfg)

			// Read back with a client of the test's own.
			rc, err := kgo.NewClient(kgo.SeedBrokers(tc.addrs...), kgo.DialTLSConfig(pki.ClientTLS(t)), kgo.SASL(tt.mech),
				kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			g.Expect(err).NotTo(HaveOccurred())
			defer rc.Close()
			got := 0
			g.Eventually(func() int {
				fs := rc.PollRecords(t.Context(), 1000)
				got += fs.NumRecords()
				return got
			}).WithTimeout(time.Minute).Should(BeNumerically(">=", n))
			r.stop(t)
		})
	}
}
