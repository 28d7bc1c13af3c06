package lag

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

type certPair struct{ certPEM, keyPEM []byte }

func issue(t *testing.T, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (certPair, *x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	return certPair{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}, cert, key
}

// TestTLS reads a kfake cluster that requires mutual TLS, with a configuration built from the
// keys of a TLS Secret.
func TestTLS(t *testing.T) {
	now := time.Now()
	ca, caCert, caKey := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kpipe test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, nil)
	server, _, _ := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kafka"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, caCert, caKey)
	client, _, _ := issue(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "kpipe"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}, caCert, caKey)

	serverPair, err := tls.X509KeyPair(server.certPEM, server.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "secure"), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{serverPair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()

	r := NewReader(Options{Timeout: 5 * time.Second})
	defer r.Close()
	poll := func(authHash string, data map[string][]byte) error {
		cfg, err := TLSConfig(data, false)
		if err != nil {
			return err
		}
		_, err = r.Poll(context.Background(), Query{Pipeline: "ns/tls", Conn: Connection{BootstrapServers: kc.ListenAddrs(), TLS: cfg, AuthHash: authHash}, Topics: []string{"secure"}, Group: "g"})
		return err
	}
	if err := poll("with-ca", map[string][]byte{"ca.crt": ca.certPEM, "tls.crt": client.certPEM, "tls.key": client.keyPEM}); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}
	if err := poll("without-ca", map[string][]byte{"tls.crt": client.certPEM, "tls.key": client.keyPEM}); err == nil {
		t.Fatal("a broker signed by an unknown CA was trusted")
	}
	if _, err := TLSConfig(map[string][]byte{"tls.crt": client.certPEM}, false); err == nil || !strings.Contains(err.Error(), "together") {
		t.Fatalf("tls.crt without tls.key: %v", err)
	}
	if _, err := TLSConfig(map[string][]byte{"ca.crt": []byte("not pem")}, false); err == nil || strings.Contains(err.Error(), "not pem") {
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
				sasl, err := SASLConfig(mech, map[string][]byte{"username": []byte("kpipe"), "password": []byte(pw)})
				if err != nil {
					t.Fatal(err)
				}
				_, err = r.Poll(context.Background(), Query{Pipeline: "ns/p", Conn: Connection{BootstrapServers: kc.ListenAddrs(), SASL: sasl, AuthHash: pw}, Topics: []string{"t"}, Group: "g"})
				if (err == nil) != (pw == "s3cret") {
					t.Fatalf("password %q: err %v", pw, err)
				}
				if err != nil && strings.Contains(err.Error(), pw) {
					t.Fatalf("error reveals the password: %v", err)
				}
			}
		})
	}
	if _, err := SASLConfig("PLAIN", map[string][]byte{"username": []byte("u")}); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("missing password: %v", err)
	}
}
