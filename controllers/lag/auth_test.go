package lag

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
	"github.com/kpipe-io/kpipe/internal/kafkaclient"
	"github.com/kpipe-io/kpipe/test/kafkatest"
)

// TestTLS reads a kfake cluster that requires mutual TLS, with a configuration built from the
// keys of a TLS Secret.
func TestTLS(t *testing.T) {
	pki := kafkatest.NewPKI(t)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "secure"), kfake.TLS(pki.ServerTLS(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()

	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	poll := func(authHash string, data map[string][]byte) error {
		cfg, err := kafkaclient.TLSFromSecret(data, false)
		if err != nil {
			return err
		}
		_, err = r.Poll(context.Background(), Query{Pipeline: "ns/tls", Conn: Connection{BootstrapServers: kc.ListenAddrs(), Credentials: kafkaclient.Credentials{TLS: cfg}, AuthHash: authHash}, Topics: []string{"secure"}, Group: "g"})
		return err
	}
	if err := poll("with-ca", map[string][]byte{"ca.crt": pki.CA, "tls.crt": pki.ClientCert, "tls.key": pki.ClientKey}); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if err := poll("without-ca", map[string][]byte{"tls.crt": pki.ClientCert, "tls.key": pki.ClientKey}); err == nil {
		t.Fatal("a broker signed by an unknown CA was trusted")
	}
	if _, err := kafkaclient.TLSFromSecret(map[string][]byte{"tls.crt": pki.ClientCert}, false); err == nil || !strings.Contains(err.Error(), "together") {
		t.Fatalf("tls.crt without tls.key: %v", err)
	}
	if _, err := kafkaclient.TLSFromSecret(map[string][]byte{"ca.crt": []byte("not pem")}, false); err == nil || strings.Contains(err.Error(), "not pem") {
		t.Fatalf("bad ca.crt: %v (must not echo the contents)", err)
	}
}

// TestSASLMechanisms reads a SASL cluster with each mechanism the API offers.
func TestSASLMechanisms(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"), kfake.EnableSASL(), kfake.Superuser(mech, "kpipe", "s3cret"))
			if err != nil {
				t.Fatal(err)
			}
			defer kc.Close()
			r := NewReader(Options{Timeout: 5 * time.Second})
			defer r.Close()
			for _, pw := range []string{"s3cret", "wrong"} {
				sasl, err := kafkaclient.SASLFromSecret(kpipev1.SASLMechanism(mech), map[string][]byte{"username": []byte("kpipe"), "password": []byte(pw)})
				if err != nil {
					t.Fatal(err)
				}
				_, err = r.Poll(context.Background(), Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.ListenAddrs(), Credentials: kafkaclient.Credentials{SASL: sasl}, AuthHash: pw}, Topics: []string{"t"}, Group: "g"})
				if (err == nil) != (pw == "s3cret") {
					t.Fatalf("password %q: err %v", pw, err)
				}
				if err != nil && strings.Contains(err.Error(), pw) {
					t.Fatalf("error reveals the password: %v", err)
				}
			}
		})
	}
	if _, err := kafkaclient.SASLFromSecret(kpipev1.SASLPlain, map[string][]byte{"username": []byte("u")}); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("missing password: %v", err)
	}
}
