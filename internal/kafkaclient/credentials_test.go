package kafkaclient

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	kpipev1 "github.com/kpipe-io/kpipe/api/v1alpha1"
)

func TestSASLNeverPrintsThePassword(t *testing.T) {
	s := SASL{Mechanism: kpipev1.SASLPlain, Username: "alice", Password: "s3cret"}
	for _, out := range []string{s.String(), fmt.Sprintf("%v %+v %#v %s", s, s, s, &s)} {
		if strings.Contains(out, "s3cret") {
			t.Fatalf("password printed: %s", out)
		}
	}
}

func TestSASLFromSecret(t *testing.T) {
	s, err := SASLFromSecret(kpipev1.SASLSCRAMSHA256, map[string][]byte{KeyUsername: []byte("alice\n"), KeyPassword: []byte("pw\r\n")})
	if err != nil || s.Username != "alice" || s.Password != "pw" {
		t.Fatalf("got %v, %v; want alice with the newlines trimmed", s, err)
	}
	_, err = SASLFromSecret(kpipev1.SASLPlain, map[string][]byte{KeyPassword: []byte("\n")})
	var missing *MissingKeyError
	var empty *EmptyKeyError
	if !errors.As(err, &missing) || missing.Key != KeyUsername || !errors.As(err, &empty) || empty.Key != KeyPassword {
		t.Fatalf("want username missing and password empty, got %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	sc, err := NewConfig("kpipe-x", "", Credentials{SASL: &SASL{Mechanism: kpipev1.SASLSCRAMSHA512, Username: "u", Password: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Version != DefaultVersion || sc.ClientID != "kpipe-x" || sc.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA512 || sc.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Fatalf("unexpected configuration: version %v, id %q, mechanism %q", sc.Version, sc.ClientID, sc.Net.SASL.Mechanism)
	}
	if _, err := NewConfig("x", "banana", Credentials{}); err == nil || !strings.Contains(err.Error(), "spec.kafka.version") {
		t.Fatalf("a bad version must name the field: %v", err)
	}
	if _, err := NewConfig("x", "", Credentials{SASL: &SASL{Mechanism: "GSSAPI"}}); err == nil || !strings.Contains(err.Error(), "GSSAPI") {
		t.Fatalf("an unknown mechanism must be named: %v", err)
	}
}
