package runtime

import (
	"encoding/json"
	"errors"
	goruntime "runtime"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// minimal is the smallest valid spec; cases change it with JSON merges.
const minimal = `{"kafka":{"bootstrapServers":["kafka:9092"]},"topics":["in"],"group":"g","processor":{"forward":{"topic":"out"}}}`

func merge(t *testing.T, base string, patch map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(base), &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range patch {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoadConfigRefusesBadInput(t *testing.T) {
	pki := kafkatest.NewPKI(t)
	tlsSpec := map[string]any{"bootstrapServers": []string{"kafka:9093"}, "tls": map[string]any{"secretRef": map[string]any{"name": "kafka-tls"}}}
	saslSpec := map[string]any{"bootstrapServers": []string{"kafka:9092"}, "sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "secretRef": map[string]any{"name": "kafka-user"}}}
	for _, tt := range []struct {
		name     string
		json     func(t *testing.T) []byte
		tlsFiles map[string]string
		sasl     map[string]string
		want     []string // substrings of the error
		// onePerProblem: each want is a problem of its own, reported on its own line
		onePerProblem bool
	}{
		{name: "bad JSON", json: func(*testing.T) []byte { return []byte(`{"topics": [`) }, want: []string{"decode pipeline spec"}},
		{name: "not an object", json: func(*testing.T) []byte { return []byte(`[]`) }, want: []string{"decode pipeline spec"}},
		{name: "repeated field", json: func(*testing.T) []byte { return []byte(minimal[:len(minimal)-1] + `,"group":"h"}`) },
			want: []string{`duplicate field "group"`}},
		{name: "wrong type", json: func(t *testing.T) []byte { return merge(t, minimal, map[string]any{"topics": "in"}) },
			want: []string{"decode pipeline spec", "topics"}},
		{name: "missing topics", json: func(t *testing.T) []byte { return merge(t, minimal, map[string]any{"topics": nil}) },
			want: []string{"spec.topics: Required value"}},
		{name: "bad topic name", json: func(t *testing.T) []byte { return merge(t, minimal, map[string]any{"topics": []string{"a b"}}) },
			want: []string{"spec.topics[0]"}},
		{name: "missing group", json: func(t *testing.T) []byte { return merge(t, minimal, map[string]any{"group": nil}) },
			want: []string{"spec.group: Required value"}},
		{name: "unparsable duration", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"idle": map[string]any{"window": "soon"}})
		}, want: []string{"spec.idle.window", `invalid duration "soon"`}},
		{name: "negative duration", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"retry": map[string]any{"initialBackoff": "-1s"}})
		}, want: []string{"spec.retry.initialBackoff", "positive duration"}},
		{name: "penalty shorter than window", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"idle": map[string]any{"window": "5m", "penalty": "1m"}})
		}, want: []string{"spec.idle.penalty", "at least idle.window"}},
		{name: "no processor", json: func(t *testing.T) []byte { return merge(t, minimal, map[string]any{"processor": map[string]any{}}) },
			want: []string{"exactly one of processor.forward, processor.http or processor.handler"}},
		{name: "bad ordering", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"pool": map[string]any{"ordering": "Random"}})
		}, want: []string{"spec.pool.ordering: Unsupported value"}},
		{name: "bad bootstrap server", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": map[string]any{"bootstrapServers": []string{"kafka"}}})
		}, want: []string{"spec.kafka.bootstrapServers[0]", "host:port"}},
		{name: "bad http url", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"processor": map[string]any{"http": map[string]any{"url": "ftp://x"}}})
		}, want: []string{"spec.processor.http.url"}},
		{name: "two problems, two lines", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"group": nil, "topics": nil})
		}, want: []string{"spec.topics", "spec.group"}, onePerProblem: true},
		{name: "TLS Secret not mounted", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": tlsSpec})
		}, tlsFiles: map[string]string{}, want: []string{`spec.kafka.tls.secretRef: Secret "kafka-tls" is not mounted`}},
		{name: "TLS certificate without key", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": tlsSpec})
		}, tlsFiles: map[string]string{"tls.crt": string(pki.ClientCert)}, want: []string{"tls.key is missing"}},
		{name: "TLS key without certificate", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": tlsSpec})
		}, tlsFiles: map[string]string{"tls.key": string(pki.ClientKey)}, want: []string{"tls.crt is missing"}},
		{name: "TLS CA not PEM", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": tlsSpec})
		}, tlsFiles: map[string]string{"ca.crt": "not a certificate"}, want: []string{"ca.crt holds no PEM certificate"}},
		{name: "TLS key does not match", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": tlsSpec})
		}, tlsFiles: map[string]string{"tls.crt": string(pki.ClientCert), "tls.key": string(pki.ServerKey)}, want: []string{"tls.crt and tls.key"}},
		{name: "SASL Secret not mounted", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": saslSpec})
		}, sasl: map[string]string{}, want: []string{"username is missing", "password is missing"}, onePerProblem: true},
		{name: "SASL empty password", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": saslSpec})
		}, sasl: map[string]string{"username": "u", "password": "\n"}, want: []string{"password is empty"}},
		{name: "bad SASL mechanism", json: func(t *testing.T) []byte {
			return merge(t, minimal, map[string]any{"kafka": map[string]any{"bootstrapServers": []string{"kafka:9092"},
				"sasl": map[string]any{"mechanism": "GSSAPI", "secretRef": map[string]any{"name": "kafka-user"}}}})
		}, sasl: map[string]string{"username": "u", "password": "p"}, want: []string{"spec.kafka.sasl.mechanism: Unsupported value"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			var dirs SecretDirs
			if tt.tlsFiles != nil {
				dirs.TLS = writeFiles(t, tt.tlsFiles)
			}
			if tt.sasl != nil {
				dirs.SASL = writeFiles(t, tt.sasl)
			}
			_, err := LoadConfig(tt.json(t), dirs)
			g.Expect(err).To(HaveOccurred())
			var ce *ConfigError
			g.Expect(errors.As(err, &ce)).To(BeTrue(), "want a *ConfigError, got %T", err)
			if tt.onePerProblem {
				g.Expect(ce.Problems).To(HaveLen(len(tt.want)), "one line per problem: %v", ce.Problems)
			}
			for _, w := range tt.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
			g.Expect(err.Error()).NotTo(ContainSubstring("PRIVATE KEY"), "key material in an error")
		})
	}
}

