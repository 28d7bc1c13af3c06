package telemetry

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	at := time.UnixMilli(1764612345678)
	in := Record{
		At: at, Rate: 1234.567, Busy: 0.4321, InFlight: 17, OldestInFlight: 2500 * time.Millisecond,
		LastTimestamp: at.Add(-3 * time.Second), State: StateRetrying, Replica: "orders-7d9f8c-x2x4z",
	}
	got, err := Decode(Encode(in))
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Rate, want.Busy = 1234.57, 0.432
	if got != want {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
}

func TestEncodeBoundsLength(t *testing.T) {
	long := strings.Repeat("a", 300) + "-tail5"
	s := Encode(Record{At: time.Now(), Rate: 1e12, Busy: 1, InFlight: 1 << 30, OldestInFlight: time.Hour * 1e4,
		LastTimestamp: time.Now(), State: StateDeadLetterBlocked, Replica: long})
	if len(s) > MaxLen {
		t.Fatalf("encoded %d bytes, want at most %d", len(s), MaxLen)
	}
	r, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(r.Replica, "-tail5") {
		t.Fatalf("replica %q lost its end", r.Replica)
	}
}

func TestEncodeClampsAndEscapes(t *testing.T) {
	r, err := Decode(Encode(Record{At: time.UnixMilli(1), Rate: -5, Busy: 3, InFlight: -1, Replica: "a;b=c"}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Rate != 0 || r.Busy != 1 || r.InFlight != 0 || r.Replica != "a_b_c" || r.State != StateOK {
		t.Fatalf("got %+v", r)
	}
}

func TestDecodeFallbacks(t *testing.T) {
	for _, s := range []string{"", "some other client's metadata", "k"} {
		if _, err := Decode(s); !errors.Is(err, ErrNotTelemetry) {
			t.Errorf("Decode(%q) = %v, want ErrNotTelemetry", s, err)
		}
	}
	var uv *UnknownVersionError
	if _, err := Decode("kp2;at=1;x=y"); !errors.As(err, &uv) || uv.Got != "2" {
		t.Errorf("Decode(kp2) = %v, want an unknown version 2", err)
	}
	if _, err := Decode("kp1;at=1;future=42;r=3"); err != nil {
		t.Errorf("an unknown key of version 1 must be ignored: %v", err)
	}
	for _, s := range []string{"kp1;r=3", "kp1;at=x", "kp1;at=1;r", "kp1;at=1;n=1.5"} {
		if _, err := Decode(s); err == nil || errors.Is(err, ErrNotTelemetry) {
			t.Errorf("Decode(%q) = %v, want a field error", s, err)
		}
	}
}