// TestLoadConfigWithoutTemplate accepts a handler pipeline whose spec has no template: the
// operator leaves the pod template out of KPIPE_PIPELINE_SPEC.
func TestLoadConfigWithoutTemplate(t *testing.T) {
	spec := merge(t, minimal, map[string]any{"processor": map[string]any{"handler": map[string]any{"name": "enrich"}}})
	if _, err := LoadConfig(spec, SecretDirs{}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadConfigAppliesDefaultsAndReadsSecrets(t *testing.T) {
	g := NewWithT(t)
	pki := kafkatest.NewPKI(t)
	spec := merge(t, minimal, map[string]any{"kafka": map[string]any{
		"bootstrapServers": []string{"kafka:9093"},
		"tls":              map[string]any{"secretRef": map[string]any{"name": "kafka-tls"}},
		"sasl":             map[string]any{"mechanism": "SCRAM-SHA-256", "secretRef": map[string]any{"name": "kafka-user"}},
	}})
	dirs := SecretDirs{
		TLS:  writeFiles(t, map[string]string{"ca.crt": string(pki.CA), "tls.crt": string(pki.ClientCert), "tls.key": string(pki.ClientKey)}),
		SASL: writeFiles(t, map[string]string{"username": "alice\n", "password": "s3cret"}),
	}
	cfg, err := LoadConfig(spec, dirs)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(*cfg.Spec.Pool.Buffer).To(Equal(int32(256)))
	g.Expect(string(cfg.Spec.Pool.Ordering)).To(Equal("Key"))
	g.Expect(cfg.PoolSize()).To(Equal(goruntime.GOMAXPROCS(0)))
	g.Expect(cfg.Credentials.TLS.Certificates).To(HaveLen(1))
	g.Expect(cfg.Credentials.TLS.RootCAs).NotTo(BeNil())
	g.Expect(cfg.Credentials.SASL.Username).To(Equal("alice"))
	g.Expect(cfg.Credentials.SASL.String()).NotTo(ContainSubstring("s3cret"))

	mem := newMemoryBudget(256<<20, "test", 0)
	sc, err := saramaConfig(cfg, &mem)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sc.Net.TLS.Enable).To(BeTrue())
	g.Expect(sc.Net.SASL.Mechanism).To(BeEquivalentTo("SCRAM-SHA-256"))
	g.Expect(sc.Net.SASL.SCRAMClientGeneratorFunc).NotTo(BeNil())
	g.Expect(sc.Consumer.Offsets.AutoCommit.Enable).To(BeFalse())
}
